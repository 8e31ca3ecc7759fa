"""Rebuild a training checkpoint from an exported models folder.

The repository ships ONNX graphs, not checkpoints. A developer who wants to go on training a
shipped model (``python -m training.train ... --init``) or to re-export it after an exporter
change needs its weights as PyTorch holds them; this gets them back from the graphs.

How: a probe DFIMat of the folder's variant and config, with distinct random values in every
parameter, is exported by this code, and each initializer of the probe's graphs is traced by
value to the parameter it came from: as is, transposed or reshaped; a convolution with the
BatchNorm after it folded in; the decoder's positional table plus one row of its level
embedding. The folder's initializer of the same name then gives that parameter. MRN's BatchNorms
come back as identities (their convolutions carry the folded weights): the same outputs, but their
running statistics start afresh if MRN is trained on. The checkpoint is then exported again and
every initializer compared with the folder's. A folder whose graphs this code would not write
(exported by other code, or an untrained model whose exact 0 and 1 weights the simplifier folded
away) is refused.

    python -m export.recover models/small --out small.pt
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from model import DFIMat, build_dfimat, save_checkpoint
from model.checkpoint import FROZEN_PREFIX
from model.modeling.common import grid_embed

from .exporter import write_graph
from .graphs import graph_specs

#: The graphs that hold trained weights (the text encoder is the frozen MiniLM).
GRAPHS = ("image_encoder", "prompt_decoder", "mrn")
#: Largest |re-exported - folder| initializer difference accepted: the positional tables are
#: recomputed in float32 (their rounding differs by up to ~6e-5 between exports).
TOLERANCE = 1e-4


class RecoverError(RuntimeError):
    """The folder cannot be turned back into a checkpoint (what and why in the message)."""


@dataclass(frozen=True)
class Trace:
    """Where one initializer of the probe's graphs came from, and how to put a value back."""

    kind: str  # "as_is" | "transposed" | "reshaped" | "folded_weight" | "folded_bias" | "table_plus_row"
    target: str  # parameter name, or the BatchNorm module for the folded kinds
    conv: str = ""  # folded kinds: the convolution the BatchNorm is folded into
    row: int = -1  # table_plus_row: the embedding row
    table: np.ndarray | None = None  # table_plus_row: the positional table


def _initializers(path: Path) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


def _structure(path: Path) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    return [(n.op_type, tuple(n.input), tuple(n.output)) for n in onnx.load(str(path)).graph.node]


def _export_weight_graphs(net: DFIMat, folder: Path) -> dict[str, Path]:
    specs = graph_specs(net)
    paths = {}
    for name in GRAPHS:
        paths[name] = folder / f"{name}.onnx"
        write_graph(specs[name], paths[name], folder / f"{name}.raw.onnx")
    return paths


def probe_model(config: dict[str, Any], seed: int = 0) -> DFIMat:
    """A DFIMat of ``config`` whose every trained parameter and BatchNorm statistic holds distinct
    random values (vectors near 1, so a BatchNorm scale never cancels), in eval mode. It holds the frozen MiniLM as an
    exported model does: the tracer numbers the graphs' unnamed weights after every parameter."""
    net = build_dfimat(config["variant"], text_encoder=True, mrn_branches=config.get("mrn_branches", "hybrid"))
    if json.loads(json.dumps(net.config.to_dict())) != config:
        raise RecoverError(f"the folder's config is not what build_dfimat({config['variant']!r}) builds now: {config}")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in trained_parameters(net).values():
            noise = torch.rand(p.shape, generator=g)
            p.copy_(0.9 + 0.2 * noise if p.dim() == 1 else (noise - 0.5) * 0.1)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):  # statistics too, so no fold leaves a parameter as it was
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    return net.eval()


def trained_parameters(net: DFIMat) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in net.named_parameters() if not n.startswith(FROZEN_PREFIX)}


def _folded_pairs(net: DFIMat) -> dict[str, tuple[str, np.ndarray, np.ndarray]]:
    """BatchNorm module -> (the convolution before it, folded weight, folded bias) as exported."""
    mods = dict(net.named_modules())
    pairs = {}
    for name, bn in mods.items():
        if not isinstance(bn, torch.nn.BatchNorm2d):
            continue
        parent, idx = name.rsplit(".", 1)
        conv = mods.get(f"{parent}.{int(idx) - 1}")
        if not isinstance(conv, torch.nn.Conv2d):
            raise RecoverError(f"BatchNorm {name} does not follow a convolution; the folding rule does not apply")
        with torch.no_grad():
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            pairs[name] = (f"{parent}.{int(idx) - 1}", (conv.weight * scale.view(-1, 1, 1, 1)).numpy(),
                           ((bias - bn.running_mean) * scale + bn.bias).numpy())
    return pairs


