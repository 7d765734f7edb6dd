"""Compare a wasmlab response with real Envoy's for the same request.

Values that legitimately differ between two runs are compared by presence only: ``date``,
``x-request-id`` and ``x-envoy-upstream-service-time`` (a
millisecond count), and inside an echoed JSON body the ``x-request-id`` value. Everything else —
status, header names, values and order, body bytes — must be equal.
"""

from __future__ import annotations

import json
from typing import Any

PRESENCE_ONLY = ("date", "x-request-id", "x-envoy-upstream-service-time")


def _norm_headers(pairs: list[Any]) -> list[tuple[str, str]]:
    out = []
    for k, v in pairs:
        k = k.lower()
        out.append((k, "<present>" if k in PRESENCE_ONLY else v))
    return out


def _norm_body(body: str | bytes) -> Any:
    text = body.decode("latin-1") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict) and isinstance(data.get("headers"), list):
        data = dict(data)
        data["headers"] = [[k, "<present>" if str(k).lower() == "x-request-id" else v] for k, v in data["headers"]]
    return data


def normalize(resp: Any) -> dict[str, Any]:
    """A response (``Response`` or the CLI's JSON dict) in comparable form."""
    if isinstance(resp, dict):
        status, headers, body = resp["status"], resp["headers"], resp["body"]
    else:
        status, headers, body = resp.status, list(resp.headers), resp.body
    return {"status": status, "headers": _norm_headers(headers), "body": _norm_body(body)}


def differences(wasmlab: Any, envoy: Any) -> list[str]:
    """Human-readable differences (empty when the responses agree)."""
    a, b = normalize(wasmlab), normalize(envoy)
    out = []
    if a["status"] != b["status"]:
        out.append(f"status: wasmlab {a['status']} vs envoy {b['status']}")
    if a["headers"] != b["headers"]:
        out.append(f"headers:\n  wasmlab {a['headers']}\n  envoy   {b['headers']}")
    if a["body"] != b["body"]:
        out.append(f"body:\n  wasmlab {a['body']!r}\n  envoy   {b['body']!r}")
    return out
