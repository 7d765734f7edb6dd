"""Envoy v3 bootstrap YAML (a documented subset) -> typed config; errors name the YAML path."""

from .bootstrap import Bootstrap, load_config

__all__ = ["Bootstrap", "load_config"]
