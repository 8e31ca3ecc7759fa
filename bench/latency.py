"""Latency of DFIMat's ONNX graphs under ONNX Runtime, beside SAM ViT-B's, on CPU (and CUDA).

    python bench/latency.py [--variant base|small] [--models DIR] [--sizes 512,1024,2048,4096]
                            [--repeats 3] [--no-sam]

Figures: image encoding, one decoder round (three clicks, no text; and with a description),
MRN refinement of a square image of each size (through the engine, so tiled above its
threshold), keeping five rounds' clicks' and scribbles' pixels on an alpha of that size
(step 5 of a round, docs/engine.md), snapping a matte over a whole frame of that size to its
edges (step 4), and a whole first round with a box a fifth of the image wide
(the engine zooms in on it: docs/engine.md step 0) -- on every execution provider present. SAM ViT-B
(``segment-anything`` 1.0 from PyPI, random weights) is exported the same way (TorchScript
exporter, opset 17) and timed on the same inputs: its image encoder at 1024 x 1024 and its
prompt decoder with three points.
Without --models, DFIMat is exported from random weights into a temporary folder: latency does
not depend on the weights. The bench prints; it asserts nothing. Install SAM just for it:
``pip install --no-deps segment-anything==1.0`` (never a project requirement).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from install import gpu_names  # noqa: E402  (one reader of nvidia-smi, after ROOT is importable)


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one warm-up call."""
    fn()
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def export_random_dfimat(variant: str, workdir: Path) -> Path:
    """A models folder exported from a random-weight checkpoint (no parity checks)."""
    import torch

    from export import ExportOptions, export_models
    from model import build_dfimat, save_checkpoint

    torch.manual_seed(0)
    ckpt = workdir / f"{variant}_random.pt"
    save_checkpoint(build_dfimat(variant, text_encoder=False), ckpt, extra={"note": "random weights, bench only"})
    out = workdir / f"dfimat_{variant}"
    export_models(ExportOptions(checkpoint=ckpt, out=out, check=False, log=lambda _m: None))
    return out


@dataclass
class DfimatTimings:
    """Seconds per figure, the execution provider that really ran them, and the graphs' version."""

    figures: dict[str, float]
    runs_on: str
    version: str


def bench_dfimat(models: Path, device: str, sizes: list[int], repeats: int) -> DfimatTimings:
    from plugin.edge_snap import snap_to_edges
    from plugin.engine import MattingEngine
    from plugin.input_constraints import keep_inputs
    from plugin.prompts import Prompts

    eng = MattingEngine(models, device=device)
    s = eng.image_size
    rng = np.random.default_rng(0)
    x = rng.random((1, 3, s, s), dtype=np.float32)
    feats = eng.sessions.run("image_encoder", {"image": x})
    res: dict[str, float] = {"encode": timed(lambda: eng.sessions.run("image_encoder", {"image": x}), repeats)}
    clicks = Prompts(clicks=[(300, 200, True), (350, 260, True), (100, 80, False)])
    res["decode"] = timed(lambda: eng.decode(feats, clicks, 640, 480, None), repeats)
    if "text_encoder" in eng.manifest.graphs:
        with_text = clicks.merged(Prompts(texts=["the man in the red coat on the left"]))

        def decode_text() -> None:
            eng._text_cache.clear()  # time MiniLM too, not the cache
            eng.decode(feats, with_text, 640, 480, None)

        res["decode+text"] = timed(decode_text, repeats)
    low = rng.normal(0, 4, (eng.mask_size, eng.mask_size)).astype(np.float32)
    for size in sizes:
        rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        res[f"mrn@{size}"] = timed(lambda rgb=rgb: eng.refine(rgb, low), repeats)
    for size in sizes:  # step 5 of a round: five rounds of 3 clicks and 2 scribbles, scaled to the image
        f = size / 640
        inputs = Prompts(clicks=[(cx * f, cy * f, fg) for cx, cy, fg in clicks.clicks] * 5,
                         scribbles=[([(80 * f, 100 * f), (300 * f, 420 * f), (560 * f, 380 * f)], True),
                                    ([(20 * f, 600 * f), (600 * f, 620 * f)], False)] * 5)
        alpha = rng.random((size, size), dtype=np.float32)
        res[f"keep@{size}"] = timed(lambda alpha=alpha, inputs=inputs: keep_inputs(alpha, inputs), repeats)
    for size in sizes:  # step 4 at its worst: a matte over the whole N x N frame, snapped to its edges
        rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        alpha = rng.random((size, size), dtype=np.float32)
        res[f"snap@{size}"] = timed(lambda alpha=alpha, rgb=rgb, z=size / s: snap_to_edges(alpha, rgb, z), repeats)
    for size in sizes:  # a whole first round with a person-sized box: frame, encode, decode, MRN, snap, keep
        rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        box = Prompts(boxes=[(0.4 * size, 0.3 * size, 0.6 * size, 0.7 * size)])

        def first_round(rgb=rgb, box=box) -> None:
            eng._features.clear()  # a new picture: its frame is encoded, not found in the cache
            eng.matte(rgb, box)

        res[f"box@{size}"] = timed(first_round, repeats)
    return DfimatTimings(res, eng.device, eng.model_version)


def _stub_torchvision() -> None:
    """segment_anything imports torchvision for its resize helpers only; the bench never calls
    them, so a stub stands in when torchvision is absent (it is not a project dependency)."""
    try:
        import torchvision  # noqa: F401
        return
    except ImportError:
        pass

    def missing(*_a, **_k):
        raise RuntimeError("torchvision stub: not available in this bench")

    names = ("torchvision", "torchvision.ops", "torchvision.ops.boxes", "torchvision.transforms",
             "torchvision.transforms.functional")
    for name in names:
        mod = types.ModuleType(name)
        mod.__path__ = []  # a package, so its submodules import
        mod.__getattr__ = lambda _attr: missing  # resize, to_pil_image, batched_nms, box_area
        sys.modules[name] = mod


