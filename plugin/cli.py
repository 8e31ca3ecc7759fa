"""Headless command: one matting round from the shell, the same engine as the GIMP plug-in.

    python -m plugin matte IMAGE [--box X0,Y0,X1,Y1] [--click fg:X,Y] [--scribble bg:X,Y;X,Y]
                                 [--text "..."] [--state FILE] [--device auto|cuda|cpu]
                                 [--models DIR] [--variant small|base] --out ALPHA.png

Every input option may be repeated. With --state the rounds of that file continue and the file
is updated (atomically). Errors are one line on stderr and exit code 2; no output file is left
behind by a failed run (outputs are written to a temp file and renamed).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import NoReturn

EXIT_USAGE = 2


class UsageError(ValueError):
    """A command-line input that cannot be used; the message is shown as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse prints usage too)
        raise UsageError(message)


def _numbers(text: str, count: int | None, what: str) -> list[float]:
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a list of numbers separated by commas") from None
    if count is not None and len(values) != count:
        raise UsageError(f"{what}: {text!r} needs {count} numbers, got {len(values)}")
    if not all(math.isfinite(v) for v in values):
        raise UsageError(f"{what}: {text!r} holds a number that is not finite")
    return values


def _polarity(text: str, what: str) -> tuple[bool, str]:
    label, sep, rest = text.partition(":")
    if not sep or label.strip().lower() not in ("fg", "bg"):
        raise UsageError(f"{what}: {text!r} must start with fg: or bg:")
    return label.strip().lower() == "fg", rest


def parse_click(text: str) -> tuple[float, float, bool]:
    """``fg:X,Y`` or ``bg:X,Y`` -> (x, y, is_foreground)."""
    fg, rest = _polarity(text, "--click")
    x, y = _numbers(rest, 2, "--click")
    return x, y, fg


def parse_scribble(text: str) -> tuple[list[tuple[float, float]], bool]:
    """``fg:X,Y;X,Y;...`` -> (points, is_foreground)."""
    fg, rest = _polarity(text, "--scribble")
    points = []
    for chunk in rest.split(";"):
        if chunk.strip():
            x, y = _numbers(chunk, 2, "--scribble")
            points.append((x, y))
    if not points:
        raise UsageError(f"--scribble: {text!r} has no points")
    return points, fg


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``X0,Y0,X1,Y1`` -> box."""
    x0, y0, x1, y1 = _numbers(text, 4, "--box")
    return x0, y0, x1, y1


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m plugin", description="DFIMat interactive matting without GIMP.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    m = sub.add_parser("matte", help="one matting round")
    m.add_argument("image", type=Path)
    m.add_argument("--box", action="append", default=[], help="X0,Y0,X1,Y1 around the person")
    m.add_argument("--click", action="append", default=[], help="fg:X,Y or bg:X,Y")
    m.add_argument("--scribble", action="append", default=[], help="fg:X,Y;X,Y;... or bg:...")
    m.add_argument("--text", action="append", default=[], help="a description of the person")
    m.add_argument("--state", type=Path, help="round state file to continue and update")
    m.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    m.add_argument("--models", type=Path, help="models folder (default: $DFIMAT_MODELS or models/)")
    m.add_argument("--variant", choices=("small", "base"),
                   help="which shipped model: small (DFIMat-S, the default) or base (DFIMat)")
    m.add_argument("--no-snap", action="store_true",
                   help="leave the outline where the network put it, not snapped to the image's edges")
    m.add_argument("--out", type=Path, required=True, help="alpha matte, a .png file")
    return parser


def run_matte(args: argparse.Namespace) -> int:
    """Parse inputs, run one round, write the matte (and the state); print device and timings."""
    from .engine import MattingEngine
    from .image_io import read_image, write_alpha_png, write_bytes_atomic
    from .models_dir import default_models_dir, find_models
    from .prompts import Prompts
    from .state import RoundState

    prompts = Prompts(
        clicks=[parse_click(c) for c in args.click],
        scribbles=[parse_scribble(s) for s in args.scribble],
        boxes=[parse_box(b) for b in args.box],
        texts=[t for t in args.text if t.strip()],
    )
    if args.out.suffix.lower() != ".png":
        raise UsageError(f"--out must name a .png file, got {args.out}")
    state = None
    if args.state is not None and args.state.is_file():
        state = RoundState.from_json(args.state.read_bytes())
    if prompts.is_empty() and state is None:
        raise UsageError("no inputs: give at least one --click, --scribble, --box or --text")
    image = read_image(args.image)
    if args.models is None:
        models = default_models_dir(args.variant)
    elif args.variant is None and not args.models.is_dir():
        models = args.models  # the engine says the folder is not there
    else:  # one export, or a folder of variants (the variant's subfolder)
        models = find_models(args.variant, [args.models])
    engine = MattingEngine(models, device=args.device, snap_edges=not args.no_snap)
    result = engine.matte(image, prompts, state)
    write_alpha_png(args.out, result.alpha, sixteen_bit=image.dtype == "uint16")
    if args.state is not None:
        write_bytes_atomic(args.state, result.state.to_bytes())
    print(f"model: {engine.manifest.model} {engine.model_version}")
    print(f"device: {result.device}")
    for stage in ("encode", "decode", "refine", "total"):
        print(f"{stage}: {result.timings[stage] * 1000:.1f} ms")
    print(f"round: {result.state.round}")
    if result.notice:
        print(f"notice: {result.notice}")
    print(f"wrote: {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 done, 2 any error, reported on one stderr line)."""
    from .engine_errors import EngineError
    from .state import StateError

    try:
        args = build_parser().parse_args(argv)
        if args.command != "matte":
            raise UsageError("give a command: matte")
        return run_matte(args)
    except (UsageError, ValueError, EngineError, StateError, OSError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USAGE
