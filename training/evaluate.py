"""Score models the paper's way (5.2): every instance of every image is a target, simulated users
give the inputs, rounds accumulate; SAD, MSE, GRAD, CONN and IoU after every round, NoC@90 with
clicks given one at a time.

    python -m training.evaluate --models RUN/mrn_last.pt [EXPORT_DIR ...] --data DIR \
        --inputs click scribble box text mix --rounds 5 --out REPORT_DIR [--baseline]

Writes REPORT_DIR/report.json, table.md (Table 3 shape) and sad_per_round.png (Fig. 5); with
--save-predictions also every round's alpha (predictions/<method>/<input>/<image>__<inst>.npz).
docs/evaluation.md describes the protocol.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from . import metrics
from .predictors import BaselinePredictor, Predictor, open_predictor
from .report import add_noc, aggregate, write_report
from .simulate import MODES, UserSimulator

NOC_THRESHOLD = 0.9


def targets_of(sample: Any) -> list[tuple[int, np.ndarray, list[np.ndarray], str | None]]:
    """(instance index, gt alpha, other instances' alphas, text) for every instance that has at
    least one pixel with alpha > 0.5 (one that does not cannot be pointed at)."""
    alphas = np.asarray(sample.alphas, np.float32)
    texts = list(sample.texts) + [None] * max(0, len(alphas) - len(sample.texts))
    out = []
    for k in range(len(alphas)):
        if (alphas[k] > 0.5).any():
            out.append((k, alphas[k], [alphas[j] for j in range(len(alphas)) if j != k], texts[k]))
    return out


def score(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """The per-round numbers: SAD, MSE (unscaled), GRAD, CONN (thousands) and IoU."""
    return {
        "sad": metrics.sad(pred, gt),
        "mse": metrics.mse(pred, gt),
        "grad": metrics.grad(pred, gt),
        "conn": metrics.conn(pred, gt),
        "iou": metrics.iou(pred, gt),
    }


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def run_rounds(
    predictor: Predictor, image: np.ndarray, gt: np.ndarray, others: Sequence[np.ndarray], text: str | None,
    sim: UserSimulator, rounds: int,
) -> list[np.ndarray]:
    """One target, one input mode: each round's alpha. Round k >= 2 adds the simulated user's
    new inputs, placed from this predictor's own round k-1 result, to all earlier inputs."""
    prompts = sim.first_round(gt, text, others)
    state = None
    alphas: list[np.ndarray] = []
    for k in range(1, rounds + 1):
        if k > 1:
            prompts = prompts.merged(sim.next_round(gt, alphas[-1], k))
        pred = predictor.predict(image, prompts, state)
        alphas.append(pred.alpha)
        state = pred.state
    return alphas


def target_shape(gt: np.ndarray) -> dict[str, float]:
    """What makes a target hard to reach a high IoU on: its size (share of the image at alpha >=
    0.5, what IoU counts) and how much of it is partly transparent (0 < alpha < 1, where the
    0.5 crossing a matte must hit is ill-defined)."""
    g = np.asarray(gt, np.float32)
    covered = g > 1.0 / 255.0
    soft = covered & (g < 1.0 - 1.0 / 255.0)
    return {"area": round(float((g >= 0.5).mean()), 6),
            "soft": round(float(soft.sum() / max(1, int(covered.sum()))), 4)}


def noc_ious(predictor: Predictor, image: np.ndarray, gt: np.ndarray, seed: int, max_clicks: int) -> list[float]:
    """IoU after each single click (the first from the ground truth, then one per round in the
    most significant error region), stopping once IoU reaches the NoC threshold."""
    sim = UserSimulator("click", seed, per_round=1)
    prompts = sim.first_round(gt)
    state, ious, alpha = None, [], None
    for k in range(1, max_clicks + 1):
        if k > 1:
            new = sim.next_round(gt, alpha, k)
            if new.is_empty():
                ious.append(ious[-1])
                continue
            prompts = prompts.merged(new)
        pred = predictor.predict(image, prompts, state)
        alpha, state = pred.alpha, pred.state
        ious.append(metrics.iou(alpha, gt))
        if ious[-1] >= NOC_THRESHOLD:
            break
    return ious


def evaluate(
    predictors: Sequence[Predictor], samples: Sequence[Any], inputs: Sequence[str], rounds: int = 5,
    seed: int = 0, noc_max_clicks: int = 20, save_dir: Path | None = None, progress: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]], int]:
    """Run every predictor on every target with every input mode. Returns (per-round records,
    NoC targets per predictor (empty when clicks are not asked or noc_max_clicks is 0): each
    target's clicks to NoC@90, IoU after each click and ``target_shape``; targets)."""
    bad = [m for m in inputs if m not in MODES]
    if bad or not inputs:
        raise ValueError(f"inputs must be a non-empty subset of {list(MODES)}, got {list(inputs)}")
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    names = [p.name for p in predictors]
    if len(set(names)) != len(names):
        raise ValueError(f"predictor names must differ (they key the report), got {names}")
    records: list[dict[str, Any]] = []
    noc: dict[str, list[dict[str, Any]]] = {p.name: [] for p in predictors} if ("click" in inputs and noc_max_clicks > 0) else {}
    n_targets = 0
    bar = tqdm(total=len(samples), desc="evaluate", disable=not progress, dynamic_ncols=True)
    for i in range(len(samples)):
        sample = samples[i]
        image = np.asarray(sample.image)
        for k, gt, others, text in targets_of(sample):
            n_targets += 1
            for pred in predictors:
                for mode in inputs:
                    sim = UserSimulator(mode, seed)
                    n = min(rounds, sim.rounds)
                    alphas = run_rounds(pred, image, gt, others, text, sim, n)
                    for r, a in enumerate(alphas, 1):
                        records.append({"method": pred.name, "mode": mode, "image": sample.name, "instance": k,
                                        "round": r, **score(a, gt)})
                    if save_dir is not None:
                        p = Path(save_dir) / slug(pred.name) / mode / f"{slug(sample.name)}__{k:02d}.npz"
                        p.parent.mkdir(parents=True, exist_ok=True)
                        np.savez_compressed(p, alphas=np.stack(alphas).astype(np.float32))
                if pred.name in noc:
                    ious = noc_ious(pred, image, gt, seed, noc_max_clicks)
                    noc[pred.name].append({"image": sample.name, "instance": k,
                                           "clicks": metrics.noc(ious, NOC_THRESHOLD, noc_max_clicks),
                                           "ious": [round(v, 4) for v in ious], **target_shape(gt)})
        bar.update(1)
    bar.close()
    return records, noc, n_targets


