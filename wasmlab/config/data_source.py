"""Envoy ``config.core.v3.DataSource``: bytes given inline, base64-encoded, by file or by
environment variable (a direct response body, a Lua script...). Files are read with
:func:`~.yaml_source.read_regular_file`: no devices, FIFOs or folders, at most 16 MiB."""

from __future__ import annotations

from .yaml_source import FileRefused, Node, read_regular_file


def parse_data_source(node: Node) -> bytes:
    """``envoy.config.core.v3.DataSource``: inline_string / inline_bytes / filename."""
    import base64

    node.check_fields("inline_string inline_bytes filename environment_variable")
    kinds = [k for k in ("inline_string", "inline_bytes", "filename", "environment_variable") if k in node.value]
    if len(kinds) != 1:
        raise node.error("exactly one of inline_string, inline_bytes, filename must be set")
    kind = kinds[0]
    if kind == "inline_string":
        return node.req(kind).str().encode()
    if kind == "inline_bytes":
        try:
            return base64.b64decode(node.req(kind).str(), validate=True)
        except ValueError:
            raise node.child(kind).error("inline_bytes must be base64") from None
    if kind == "environment_variable":
        import os

        name = node.req(kind).str()
        if name not in os.environ:
            raise node.child(kind).error(f"environment variable {name!r} is not set")
        return os.environ[name].encode()
    path = node.source.resolve(node.req("filename").str(allow_empty=False))
    try:
        return read_regular_file(path)
    except FileRefused as e:
        raise node.child("filename").error(str(e)) from None
    except OSError as e:
        raise node.child("filename").error(f"cannot read {path}: {e.strerror}") from None
