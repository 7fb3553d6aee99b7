"""The Python SDK: an async client, a blocking facade and typed errors.

Plain code over HTTP and WebSocket: it imports nothing from the server's views, agents or
features, so it works against any deployed bus given ``ESB_URL`` and ``ESB_TOKEN``.
"""

from esb.sdk.client import EsbClient
from esb.sdk.errors import (
    AlreadyExists,
    Conflict,
    EsbApiError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthenticated,
    Unavailable,
    ValidationFailed,
    VersionConflict,
)
from esb.sdk.live import LiveTail
from esb.sdk.sync import SyncEsbClient
from esb.sdk.transport import RetryPolicy

__all__ = [
    "AlreadyExists", "Conflict", "EsbApiError", "EsbClient", "Forbidden", "InvalidRequest",
    "LiveTail", "NotFound", "PayloadTooLarge", "RateLimited", "RetryPolicy", "SyncEsbClient",
    "Unauthenticated", "Unavailable", "ValidationFailed", "VersionConflict",
]
