"""Native filters: Python filters "compiled into" the host (Envoy: C++ filters)."""

from .custom import NativeFilter, native_filter, registered_native_filters

__all__ = ["NativeFilter", "native_filter", "registered_native_filters"]
