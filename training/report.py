"""Evaluation report: per-target records -> averages, JSON, a Table-3-shaped Markdown table and
a SAD-per-round plot (the paper's Fig. 5), drawn with OpenCV (no plotting library needed)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .metrics import MSE_TABLE_SCALE

METRICS = ("sad", "mse", "grad", "conn", "iou")


def aggregate(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """records (method, mode, image, instance, round, sad, mse, grad, conn, iou) ->
    {method: {mode: {"rounds": [{"round", "targets", <metric means>}], "final": {...}}}}.

    Every target of a mode has the same number of rounds, so round k averages the same targets."""
    grouped: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in records:
        grouped.setdefault((r["method"], r["mode"], int(r["round"])), []).append(r)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (method, mode, rnd), rs in sorted(grouped.items()):
        row = {"round": rnd, "targets": len(rs)}
        row.update({m: float(np.mean([x[m] for x in rs])) for m in METRICS})
        out.setdefault(method, {}).setdefault(mode, {"rounds": []})["rounds"].append(row)
    for modes in out.values():
        for entry in modes.values():
            entry["final"] = entry["rounds"][-1]
    return out


def add_noc(summary: dict[str, dict[str, dict[str, Any]]], noc: dict[str, list[dict[str, Any]]], threshold: float,
            max_clicks: int) -> None:
    """Attach NoC@threshold (mean over targets of their ``clicks``, given one at a time) to each
    method's click entry."""
    for method, targets in noc.items():
        values = [t["clicks"] for t in targets]
        entry = summary.setdefault(method, {}).setdefault("click", {"rounds": [], "final": {}})
        entry[f"noc{int(round(threshold * 100))}"] = float(np.mean(values)) if values else math.nan
        entry["noc_targets"] = len(values)
        entry["noc_max_clicks"] = max_clicks


