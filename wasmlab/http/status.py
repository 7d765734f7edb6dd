"""Status values a filter returns, as Envoy defines them, and HTTP reason phrases.

The numbers are Envoy's (``envoy/http/filter.h``); the Proxy-Wasm ABI and Envoy's C++ SDK use the
same numbers, so a Wasm callback's return value maps 1:1 onto these enums.
"""

from __future__ import annotations

from enum import IntEnum
from http import HTTPStatus


class FilterHeadersStatus(IntEnum):
    #: pass the headers on to the next filter
    Continue = 0
    #: hold the headers here; later body data still reaches this filter
    StopIteration = 1
    #: continue, but the stream is not ending here (a filter will add a body)
    ContinueAndDontEndStream = 2
    #: hold headers *and* buffer every later frame until continue (limit -> 413/500)
    StopAllIterationAndBuffer = 3
    #: like StopAllIterationAndBuffer but with flow control instead of a hard limit
    StopAllIterationAndWatermark = 4


class FilterDataStatus(IntEnum):
    #: pass this data (and held headers) on
    Continue = 0
    #: hold it and buffer everything that follows until continue (limit -> 413/500)
    StopIterationAndBuffer = 1
    #: buffer with flow control
    StopIterationAndWatermark = 2
    #: drop this data frame from iteration; the filter took it over
    StopIterationNoBuffer = 3


class FilterTrailersStatus(IntEnum):
    Continue = 0
    StopIteration = 1


def reason_phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"
