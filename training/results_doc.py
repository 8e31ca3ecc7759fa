"""docs/results.md from evaluation reports: the one way the project's results page is written.

    python -m training.results_doc --main docs/results/main --large docs/results/large \\
        --ablation "Table 4: decoupled vs coupled=docs/results/table4" ... \\
        --latency docs/results/latency_cpu.json --out docs/results.md

Every number on the page comes from a ``training.evaluate`` report folder (report.json, whose
protocol records the command that made it) or a ``bench/latency.py --json`` file; the goals of
the shipped models are checked here from those numbers, so the page cannot claim more than the
reports hold.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .metrics import MSE_TABLE_SCALE
from .report import markdown_table

BASELINE = "classical baseline"
#: The issue's goals for the shipped models.
BASELINE_FACTOR = 2.0  # both models beat the classical baseline by at least this SAD factor
NOC_GOAL = 3.0  # NoC@90 with clicks at most this
SMALL_WITHIN = 0.15  # DFIMat-S's SAD within this fraction of DFIMat's
#: A NoC target is "small" below this share of the image (at alpha >= 0.5): about 5,900 px at 384 px.
SMALL_TARGET_AREA = 0.04


@dataclass
class Report:
    """One evaluation report folder."""

    title: str
    folder: Path
    protocol: dict[str, Any]
    summary: dict[str, dict[str, dict[str, Any]]]
    noc_per_target: list[dict[str, Any]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, title: str, folder: str | Path) -> Report:
        folder = Path(folder)
        path = folder / "report.json"
        if not path.is_file():
            raise FileNotFoundError(f"{folder} is not an evaluation report folder (no report.json)")
        data = json.loads(path.read_text())
        return cls(title, folder, data["protocol"], data["summary"], data.get("noc_per_target", []),
                   data.get("records", []))


@dataclass(frozen=True)
class Goal:
    goal: str
    model: str
    measured: str
    met: bool | None  # None: cannot be checked with these reports


def _final_sad(summary: dict[str, Any], method: str, mode: str) -> float | None:
    f = summary.get(method, {}).get(mode, {}).get("final") or {}
    return f.get("sad")


def _sads_apart(modes: dict[str, float]) -> str:
    """SAD per input type with two decimals, or three where two would show the lowest as a tie,
    so a reader can see why the goal is met or not."""
    ranked = sorted(modes.values())
    digits = 3 if len(ranked) > 1 and f"{ranked[0]:.2f}" == f"{ranked[1]:.2f}" else 2
    return ", ".join(f"{k} {v:.{digits}f}" for k, v in sorted(modes.items()))


def _last_sads(records: Sequence[dict[str, Any]]) -> dict[tuple[str, str, str, int], float]:
    """(method, input type, image, instance) -> SAD of that target's last round."""
    last: dict[tuple[str, str, str, int], tuple[int, float]] = {}
    for r in records:
        key = (r["method"], r["mode"], r["image"], int(r["instance"]))
        if key not in last or int(r["round"]) > last[key][0]:
            last[key] = (int(r["round"]), float(r["sad"]))
    return {k: v[1] for k, v in last.items()}


def _lower_count(last: dict[tuple[str, str, str, int], float], a: tuple[str, str], b: tuple[str, str]) -> tuple[int, int]:
    """(targets where (method, mode) ``a`` has the lower last-round SAD than ``b``, targets scored by both)."""
    targets = {k[2:] for k in last if k[:2] == a} & {k[2:] for k in last if k[:2] == b}
    return sum(last[(*a, *t)] < last[(*b, *t)] for t in targets), len(targets)


def paired_lower(records: Sequence[dict[str, Any]], method: str, mode: str, other: str) -> tuple[int, int]:
    """(targets where ``mode``'s last round has a lower SAD than ``other``'s, targets scored with
    both): a mean ahead by a few hundredths may be a handful of targets or most of them."""
    return _lower_count(_last_sads(records), (method, mode), (method, other))


def paired_methods(records: Sequence[dict[str, Any]], method: str, other: str) -> dict[str, tuple[int, int]]:
    """Per input type, (targets where ``method``'s last round has a lower SAD than ``other``'s, targets
    scored by both), and the same over all input types under "all": an ablation's mean can hang on
    a few targets that picked the wrong person."""
    last = _last_sads(records)
    modes = sorted({k[1] for k in last if k[0] == method} & {k[1] for k in last if k[0] == other})
    counts = {mode: _lower_count(last, (method, mode), (other, mode)) for mode in modes}
    counts["all"] = (sum(w for w, _ in counts.values()), sum(n for _, n in counts.values()))
    return counts


