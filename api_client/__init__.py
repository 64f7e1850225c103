"""Client for the AI/ML API's FLUX.2 LoRA models. Knows nothing of ComfyUI or torch."""

from .batch import BatchResult, ImageSink, run_batch
from .budget import CreditBudget, credit_budget, set_credit_budget
from .cache import ResultCache, open_result_cache
from .client import ApiClient, GenerationResponse, ImageRef, shared_client
from .config import ApiKey, resolve_api_key, resolve_base_url
from .decode import decode_image
from .errors import (
    APIConnectionError,
    APIResponseError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
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
    "BudgetExceededError",
    "Cancelled",
    "ConfigError",
    "CreditBudget",
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
    "open_result_cache",
    "resolve_api_key",
    "resolve_base_url",
    "run_batch",
    "set_credit_budget",
    "shared_client",
]
