"""Average the weights of checkpoints of one model: ``python -m training.average A B --out C``.

Why: a run continued on other data can trade one thing for another (stop 35: DFIMat continued on
1024-px images got better at 1024 px and worse at 384 px). Checkpoints that descend from one
another lie in one basin, so a weighted mean of their weights (WiSE-FT, "model soups") is a
model in between that often keeps much of both gains, at no training cost. Only checkpoints of
the same variant and config are averaged; integer buffers (BatchNorm's batch counters) are taken
from the first checkpoint. The result records where it came from in its training record, so the
manifest of a graph exported from it says so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from model.checkpoint import load_checkpoint, save_checkpoint, trainable_state

__all__ = ["average_checkpoints", "main"]


def _weights(count: int, weights: list[float] | None) -> list[float]:
    if weights is None:
        return [1.0 / count] * count
    if len(weights) != count:
        raise ValueError(f"{len(weights)} weights for {count} checkpoints")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"weights must be >= 0 with a positive sum, got {weights}")
    total = sum(weights)
    return [w / total for w in weights]


def _summary(path: Path, extra: dict[str, Any], weight: float) -> dict[str, Any]:
    """A short reference to an averaged checkpoint, not its whole lineage (that would repeat
    the first checkpoint's, which the result's record already holds): enough to tell the runs
    apart and redo them (data, learning rate, seed, ISCN and MRN steps, what it went on from).
    An input that was itself an average keeps its own sources, so averaging again never drops
    a run from the record."""
    out: dict[str, Any] = {"path": str(path), "weight": round(weight, 6)}
    for key in ("version", "stage", "step"):
        if key in extra:
            out[key] = extra[key]
    iscn_step = (extra.get("iscn_training") or {}).get("step")
    if iscn_step is not None:
        out["iscn_step"] = iscn_step
    config = extra.get("config") or {}
    for key in ("data", "lr", "seed", "init"):
        if config.get(key) is not None:
            out[key] = config[key]
    if extra.get("averaged"):
        out["averaged"] = extra["averaged"]
    return out


def average_checkpoints(paths: list[Path | str], out: Path | str,
                        weights: list[float] | None = None) -> dict[str, Any]:
    """Write the weighted mean of ``paths`` to ``out``; returns the record it was saved with.

    The record is the first checkpoint's (its stages, settings and lineage) without its losses
    and version, which described that checkpoint alone, plus ``averaged``: every input's path,
    weight, stage, steps, training data and settings (``_summary``)."""
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise ValueError("averaging needs at least two checkpoints")
    share = _weights(len(paths), weights)
    net, first_extra = load_checkpoint(paths[0], text_encoder=False)
    state = trainable_state(net)
    summed = {k: v.double() * share[0] for k, v in state.items() if v.is_floating_point()}
    sources = [_summary(paths[0], first_extra, share[0])]
    for path, w in zip(paths[1:], share[1:], strict=True):
        other, extra = load_checkpoint(path, text_encoder=False)
        if other.config != net.config:
            raise ValueError(f"{path} is a {other.config.variant!r} model with another config than "
                             f"{paths[0]} ({net.config.variant!r}); only one model's checkpoints average")
        other_state = trainable_state(other)
        for key in summed:
            summed[key] += other_state[key].double() * w
        sources.append(_summary(path, extra, w))
    net.load_state_dict({k: v.to(state[k].dtype) for k, v in summed.items()}, strict=False)
    record = {k: v for k, v in first_extra.items() if k not in ("metrics", "version", "recovered_from")}
    record["averaged"] = sources
    save_checkpoint(net, out, extra=record)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.average", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path, help="checkpoints of one model (2 or more)")
    parser.add_argument("--weights", nargs="+", type=float, help="one per checkpoint (default: equal)")
    parser.add_argument("--out", type=Path, required=True, help="where to write the averaged checkpoint")
    args = parser.parse_args(argv)
    try:
        record = average_checkpoints(args.checkpoints, args.out, args.weights)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    shares = ", ".join(f"{s['path']} x {s['weight']:.3f}" for s in record["averaged"])
    print(f"wrote {args.out}: {shares}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