def trace(value: np.ndarray, params: dict[str, np.ndarray], folded: dict[str, tuple[str, np.ndarray, np.ndarray]],
          dim: int) -> Trace | None:
    """The parameter one probe initializer came from, or None for a constant of the graph."""
    for name, p in params.items():
        if p.shape == value.shape and np.array_equal(p, value):
            return Trace("as_is", name)
        if p.ndim == 2 and p.T.shape == value.shape and np.array_equal(p.T, value):
            return Trace("transposed", name)
        if p.size == value.size and np.array_equal(p.reshape(-1), value.reshape(-1)):
            return Trace("reshaped", name)
    for bn, (conv, w, b) in folded.items():
        if w.shape == value.shape and np.allclose(w, value, rtol=1e-5, atol=1e-7):
            return Trace("folded_weight", bn, conv)
        if b.shape == value.shape and np.allclose(b, value, rtol=1e-5, atol=1e-7):
            return Trace("folded_bias", bn, conv)
    side = int(round(value.shape[1] ** 0.5)) if value.ndim == 3 and value.shape[0] == 1 else 0
    if side and side * side == value.shape[1] and value.shape[2] == dim:
        table = grid_embed(side, side, dim, torch.zeros(1)).numpy()
        for name, p in params.items():
            if p.ndim == 2 and p.shape[1] == dim:
                rows = [r for r in range(p.shape[0]) if np.allclose(value[0] - table, p[r], atol=1e-5)]
                if len(rows) == 1:
                    return Trace("table_plus_row", name, row=rows[0], table=table)
    return None


def same_constant(ours: np.ndarray, theirs: np.ndarray) -> bool:
    """Whether a graph constant (not a weight) is the one this exporter writes. Float tables the
    model computes (sine frequencies, positional grids) round differently by an ulp or so from
    one machine's float32 maths to another's, so those match within ``TOLERANCE``; integer
    constants (shapes, axes) must be equal."""
    if ours.shape != theirs.shape or ours.dtype != theirs.dtype:
        return False
    if ours.dtype.kind == "f":
        return bool(np.allclose(ours, theirs, rtol=0.0, atol=TOLERANCE))
    return bool(np.array_equal(ours, theirs))


def recovered_state(net: DFIMat, traces: dict[str, Trace],
                    values: dict[str, np.ndarray]) -> tuple[dict[str, torch.Tensor], set[str]]:
    """``net``'s state dict with every traced parameter set from the folder's initializer values,
    and the names of the parameters that were set."""
    state = {k: v.clone() for k, v in net.state_dict().items()}
    mods = dict(net.named_modules())
    covered: set[str] = set()

    def put(name: str, array: np.ndarray) -> None:
        state[name] = torch.from_numpy(np.array(array, dtype=np.float32)).reshape(state[name].shape)
        covered.add(name)

    for key, t in traces.items():
        v = values[key]
        if t.kind in ("as_is", "reshaped"):
            put(t.target, v)
        elif t.kind == "transposed":
            put(t.target, v.T)
        elif t.kind == "table_plus_row":
            rows = v[0].astype(np.float64) - t.table  # float64: a float32 mean over thousands of rows drifts
            row = rows.mean(0)
            if np.abs(rows - row).max() > TOLERANCE:
                raise RecoverError(f"{key}: not a positional table plus one embedding row")
            state[t.target][t.row] = torch.from_numpy(row.astype(np.float32))
            covered.add(t.target)
        else:  # folded: the BatchNorm becomes an identity, the convolution carries the fold
            bn, conv = t.target, t.conv
            eps = mods[bn].eps
            state[f"{bn}.running_mean"] = torch.zeros_like(state[f"{bn}.running_mean"])
            state[f"{bn}.running_var"] = torch.ones_like(state[f"{bn}.running_var"])
            state[f"{bn}.weight"] = torch.full_like(state[f"{bn}.weight"], float(np.sqrt(1.0 + eps)))
            covered.add(f"{bn}.weight")
            if t.kind == "folded_weight":
                put(f"{conv}.weight", v)
            elif f"{conv}.bias" in state:
                put(f"{conv}.bias", v)
                put(f"{bn}.bias", np.zeros_like(v))
            else:
                put(f"{bn}.bias", v)
    return state, covered