def paired_line(records: Sequence[dict[str, Any]], methods: Sequence[str]) -> str:
    """The first variant against each other one, target by target (each input type's last round)."""
    lines = []
    for other in methods[1:]:
        c = paired_methods(records, methods[0], other)
        if not c["all"][1]:
            continue
        per = ", ".join(f"{mode} {w}/{n}" for mode, (w, n) in c.items() if mode != "all")
        lines.append(f"{methods[0]} has the lower SAD than {other} on {c['all'][0]} of {c['all'][1]} "
                     f"(target, input type) pairs ({per}).")
    return ("Target by target, each input type's last round: " + " ".join(lines) + "\n") if lines else ""


def goal_checks(summary: dict[str, dict[str, dict[str, Any]]], base: str | None, small: str | None,
                records: Sequence[dict[str, Any]] = ()) -> list[Goal]:
    """The issue's goals, per model, from one report's summary (see the module constants); with
    the report's records the mixed-inputs goal also counts, target by target, how often mixed
    inputs beat the closest other input type."""
    goals: list[Goal] = []
    models = [m for m in (base, small) if m]
    for m in models:
        modes = {mode: _final_sad(summary, m, mode) for mode in summary.get(m, {})}
        modes = {k: v for k, v in modes.items() if v is not None}
        if "mix" in modes and len(modes) > 1:
            best = min(modes, key=lambda k: modes[k])
            measured = _sads_apart(modes)
            rival = min((k for k in modes if k != "mix"), key=lambda k: modes[k])
            wins, n = paired_lower(records, m, "mix", rival)
            if n:
                measured += f"; mix below {rival} on {wins} of {n} targets"
            goals.append(Goal("mixed inputs give the lowest SAD", m, measured, best == "mix"))
        for mode, entry in summary.get(m, {}).items():
            rounds = entry.get("rounds") or []
            if len(rounds) >= 2:
                first, last = rounds[0]["sad"], rounds[-1]["sad"]
                goals.append(Goal(f"SAD falls from round 1 to {rounds[-1]['round']} ({mode})", m,
                                  f"{first:.2f} -> {last:.2f}", last < first))
        if BASELINE in summary:
            for mode, sad in sorted(modes.items()):
                b = _final_sad(summary, BASELINE, mode)
                if b is None:
                    continue
                ratio = b / sad if sad > 0 else math.inf
                goals.append(Goal(f"beats the classical baseline by {BASELINE_FACTOR:g}x SAD ({mode})", m,
                                  f"baseline {b:.2f} / model {sad:.2f} = {ratio:.2f}x", ratio >= BASELINE_FACTOR))
        noc = summary.get(m, {}).get("click", {}).get("noc90")
        if noc is not None:
            goals.append(Goal(f"NoC@90 with clicks at most {NOC_GOAL:g}", m, f"{noc:.2f}", noc <= NOC_GOAL))
    if small:
        if base and base in summary and small in summary:
            shared = [mode for mode in summary[small] if _final_sad(summary, base, mode) is not None
                      and _final_sad(summary, small, mode) is not None]
            s = sum(_final_sad(summary, small, k) for k in shared) / max(1, len(shared))
            b = sum(_final_sad(summary, base, k) for k in shared) / max(1, len(shared))
            goals.append(Goal(f"DFIMat-S within {SMALL_WITHIN:.0%} of DFIMat's SAD", small,
                              f"mean SAD small {s:.2f} vs base {b:.2f}", s <= (1 + SMALL_WITHIN) * b))
        else:
            goals.append(Goal(f"DFIMat-S within {SMALL_WITHIN:.0%} of DFIMat's SAD", small,
                              "no DFIMat (base) in this report", None))
    return goals


def goals_table(goals: Sequence[Goal]) -> str:
    lines = ["| Goal | Model | Measured | Met |", "|---|---|---|---|"]
    mark = {True: "yes", False: "**no**", None: "not checked"}
    lines += [f"| {g.goal} | {g.model} | {g.measured} | {mark[g.met]} |" for g in goals]
    return "\n".join(lines) + "\n"


