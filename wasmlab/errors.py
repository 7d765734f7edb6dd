"""The errors wasmlab raises to its users.

Every error a learner can cause carries a one-line message that names where the problem is (the
file and YAML path, the module import, the script line) in Envoy's words where Envoy has words for
it. The CLI prints ``str(error)`` on one line and exits with code 2. An exception wasmlab did not
mean to raise is a wasmlab bug: the host logs it with :func:`raised_at`, so the line says where.
"""

from __future__ import annotations


class WasmlabError(Exception):
    """Base class of every error wasmlab raises on purpose."""


class ConfigError(WasmlabError, ValueError):
    """The bootstrap YAML is malformed or uses something outside wasmlab's subset."""


class StartupError(WasmlabError):
    """The config parsed, but starting it failed (a Wasm VM refused to start, a script failed)."""


class StreamTimeout(WasmlabError, TimeoutError):
    """``proxy.request`` waited ``timeout`` seconds and the stream was still stopped."""


class ProxyClosed(WasmlabError):
    """The proxy was closed; create a new one."""


class EnvoyNotFound(WasmlabError):
    """No real Envoy binary is available for the bridge."""


class EnvoyFailed(WasmlabError):
    """Real Envoy refused the config or exited."""


def describe(error: BaseException) -> str:
    """``Type: message`` of an exception for a log line, even when the exception's own
    ``__str__`` raises (a learner's exception class may be as broken as the code raising it)."""
    try:
        text = str(error)
    except Exception:  # whatever __str__ raised, the report must not fail
        text = "<str() of the exception failed>"
    return f"{type(error).__name__}: {text}"


def raised_at(error: BaseException) -> str:
    """`` at file.py:12``: the file and line a Python exception was raised at (its innermost
    frame), for the log line that reports a wasmlab bug; empty when it has no traceback."""
    import traceback  # only a bug pays for it

    frames = traceback.extract_tb(error.__traceback__)
    return f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