def unique_names(predictors: Sequence[Predictor], paths: Sequence[str]) -> None:
    """Two runs' ``mrn_last.pt`` would share a name: qualify clashing names with their folder."""
    names = [p.name for p in predictors]
    for p, path in zip(predictors, paths, strict=False):
        if names.count(p.name) > 1:
            p.name = f"{Path(path).resolve().parent.name}/{p.name}"


def split_name(arg: str) -> tuple[str | None, str]:
    """``NAME=PATH`` names a model in the report; a plain path keeps the name it gives itself."""
    if "=" in arg and not Path(arg).exists():
        name, path = arg.split("=", 1)
        if not name.strip():
            raise ValueError(f"empty model name in {arg!r} (use NAME=PATH)")
        return name.strip(), path
    return None, arg


def image_range(text: str) -> tuple[int, int]:
    """``A:B`` -> (A, B): images A to B-1 of the data set, as a Python slice would take them."""
    start, sep, end = text.partition(":")
    try:
        a, b = int(start or 0), int(end)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--images wants START:END, e.g. 0:15, not {text!r}") from None
    if not sep or a < 0 or b <= a:
        raise argparse.ArgumentTypeError(f"--images wants START:END with 0 <= START < END, not {text!r}")
    return a, b


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="*", default=[], help=".pt checkpoints and/or exported ONNX models folders, each optionally NAME=PATH")
    p.add_argument("--data", required=True, help="evaluation dataset folder (training.data layout)")
    p.add_argument("--subset", help="dataset subset (e.g. 'natural' for HIM2K)")
    p.add_argument("--inputs", nargs="+", default=["click"], choices=MODES)
    p.add_argument("--rounds", type=int, default=5, help="rounds of the multi-round input types (paper: 5)")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--baseline", action="store_true", help="also score training.baseline.classical_matte")
    p.add_argument("--seed", type=int, default=0, help="simulated-user seed (same for every method)")
    p.add_argument("--noc-max", type=int, default=20, help="NoC@90 click cap; 0 skips NoC")
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("--images", type=image_range, metavar="A:B",
                   help="only images A to B-1, e.g. one core's share of a slow run; join the shares with "
                        "python -m training.report --join")
    p.add_argument("--device", default="auto")
    p.add_argument("--raw-alpha", action="store_true",
                   help="score the networks' own alpha, without keeping each click's and scribble's pixels "
                        "(the engine's step 5; reports before stop 24 were made so)")
    p.add_argument("--no-focus", action="store_true",
                   help="the whole image every round, no zooming in on the target (plugin.focus; reports "
                        "before stop 26 were made so)")
    p.add_argument("--no-snap", action="store_true",
                   help="leave the outline where MRN put it, not snapped to the image's edges (plugin.edge_snap; "
                        "reports before stop 30 were made so)")
    p.add_argument("--save-predictions", action="store_true", help="store every round's alpha as .npz")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.models and not args.baseline:
        print("error: nothing to evaluate: give --models and/or --baseline", file=sys.stderr)
        return 2
    from .data import MattingDataset

    try:
        data = MattingDataset(args.data, subset=args.subset)
        text = any(m in ("text", "mix") for m in args.inputs)
        named = [split_name(m) for m in args.models]
        predictors: list[Predictor] = [open_predictor(path, args.device, text=text, keep_inputs=not args.raw_alpha,
                                                       focus=not args.no_focus, snap_edges=not args.no_snap)
                                        for _, path in named]
        unique_names(predictors, [path for _, path in named])
        for pred, (name, _) in zip(predictors, named, strict=True):
            pred.name = name or pred.name
        if args.baseline:
            predictors.append(BaselinePredictor())
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.limit is not None and args.images is not None:
        print("error: give --limit or --images, not both", file=sys.stderr)
        return 2
    first, end = args.images or (0, len(data) if args.limit is None else min(args.limit, len(data)))
    if first >= len(data):
        print(f"error: --images starts at image {first}, but {args.data} has {len(data)}", file=sys.stderr)
        return 2
    samples: Sequence[Any] = [data[i] for i in range(first, min(end, len(data)))]
    out = Path(args.out)
    t0 = time.time()
    records, noc, n_targets = evaluate(
        predictors, samples, args.inputs, args.rounds, args.seed, args.noc_max,
        out / "predictions" if args.save_predictions else None,
    )
    summary = aggregate(records)
    if noc:
        add_noc(summary, noc, NOC_THRESHOLD, args.noc_max)
    protocol = {
        "data": str(Path(args.data).resolve()), "subset": args.subset, "images": len(samples), "targets": n_targets,
        "inputs": list(args.inputs), "rounds": args.rounds, "seed": args.seed, "noc_threshold": NOC_THRESHOLD,
        "noc_max_clicks": args.noc_max, "inputs_kept": not args.raw_alpha,
        "focus": not args.no_focus, "edges_snapped": not args.no_snap, "methods": [p.name for p in predictors],
        "seconds": round(time.time() - t0, 2),
        **({"first_image": first} if first else {}),  # a share of a run (--images); joined by report --join
        "command": "python -m training.evaluate " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
    }
    noc_per_target = [{"method": m, **t} for m, targets in noc.items() for t in targets]
    paths = write_report(out, summary, records, protocol, noc_per_target)
    print((out / "table.md").read_text())
    print(f"wrote {paths['json']}, {paths['table']}, {paths['plot']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
