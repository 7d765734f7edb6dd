"""The bootstrap's ``node`` (who this Envoy is) and the HCM's client-address options.

Envoy's ``LocalInfo`` carries the bootstrap's ``node`` (``id``, ``cluster``, ``metadata``...);
Proxy-Wasm modules read it as the ``xds.node.*`` properties (Istio's plugins do). The HCM's
``use_remote_address``, ``xff_num_trusted_hops``, ``skip_xff_append``, ``via`` and the request-id
options decide what Envoy's
``ConnectionManagerUtility::mutateRequestHeaders`` does to ``x-forwarded-for`` and
``x-envoy-external-address``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .yaml_source import Node

#: Node fields Envoy accepts that wasmlab keeps for ``xds.node.*`` but otherwise does not use
_NODE_FIELDS = "id cluster metadata locality user_agent_name user_agent_version"
_NODE_IGNORED = (
    "extensions",
    "client_features",
    "dynamic_parameters",
    "listening_addresses",
    "user_agent_build_version",
)


@dataclass
class NodeInfo:
    """The bootstrap's ``node`` as ``xds.node`` properties see it (protobuf field names)."""

    id: str = ""
    cluster: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_property(self) -> dict[str, Any]:
        """The ``xds.node`` message as a dict (empty fields left out, as protobuf does)."""
        out: dict[str, Any] = {}
        if self.id:
            out["id"] = self.id
        if self.cluster:
            out["cluster"] = self.cluster
        if self.metadata:
            out["metadata"] = self.metadata
        out.update(self.extra)
        return out


def parse_node(node: Node | None) -> NodeInfo:
    if node is None:
        return NodeInfo()
    node.check_fields(
        _NODE_FIELDS,
        ignored=_NODE_IGNORED,
    )
    info = NodeInfo()
    if node.has("id"):
        info.id = node.req("id").str()
    if node.has("cluster"):
        info.cluster = node.req("cluster").str()
    if node.has("metadata"):
        info.metadata = dict(node.req("metadata").mapping().value)
    for key in ("user_agent_name", "user_agent_version"):
        if node.has(key):
            info.extra[key] = node.req(key).str()
    if node.has("locality"):
        info.extra["locality"] = dict(node.req("locality").mapping().value)
    return info


@dataclass
class HcmHeaderOptions:
    """The HCM fields that decide the client-address, ``via`` and ``x-request-id`` headers
    (defaults: Envoy's)."""

    use_remote_address: bool = False
    xff_num_trusted_hops: int = 0
    skip_xff_append: bool = False
    #: appended to ``via`` on requests and responses (empty: none)
    via: str = ""
    preserve_external_request_id: bool = False
    always_set_request_id_in_response: bool = False


def parse_hcm_header_options(node: Node) -> HcmHeaderOptions:
    opts = HcmHeaderOptions()
    if node.has("use_remote_address"):
        opts.use_remote_address = node.req("use_remote_address").bool_value()
    if node.has("xff_num_trusted_hops"):
        opts.xff_num_trusted_hops = node.req("xff_num_trusted_hops").int(0)
    if node.has("skip_xff_append"):
        opts.skip_xff_append = node.req("skip_xff_append").bool()
    if node.has("via"):
        opts.via = node.req("via").str()
    for key in ("preserve_external_request_id", "always_set_request_id_in_response"):
        if node.has(key):
            setattr(opts, key, node.req(key).bool())
    return opts
