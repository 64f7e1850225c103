"""Client for the AI/ML API's FLUX.2 LoRA models. Knows nothing of ComfyUI or torch."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .budget import CreditBudget, credit_budget, set_credit_budget
from .cache import ResultCache, open_result_cache
from .config import ApiKey, resolve_api_key, resolve_base_url
from .decode import DecodedImage, decode_image, load_image
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
from .limits import LIMITS, MODEL_EDIT, MODEL_GENERATE
from .request import GenerationRequest, Lora, build_requests
from .retry import RetryPolicy
from .upload import EncodedPicture, encode_data_uri, encode_input_picture

if TYPE_CHECKING:
    from .batch import BatchResult, ImageSink, run_batch
    from .client import ApiClient, GenerationResponse, ImageRef, shared_client

# The HTTP modules import requests and its dependencies (tens of milliseconds): they load on
# first use, so that importing the pack while ComfyUI starts stays quick.
_LAZY = {
    "BatchResult": "batch", "ImageSink": "batch", "run_batch": "batch",
    "ApiClient": "client", "GenerationResponse": "client", "ImageRef": "client", "shared_client": "client",
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
