"""One matte job from plain data: in-process for GIMP 3, a Python 3 subprocess for GIMP 2.10.

Both plug-ins read GIMP into plain data (pixels, paths, selection, parasites, choices), hand it
to ``run_job`` and write the ``Outcome`` back in one undo group. Everything that can fail
(inputs, stored state, models, inference) fails here, before GIMP is touched, so an image is
never left half-changed.

GIMP 2.10's Python 2 cannot load ONNX Runtime, so its plug-in writes a request folder and runs
``python3 -m plugin.worker FOLDER``; the answer is ``FOLDER/response.json`` (+ ``alpha.raw``).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .engine_errors import EngineError
from .gimp_inputs import (
    DEVICES,
    MODELS,
    OUTPUTS,
    UNNAMED,
    InputError,
    PathData,
    StrokeData,
    choice,
    prompts_from_gimp,
    selection_box,
    stale_state_parasites,
    state_from_parasites,
    state_parasites,
)
from .models_dir import MODELS_ENV, find_models
from .state import RoundState, StateError


@dataclass
class Options:
    """The procedure's arguments (dialog or script), as the choice keys of gimp_inputs."""

    output: str = "mask"
    device: str = "auto"
    model: str = "small"
    start_over: bool = False
    unnamed: str = "foreground"
    text: str = ""
    snap_edges: bool = True

    def normalised(self) -> Options:
        return Options(
            output=choice("output", self.output, OUTPUTS),
            device=choice("device", self.device, DEVICES),
            model=choice("model", self.model, MODELS),
            start_over=bool(self.start_over),
            unnamed=choice("unnamed paths", self.unnamed, UNNAMED),
            text=str(self.text or ""),
            snap_edges=bool(self.snap_edges),
        )


@dataclass
class Job:
    """Plain data read from GIMP: the target layer's pixels and everything the user gave."""

    image: np.ndarray  # (H, W, 3) uint8, the target layer's pixels
    paths: Sequence[PathData] = ()
    selection: tuple[bool, float, float, float, float] | None = None  # (non_empty, x1, y1, x2, y2)
    offset: tuple[float, float] = (0.0, 0.0)  # the layer's position in the image
    parasites: Mapping[str, bytes] = field(default_factory=dict)  # the layer's dfimat-state*
    options: Options = field(default_factory=Options)


@dataclass
class Outcome:
    """What the plug-in writes back, all computed before GIMP is changed."""

    alpha: np.ndarray  # (H, W) uint8, 255 = the person
    parasites: dict[str, bytes]  # state parasites to attach to the target layer
    detach: list[str]  # stale state parasites to remove
    round: int
    device: str
    seconds: float
    message: str
    notices: list[str]
    selection_written: tuple[float, float, float, float] | None = None


class JobError(RuntimeError):
    """A job that cannot run; the message is meant for the GIMP user as it is."""


EngineFactory = Callable[[Path, str], Any]

# Key in RoundState.extra: the bounds of a selection this plug-in wrote, so that selection is
# not taken as a new box in the next round.
_WRITTEN_SELECTION = "written_selection"


def resolve_models(model: str, root: str | os.PathLike[str] | None) -> Path:
    """The exported models folder for the chosen model size: $DFIMAT_MODELS first, then ``root``
    (see ``models_dir.find_models``); not found is a JobError that says where it looked."""
    roots = [p for p in (os.environ.get(MODELS_ENV), root) if p]
    try:
        return find_models(model, roots)
    except EngineError as exc:
        raise JobError(
            f"{exc}. Install them with `python install.py` (or `--models DIR`), or set DFIMAT_MODELS."
        ) from exc


def default_engine_factory(models_dir: Path, device: str) -> Any:
    """The ONNX Runtime engine; imported late so GIMP can list the procedure without it."""
    try:
        from .engine import MattingEngine
    except ImportError as exc:
        raise JobError(
            f"the DFIMat runtime packages are missing from GIMP's Python ({exc}); "
            "run `python install.py` again, or `python install.py --check`"
        ) from exc
    return MattingEngine(models_dir=models_dir, device=device)


def _load_state(parasites: Mapping[str, bytes], notices: list[str]) -> RoundState | None:
    try:
        data = state_from_parasites(parasites)
        return None if data is None else RoundState.from_bytes(data)
    except (ValueError, StateError) as exc:
        notices.append(f"the stored round state could not be read ({exc}); starting over at round 1")
        return None


