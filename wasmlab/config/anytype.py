"""``google.protobuf.Any`` as Envoy reads it: the ``@type``, wrapper values, and a ``TypedStruct``
standing for the message it names."""

from __future__ import annotations

from typing import Any

from .yaml_source import Node


def any_type(node: Node, what: str = "typed_config") -> str:
    """The ``@type`` of a ``google.protobuf.Any``."""
    node.mapping(f'a {what} mapping with an "@type"')
    t = node.req("@type").str(allow_empty=False)
    if not t.startswith("type.googleapis.com/"):
        raise node.child("@type").error(f"type URL must start with type.googleapis.com/, got {t!r}")
    return t


TYPED_STRUCT_TYPES = (
    "type.googleapis.com/xds.type.v3.TypedStruct",
    "type.googleapis.com/udpa.type.v1.TypedStruct",
)


def typed_struct(node: Node) -> Node:
    """A ``typed_config`` given as a ``TypedStruct`` (``type_url`` + ``value``, the form many SDK
    examples use) as the ``Any`` it stands for; Envoy's ``translateOpaqueConfig`` does the same.
    Any other node is returned as it is."""
    if not isinstance(node.value, dict) or node.value.get("@type") not in TYPED_STRUCT_TYPES:
        return node
    node.check_fields("@type type_url value", required=("type_url",))
    url = node.req("type_url").str(allow_empty=False)
    if not url.startswith("type.googleapis.com/"):
        url = "type.googleapis.com/" + url.rsplit("/", 1)[-1]
    inner = node.req("value").mapping().value if node.has("value") else {}
    return Node({"@type": url, **inner}, node.path + ".value", node.source, node.line)


def unwrap_value(node: Node) -> Any:
    """``google.protobuf.StringValue``/``BytesValue``/``Struct`` in an Any -> its value."""
    t = any_type(node)
    node.check_fields("@type value")
    v = node.get("value")
    if t.endswith("StringValue"):
        return v.str() if v else ""
    if t.endswith("BytesValue"):
        import base64

        return base64.b64decode(v.str()) if v else b""
    if t.endswith("google.protobuf.Struct"):
        return v.mapping().value if v else {}
    raise node.child("@type").error(f"unsupported wrapper type {t!r}")
