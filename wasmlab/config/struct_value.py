"""A ``google.protobuf.Struct`` value as Envoy 1.40 holds one written in YAML (metadata, a Lua
``filter_context``, a Wasm ``Struct`` configuration, a ``json_format``), measured on Envoy reading
the YAML file itself (``yaml_utility.cc``, ``parseYamlNode``):

* a scalar yaml-cpp reads as an integer (decimal, ``0x…``, ``0…`` octal, a sign) is a number when
  it fits int32, else the string of its decimal value (``3000000000`` is ``"3000000000"``);
* any other number is the *string as written*: ``2.50`` is ``"2.50"``, ``1.0e+3`` ``"1.0e+3"``,
  ``.Inf`` ``".Inf"``, and YAML 1.1 integers yaml-cpp does not read (``1_000``, ``0b101``,
  ``1:20``) too;
* booleans, strings and null as they are; a map key is always the key as written.

So a ``json_format`` logs ``"f": "1.5"``, a Lua script reads a string, and a Wasm module given a
Struct configuration finds a string there. A config file named ``*.json`` is JSON to Envoy: its
numbers stay numbers (the loader gives those as plain ints and floats, which are kept).

Where we simplify: the YAML resolver is PyYAML's (YAML 1.1): a plain ``y``/``n`` is a string here
and a bool to yaml-cpp.
"""

from __future__ import annotations

import re
from typing import Any

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
#: YAML 1.1 integers PyYAML reads that yaml-cpp does not (it keeps them as strings)
_NOT_YAML_CPP_INT = re.compile(r"[-+]?0b|.*[_:]")


class YamlInt(int):
    """An integer read from YAML that remembers how it was written."""

    text: str

    def __new__(cls, value: int, text: str) -> YamlInt:
        obj = super().__new__(cls, value)
        obj.text = text
        return obj

    def __getnewargs__(self) -> tuple[int, str]:  # type: ignore[override]  # (copy, pickle)
        return (int(self), self.text)


class YamlFloat(float):
    """A float read from YAML that remembers how it was written (``2.50`` stays ``"2.50"``)."""

    text: str

    def __new__(cls, value: float, text: str) -> YamlFloat:
        obj = super().__new__(cls, value)
        obj.text = text
        return obj

    def __getnewargs__(self) -> tuple[float, str]:  # type: ignore[override]  # (copy, pickle)
        return (float(self), self.text)


def struct_value(value: Any) -> Any:
    """``value`` (from the config loader) as the Struct value Envoy makes of it."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, YamlInt):
        if _NOT_YAML_CPP_INT.match(value.text):
            return value.text
        return int(value) if _INT32_MIN <= value <= _INT32_MAX else str(int(value))
    if isinstance(value, YamlFloat):
        return value.text
    if isinstance(value, dict):
        return {struct_key(k, value): struct_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [struct_value(v) for v in value]
    return value  # a JSON number (a *.json config), or one a program made


def struct_key(key: Any, mapping: Any) -> str:
    """A key of ``mapping`` (from the config loader) as Envoy keeps it: as written."""
    if isinstance(key, str):
        return key
    if key is None:
        return "null"
    return (getattr(mapping, "key_texts", None) or {}).get(key) or str(key)
