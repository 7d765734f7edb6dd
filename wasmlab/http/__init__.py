"""HTTP model: header maps, buffers, requests, responses and filter statuses."""

from .buffer import Buffer
from .headers import HeaderMap
from .message import Request, Response
from .status import FilterDataStatus, FilterHeadersStatus, FilterTrailersStatus, reason_phrase

__all__ = [
    "Buffer",
    "FilterDataStatus",
    "FilterHeadersStatus",
    "FilterTrailersStatus",
    "HeaderMap",
    "Request",
    "Response",
    "reason_phrase",
]
