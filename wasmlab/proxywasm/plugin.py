"""Plugin and VM configuration (Envoy's ``PluginConfig`` / ``VmConfig``), parsed from YAML.

``vm_config`` says which code runs in which VM (``vm_id``, ``runtime``, ``code``, VM
``configuration``, ``environment_variables``); the plugin says which root context (``root_id``)
gets which ``configuration`` and what happens when the VM fails (``fail_open`` or
``failure_policy``). Envoy shares one VM per thread among plugins whose ``vm_key`` — vm_id, VM
configuration and code — is equal.

Configuration values are passed to the module as Envoy does: ``StringValue``/``BytesValue``
unwrapped, ``Struct`` as its protobuf bytes (``struct_wire.py``).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
from dataclasses import dataclass, field

from ..config.struct_value import struct_value
from ..config.yaml_source import FileRefused, Node, read_regular_file
from .abi import ModuleInfo, ModuleRejected, inspect_module
from .module_cache import CompiledCode, compile_code
from .struct_wire import encode_struct
from .types import FailurePolicy

#: the largest ``.wasm`` file wasmlab reads (real filters are a few MB; a WAF build ~30 MB)
MAX_WASM_FILE_BYTES = 256 * 1024 * 1024

V8 = "envoy.wasm.runtime.v8"
OTHER_RUNTIMES = ("envoy.wasm.runtime.wasmtime", "envoy.wasm.runtime.wamr", "envoy.wasm.runtime.wavm")
NULL_RUNTIME = "envoy.wasm.runtime.null"


@dataclass
class RemoteCode:
    """``vm_config.code.remote``: where Envoy fetches the module at start-up, and its hash."""

    uri: str
    cluster: str
    timeout_s: float
    sha256: str
    #: ``retry_policy.num_retries`` (Envoy's default for a remote data source: 1)
    num_retries: int = 1


@dataclass
class VmConfig:
    vm_id: str
    runtime: str
    code: bytes  # empty for remote code until it is fetched (``proxywasm.remote_code``)
    code_name: str  # the file name as written, or "<inline>", or the remote uri
    configuration: bytes = b""
    environment: dict[str, str] = field(default_factory=dict)
    remote: RemoteCode | None = None

    @functools.cached_property
    def vm_key(self) -> str:
        h = hashlib.sha256()
        for part in (self.vm_id.encode(), self.configuration, self.code):
            h.update(len(part).to_bytes(8, "little"))
            h.update(part)
        return h.hexdigest()


@dataclass
class PluginConfig:
    name: str
    root_id: str
    configuration: bytes
    vm_config: VmConfig
    failure_policy: FailurePolicy = FailurePolicy.FAIL_CLOSED
    reload_backoff_s: float = 1.0
    allow_on_headers_stop_iteration: bool = False
    #: the deprecated ``fail_open: true`` (Envoy's ``PluginBase::fail_open_``): only it lets a
    #: stream that was already in flight when its VM failed go on; ``failure_policy: FAIL_OPEN``
    #: skips the filter for new streams but fails the in-flight ones (503), as Envoy 1.40 does
    in_flight_fail_open: bool = False
    #: where in the YAML this plugin was configured (for error messages)
    where: str = ""
    compiled: CompiledCode | None = field(default=None, repr=False)
    info: ModuleInfo | None = field(default=None, repr=False)

    @functools.cached_property
    def key(self) -> str:
        """Envoy's plugin key: one root context per (plugin name, root_id, configuration, vm)."""
        h = hashlib.sha256(
            f"{self.name}\0{self.root_id}\0".encode() + self.configuration + self.vm_config.vm_key.encode()
        )
        return h.hexdigest()

    @functools.cached_property
    def slot(self) -> tuple[str, str]:
        """Where a thread keeps this plugin's handle (``dispatcher.slots``)."""
        return ("wasm_plugin", self.key)

    @property
    def fail_open(self) -> bool:
        return self.failure_policy == FailurePolicy.FAIL_OPEN


