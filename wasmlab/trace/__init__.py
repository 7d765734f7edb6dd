"""The trace: one schema of events for tests, the CLI and the views."""

from .events import KINDS, Event, link
from .recorder import Recorder, Trace, set_thread_identity, thread_identity

__all__ = ["KINDS", "Event", "Recorder", "Trace", "link", "set_thread_identity", "thread_identity"]