def noc_by_size_table(targets: Sequence[dict[str, Any]], threshold: float = 0.9,
                      small_area: float = SMALL_TARGET_AREA) -> str:
    """NoC@90 split by target size, per method: where the clicks go unanswered. Columns: targets,
    mean NoC, how many reached the threshold, mean IoU after the last click, and the mean share
    of each target's pixels that are partly transparent (where IoU's 0.5 crossing is ill-defined)."""
    lines = ["| Method | Targets | Count | NoC@90 | Reached | IoU after the last click | Partly transparent |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for method in dict.fromkeys(t["method"] for t in targets):
        mine = [t for t in targets if t["method"] == method]
        for label, group in ((f"small (< {small_area:.0%} of the image)", [t for t in mine if t["area"] < small_area]),
                             ("large", [t for t in mine if t["area"] >= small_area])):
            if not group:
                continue
            n = len(group)
            reached = sum(1 for t in group if max(t["ious"]) >= threshold)
            lines.append(f"| {method} | {label} | {n} | {sum(t['clicks'] for t in group) / n:.2f} | {reached} | "
                         f"{sum(t['ious'][-1] for t in group) / n:.3f} | "
                         f"{sum(t['soft'] for t in group) / n:.0%} |")
    return "\n".join(lines) + "\n"


def ablation_table(summary: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Rows: the variants; columns: each metric's mean over the input types (last round), SAD
    of every input type, and SAD after round 1 and the last round of the click input."""
    modes = sorted({mode for m in summary.values() for mode in m})
    head = ["Variant", "SAD", "MSE (x1e2)", "GRAD", "CONN", "IoU"] + [f"SAD {k}" for k in modes] + ["SAD click r1 -> last"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for method, entries in summary.items():
        finals = [e["final"] for e in entries.values() if e.get("final")]
        if not finals:
            continue
        mean = {k: sum(f[k] for f in finals) / len(finals) for k in ("sad", "mse", "grad", "conn", "iou")}
        per_mode = [f"{entries[k]['final']['sad']:.2f}" if k in entries and entries[k].get("final") else "-" for k in modes]
        click = entries.get("click", {}).get("rounds") or []
        trend = f"{click[0]['sad']:.2f} -> {click[-1]['sad']:.2f}" if len(click) >= 2 else "-"
        lines.append(f"| {method} | {mean['sad']:.2f} | {mean['mse'] * MSE_TABLE_SCALE:.3f} | {mean['grad']:.2f} | "
                     f"{mean['conn']:.2f} | {mean['iou']:.3f} | " + " | ".join(per_mode) + f" | {trend} |")
    return "\n".join(lines) + "\n"


def latency_table(runs: Sequence[dict[str, Any]]) -> str:
    """One row per (file, device): every figure the bench measured, in milliseconds, and the version of
    the graphs it timed where the file records it (files written before stop 23 do not)."""
    keys: list[str] = []
    for r in runs:
        for d in r["devices"].values():
            keys += [k for k in d["dfimat"] if k not in keys]
    lines = ["| Machine | Device | Models | " + " | ".join(keys) + " | SAM ViT-B encode / decode |",
             "|---|---|---|" + "---:|" * len(keys) + "---:|"]
    for r in runs:
        for device, d in r["devices"].items():
            vals = [f"{d['dfimat'][k] * 1000:.1f}" if k in d["dfimat"] else "-" for k in keys]
            sam = d.get("sam_vit_b")
            sam_s = f"{sam['encode'] * 1000:.0f} / {sam['decode'] * 1000:.1f}" if sam else "-"
            models = d["models"] + (f" `{d['version']}`" if d.get("version") else "")  # older files: no version
            lines.append(f"| {r['machine']} | {device} ({d['runs_on']}) | {models} | " + " | ".join(vals) + f" | {sam_s} |")
    return "\n".join(lines) + "\n"


def torch_latency_table(runs: Sequence[dict[str, Any]]) -> str:
    """``bench/model_size.py --json`` files: one row per (device, variant), milliseconds per part."""
    lines = ["| Device | PyTorch | Image side | Variant | encode_image | decode | mrn | GFLOPs (encode / decode / mrn) |",
             "|---|---|---:|---|---:|---:|---:|---|"]
    for r in runs:
        for variant, parts in r["variants"].items():
            ms = [f"{parts[k]['ms']:.1f}" for k in ("encode_image", "decode", "mrn")]
            fl = " / ".join(f"{parts[k]['gflops']:.1f}" for k in ("encode_image", "decode", "mrn"))
            lines.append(f"| {r['device']} | {r['torch']} | {r['size']} | {variant} | " + " | ".join(ms) + f" | {fl} |")
    return "\n".join(lines) + "\n"


def _rel(path: Path, out: Path) -> str:
    return Path(os.path.relpath(path, out.parent)).as_posix()


def _protocol_line(r: Report) -> str:
    p = r.protocol
    return (f"{p.get('images')} images, {p.get('targets')} targets from `{Path(str(p.get('data'))).name}`; inputs "
            f"{', '.join(p.get('inputs', []))}; {p.get('rounds')} rounds; simulated-user seed {p.get('seed')}; "
            f"{p.get('seconds', 0):.0f} s.\n\n`{p.get('command', '(command not recorded)')}`\n"
            + (f"\nRows re-scored later replace the earlier ones: {'; '.join(p['replaced'])}.\n" if p.get("replaced") else ""))


def render(main: Report, large: Report | None, ablations: Sequence[Report], latency: Sequence[dict[str, Any]],
           base: str | None, small: str | None, out: Path, command: str,
           torch_latency: Sequence[dict[str, Any]] = ()) -> str:
    parts = ["# Results (generated)\n",
             f"Written by `{command}` from the reports it names; do not edit by hand. "
             "Each section quotes the evaluation command that produced its numbers. SAD, GRAD and CONN are in "
             "thousands, MSE x 100; the last round of each input type; NoC@90 counts clicks given one at a time. "
             "What the models are and how they were trained: [model_card.md](model_card.md).\n"]
    for r in [main] + ([large] if large else []):
        parts += [f"## {r.title}\n", _protocol_line(r), markdown_table(r.summary)]
        plot = r.folder / "sad_per_round.png"
        if plot.is_file():
            parts.append(f"![SAD per round, {r.title}]({_rel(plot, out)})\n")
        if r.noc_per_target:
            parts += ["### NoC@90 by target size\n",
                      "The click targets of the NoC@90 column, split by size; a target that never reaches 90 % "
                      f"IoU counts the cap ({r.protocol.get('noc_max_clicks')} clicks). Partly transparent: the "
                      "share of a target's pixels with 0 < alpha < 1.\n",
                      noc_by_size_table(r.noc_per_target, float(r.protocol.get("noc_threshold", 0.9)))]
    parts.append("## Goals\n")
    parts.append("Checked from the first report above" + (" and the large-image report" if large else "") + ".\n")
    goals = goal_checks(main.summary, base, small, main.records)
    if large:
        goals += [Goal(g.goal + " [large images]", g.model, g.measured, g.met)
                  for g in goal_checks(large.summary, base, small, large.records)]
    parts.append(goals_table(goals))
    if ablations:
        parts.append("## Ablations\n")
        parts.append("Each compares variants trained on the same data, with the same seed and schedule, that "
                     "differ in what the title names (how each was trained: the model card's Ablations section); "
                     "means are over the input types' last rounds.\n")
        for r in ablations:
            parts += [f"### {r.title}\n", _protocol_line(r), ablation_table(r.summary)]
            pairs = paired_line(r.records, r.protocol.get("methods") or list(r.summary))
            if pairs:
                parts.append(pairs)
    if latency:
        parts += ["## Latency\n", "Milliseconds per call, median after a warm-up (`bench/latency.py`); "
                  "`decode+text` includes the text encoder; `mrn@N` is the MRN on an N x N image (tiled above 2048); "
                  "`keep@N` keeps 15 clicks' and 10 scribbles' pixels on an N x N alpha (files before stop 25: -); "
                  "`snap@N` snaps a matte covering a whole N x N frame to its edges (files before stop 30: -); "
                  "`box@N` is a whole first round on an N x N image with a box (zoomed in: frame, encode, decode, MRN, "
                  "snap since stop 30, keep; files before stop 27: -); "
                  "a `cuda` row is ONNX Runtime's CUDA execution provider, and the `cpu` row beside it comes from "
                  "the same run.\n",
                  latency_table(latency)]
    if torch_latency:
        parts += ["### PyTorch (`bench/model_size.py`)\n",
                  "The networks themselves, fp32, one image, median after a warm-up; `decode` is one prompt-decoder "
                  "round with clicks, a scribble, a box and a description (the text encoder's output cached after "
                  "the warm-up where it runs outside PyTorch); `mrn` refines an image of the given side.\n",
                  torch_latency_table(torch_latency)]
    return "\n".join(parts)


def _named(arg: str) -> tuple[str, str]:
    if "=" not in arg:
        raise argparse.ArgumentTypeError(f"expected TITLE=FOLDER, got {arg!r}")
    title, folder = arg.rsplit("=", 1)
    return title.strip(), folder


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.results_doc", description=__doc__.split("\n\n")[0])
    ap.add_argument("--main", required=True, help="report folder of the shipped models against the baseline")
    ap.add_argument("--main-title", default="Held-out synthetic test split")
    ap.add_argument("--large", help="report folder on large images (e.g. 1024 px)")
    ap.add_argument("--large-title", default="Held-out synthetic test split at 1024 px")
    ap.add_argument("--ablation", action="append", type=_named, default=[], help="TITLE=FOLDER, repeatable")
    ap.add_argument("--latency", action="append", type=Path, default=[], help="bench/latency.py --json file")
    ap.add_argument("--torch-latency", action="append", type=Path, default=[],
                    help="bench/model_size.py --json file (e.g. PyTorch on CUDA)")
    ap.add_argument("--base", help="method name of DFIMat (base) in the reports")
    ap.add_argument("--small", help="method name of DFIMat-S in the reports")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    try:
        main_r = Report.load(args.main_title, args.main)
        large = Report.load(args.large_title, args.large) if args.large else None
        ablations = [Report.load(t, f) for t, f in args.ablation]
        latency = [json.loads(p.read_text()) for p in args.latency]
        torch_latency = [json.loads(p.read_text()) for p in args.torch_latency]
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command = "python -m training.results_doc " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    text = render(main_r, large, ablations, latency, args.base, args.small, args.out, command, torch_latency)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
