"""Checkpoint -> models folder: the four graphs, their fp16 / int8 copies, tokenizer files and
``manifest.json`` (what the engine in plugin/ loads).

The folder is built beside the target and moved into place only when every graph has passed its
parity check, so a failed export never leaves a half-written models folder behind.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model import DFIMat, load_checkpoint
from model.checkpoint import compact_lineage
from model.modeling.common import IMAGENET_MEAN, IMAGENET_STD
from plugin.models_dir import MANIFEST_FORMAT, MANIFEST_NAME, sha256_file
from plugin.text_tokens import MAX_TEXT_TOKENS

from . import optimize, parity
from .graphs import OPSET, GraphSpec, export_graph, graph_specs

#: Graphs that get an fp16 copy for GPUs (the heavy, image-sized ones). The decoder stays fp32:
#: it is small, and its sinusoidal point embeddings lose precision in fp16.
FP16_GRAPHS = ("image_encoder", "mrn")
#: Minimum cosine similarity of the int8 text encoder with fp32 on ``parity.DESCRIPTIONS``.
INT8_MIN_COSINE = 0.99
#: Tokenizer files copied from MiniLM's folder (only tokenizer.json is read by the engine).
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")


class ExportError(RuntimeError):
    """The export cannot go on; the message says why (bad checkpoint, failed parity, ...)."""


@dataclass
class ExportOptions:
    checkpoint: Path
    out: Path
    variant: str | None = None
    fp16: bool = True
    text_int8: bool = False
    check: bool = True
    log: Any = field(default=print)


def _version(checkpoint: Path, variant: str, extra: dict[str, Any]) -> str:
    """The checkpoint's own version when it names one, else variant + a digest of its bytes
    (so a state made with other weights is recognised as such)."""
    if extra.get("version"):
        return str(extra["version"])
    return f"{variant}-{sha256_file(checkpoint)[:12]}"


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _check_fp32(name: str, net: DFIMat, path: Path) -> float:
    diff = parity.max_abs_diff(name, net, path)
    if diff > parity.FP32_BOUND:
        raise ExportError(f"{path.name}: ONNX differs from PyTorch by {diff:.3g} > {parity.FP32_BOUND:g}")
    return diff


def _add_fp16(name: str, net: DFIMat, path: Path, graph: dict[str, Any], checks: dict[str, Any],
              opts: ExportOptions) -> None:
    """Write the fp16 copy of ``path``; keep it only within ``FP16_RELATIVE_BOUND`` of PyTorch
    (without checks it is kept unverified, and the manifest records no fp16 figure)."""
    half = path.with_name(f"{name}.fp16.onnx")
    optimize.to_fp16(path, half)
    if not opts.check:
        graph["fp16_file"] = half.name
        return
    rel = parity.max_abs_diff(name, net, half, relative=True)
    checks.setdefault(name, {})["fp16_max_rel_diff"] = rel
    if rel <= parity.FP16_RELATIVE_BOUND:
        graph["fp16_file"] = half.name
        opts.log(f"  fp16 copy kept: max relative diff {rel:.3g}")
    else:
        half.unlink()
        opts.log(f"  fp16 copy dropped: max relative diff {rel:.3g} > {parity.FP16_RELATIVE_BOUND:g}")


def export_models(opts: ExportOptions) -> dict[str, Any]:
    """Export the checkpoint to ``opts.out``; returns the manifest written there."""
    ckpt = Path(opts.checkpoint)
    out = Path(opts.out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST_NAME).is_file())):
        raise ExportError(f"{out} exists and is not a models folder (no {MANIFEST_NAME}); choose an empty folder")
    try:
        net, extra = load_checkpoint(ckpt)
    except (FileNotFoundError, ValueError) as exc:
        raise ExportError(str(exc)) from exc
    variant = net.config.variant
    if opts.variant and opts.variant != variant:
        raise ExportError(f"checkpoint {ckpt} holds variant {variant!r}, not the requested {opts.variant!r}")
    net.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        manifest = _export_into(net, extra, ckpt, stage, opts)
        stage.chmod(0o755)  # mkdtemp makes it private; a models folder is shared read-only
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            stage.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            stage.rename(out)
        return manifest
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def write_graph(spec: GraphSpec, path: Path, raw: Path) -> None:
    """Trace one graph to ``raw``, then simplify it into ``path`` (what every exported graph is)."""
    export_graph(spec, raw)
    optimize.simplify(raw, path)


def _export_into(net: DFIMat, extra: dict[str, Any], ckpt: Path, stage: Path, opts: ExportOptions) -> dict[str, Any]:
    log = opts.log
    specs = graph_specs(net)
    graphs: dict[str, Any] = {}
    checks: dict[str, Any] = {}
    raw_dir = stage / ".raw"
    raw_dir.mkdir()
    for name, spec in specs.items():
        t0 = time.perf_counter()
        log(f"exporting {name}")
        raw = raw_dir / f"{name}.onnx"
        path = stage / f"{name}.onnx"
        write_graph(spec, path, raw)
        inputs, outputs = optimize.io_description(path)
        graphs[name] = {"file": path.name, "fp16_file": None, "inputs": inputs, "outputs": outputs}
        if opts.check:
            checks[name] = {"fp32_max_abs_diff": _check_fp32(name, net, path)}
            log(f"  parity fp32: max |onnx - torch| = {checks[name]['fp32_max_abs_diff']:.3g}")
        if opts.fp16 and name in FP16_GRAPHS:
            _add_fp16(name, net, path, graphs[name], checks, opts)
        log(f"  {name} done in {time.perf_counter() - t0:.1f} s")
    shutil.rmtree(raw_dir)

    text: dict[str, Any] | None = None
    if "text_encoder" in graphs:
        src_dir = Path(net.iscn.text_encoder.model_dir)
        for fname in TOKENIZER_FILES:
            if (src_dir / fname).is_file():
                shutil.copy2(src_dir / fname, stage / fname)
        text = {"tokenizer": "tokenizer.json", "max_tokens": MAX_TEXT_TOKENS, "source": "all-MiniLM-L6-v2",
                "precision": "fp32"}
        if opts.text_int8:
            fp32 = stage / "text_encoder.onnx"
            int8 = stage / "text_encoder.int8.onnx"
            log("quantising text_encoder to int8")
            optimize.to_int8(fp32, int8)
            cos = parity.text_cosines(fp32, int8, stage / "tokenizer.json")
            if min(cos) < INT8_MIN_COSINE:
                raise ExportError(f"int8 text encoder: cosine {min(cos):.4f} < {INT8_MIN_COSINE} with fp32")
            log(f"  int8 cosine with fp32: min {min(cos):.4f}")
            fp32.unlink()
            graphs["text_encoder"]["file"] = int8.name
            text["precision"] = "int8-dynamic"
            checks.setdefault("text_encoder", {})["int8_min_cosine"] = min(cos)

    s = net.config.image_size
    metrics = extra.get("metrics", {})
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "model": "DFIMat" if net.config.variant == "base" else "DFIMat-S",
        "variant": net.config.variant,
        "version": _version(ckpt, net.config.variant, extra),
        "exported": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "opset": OPSET,
        "image_size": s,
        "mask_size": s // 4,
        "config": net.config.to_dict(),
        "training": _jsonable(compact_lineage({k: v for k, v in extra.items() if k != "metrics"})),
        "metrics": _jsonable(metrics),
        "preprocessing": {
            "image": "RGB float32 in [0, 1], (1, 3, S, S); resized by the caller to S x S "
                     "(cv2.INTER_AREA when shrinking, INTER_LINEAR otherwise)",
            "normalisation": {"inside_graph": True, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
            "mrn": "image and coarse probability at the image size, edge-padded to multiples of 8",
            "coarse": "low_res_logits upsampled bilinearly (half-pixel centres) to the image size, then sigmoid",
        },
        "graphs": graphs,
        "text": text,
        "parity": checks,
        "parity_bounds": {"fp32_max_abs_diff": parity.FP32_BOUND, "fp16_max_rel_diff": parity.FP16_RELATIVE_BOUND,
                          "int8_min_cosine": INT8_MIN_COSINE},
    }
    manifest["files"] = {p.name: sha256_file(p) for p in sorted(stage.iterdir()) if p.is_file()}
    (stage / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=False), encoding="utf-8")
    return manifest
