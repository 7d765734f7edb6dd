"""A ``google.protobuf.Struct`` value as Envoy 1.40 holds one written in YAML (metadata, a Lua
``filter_context``, a Wasm ``Struct`` configuration, a ``json_format``), measured: an integer is
a number only in the int32 range (``3000000000`` is the string ``"3000000000"``); a float is a
*string* (``2.50`` -> ``"2.5"``, ``1.0`` -> ``"1.0"``, ``.inf`` -> ``".inf"``); booleans, strings
and null as they are. So a ``json_format`` logs ``"f": "1.5"``, a Lua script reads a string, and
a Wasm module given a Struct configuration finds a string there.

Where we simplify: floats are worded by Python's ``repr``, which may word a rare literal
differently from Envoy; the YAML resolver is PyYAML's (YAML 1.1; yaml-cpp also takes ``y``/``n``
as bools).
"""

from __future__ import annotations

import math
from typing import Any

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def struct_value(value: Any) -> Any:
    """``value`` (from the YAML loader) as the Struct value Envoy makes of it."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if _INT32_MIN <= value <= _INT32_MAX else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, dict):
        return {k: struct_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [struct_value(v) for v in value]
    return value
