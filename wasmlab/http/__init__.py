"""HTTP model: header maps, buffers, requests, responses, filter statuses and stream info."""

from .buffer import Buffer
from .headers import HeaderMap
from .message import Request, Response
from .status import FilterDataStatus, FilterHeadersStatus, FilterTrailersStatus, reason_phrase
from .stream_info import StreamInfo

__all__ = [
    "Buffer",
    "FilterDataStatus",
    "FilterHeadersStatus",
    "FilterTrailersStatus",
    "HeaderMap",
    "Request",
    "Response",
    "StreamInfo",
    "reason_phrase",
]
