"""How Envoy's formatter writes a metadata value (``%DYNAMIC_METADATA(...)%``, ``%METADATA(...)%``),
measured on Envoy 1.40 with values a Lua script set (tests/lua/test_lua_sweep_api_edges.py).

A metadata value is a protobuf ``Value``: every number is a double. Envoy writes a number as
C++'s ``std::to_chars`` does with no format: the shorter of the fixed and the scientific
notation of its shortest round-trip digits, fixed on a tie -- ``5`` (not ``5.0``), ``1e+05``,
``120000``, ``1e-04``, ``0.00012``, an integral double in fixed notation with all its exact
digits (``2^60`` is ``1152921504606846976``), ``-0``, ``inf``; NaN is ``null``. A bool is
``true``/``false``, a string its text (an empty one stays empty in a text log and ``""`` in a
JSON log), a struct or list compact JSON with the keys sorted. A JSON log keeps each value's
JSON type, numbers written the same way.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any


def envoy_double(x: float) -> str:
    """A double as ``std::to_chars(x)`` writes it (NaN as ``null``, as Envoy's formatter does)."""
    if math.isnan(x):
        return "null"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    x = abs(x)
    if x == 0:
        return sign + "0"
    shortest = Decimal(repr(x))
    digits = "".join(map(str, shortest.as_tuple().digits)).rstrip("0") or "0"
    exp = shortest.adjusted()  # the power of ten of the first digit
    sci = digits[0] + ("." + digits[1:] if len(digits) > 1 else "") + f"e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if x.is_integer():
        fixed = str(int(x))  # every exact digit
    elif exp >= 0:
        fixed = digits[: exp + 1] + "." + digits[exp + 1 :]
    else:
        fixed = "0." + "0" * (-exp - 1) + digits
    return sign + (fixed if len(fixed) <= len(sci) else sci)


def struct_json(value: Any) -> str:
    """A metadata value as JSON text, Envoy's way (see the module docstring)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return envoy_double(float(value))
    if isinstance(value, dict):
        fields = (f"{json.dumps(str(k), ensure_ascii=False)}:{struct_json(value[k])}" for k in sorted(value))
        return "{" + ",".join(fields) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(struct_json(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def struct_text(value: Any) -> str:
    """A metadata value in a text format: a string as itself, anything else as its JSON."""
    return value if isinstance(value, str) else struct_json(value)


class RawJson:
    """A JSON log value already written as JSON text (a metadata value, :func:`struct_json`)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def dumps_log(doc: Any) -> str:
    """A JSON log line's document: compact, keys sorted, text as UTF-8 (as ``json.dumps`` with
    those options), :class:`RawJson` values written as they are."""
    if isinstance(doc, RawJson):
        return doc.text
    if isinstance(doc, dict):
        fields = (f"{json.dumps(k, ensure_ascii=False)}:{dumps_log(doc[k])}" for k in sorted(doc))
        return "{" + ",".join(fields) + "}"
    if isinstance(doc, list):
        return "[" + ",".join(dumps_log(v) for v in doc) + "]"
    return json.dumps(doc, ensure_ascii=False)