def run_job(job: Job, models_root: str | os.PathLike[str] | None = None,
            engine_factory: EngineFactory | None = None,
            progress: Callable[[float, str], None] | None = None) -> Outcome:
    """Prompts from the inputs, the engine for this round, and the next round's parasites."""
    t0 = time.perf_counter()
    say = progress or (lambda frac, text: None)
    try:
        opts = job.options.normalised()
    except InputError as exc:
        raise JobError(str(exc)) from exc
    image = np.asarray(job.image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise JobError(f"the layer's pixels must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    h, w = image.shape[:2]
    notices: list[str] = []
    state = None if opts.start_over else _load_state(job.parasites, notices)

    box = selection_box(*job.selection) if job.selection else None
    if box is not None and state is not None and state.extra.get(_WRITTEN_SELECTION) == list(box):
        box = None  # the selection is the matte written last round, not a new box
    try:
        prompts = prompts_from_gimp(job.paths, box, [opts.text], w, h, opts.unnamed, job.offset)
    except InputError as exc:
        raise JobError(str(exc)) from exc

    say(0.1, "loading the model")
    models_dir = resolve_models(opts.model, models_root)
    factory = engine_factory or default_engine_factory
    try:
        engine = factory(models_dir, DEVICES[opts.device])
        engine.snap_edges = opts.snap_edges  # read by every round (docs/engine.md, step 4)
        say(0.3, f"matting on {getattr(engine, 'device', opts.device)}")
        result = engine.matte(image, prompts, state)
    except JobError:
        raise
    except Exception as exc:  # EngineError and anything the runtime raises
        raise JobError(f"DFIMat could not compute the matte: {exc}") from exc
    say(0.9, "writing the result")

    alpha = np.asarray(result.alpha, dtype=np.float32)
    if alpha.shape != (h, w):
        raise JobError(f"the engine returned a {alpha.shape} matte for a {h}x{w} layer")
    alpha_u8 = np.clip(np.rint(alpha * 255.0), 0, 255).astype(np.uint8)
    if result.notice:
        notices.append(str(result.notice))
    next_state: RoundState = result.state
    written = None
    if opts.output == "selection":
        written = _selection_bounds(alpha_u8, job.offset)
        next_state.extra[_WRITTEN_SELECTION] = list(written) if written else None
    else:
        next_state.extra.pop(_WRITTEN_SELECTION, None)
    parasites = state_parasites(next_state.to_bytes())
    seconds = time.perf_counter() - t0
    device = str(getattr(result, "device", "") or getattr(engine, "device", opts.device))
    message = (
        f"DFIMat round {next_state.round}: {OUTPUTS[opts.output]} from {prompts.num_visual} visual "
        f"input(s){' and a description' if prompts.text else ''}, {opts.model} model on {device}, "
        f"{seconds:.1f} s"
    )
    if notices:
        message += ". " + " ".join(n[:1].upper() + n[1:] for n in notices)
    return Outcome(
        alpha=alpha_u8,
        parasites=parasites,
        detach=stale_state_parasites(job.parasites.keys(), parasites.keys()),
        round=next_state.round,
        device=device,
        seconds=seconds,
        message=message,
        notices=notices,
        selection_written=written,
    )


def _selection_bounds(alpha_u8: np.ndarray, offset: tuple[float, float]) -> tuple[float, float, float, float] | None:
    """Bounds GIMP will report for a selection made from this matte (pixels above 0)."""
    ys, xs = np.nonzero(alpha_u8)
    if len(xs) == 0:
        return None
    ox, oy = offset
    return (float(xs.min() + ox), float(ys.min() + oy), float(xs.max() + 1 + ox), float(ys.max() + 1 + oy))


# ---- the subprocess protocol for GIMP 2.10 ---------------------------------------------------


#: GIMP 2.10 sample types (from the image precision) -> numpy type and the value of "1.0".
SAMPLES: dict[str, tuple[type, float]] = {
    "u8": (np.uint8, 255.0), "u16": (np.uint16, 65535.0), "u32": (np.uint32, 4294967295.0),
    "half": (np.float16, 1.0), "float": (np.float32, 1.0), "double": (np.float64, 1.0),
}


def _srgb_from_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(np.maximum(x, 0.0031308), 1 / 2.4) - 0.055)


def to_rgb_u8(raw: bytes, width: int, height: int, channels: int, sample: str = "u8", linear: bool = False) -> np.ndarray:
    """GIMP 2.10 pixel-region bytes (GRAY, GRAYA, RGB or RGBA in any precision) as the
    perceptual (H, W, 3) uint8 the model was trained on; linear-light data is sRGB-encoded."""
    if sample not in SAMPLES or channels not in (1, 2, 3, 4):
        raise JobError(f"unsupported pixel layout: {channels} channels of '{sample}' samples")
    dtype, one = SAMPLES[sample]
    arr = np.frombuffer(raw, dtype=dtype)
    if arr.size != width * height * channels:
        raise JobError(f"pixel data holds {arr.size} values, expected {width}x{height}x{channels}")
    arr = arr.reshape(height, width, channels)
    colour = arr[..., :1] if channels in (1, 2) else arr[..., :3]
    if sample != "u8" or linear:
        x = np.clip(colour.astype(np.float64) / one, 0.0, 1.0)
        colour = np.rint((_srgb_from_linear(x) if linear else x) * 255.0).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(colour, 3, axis=2) if colour.shape[2] == 1 else colour)


