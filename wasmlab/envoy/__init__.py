"""Bridge to a real Envoy binary: validate a config, run it, send the same requests, read its log."""

from .binary import envoy_version, find_envoy, have_envoy
from .bridge import EnvoyRun, run, validate

__all__ = ["EnvoyRun", "envoy_version", "find_envoy", "have_envoy", "run", "validate"]