def export_sam(workdir: Path) -> tuple[Path, Path]:
    """SAM ViT-B (random weights) image encoder and prompt decoder as ONNX, opset 17."""
    import torch

    _stub_torchvision()
    from segment_anything import sam_model_registry
    from segment_anything.utils.onnx import SamOnnxModel

    torch.manual_seed(0)
    sam = sam_model_registry["vit_b"](checkpoint=None).eval()
    enc_path, dec_path = workdir / "sam_vit_b_encoder.onnx", workdir / "sam_vit_b_decoder.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(sam.image_encoder, (torch.randn(1, 3, 1024, 1024),), str(enc_path), dynamo=False,
                          opset_version=17, input_names=["image"], output_names=["embeddings"])
        dec = SamOnnxModel(sam, return_single_mask=True)
        emb = sam.prompt_encoder.embed_dim
        side = sam.prompt_encoder.image_embedding_size
        inputs = {
            "image_embeddings": torch.randn(1, emb, *side),
            "point_coords": torch.randint(0, 1024, (1, 5, 2), dtype=torch.float),
            "point_labels": torch.randint(0, 4, (1, 5), dtype=torch.float),
            "mask_input": torch.randn(1, 1, 4 * side[0], 4 * side[1]),
            "has_mask_input": torch.tensor([1], dtype=torch.float),
            "orig_im_size": torch.tensor([1500, 2250], dtype=torch.float),
        }
        torch.onnx.export(dec, tuple(inputs.values()), str(dec_path), dynamo=False, opset_version=17,
                          input_names=list(inputs), output_names=["masks", "iou_predictions", "low_res_masks"],
                          dynamic_axes={"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}})
    return enc_path, dec_path


def bench_sam(enc_path: Path, dec_path: Path, providers: list[str], repeats: int) -> dict[str, float]:
    from plugin.engine_sessions import create_session

    enc = create_session(str(enc_path), providers)
    dec = create_session(str(dec_path), providers)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (1, 3, 1024, 1024)).astype(np.float32)
    (emb,) = enc.run(None, {"image": x})
    feeds = {
        "image_embeddings": emb,
        "point_coords": np.array([[[300, 200], [350, 260], [100, 80], [0, 0]]], np.float32),
        "point_labels": np.array([[1, 1, 0, -1]], np.float32),
        "mask_input": np.zeros((1, 1, 256, 256), np.float32),
        "has_mask_input": np.zeros(1, np.float32),
        "orig_im_size": np.array([480, 640], np.float32),
    }
    return {
        "encode": timed(lambda: enc.run(None, {"image": x}), repeats),
        "decode": timed(lambda: dec.run(None, feeds), repeats),
    }


def main(argv: list[str] | None = None) -> int:
    import onnxruntime as ort

    from plugin.engine_sessions import CPU, CUDA

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", choices=("base", "small"), default="base")
    ap.add_argument("--models", type=Path, help="an exported models folder (default: export random weights)")
    ap.add_argument("--sizes", default="512,1024,2048,4096", help="MRN image sides, comma separated")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-sam", action="store_true", help="skip SAM ViT-B")
    ap.add_argument("--json", type=Path, help="also write the figures (seconds) and the machine to this file")
    args = ap.parse_args(argv)
    sizes = [int(v) for v in args.sizes.split(",") if v.strip()]
    devices = ["cpu"] + (["cuda"] if CUDA in ort.get_available_providers() else [])
    print(f"onnxruntime {ort.__version__}, providers {ort.get_available_providers()}, "
          f"{os.cpu_count()} CPU threads, repeats {args.repeats} (median after one warm-up)")

    report: dict = {"machine": machine_description(), "onnxruntime": ort.__version__,
                    "repeats": args.repeats, "devices": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models = args.models or export_random_dfimat(args.variant, work)
        sam_paths: tuple[Path, Path] | None = None
        if not args.no_sam:
            try:
                sam_paths = export_sam(work)
            except Exception as exc:  # the bench reports and goes on
                print(f"SAM ViT-B: not measured ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})")
        for device in devices:
            timings = bench_dfimat(models, device, sizes, args.repeats)
            d, runs_on, version = timings.figures, timings.runs_on, timings.version
            print(f"\n== {device} (runs on {runs_on}) ==")
            print(f"DFIMat ({models.name}): " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in d.items()))
            entry = report["devices"][device] = {"runs_on": runs_on, "dfimat": dict(d), "version": version,
                                                 "models": str(args.models or f"random {args.variant}")}
            if sam_paths is None:
                continue
            sam = bench_sam(*sam_paths, [CUDA, CPU] if device == "cuda" else [CPU], args.repeats)
            entry["sam_vit_b"] = dict(sam)
            print("SAM ViT-B: " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in sam.items()))
            print(f"ratio DFIMat / SAM: encode {d['encode'] / sam['encode']:.3f}, "
                  f"decode {d['decode'] / sam['decode']:.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
        print(f"wrote {args.json}")
    return 0


def machine_description() -> str:
    """CPU model and thread count, and the GPUs' names where nvidia-smi lists any: a CUDA row of
    the results table means little without the card it ran on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} threads, {platform.system()} {platform.release()}"
    gpus = gpu_names()
    return f"{text}, {', '.join(gpus)}" if gpus else text


if __name__ == "__main__":
    sys.exit(main())
