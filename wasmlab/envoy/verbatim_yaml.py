"""YAML read and written back by the Envoy bridge with every number spelled as it was written and
every map key as written: Envoy keeps a ``Struct``'s numbers and keys so (``config/struct_value.py``),
and the bridge rewrites a config (addresses, ports) before real Envoy reads it. Reading it with
PyYAML and writing it back plainly would turn ``2.50`` into ``2.5`` and the key ``yes`` into
``true`` on Envoy's side of a differential test."""

from __future__ import annotations

from typing import Any

import yaml

from ..config.struct_value import YamlFloat, YamlInt


class Verbatim(yaml.SafeLoader):
    """Numbers keep their text; a map key that is not a string is the key as written."""


class _VerbatimDumper(yaml.SafeDumper):
    """Writes :class:`Verbatim`'s numbers as they were written."""


def _mapping(loader: Verbatim, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    out: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str) and isinstance(key_node, yaml.ScalarNode):
            key = key_node.value  # ``1:``, ``yes:`` in a Struct: the key as written
        out[key] = loader.construct_object(value_node, deep=True)
    return out


def _int(loader: Verbatim, node: yaml.ScalarNode) -> YamlInt:
    return YamlInt(loader.construct_yaml_int(node), node.value)


def _float(loader: Verbatim, node: yaml.ScalarNode) -> YamlFloat:
    return YamlFloat(loader.construct_yaml_float(node), node.value)


Verbatim.add_constructor("tag:yaml.org,2002:int", _int)
Verbatim.add_constructor("tag:yaml.org,2002:float", _float)
Verbatim.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_VerbatimDumper.add_representer(YamlInt, lambda d, v: d.represent_scalar("tag:yaml.org,2002:int", v.text))
_VerbatimDumper.add_representer(YamlFloat, lambda d, v: d.represent_scalar("tag:yaml.org,2002:float", v.text))


def dump_verbatim(data: Any) -> str:
    """``data`` (read with :class:`Verbatim`, or plain) as YAML text, numbers as they were written."""
    return yaml.dump(data, Dumper=_VerbatimDumper, sort_keys=False)