def encode_alpha(alpha_u8: np.ndarray, sample: str = "u8") -> bytes:
    """The matte as raw samples of a GIMP 2.10 mask/channel of that precision (coverage, so
    the same value in linear and perceptual images)."""
    if sample not in SAMPLES:
        raise JobError(f"unsupported mask sample type '{sample}'")
    dtype, one = SAMPLES[sample]
    if sample == "u8":
        return np.ascontiguousarray(alpha_u8, np.uint8).tobytes()
    values = alpha_u8.astype(np.float64) / 255.0 * one
    if np.issubdtype(dtype, np.integer):
        values = np.rint(values)
    return values.astype(dtype).tobytes()


def job_from_request(folder: Path) -> tuple[Job, str | None]:
    """Read ``request.json`` (+ its pixel file) written by the GIMP 2.10 plug-in."""
    req = json.loads((folder / "request.json").read_text(encoding="utf-8"))
    raw = (folder / req["pixels"]).read_bytes()
    image = to_rgb_u8(raw, int(req["width"]), int(req["height"]), int(req["channels"]),
                      str(req.get("sample", "u8")), bool(req.get("linear", False)))
    paths = [
        PathData(p["name"], tuple(StrokeData(s["anchors"], s.get("samples", ()), s.get("closed", False))
                                  for s in p["strokes"]))
        for p in req.get("paths", [])
    ]
    sel = req.get("selection")
    opts = Options(**req.get("options", {}))
    parasites = {k: v.encode("ascii") for k, v in req.get("parasites", {}).items()}
    job = Job(image=image, paths=paths, selection=tuple(sel) if sel else None,
              offset=tuple(req.get("offset", (0, 0))), parasites=parasites, options=opts)
    return job, req.get("models")


def answer_request(folder: Path, engine_factory: EngineFactory | None = None) -> dict[str, Any]:
    """Run a request folder and write ``response.json``; errors become ``{"ok": false}``."""
    try:
        job, models = job_from_request(folder)
        sample = str(json.loads((folder / "request.json").read_text(encoding="utf-8")).get("sample", "u8"))
        out = run_job(job, models, engine_factory)
        (folder / "alpha.raw").write_bytes(encode_alpha(out.alpha, sample))
        resp: dict[str, Any] = {
            "ok": True,
            "alpha": "alpha.raw",
            "alpha_sample": sample,
            "width": int(out.alpha.shape[1]),
            "height": int(out.alpha.shape[0]),
            "parasites": {k: v.decode("ascii") for k, v in out.parasites.items()},
            "detach": out.detach,
            "round": out.round,
            "device": out.device,
            "message": out.message,
        }
    except JobError as exc:
        resp = {"ok": False, "error": str(exc)}
    except Exception as exc:  # a bug or a broken install: say what, keep the details
        resp = {"ok": False, "error": f"DFIMat worker failed: {exc!r}", "traceback": traceback.format_exc()}
    (folder / "response.json").write_text(json.dumps(resp), encoding="utf-8")
    return resp


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m plugin.worker REQUEST_FOLDER", file=sys.stderr)
        return 2
    resp = answer_request(Path(args[0]))
    return 0 if resp.get("ok") else 1


if __name__ == "__main__":
    raise SystemExit(main())
