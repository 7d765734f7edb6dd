"""Proxy-Wasm ABI enumerations, with the numbers Envoy and every SDK use."""

from __future__ import annotations

from enum import IntEnum


class WasmResult(IntEnum):
    OK = 0
    NOT_FOUND = 1
    BAD_ARGUMENT = 2
    SERIALIZATION_FAILURE = 3
    PARSE_FAILURE = 4
    BAD_EXPRESSION = 5
    INVALID_MEMORY_ACCESS = 6
    EMPTY = 7
    CAS_MISMATCH = 8
    RESULT_MISMATCH = 9
    INTERNAL_FAILURE = 10
    BROKEN_CONNECTION = 11
    UNIMPLEMENTED = 12


class MapType(IntEnum):
    HTTP_REQUEST_HEADERS = 0
    HTTP_REQUEST_TRAILERS = 1
    HTTP_RESPONSE_HEADERS = 2
    HTTP_RESPONSE_TRAILERS = 3
    GRPC_RECEIVE_INITIAL_METADATA = 4
    GRPC_RECEIVE_TRAILING_METADATA = 5
    HTTP_CALL_RESPONSE_HEADERS = 6
    HTTP_CALL_RESPONSE_TRAILERS = 7


class BufferType(IntEnum):
    HTTP_REQUEST_BODY = 0
    HTTP_RESPONSE_BODY = 1
    DOWNSTREAM_DATA = 2
    UPSTREAM_DATA = 3
    HTTP_CALL_RESPONSE_BODY = 4
    GRPC_RECEIVE_BUFFER = 5
    VM_CONFIGURATION = 6
    PLUGIN_CONFIGURATION = 7
    CALL_DATA = 8


class StreamType(IntEnum):
    HTTP_REQUEST = 0
    HTTP_RESPONSE = 1
    DOWNSTREAM = 2
    UPSTREAM = 3


class MetricType(IntEnum):
    COUNTER = 0
    GAUGE = 1
    HISTOGRAM = 2


class PeerType(IntEnum):
    UNKNOWN = 0
    LOCAL = 1
    REMOTE = 2


#: proxy_log levels -> Envoy log level names
LOG_LEVELS = ("trace", "debug", "info", "warning", "error", "critical")


class FailurePolicy(IntEnum):
    UNSPECIFIED = 0  # = FAIL_CLOSED
    FAIL_RELOAD = 1
    FAIL_CLOSED = 2
    FAIL_OPEN = 3


class AbiVersion(IntEnum):
    V0_1_0 = 10
    V0_2_0 = 20
    V0_2_1 = 21

    @property
    def label(self) -> str:
        return {10: "0.1.0", 20: "0.2.0", 21: "0.2.1"}[self.value]


ABI_MARKERS = {
    "proxy_abi_version_0_1_0": AbiVersion.V0_1_0,
    "proxy_abi_version_0_2_0": AbiVersion.V0_2_0,
    "proxy_abi_version_0_2_1": AbiVersion.V0_2_1,
}