def unwrap_any(node: Node) -> bytes:
    """Configuration bytes from a ``google.protobuf.Any`` as Envoy passes them to a module."""
    if not isinstance(node.value, dict):
        raise node.error('expected a google.protobuf.Any with an "@type" (e.g. StringValue)')
    t = node.req("@type").str()
    short = t.rsplit("/", 1)[-1]
    if short == "google.protobuf.StringValue":
        node.check_fields("@type value")
        return node.req("value").str().encode() if node.has("value") else b""
    if short == "google.protobuf.BytesValue":
        node.check_fields("@type value")
        if not node.has("value"):
            return b""
        try:
            return base64.b64decode(node.req("value").str(), validate=True)
        except ValueError:
            raise node.child("value").error("BytesValue must be base64") from None
    if short == "google.protobuf.Struct":
        node.check_fields("@type value")
        value = node.get("value")
        return encode_struct(struct_value(value.mapping().value) if value is not None else {})
    raise node.child("@type").error(
        f"configuration of type {short!r} is not supported (use google.protobuf.StringValue, BytesValue or Struct)"
    )


def parse_vm_config(node: Node) -> VmConfig:
    node.check_fields(
        "vm_id runtime code configuration environment_variables",
        required=("code",),
        ignored=("allow_precompiled", "nack_on_code_cache_miss"),
    )
    # an empty or absent runtime is Envoy's first engine that runs .wasm code: V8 in Envoy 1.40
    runtime = (node.req("runtime").str() if node.has("runtime") else "") or V8
    if runtime == NULL_RUNTIME:
        raise node.child("runtime").error(
            "envoy.wasm.runtime.null runs plugins compiled into Envoy (NullVM); wasmlab can only run .wasm code"
        )
    if runtime != V8 and runtime not in OTHER_RUNTIMES:
        raise node.child("runtime").error(f"unknown Wasm runtime {runtime!r} (Envoy 1.40 has {V8})")
    code_node = node.req("code").check_fields("local remote")
    if code_node.has("remote") and code_node.has("local"):
        raise code_node.error("only one of local and remote can be set")
    if code_node.has("remote"):
        remote = parse_remote(code_node.req("remote"))
        code, code_name = b"", remote.uri
    else:
        code, code_name = _local_code(code_node.req("local"))
        remote = None
    configuration = unwrap_any(node.req("configuration")) if node.has("configuration") else b""
    env: dict[str, str] = {}
    if node.has("environment_variables"):
        ev = node.req("environment_variables").check_fields("host_env_keys key_values")
        for k in ev.req("host_env_keys").list() if ev.has("host_env_keys") else []:
            name = k.str()
            if name in os.environ:
                env[name] = os.environ[name]
        if ev.has("key_values"):
            for key, value in ev.req("key_values").items():
                env[str(key)] = value.str()
    vm_id = node.req("vm_id").str() if node.has("vm_id") else ""
    return VmConfig(vm_id, runtime, code, code_name, configuration, env, remote)


def parse_remote(node: Node) -> RemoteCode:
    """``RemoteDataSource``: ``http_uri`` (uri, cluster, timeout — all required, as Envoy's
    validation says), ``sha256`` (required, non-empty) and ``retry_policy.num_retries``."""
    node.check_fields("http_uri sha256 retry_policy", required=("http_uri", "sha256"))
    hu = node.req("http_uri").check_fields("uri cluster timeout", required=("uri", "cluster", "timeout"))
    retries = 1
    if node.has("retry_policy"):
        rp = node.req("retry_policy").check_fields("num_retries retry_back_off")
        if rp.has("num_retries"):
            retries = rp.req("num_retries").int(minimum=0)
    return RemoteCode(
        uri=hu.req("uri").str(allow_empty=False),
        cluster=hu.req("cluster").str(allow_empty=False),
        timeout_s=hu.req("timeout").duration(),
        sha256=node.req("sha256").str(allow_empty=False).lower(),
        num_retries=retries,
    )