def markdown_table(summary: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Rows method x input type, columns SAD, MSE (x1e2), GRAD, CONN of each mode's last round
    (as the paper's Table 3), plus IoU, the rounds scored and NoC@90 where clicks were run."""
    lines = [
        "| Method | Input | Rounds | SAD | MSE (x1e2) | GRAD | CONN | IoU | NoC@90 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method, modes in summary.items():
        for mode, entry in modes.items():
            f = entry.get("final") or {}
            if not f:
                continue
            noc = entry.get("noc90")
            noc_s = "-" if noc is None else f"{noc:.2f}"
            lines.append(
                f"| {method} | {mode} | {f['round']} | {f['sad']:.2f} | {f['mse'] * MSE_TABLE_SCALE:.3f} | "
                f"{f['grad']:.2f} | {f['conn']:.2f} | {f['iou']:.3f} | {noc_s} |"
            )
    return "\n".join(lines) + "\n"


_COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def plot_sad(summary: dict[str, dict[str, dict[str, Any]]], path: Path | str, title: str = "SAD per round") -> None:
    """Line per (method, input type): mean SAD after each round (single-round types are a dot)."""
    series = [(f"{m} / {mode}", [(r["round"], r["sad"]) for r in e["rounds"]])
              for m, modes in summary.items() for mode, e in modes.items() if e.get("rounds")]
    w, h, left, right, top, bottom = 900, 520, 80, 260, 50, 60
    img = np.full((h, w, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    max_round = max([p[0] for _, pts in series for p in pts] + [1])
    ys = [p[1] for _, pts in series for p in pts] or [0.0]
    y_max = max(ys) * 1.1 if max(ys) > 0 else 1.0
    pw, ph = w - left - right, h - top - bottom

    def to_px(rnd: float, v: float) -> tuple[int, int]:
        x = left + (0.5 if max_round == 1 else (rnd - 1) / (max_round - 1)) * pw
        return int(round(x)), int(round(top + ph - v / y_max * ph))

    cv2.rectangle(img, (left, top), (left + pw, top + ph), (0, 0, 0), 1)
    for k in range(1, max_round + 1):
        x, _ = to_px(k, 0)
        cv2.line(img, (x, top + ph), (x, top + ph + 5), (0, 0, 0), 1)
        cv2.putText(img, str(k), (x - 5, top + ph + 22), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for k in range(6):
        v = y_max * k / 5
        _, y = to_px(1, v)
        cv2.line(img, (left - 5, y), (left, y), (0, 0, 0), 1)
        cv2.putText(img, f"{v:.2f}", (8, y + 5), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "round", (left + pw // 2 - 20, h - 15), font, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, title + " (SAD / 1000, lower is better)", (left, 30), font, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    for i, (label, pts) in enumerate(series):
        color = _COLORS[i % len(_COLORS)][::-1]  # RGB -> BGR
        px = [to_px(r, v) for r, v in pts]
        for a, b in zip(px, px[1:], strict=False):
            cv2.line(img, a, b, color, 2, cv2.LINE_AA)
        for p in px:
            cv2.circle(img, p, 4, color, -1, cv2.LINE_AA)
        ly = top + 10 + 22 * i
        cv2.line(img, (left + pw + 15, ly), (left + pw + 40, ly), color, 2, cv2.LINE_AA)
        cv2.putText(img, label[:28], (left + pw + 45, ly + 5), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write the plot to {path}")


def write_report(out_dir: Path | str, summary: dict[str, Any], records: Sequence[dict[str, Any]], protocol: dict[str, Any],
                 noc_per_target: Sequence[dict[str, Any]] = ()) -> dict[str, Path]:
    """report.json (protocol, summary, per-target records, per-target NoC with each target's
    method, size and softness), table.md and sad_per_round.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "table": out / "table.md", "plot": out / "sad_per_round.png"}
    payload = {"protocol": protocol, "summary": summary, "records": list(records), "noc_per_target": list(noc_per_target)}
    paths["json"].write_text(json.dumps(payload, indent=1, allow_nan=True))
    header = (f"Evaluation on {protocol.get('data')} ({protocol.get('targets')} targets); last round of each input "
              f"type; SAD, GRAD, CONN in thousands; NoC@90 with up to {protocol.get('noc_max_clicks')} clicks.\n\n")
    paths["table"].write_text(header + markdown_table(summary))
    plot_sad(summary, paths["plot"])
    return paths


#: Protocol fields two reports must share for their records to stand in one table.
SAME_PROTOCOL = ("subset", "images", "first_image", "targets", "inputs", "rounds", "seed", "noc_threshold",
                 "noc_max_clicks")
#: Protocol fields of how the models were run; a merge keeps one only where every part agrees.
RUN_SETTINGS = ("inputs_kept", "focus", "edges_snapped")
#: Protocol fields that are lists whose order changes nothing: each (target, input type) gets a
#: simulated user of its own, so ``--inputs click box`` and ``--inputs box click`` score alike.
UNORDERED_PROTOCOL = ("inputs",)


def _protocol_value(protocol: dict[str, Any], field: str) -> Any:
    """``protocol[field]`` as merges compare it."""
    value = protocol.get(field)
    return sorted(value or []) if field in UNORDERED_PROTOCOL else value


def _replaced_of(protocol: dict[str, Any]) -> dict[str, str]:
    """``protocol["replaced"]`` ("METHOD from FOLDER" entries) as method -> folder."""
    return dict(e.split(" from ", 1) for e in protocol.get("replaced", []) if " from " in e)


def _differences(protocol: dict[str, Any], first: dict[str, Any], fields: Sequence[str]) -> list[str]:
    """The ``fields`` in which ``protocol`` differs from ``first``'s, and "data" when the data set's
    folder name differs (the same split may sit in another folder on another machine)."""
    diff = [k for k in fields if _protocol_value(protocol, k) != _protocol_value(first, k)]
    if Path(str(protocol.get("data"))).name != Path(str(first.get("data"))).name:
        diff.append("data")
    return diff


def _set_commands(protocol: dict[str, Any], commands: list[dict[str, Any]]) -> None:
    """The runs a report's rows came from, and the command and seconds they sum to."""
    protocol["seconds"] = sum(float(e["seconds"]) for e in commands)
    protocol["command"] = " ; ".join(e["command"] for e in commands)
    protocol["commands"] = commands


def _command_entries(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs behind a report as ``{"command", "methods", "seconds"}`` entries, so a merge can
    drop the run whose rows were all replaced. Reports merged before entries were kept count as
    one run of all their methods."""
    protocol = report["protocol"]
    if protocol.get("commands"):
        return [dict(e) for e in protocol["commands"]]
    return [{"command": str(protocol.get("command", "(command not recorded)")),
             "methods": list(protocol.get("methods", report["summary"])),
             "seconds": float(protocol.get("seconds", 0.0))}]


def merge_reports(folders: Sequence[Path | str], out_dir: Path | str, replace: bool = False) -> dict[str, Path]:
    """One report from several made with the same protocol on the same data (e.g. a new model
    scored later beside the baseline and a model already scored): the simulated user is seeded
    per target, so every method still saw the same first inputs. Refuses reports whose protocol
    differs, or that score a method twice; with ``replace`` a later report's method replaces the
    same method of the earlier ones (a retrained model re-scored), and the protocol says so."""
    loaded = [json.loads((Path(f) / "report.json").read_text()) for f in folders]
    if len(loaded) < 2:
        raise ValueError("merging needs at least two report folders")
    first = loaded[0]["protocol"]
    summary: dict[str, Any] = {}
    records: list[dict[str, Any]] = []
    noc_per_target: list[dict[str, Any]] = []
    replaced: dict[str, str] = {}  # method -> the folder whose rows it has now
    commands: list[dict[str, Any]] = []  # the runs whose rows the merge still shows
    for folder, rep in zip(folders, loaded, strict=True):
        diff = _differences(rep["protocol"], first, SAME_PROTOCOL)
        if diff:
            raise ValueError(f"{folder}: protocol differs from {folders[0]} in {', '.join(diff)}")
        twice = sorted(set(rep["summary"]) & set(summary))
        if twice and not replace:
            raise ValueError(f"{folder}: scores {', '.join(twice)} again (--replace takes the later one)")
        if twice:
            records = [r for r in records if r["method"] not in twice]
            noc_per_target = [t for t in noc_per_target if t["method"] not in twice]
            replaced.update({m: str(folder) for m in twice})
            for entry in commands:
                entry["methods"] = [m for m in entry["methods"] if m not in twice]
            commands = [e for e in commands if e["methods"]]
        # a merged report merged again keeps where its re-scored rows came from
        replaced.update(_replaced_of(rep["protocol"]))
        commands += _command_entries(rep)
        summary.update(rep["summary"])
        records += rep["records"]
        noc_per_target += rep.get("noc_per_target", [])  # reports written before targets were kept have none
    protocol = dict(first)
    protocol["methods"] = list(dict.fromkeys(m for rep in loaded for m in rep["protocol"].get("methods", rep["summary"])))
    _set_commands(protocol, commands)  # only the runs still shown: a replaced run's would mislead
    protocol["merged_from"] = [str(f) for f in folders]
    for key in RUN_SETTINGS:  # e.g. some rows keep the inputs' pixels and some do not: say neither
        if len({json.dumps(rep["protocol"].get(key)) for rep in loaded}) > 1:
            protocol.pop(key, None)
    if replaced:
        protocol["replaced"] = [f"{m} from {f}" for m, f in replaced.items()]
    return write_report(out_dir, summary, records, protocol, noc_per_target)


def join_shares(folders: Sequence[Path | str], out_dir: Path | str) -> dict[str, Path]:
    """One report from runs of the same methods over consecutive slices of one data set
    (``training.evaluate --images A:B``): a slow method (the classical baseline takes minutes per
    image) split over cores. The simulated user is seeded per target, so the joined report is the
    report of one run over all the images (tested); shares that leave a gap, overlap, or differ in
    protocol or methods are refused."""
    loaded = [(Path(f), json.loads((Path(f) / "report.json").read_text())) for f in folders]
    if len(loaded) < 2:
        raise ValueError("joining needs at least two report folders")
    loaded.sort(key=lambda item: int(item[1]["protocol"].get("first_image", 0)))
    first_folder, first = loaded[0][0], loaded[0][1]["protocol"]
    same = [k for k in SAME_PROTOCOL if k not in ("images", "first_image", "targets")] + list(RUN_SETTINGS)
    expected = int(first.get("first_image", 0))
    records: list[dict[str, Any]] = []
    noc_per_target: list[dict[str, Any]] = []
    commands: list[dict[str, Any]] = []
    for folder, rep in loaded:
        p = rep["protocol"]
        diff = _differences(p, first, same)
        if sorted(rep["summary"]) != sorted(loaded[0][1]["summary"]):
            diff.append("methods")
        if diff:
            raise ValueError(f"{folder}: protocol differs from {first_folder} in {', '.join(diff)}")
        start = int(p.get("first_image", 0))
        if start != expected:
            raise ValueError(f"{folder}: starts at image {start}, where the shares before it end at {expected} "
                             "(shares must follow each other without a gap or an overlap)")
        expected = start + int(p["images"])
        records += rep["records"]
        noc_per_target += rep.get("noc_per_target", [])
        commands += _command_entries(rep)
    summary = aggregate(records)
    if int(first.get("noc_max_clicks") or 0) > 0:
        noc: dict[str, list[dict[str, Any]]] = {}
        for t in noc_per_target:
            noc.setdefault(t["method"], []).append({k: v for k, v in t.items() if k != "method"})
        add_noc(summary, noc, float(first["noc_threshold"]), int(first["noc_max_clicks"]))
    protocol = dict(first)
    protocol["images"] = sum(int(rep["protocol"]["images"]) for _, rep in loaded)
    protocol["targets"] = sum(int(rep["protocol"]["targets"]) for _, rep in loaded)
    _set_commands(protocol, commands)
    protocol["joined_from"] = [str(f) for f, _ in loaded]
    return write_report(out_dir, summary, records, protocol, noc_per_target)


def main(argv: list[str] | None = None) -> int:
    """``python -m training.report --merge A B [...] --out DIR [--replace]``: one report from several;
    ``--join`` instead: one report from shares of one run's images."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m training.report", description=merge_reports.__doc__.split("\n")[0])
    how = ap.add_mutually_exclusive_group(required=True)
    how.add_argument("--merge", nargs="+", help="report folders (same protocol, same data)")
    how.add_argument("--join", nargs="+",
                     help="report folders of the same methods over consecutive images (training.evaluate --images)")
    ap.add_argument("--out", required=True, help="report folder to write")
    ap.add_argument("--replace", action="store_true",
                    help="a method scored again in a later report replaces its earlier rows (a retrained model)")
    args = ap.parse_args(argv)
    try:
        if args.join and args.replace:
            raise ValueError("--replace goes with --merge, not --join")
        paths = join_shares(args.join, args.out) if args.join else merge_reports(args.merge, args.out, replace=args.replace)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
