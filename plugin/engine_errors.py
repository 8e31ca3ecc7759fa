"""The engine's one error type, shared by the modules that load models and run them (no torch)."""

from __future__ import annotations


class EngineError(RuntimeError):
    """The models cannot be used (missing, corrupt, mismatched) or the device cannot run them.

    The message names the file or the device, so a user can act on it."""
