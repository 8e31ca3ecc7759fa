"""The matting engine of the plug-in: exported ONNX graphs run by ONNX Runtime (no torch).

One call of ``MattingEngine.matte`` is one interaction round (numbered as in docs/engine.md):

0. the frame: the whole image in round 1, a square around the previous round's mask and the
   user's inputs after that, or around a box (``plugin.focus``; ``focus=False`` keeps the whole
   image every round);
1. the frame is resized to the model's S x S square (cv2.INTER_AREA when shrinking,
   INTER_LINEAR otherwise) and encoded; features are cached by image checksum and frame;
2. the prompts so far (earlier rounds' inputs merged with this round's), in the frame's pixels,
   and the previous round's low-res mask, carried into the frame, go through the prompt
   decoder (text through MiniLM first);
3. the low-res mask logits are upsampled bilinearly to the frame's size and squashed (sigmoid),
   and MRN refines frame + coarse mask to the alpha matte, in overlapping tiles for big images;
4. the matte's outline is snapped to the frame's colour edges by a guided filter
   (``plugin.edge_snap``), unless the engine was made with ``snap_edges=False``; outside the
   frame the matte is 0;
5. the pixels under every click and scribble take its label (``plugin.input_constraints``),
   unless the engine was made with ``keep_inputs=False``.

See docs/engine.md for devices, tiling and the round state.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import input_constraints
from .edge_snap import snap_in_frame
from .engine_errors import EngineError
from .engine_sessions import GraphSessions, SessionFactory, create_session
from .engine_tiling import pad_to_multiple, refine_tiled, upsample
from .focus import Frame, frame_for_round, reframe
from .image_io import as_rgb, resize_square, to_unit_float
from .models_dir import Manifest, load_manifest
from .prompts import Prompts, encode_prompts
from .state import RoundState, image_checksum
from .text_tokens import TextTokenizer

__all__ = ["EngineError", "MatteResult", "MattingEngine"]

#: Above this many pixels MRN runs in overlapping tiles (bounded memory for huge images).
TILE_PIXELS = 2048 * 2048
TILE_SIZE = 1024
TILE_OVERLAP = 128
#: Encoded images kept (the current one and one more, e.g. when switching between two images).
FEATURE_CACHE = 2
TEXT_WIDTH = 384
#: Key of the previous mask's frame in ``RoundState.extra`` ([x0, y0, x1, y1]).
FRAME_KEY = "frame"


@dataclass
class MatteResult:
    """One round's outcome. alpha and coarse are (H, W) float32 in [0, 1] at the input's size;
    class_logit is ISCN's "the target is a person" logit (negative: probably not a person)."""

    alpha: np.ndarray
    coarse: np.ndarray
    state: RoundState
    timings: dict[str, float]
    device: str
    started_over: bool = False
    notice: str | None = None
    class_logit: float = 0.0


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (0.5 * (np.tanh(0.5 * x) + 1.0)).astype(np.float32)