def _local_code(local: Node) -> tuple[bytes, str]:
    """The bytes and display name of ``code.local`` (a file, base64 bytes or a string)."""
    local.check_fields("filename inline_bytes inline_string")
    kinds = [k for k in ("filename", "inline_bytes", "inline_string") if local.has(k)]
    if len(kinds) != 1:
        raise local.error("exactly one of filename, inline_bytes, inline_string must be set")
    kind = kinds[0]
    if kind == "filename":
        fname = local.req("filename").str(allow_empty=False)
        path = local.source.resolve(fname)
        try:
            code = read_regular_file(path, MAX_WASM_FILE_BYTES)
        except FileRefused as e:
            raise local.child("filename").error(f"cannot read Wasm module {fname}: {e}") from None
        except OSError as e:
            raise local.child("filename").error(f"cannot read Wasm module {fname}: {e.strerror}") from None
        code_name = fname
    elif kind == "inline_bytes":
        try:
            code = base64.b64decode(local.req("inline_bytes").str(), validate=True)
        except ValueError:
            raise local.child("inline_bytes").error("inline_bytes must be base64") from None
        code_name = "<inline_bytes>"
    else:
        code = local.req("inline_string").str().encode()
        code_name = "<inline_string>"
    return code, code_name


_POLICIES = {p.name: p for p in FailurePolicy}


def parse_plugin_config(node: Node, what: str = "plugin") -> PluginConfig:
    """Parse ``PluginConfig`` and compile its code (errors name the YAML path and the module)."""
    node.check_fields(
        "name root_id vm_config configuration fail_open failure_policy reload_config allow_on_headers_stop_iteration",
        required=("vm_config",),
        ignored=("capability_restriction_config",),
    )
    vm = parse_vm_config(node.req("vm_config"))
    configuration = unwrap_any(node.req("configuration")) if node.has("configuration") else b""
    if node.has("fail_open") and node.has("failure_policy"):
        raise node.error("only one of fail_open and failure_policy can be set")
    policy = FailurePolicy.FAIL_CLOSED
    if node.has("fail_open") and node.req("fail_open").bool():
        policy = FailurePolicy.FAIL_OPEN
    if node.has("failure_policy"):
        policy = _POLICIES[node.req("failure_policy").enum(tuple(_POLICIES))]
        if policy == FailurePolicy.UNSPECIFIED:
            policy = FailurePolicy.FAIL_CLOSED
    backoff = 1.0
    if node.has("reload_config"):
        rc = node.req("reload_config").check_fields("backoff")
        if rc.has("backoff"):
            b = rc.req("backoff").check_fields("base_interval max_interval")
            if b.has("base_interval"):
                backoff = b.req("base_interval").duration()
    plugin = PluginConfig(
        name=node.req("name").str() if node.has("name") else "",
        root_id=node.req("root_id").str() if node.has("root_id") else "",
        configuration=configuration,
        vm_config=vm,
        failure_policy=policy,
        in_flight_fail_open=node.has("fail_open") and node.req("fail_open").bool(),
        reload_backoff_s=backoff,
        allow_on_headers_stop_iteration=(
            node.req("allow_on_headers_stop_iteration").bool_value()
            if node.has("allow_on_headers_stop_iteration")
            else False
        ),
        where=f"{node.source.name}:{node.line}: {node.path}",
    )
    if vm.remote is None:  # remote code is fetched when the extension starts (remote_code.py)
        load_code(plugin, node.child("vm_config").child("code"))
    return plugin


def load_code(plugin: PluginConfig, where: Node) -> None:
    """Compile and inspect the module (cached), turning refusals into config errors
    (``where`` is the ``code`` node the error names)."""
    why = compile_plugin(plugin)
    if why is not None:
        raise where.error(why)


def compile_plugin(plugin: PluginConfig) -> str | None:
    """Compile and inspect the plugin's code; None when it loads, else why it does not."""
    from .hostcalls import Linker

    vm = plugin.vm_config
    try:
        compiled = compile_code(vm.code)
    except Exception as e:  # wasmtime's own error types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return (
            f"Wasm VM failed Failed to parse corrupted Wasm module (module {vm.code_name}: {first}); "
            f"Unable to create Wasm plugin {plugin.name}"
        )
    try:
        info = inspect_module(compiled.module)
        Linker(info.version).check(compiled.module)
    except ModuleRejected as e:
        return f"{e} (module {vm.code_name}); Unable to create Wasm plugin {plugin.name}"
    plugin.compiled = compiled
    plugin.info = info
    return None
