"""Client for the AI/ML API's FLUX.2 LoRA models. Knows nothing of ComfyUI or torch."""

from .batch import BatchResult, ImageSink, run_batch
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
    "RetryPolicy",
    "ServerError",
    "build_requests",
    "decode_image",
    "encode_data_uri",
    "encode_input_picture",
    "resolve_api_key",
    "resolve_base_url",
    "run_batch",
    "shared_client",
]
