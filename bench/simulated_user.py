"""CPU cost of the simulated users per training batch: round 1 (drawn with each item, in the
data loader's workers) and one round of corrections (``training.sim_pool``) with 0, 2, 4 ...
worker processes. On a GPU the training step waits for this work; prints figures, never asserts.

    python bench/simulated_user.py [--size 512] [--batch 16] [--workers 0 2 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.data import MattingDataset  # noqa: E402
from training.sim_pool import CorrectionPool  # noqa: E402
from training.simulate import MODES  # noqa: E402
from training.synth import generate  # noqa: E402
from training.train_data import InstanceDataset  # noqa: E402
from training.train_users import draw_user  # noqa: E402


def model_like_error(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A prediction a half-trained model might give: shifted, blurred, with a stray blob."""
    h, w = gt.shape
    pred = cv2.GaussianBlur(np.roll(gt, int(rng.integers(-h // 20, h // 20 + 1)), axis=1), (0, 0), 0.01 * h + 1)
    cv2.circle(pred, (int(rng.integers(w)), int(rng.integers(h))), h // 12, 1.0, -1)
    return np.clip(pred, 0.0, 1.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512, help="training crop side")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, args.batch, seed=5, size=(args.size, args.size), progress=False)
        ds = InstanceDataset(MattingDataset(tmp), args.size, seed=0)
        items = [ds[i] for i in range(args.batch)]
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    users = [draw_user(it.target, it.others, it.text, MODES, 0.1, rng) for it in items]
    first_s = time.perf_counter() - t
    jobs = [(u.corrector(2), u.gt, model_like_error(u.gt, rng), 2) for u in users]
    print(f"{args.batch} items of {args.size} px, {os.cpu_count()} CPUs")
    print(f"round 1 (all items, one process): {first_s * 1000:.0f} ms")
    for n in args.workers:
        with CorrectionPool(n) as pool:
            pool.correct(jobs)  # start the workers
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                pool.correct(jobs)
                times.append(time.perf_counter() - t)
        print(f"one round of corrections, {n} worker processes: {statistics.median(times) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
