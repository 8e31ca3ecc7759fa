"""One interface for everything the evaluation scores: a PyTorch checkpoint, an exported ONNX
models folder (through the plug-in's engine, exactly what GIMP users run) and the classical
baseline. Each takes every input so far and its own state from the last round, and returns
an alpha matte and the state for the next round, so the evaluation loop treats them alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from plugin import input_constraints
from plugin.edge_snap import snap_in_frame
from plugin.focus import Frame, frame_for_round, reframe
from plugin.prompts import Prompts, collate_prompts, encode_prompts
from plugin.state import image_checksum


@dataclass
class Prediction:
    """alpha (H, W) float32 in [0, 1]; state: opaque, handed back on the next round of this target."""

    alpha: np.ndarray
    state: Any = None


class Predictor(ABC):
    """Something that mattes one target from accumulated prompts, round after round."""

    name: str = "predictor"

    @abstractmethod
    def predict(self, image: np.ndarray, prompts: Prompts, state: Any | None) -> Prediction:
        """image (H, W, 3) uint8 RGB; prompts: every input so far; state: from the last round."""


def _as_alpha(a: Any, shape: tuple[int, int], who: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / 65535.0
    arr = np.squeeze(arr.astype(np.float32))
    if arr.shape != shape:
        raise ValueError(f"{who} returned an alpha of shape {arr.shape}, expected {shape}")
    return np.clip(arr, 0.0, 1.0)


class TorchPredictor(Predictor):
    """A ``model.save_checkpoint`` file, scored as its export would be: the pixels under its clicks
    and scribbles set to their labels, as the engine sets them (``plugin.input_constraints``).
    An ISCN-stage checkpoint (MRN never trained) is scored on its coarse mask, and
    ``coarse_only`` is True; a checkpoint trained with ``--no-crm`` never gets the previous mask.
    ``keep_inputs=False`` scores the network's own alpha, as reports made before stop 24 did;
    ``focus`` zooms in on the target from round 2 on as the engine does (``plugin.focus``);
    ``snap_edges`` moves MRN's outline onto the image's edges as the engine does
    (``plugin.edge_snap``; never on a coarse-only checkpoint, which has no matte to snap)."""

    def __init__(self, checkpoint: Path | str, device: str = "auto", text: bool = True, name: str | None = None,
                 keep_inputs: bool = True, focus: bool = True, snap_edges: bool = True):
        import torch

        from model import load_checkpoint

        self._torch = torch
        self.net, self.extra = load_checkpoint(checkpoint, text_encoder=text)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.net.to(self.device).eval()
        self.coarse_only = self.extra.get("stage") == "iscn" and not self.extra.get("coupled", False)
        self.crm = bool(self.extra.get("crm", True))
        self.keep_inputs = keep_inputs
        self.focus = focus
        self.snap_edges = snap_edges and not self.coarse_only
        self.name = name or Path(checkpoint).stem
        self._cache: tuple[str, Any, Any] | None = None

    def _features(self, image: np.ndarray, frame: Frame) -> tuple[Any, Any]:
        from model import image_to_tensor

        key = f"{image_checksum(image)}@{frame.as_list()}"
        if self._cache is None or self._cache[0] != key:
            x = image_to_tensor(frame.view(image, self.net.iscn.image_size)).to(self.device)
            self._cache = (key, x, self.net.iscn.encode_image(x))
        return self._cache[1], self._cache[2]

    def predict(self, image: np.ndarray, prompts: Prompts, state: Any | None) -> Prediction:
        """state: (previous low-res mask (m, m) numpy, its Frame), as the engine's round state."""
        torch = self._torch
        h, w = image.shape[:2]
        whole = Frame.whole(w, h)
        prev, prev_frame = state if state is not None else (None, whole)
        frame, local = (frame_for_round(prompts, prev, prev_frame, w, h, self.net.iscn.image_size) if self.focus
                        else (whole, prompts))
        with torch.inference_mode():
            x, feats = self._features(image, frame)
            prev_t = None
            if self.crm and prev is not None:
                m = self.net.iscn.mask_size
                prev_t = torch.from_numpy(reframe(prev, prev_frame, frame, m))[None, None].to(self.device)
            # normalised by the frame's size, as the engine does: the view may be magnified
            out = self.net.iscn.decode(feats, collate_prompts([encode_prompts(local, frame.width, frame.height)]), prev_t)
            coarse = out.mask_logits.sigmoid()
            alpha = coarse if self.coarse_only else self.net.mrn(x, coarse)
            alpha = alpha[0, 0].float().cpu().numpy()
            if self.snap_edges:
                alpha = snap_in_frame(alpha, image, frame, self.net.iscn.image_size)
            if frame != whole:
                alpha = frame.paste(alpha, w, h)
            if self.keep_inputs:
                alpha = input_constraints.keep_inputs(alpha, prompts)
            low = out.low_res_logits.sigmoid()[0, 0].float().cpu().numpy()
            return Prediction(alpha, (low, frame))


class OnnxPredictor(Predictor):
    """An exported models folder (holding manifest.json), run by ``plugin.engine.MattingEngine``
    (``keep_inputs``, ``focus`` and ``snap_edges`` as the engine's)."""

    def __init__(self, models_dir: Path | str, device: str = "auto", name: str | None = None,
                 keep_inputs: bool = True, focus: bool = True, snap_edges: bool = True):
        from plugin.engine import MattingEngine

        models_dir = Path(models_dir)
        if not (models_dir / "manifest.json").is_file():
            raise FileNotFoundError(f"{models_dir} is not an exported models folder (no manifest.json)")
        self.engine = MattingEngine(models_dir, device=device, keep_inputs=keep_inputs, focus=focus,
                                    snap_edges=snap_edges)
        self.name = name or f"{models_dir.name} (onnx)"

    def predict(self, image: np.ndarray, prompts: Prompts, state: Any | None) -> Prediction:
        res = self.engine.matte(image, prompts, state)
        return Prediction(_as_alpha(res.alpha, image.shape[:2], self.name), res.state)


class BaselinePredictor(Predictor):
    """``training.baseline.classical_matte`` (no learning, no rounds: it sees all inputs each time)."""

    name = "classical baseline"

    def __init__(self) -> None:
        from .baseline import classical_matte

        self._matte = classical_matte

    def predict(self, image: np.ndarray, prompts: Prompts, state: Any | None) -> Prediction:
        return Prediction(_as_alpha(self._matte(image, prompts), image.shape[:2], self.name), None)


def open_predictor(path: Path | str, device: str = "auto", text: bool = True, keep_inputs: bool = True,
                   focus: bool = True, snap_edges: bool = True) -> Predictor:
    """A ``.pt`` checkpoint or an exported ONNX models folder, by what the path is."""
    path = Path(path)
    if path.is_dir():
        return OnnxPredictor(path, device=device, keep_inputs=keep_inputs, focus=focus, snap_edges=snap_edges)
    if path.is_file() and path.suffix == ".pt":
        return TorchPredictor(path, device=device, text=text, keep_inputs=keep_inputs, focus=focus,
                              snap_edges=snap_edges)
    if not path.exists():
        raise FileNotFoundError(f"models path not found: {path}")
    raise ValueError(f"{path} is neither a .pt checkpoint nor an exported models folder")