def recover(models_dir: Path | str, out: Path | str, log: Callable[[str], None] = print) -> Path:
    """Write the checkpoint of ``models_dir`` to ``out`` (a ``model.save_checkpoint`` file whose
    ``extra`` is the manifest's training record, version and metrics, plus ``recovered_from``)."""
    models_dir, out = Path(models_dir), Path(out)
    manifest_path = models_dir / "manifest.json"
    if not manifest_path.is_file():
        raise RecoverError(f"{models_dir} is not a models folder (no manifest.json)")
    manifest = json.loads(manifest_path.read_text())
    files = {name: models_dir / manifest["graphs"][name]["file"] for name in GRAPHS if name in manifest.get("graphs", {})}
    missing = [name for name in GRAPHS if name not in files or not files[name].is_file()]
    if missing:
        raise RecoverError(f"{models_dir}: graphs missing: {missing}")
    probe = probe_model(manifest["config"])
    params = {n: p.detach().numpy() for n, p in trained_parameters(probe).items()}
    folded = _folded_pairs(probe)
    with tempfile.TemporaryDirectory(prefix="dfimat-recover-") as tmp:
        log(f"exporting a probe {probe.config.variant} model to trace the graphs' weights")
        probe_paths = _export_weight_graphs(probe, Path(tmp))
        traces: dict[str, Trace] = {}
        values: dict[str, np.ndarray] = {}
        folder_inits = {name: _initializers(files[name]) for name in GRAPHS}
        for name in GRAPHS:
            if _structure(probe_paths[name]) != _structure(files[name]):
                raise RecoverError(f"{files[name]}: its nodes differ from what this exporter writes for the folder's "
                                   "config: exported by other code (check that code out and recover there), or "
                                   "with weights of exactly 0 or 1 that the simplifier folded away (untrained)")
            theirs = folder_inits[name]
            for key, value in _initializers(probe_paths[name]).items():
                t = trace(value, params, folded, probe.iscn.decoder.dim)
                if t is None:
                    if not same_constant(value, theirs[key]):
                        raise RecoverError(f"{name}: initializer {key} comes from no parameter this code knows")
                    continue
                traces[f"{name}/{key}"] = t
                values[f"{name}/{key}"] = theirs[key]
        state, covered = recovered_state(probe, traces, values)
        untraced = sorted(set(params) - covered)
        if untraced:
            raise RecoverError(f"parameters found in no graph: {untraced[:8]}")
        net = probe  # the probe, its random values replaced by the folder's
        net.load_state_dict(state)
        log("exporting the recovered weights again to compare them with the folder's")
        check_dir = Path(tmp) / "check"
        check_dir.mkdir()
        again = _export_weight_graphs(net, check_dir)
        worst = 0.0
        for name in GRAPHS:
            ref = folder_inits[name]
            for key, value in _initializers(again[name]).items():
                if value.dtype.kind == "f":
                    worst = max(worst, float(np.abs(value.astype(np.float64) - ref[key]).max()))
                elif not np.array_equal(value, ref[key]):
                    raise RecoverError(f"{name}: re-exported initializer {key} differs from the folder's")
        if worst > TOLERANCE:
            raise RecoverError(f"the recovered weights re-export {worst:.3g} away from the folder's (> {TOLERANCE})")
        log(f"  re-exported initializers within {worst:.2g} of the folder's")
    extra = dict(manifest.get("training", {}))
    extra.update(metrics=manifest.get("metrics", {}), version=manifest["version"], recovered_from={
        "models": str(models_dir), "exported": manifest.get("exported"), "files": manifest.get("files", {}),
        "max_abs_diff": worst,
        "how": "export.recover: weights read back from the graphs; MRN BatchNorms folded into their convolutions",
    })
    save_checkpoint(net, out, extra=extra)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.recover", description=__doc__.split("\n\n")[0])
    p.add_argument("models", help="an exported models folder (with manifest.json)")
    p.add_argument("--out", required=True, help="checkpoint file to write")
    args = p.parse_args(argv)
    try:
        path = recover(args.models, args.out)
    except (RecoverError, OSError, KeyError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
