"""Proxy-Wasm ABI enumerations, with the numbers Envoy and every SDK use."""

from __future__ import annotations

from enum import IntEnum, StrEnum


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


#: the highest map, buffer and stream type a host call accepts (anything above is BAD_ARGUMENT, as in
#: Envoy; the stream type is ``proxy_continue_stream``/``proxy_close_stream``'s argument)
MAX_MAP_TYPE = int(max(MapType))
MAX_BUFFER_TYPE = int(max(BufferType))
MAX_STREAM_TYPE = int(max(StreamType))


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


class FailState(StrEnum):
    """Why a VM stopped for good (proxy-wasm-cpp-host ``FailState``); the value is the name Envoy
    logs. A failed VM never runs guest code again; the filter applies its failure policy."""

    UNABLE_TO_CREATE_VM = "UnableToCreateVm"  # the runtime could not create the VM
    UNABLE_TO_CLONE_VM = "UnableToCloneVm"  # a per-thread copy of the base VM failed
    MISSING_FUNCTION = "MissingFunction"  # a required export is missing
    UNABLE_TO_INITIALIZE_CODE = "UnableToInitializeCode"  # instantiation or _start failed
    START_FAILED = "StartFailed"  # proxy_on_vm_start returned false
    CONFIGURE_FAILED = "ConfigureFailed"  # proxy_on_configure returned false
    RUNTIME_ERROR = "RuntimeError"  # a trap (or deadline) inside a guest call


class GrpcStatus(IntEnum):
    """gRPC status codes (``grpc/status.h``), as ``proxy_send_local_response`` and gRPC callouts
    carry them."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


#: a ``grpc_status`` above this is "no gRPC status" (the SDKs pass -1, i.e. 0xFFFFFFFF)
MAX_GRPC_STATUS = int(max(GrpcStatus))


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
