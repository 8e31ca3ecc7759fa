"""Train DFIMat the paper's way (5.1): ISCN alone first, then MRN on the frozen ISCN.

    python -m training.train iscn --data DIR --out RUN [--variant small|base] [--config YAML]
    python -m training.train mrn  --data DIR --iscn RUN/iscn_last.pt --out RUN
    torchrun --nproc_per_node 4 -m training.train iscn ...        # DDP, same flags

See docs/training.md for the recipe, the config fields and what the simulated user does.
"""

from __future__ import annotations

import json
import sys

from .train_config import TrainConfig, config_from_args
from .train_loop import train

__all__ = ["TrainConfig", "main", "train"]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: parse, train, print a one-line JSON summary (rank 0)."""
    try:
        cfg = config_from_args(argv)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = train(cfg)
    losses = summary.pop("losses")
    if losses:
        summary["first_loss"], summary["final_loss"] = losses[0], losses[-1]
    if summary["rank"] == 0:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