class MattingEngine:
    """Loads a models folder once; ``matte`` runs one round on any image."""

    def __init__(
        self,
        models_dir: str | Path | None = None,
        device: str = "auto",
        *,
        tile_pixels: int = TILE_PIXELS,
        tile_size: int = TILE_SIZE,
        tile_overlap: int = TILE_OVERLAP,
        session_factory: SessionFactory = create_session,
        available_providers: list[str] | None = None,
        keep_inputs: bool = True,
        focus: bool = True,
        snap_edges: bool = True,
    ):
        self.manifest: Manifest = load_manifest(models_dir)
        self.sessions = GraphSessions(self.manifest, device, available_providers, session_factory)
        self.tile_pixels, self.tile_size, self.tile_overlap = tile_pixels, tile_size, tile_overlap
        self.keep_inputs = keep_inputs
        self.focus = focus
        self.snap_edges = snap_edges
        self.model_version = self.manifest.version
        self.variant = self.manifest.variant
        self.image_size = self.manifest.image_size
        self.mask_size = self.manifest.mask_size
        self._features: OrderedDict[str, list[np.ndarray]] = OrderedDict()
        self._text_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._tokenizer: TextTokenizer | None = None
        for name in ("image_encoder", "prompt_decoder", "mrn"):  # fail now, not in round 1
            self.sessions.session(name)

    @property
    def device(self) -> str:
        """The execution provider that actually runs: "cuda" or "cpu"."""
        return self.sessions.device

    # -- stages -------------------------------------------------------------------------------
    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """(1, 3, S, S) float32 in [0, 1]: the image encoder's input for an RGB image."""
        return np.ascontiguousarray(resize_square(rgb, self.image_size).transpose(2, 0, 1)[None])

    def encode(self, rgb: np.ndarray, checksum: str) -> list[np.ndarray]:
        """Image features (F_32, F_16, F_8, mask features), computed once per image (or frame:
        ``checksum`` names what ``rgb`` holds)."""
        if checksum in self._features:
            self._features.move_to_end(checksum)
            return self._features[checksum]
        feats = self.sessions.run("image_encoder", {"image": self.preprocess(rgb)})
        self._features[checksum] = feats
        while len(self._features) > FEATURE_CACHE:
            self._features.popitem(last=False)
        return feats

    def encode_text(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(hidden (1, T, 384), mask (1, T) float32); no text -> two masked zero tokens."""
        if not text.strip():
            return np.zeros((1, 2, TEXT_WIDTH), np.float32), np.zeros((1, 2), np.float32)
        if text in self._text_cache:
            return self._text_cache[text]
        if "text_encoder" not in self.manifest.graphs or not self.manifest.tokenizer:
            raise EngineError(f"the models in {self.manifest.directory} have no text encoder; remove the text input")
        if self._tokenizer is None:
            self._tokenizer = TextTokenizer(self.manifest.path(self.manifest.tokenizer), self.manifest.max_text_tokens)
        ids, mask = self._tokenizer([text])
        (hidden,) = self.sessions.run("text_encoder", {"ids": ids, "mask": mask})
        out = (hidden.astype(np.float32), mask.astype(np.float32))
        self._text_cache[text] = out
        return out

    def decode(
        self, feats: list[np.ndarray], prompts: Prompts, width: int, height: int, prev: np.ndarray | None
    ) -> tuple[np.ndarray, float, np.ndarray]:
        """One decoder round on an image (or frame) of ``width`` x ``height`` pixels, with ``prompts``
        and ``prev`` in its pixels -> (low-res logits (m, m), class logit, conflict map M_ref (m, m))."""
        arrays = encode_prompts(prompts, width, height)
        hidden, tmask = self.encode_text(prompts.text)
        m = self.mask_size
        prev_prob = np.zeros((1, 1, m, m), np.float32) if prev is None else self._fit_prev(prev)[None, None]
        feeds = {
            "level32": feats[0], "level16": feats[1], "level8": feats[2], "mask_features": feats[3],
            "points": arrays.points, "kinds": arrays.kinds, "labels": arrays.labels, "valid": arrays.valid,
            "text_hidden": hidden, "text_mask": tmask,
            "prev_prob": prev_prob, "prev_valid": np.array([0.0 if prev is None else 1.0], np.float32),
        }
        logits, cls, m_ref = self.sessions.run("prompt_decoder", feeds)
        return logits[0, 0], float(cls.reshape(-1)[0]), m_ref[0]

    def _fit_prev(self, prev: np.ndarray) -> np.ndarray:
        """A previous mask of any size as the decoder's (m, m) probability."""
        prev = np.clip(np.asarray(prev, np.float32), 0.0, 1.0)
        m = self.mask_size
        if prev.shape != (m, m):
            interp = cv2.INTER_AREA if max(prev.shape) > m else cv2.INTER_LINEAR
            prev = cv2.resize(prev, (m, m), interpolation=interp)
        return prev

    def refine(self, rgb: np.ndarray, low_logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(alpha, coarse) at the image size; MRN in tiles above ``tile_pixels`` pixels."""
        h, w = rgb.shape[:2]
        coarse = _sigmoid(upsample(low_logits, h, w))
        if h * w <= self.tile_pixels:
            return self._mrn(rgb, coarse), coarse

        def tile(rows: slice, cols: slice) -> np.ndarray:
            return self._mrn(rgb[rows, cols], coarse[rows, cols])

        return refine_tiled(h, w, tile, self.tile_size, self.tile_overlap), coarse

    def _mrn(self, rgb: np.ndarray, coarse: np.ndarray) -> np.ndarray:
        h, w = coarse.shape
        image = pad_to_multiple(to_unit_float(rgb).transpose(2, 0, 1)[None])
        mask = pad_to_multiple(coarse[None, None])
        (alpha,) = self.sessions.run("mrn", {"image": np.ascontiguousarray(image), "coarse": np.ascontiguousarray(mask)})
        return np.clip(alpha[0, 0, :h, :w], 0.0, 1.0)

    # -- one round ----------------------------------------------------------------------------
    def matte(self, image: np.ndarray, prompts: Prompts, state: RoundState | None = None) -> MatteResult:
        """One interaction round on ``image`` with this round's ``prompts`` (earlier inputs may
        be repeated); ``state`` is the previous round's ``MatteResult.state`` or None."""
        t0 = time.perf_counter()
        rgb = as_rgb(image)
        h, w = rgb.shape[:2]
        checksum = image_checksum(image)
        inputs, prev, round_no, started_over, notice = self._continue(state, prompts, checksum)
        inputs.validate(w, h)
        whole = Frame.whole(w, h)
        prev_frame = whole if (prev is None or state is None) else Frame.from_list(state.extra.get(FRAME_KEY), w, h)
        frame, local = (frame_for_round(inputs, prev, prev_frame, w, h, self.image_size) if self.focus
                        else (whole, inputs))
        view = frame.view(rgb, self.image_size)
        key = checksum if frame == whole else f"{checksum}@{frame.as_list()}"
        prev_local = None if prev is None else reframe(prev, prev_frame, frame, self.mask_size)

        t1 = time.perf_counter()
        feats = self.encode(view, key)
        t2 = time.perf_counter()
        low, cls, _m_ref = self.decode(feats, local, frame.width, frame.height, prev_local)
        t3 = time.perf_counter()
        alpha, coarse = self.refine(view, low)
        if self.snap_edges:
            alpha = snap_in_frame(alpha, rgb, frame, self.image_size)
        if frame != whole:
            alpha, coarse = frame.paste(alpha, w, h), frame.paste(coarse, w, h)
        if self.keep_inputs:
            alpha = input_constraints.keep_inputs(alpha, inputs)
        t4 = time.perf_counter()

        next_state = RoundState(
            round=round_no,
            prev_mask=_sigmoid(low),
            inputs=inputs,
            model_version=self.model_version,
            image_checksum=checksum,
            extra={"variant": self.variant, "image_size": [h, w], FRAME_KEY: frame.as_list()},
        )
        notices = [n for n in (notice, self.sessions.notice) if n]
        self.sessions.notice = None
        return MatteResult(
            alpha=alpha,
            coarse=coarse,
            state=next_state,
            timings={"encode": t2 - t1, "decode": t3 - t2, "refine": t4 - t3, "total": t4 - t0},
            device=self.device,
            started_over=started_over,
            notice="; ".join(notices) or None,
            class_logit=cls,
        )

    def _continue(
        self, state: RoundState | None, prompts: Prompts, checksum: str
    ) -> tuple[Prompts, np.ndarray | None, int, bool, str | None]:
        """(inputs, previous mask, this round's number, started over?, why) from the last state."""
        if state is None:
            return prompts, None, 1, False, None
        if state.image_checksum != checksum:
            why = f"image changed since round {state.round}: starting over at round 1"
        elif state.model_version != self.model_version:
            why = (f"models changed since round {state.round} ({state.model_version} -> "
                   f"{self.model_version}): starting over at round 1")
        else:
            return state.inputs.merged(prompts), state.prev_mask, state.round + 1, False, None
        return prompts, None, 1, True, why
