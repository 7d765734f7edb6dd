"""The Lua filter's config: ``Lua`` (filter level) and ``LuaPerRoute``, with Envoy's rules.

``envoy.extensions.filters.http.lua.v3.Lua``: ``inline_code`` (deprecated) or
``default_source_code`` (never both: Envoy's message), ``source_codes`` (named scripts routes
select), ``stat_prefix``, ``clear_route_cache`` (default true), ``filter_context``,
``package_paths``/``package_cpaths``. ``LuaPerRoute``: exactly one of ``disabled: true``,
``name`` or ``source_code``, plus ``filter_context`` and (for ``source_code``) package paths.

Every script is a :class:`LuaScript`. Parsing already compiles it, so a syntax error is a config
error naming the YAML path, in Envoy's words (``script load error: [string "..."]:3: ...``);
the factory then runs each script once on the main thread at start (Envoy's validation load),
which catches top-level runtime errors and missing ``require``d modules the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...config.data_source import parse_data_source
from ...config.struct_value import struct_value
from .runtime import compile_check

if TYPE_CHECKING:
    from ...config.yaml_source import Node
    from ...errors import ConfigError

LUA_TYPE = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"
LUA_PER_ROUTE_TYPE = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.LuaPerRoute"


@dataclass(eq=False)
class LuaScript:
    """One script: its code, where it came from (for errors and traces), and its search paths.

    Identity-hashed: each instance gets its own Lua state per worker, as each Envoy
    ``PerLuaCodeSetup`` does.
    """

    code: bytes
    label: str  # "default_source_code", "source_codes.auth", "route 'r1' source_code", ...
    node: Node = field(repr=False)
    package_paths: tuple[str, ...] = ()
    package_cpaths: tuple[str, ...] = ()

    @property
    def base_dir(self) -> Path:
        return self.node.source.base_dir

    def error(self, message: str) -> ConfigError:
        return self.node.error(message)

    def package_path_prefix(self) -> str:
        return ";".join(_resolve_pattern(self.base_dir, p) for p in self.package_paths)

    def package_cpath_prefix(self) -> str:
        return ";".join(_resolve_pattern(self.base_dir, p) for p in self.package_cpaths)


def _resolve_pattern(base: Path, pattern: str) -> str:
    """A relative pattern means the YAML's folder (the bridge runs Envoy there)."""
    if pattern.startswith("/"):
        return pattern
    return str(base).rstrip("/") + "/" + (pattern[2:] if pattern.startswith("./") else pattern)


def _script(node: Node, label: str, paths: tuple[str, ...] = (), cpaths: tuple[str, ...] = ()) -> LuaScript:
    code = parse_data_source(node) if isinstance(node.value, dict) else node.str().encode()
    err = compile_check(code)
    if err is not None:
        raise node.error(f"script load error: {err}")
    return LuaScript(code, label, node, paths, cpaths)


def _strings(node: Node | None) -> tuple[str, ...]:
    if node is None:
        return ()
    return tuple(n.str() for n in node.list("a list of strings"))


def _struct(node: Node | None) -> dict[str, Any]:
    if node is None:
        return {}
    node.mapping("a Struct (a mapping)")
    return dict(struct_value(node.value))


@dataclass
class LuaConfig:
    """The filter-level ``Lua`` message."""

    default: LuaScript | None
    source_codes: dict[str, LuaScript]
    stat_prefix: str
    clear_route_cache: bool
    filter_context: dict[str, Any]

    def scripts(self) -> list[LuaScript]:
        out = [self.default] if self.default is not None else []
        return out + list(self.source_codes.values())


def parse_lua(node: Node) -> LuaConfig:
    node.check_fields(
        "@type inline_code source_codes default_source_code stat_prefix clear_route_cache filter_context "
        "package_paths package_cpaths"
    )
    paths = _strings(node.get("package_paths"))
    cpaths = _strings(node.get("package_cpaths"))
    inline = node.get("inline_code")
    dsc = node.get("default_source_code")
    default = None
    if dsc is not None:
        if inline is not None and inline.str():
            raise node.error("Error: Only one of `inline_code` or `default_source_code` can be set for the Lua filter.")
        dsc.check_fields("inline_string inline_bytes filename environment_variable")
        default = _script(dsc, "default_source_code", paths, cpaths)
    elif inline is not None and inline.str():
        default = _script(inline, "inline_code", paths, cpaths)
    source_codes: dict[str, LuaScript] = {}
    sc = node.get("source_codes")
    if sc is not None:
        for name, child in sc.items():
            source_codes[str(name)] = _script(child, f"source_codes.{name}", paths, cpaths)
    stat_prefix = node.req("stat_prefix").str() if node.has("stat_prefix") else ""
    crc = node.get("clear_route_cache")
    return LuaConfig(
        default,
        source_codes,
        stat_prefix,
        crc.bool_value() if crc is not None else True,
        _struct(node.get("filter_context")),
    )


@dataclass
class LuaPerRoute:
    """``typed_per_filter_config`` for the Lua filter on a route or virtual host."""

    disabled: bool = False
    name: str = ""
    script: LuaScript | None = None
    filter_context: dict[str, Any] | None = None


def parse_lua_per_route(node: Node) -> LuaPerRoute:
    node.check_fields("@type disabled name source_code filter_context package_paths package_cpaths")
    set_ = [k for k in ("disabled", "name", "source_code") if node.has(k)]
    if len(set_) > 1:
        raise node.error("LuaPerRouteValidationError.Override: exactly one of disabled, name, source_code must be set")
    fc = node.get("filter_context")
    ctx = _struct(fc) if fc is not None else None
    if not set_:
        # Envoy 1.40 accepts an entry that overrides no script: the filter's own script runs,
        # with this entry's filter_context (measured)
        return LuaPerRoute(filter_context=ctx)
    kind = set_[0]
    if kind == "disabled":
        dn = node.req("disabled")
        if not dn.bool():
            raise dn.error(
                "Proto constraint validation failed (LuaPerRouteValidationError.Disabled: value must equal true)"
            )
        return LuaPerRoute(disabled=True, filter_context=ctx)
    if kind == "name":
        return LuaPerRoute(name=node.req("name").str(allow_empty=False), filter_context=ctx)
    sc = node.req("source_code")
    sc.check_fields("inline_string inline_bytes filename environment_variable")
    label = f"{node.path} source_code"
    script = _script(sc, label, _strings(node.get("package_paths")), _strings(node.get("package_cpaths")))
    return LuaPerRoute(script=script, filter_context=ctx)
