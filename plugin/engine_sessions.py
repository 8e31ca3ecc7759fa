"""ONNX Runtime sessions of a models folder on one device, with the fall-back from CUDA to CPU.

CUDA first when ONNX Runtime offers it (and the fp16 copies there, when the export kept them),
CPU otherwise. A CUDA failure at run time (out of memory, a driver error) rebuilds the sessions
on the CPU and runs again, leaving a notice for the user instead of an error.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import onnxruntime as ort

from .engine_errors import EngineError
from .models_dir import Manifest

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
DEVICES = ("auto", "cuda", "cpu")

SessionFactory = Callable[[str, Sequence[str]], ort.InferenceSession]


def choose_providers(device: str, available: Sequence[str]) -> list[str]:
    """Execution providers to ask for, best first, for ``device`` given what ONNX Runtime has."""
    if device not in DEVICES:
        raise EngineError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    has_cuda = CUDA in available
    if device == "cuda" and not has_cuda:
        raise EngineError(
            "device 'cuda' was asked for but this ONNX Runtime has no CUDAExecutionProvider "
            f"(available: {', '.join(available) or 'none'}); install onnxruntime-gpu or use --device cpu"
        )
    if device == "cpu" or not has_cuda:
        return [CPU]
    return [CUDA, CPU]


def create_session(path: str, providers: Sequence[str]) -> ort.InferenceSession:
    """One ONNX Runtime session with quiet logging and full graph optimisation."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    with warnings.catch_warnings():  # a provider that cannot start is reported by get_providers()
        warnings.simplefilter("ignore")
        return ort.InferenceSession(path, opts, providers=list(providers))


def _is_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "out of memory" in text or "failed to allocate" in text or "cudaerrormemoryallocation" in text


class GraphSessions:
    """Lazily created sessions of the graphs named in a manifest, on CUDA or the CPU."""

    def __init__(
        self,
        manifest: Manifest,
        device: str = "auto",
        available: Sequence[str] | None = None,
        factory: SessionFactory = create_session,
    ):
        self.manifest = manifest
        self.requested = device
        available = list(available if available is not None else ort.get_available_providers())
        self.providers = choose_providers(device, available)
        self.factory = factory
        self.notice: str | None = None
        self._sessions: dict[str, ort.InferenceSession] = {}

    @property
    def device(self) -> str:
        return "cuda" if self.providers[0] == CUDA else "cpu"

    def file_for(self, name: str) -> str:
        """The graph file this device runs: the fp16 copy on CUDA when one was exported."""
        info = self.manifest.graphs.get(name)
        if info is None:
            raise EngineError(f"{self.manifest.directory}: these models have no {name} graph")
        if self.device == "cuda" and info.fp16_file:
            return info.fp16_file
        return info.file

    def session(self, name: str) -> ort.InferenceSession:
        """The session of graph ``name``, created on first use; EngineError names a bad file."""
        if name in self._sessions:
            return self._sessions[name]
        path = self.manifest.path(self.file_for(name))
        try:
            sess = self.factory(str(path), self.providers)
        except Exception as exc:
            if self.device == "cuda":
                return self._fall_back(f"CUDA could not load {path.name} ({_short(exc)})", name)
            raise EngineError(f"ONNX Runtime cannot load {path}: {_short(exc)}") from exc
        if self.device == "cuda" and CUDA not in sess.get_providers():
            if self.requested == "cuda":
                raise EngineError(f"CUDA was asked for but ONNX Runtime could not start it for {path}")
            return self._fall_back(f"CUDA unavailable for {path.name}", name)
        info = self.manifest.graphs[name]
        got_in = tuple(i.name for i in sess.get_inputs())
        got_out = tuple(o.name for o in sess.get_outputs())
        if set(got_in) != set(info.inputs) or got_out != info.outputs:
            raise EngineError(
                f"{path}: graph inputs {got_in} / outputs {got_out} do not match the manifest's "
                f"{info.inputs} / {info.outputs}"
            )
        self._sessions[name] = sess
        return sess

    def run(self, name: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run graph ``name``; on CUDA a failure falls back to CPU once and runs again."""
        sess = self.session(name)
        try:
            return sess.run(None, feeds)
        except Exception as exc:
            if self.device != "cuda":
                raise EngineError(f"{self.manifest.path(self.file_for(name))} failed on CPU: {_short(exc)}") from exc
            reason = "CUDA out of memory" if _is_oom(exc) else f"CUDA failed in {name} ({_short(exc)})"
            return self._fall_back(reason, name).run(None, feeds)

    def _fall_back(self, reason: str, name: str) -> ort.InferenceSession:
        """From now on everything runs on the CPU with the fp32 graphs."""
        self.providers = [CPU]
        self._sessions.clear()
        self.notice = f"{reason}: fell back to CPU"
        return self.session(name)


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
