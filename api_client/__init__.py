"""Client for the AI/ML API's FLUX.2 LoRA models. Knows nothing of ComfyUI or torch."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .api.limits import LIMITS, MODEL_EDIT, MODEL_GENERATE
from .api.request import GenerationRequest, Lora, build_requests
from .errors import (
    APIConnectionError,
    APIResponseError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BilledWithoutAnswerError,
    BudgetExceededError,
    Cancelled,
    ConfigError,
    DownloadError,
    Flux2Error,
    ImageDecodeError,
    InputError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from .http.retry import RetryPolicy
from .images.decode import DecodedImage, decode_image, load_image
from .images.upload import EncodedPicture, encode_data_uri, encode_input_picture
from .money.budget import CreditBudget, credit_budget, set_credit_budget
from .run.cache import ResultCache, open_result_cache
from .settings import ApiKey, resolve_api_key, resolve_base_url

if TYPE_CHECKING:
    from .api.client import ApiClient, GenerationResponse, ImageRef, shared_client
    from .run.batch import BatchResult, ImageSink, run_batch

# The HTTP modules import requests and its dependencies (tens of milliseconds): they load on
# first use, so that importing the pack while ComfyUI starts stays quick.
_LAZY = {
    "BatchResult": "run.batch", "ImageSink": "run.batch", "run_batch": "run.batch",
    "ApiClient": "api.client", "GenerationResponse": "api.client", "ImageRef": "api.client",
    "shared_client": "api.client",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "LIMITS",
    "MODEL_EDIT",
    "MODEL_GENERATE",
    "APIConnectionError",
    "APIResponseError",
    "APIStatusError",
    "APITimeoutError",
    "ApiClient",
    "ApiKey",
    "AuthenticationError",
    "BadRequestError",
    "BatchResult",
    "BilledWithoutAnswerError",
    "BudgetExceededError",
    "Cancelled",
    "ConfigError",
    "CreditBudget",
    "DecodedImage",
    "DownloadError",
    "EncodedPicture",
    "Flux2Error",
    "GenerationRequest",
    "GenerationResponse",
    "ImageDecodeError",
    "ImageRef",
    "ImageSink",
    "InputError",
    "Lora",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResultCache",
    "RetryPolicy",
    "ServerError",
    "build_requests",
    "credit_budget",
    "decode_image",
    "encode_data_uri",
    "encode_input_picture",
    "load_image",
    "open_result_cache",
    "resolve_api_key",
    "resolve_base_url",
    "run_batch",
    "set_credit_budget",
    "shared_client",
]
