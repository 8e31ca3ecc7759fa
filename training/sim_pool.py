"""The simulated users' corrections of a training batch, in worker processes.

Each training step with rounds 2+ asks one simulated user per image where the last prediction
is wrong (connected components, distance transforms, principal axes at the crop's full size).
On a GPU that CPU work, done image after image in the training process, is what the GPU waits
for; ``CorrectionPool(workers)`` spreads it over processes. What a worker computes is
``training.simulate.corrective_inputs`` of the two thresholded masks, the very function
``UserSimulator.next_round`` calls, so the inputs are the same with any number of workers.

Workers are spawned (never forked from a process that may hold a CUDA context) and import only
numpy, OpenCV and the simulator, not torch. ``workers=0`` corrects in the calling process.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor

import numpy as np

from plugin.prompts import Prompts

from .simulate import UserSimulator, corrective_inputs

#: One correction: the image's user, its ground-truth alpha, the last prediction, the round.
CorrectionJob = tuple[UserSimulator, np.ndarray, np.ndarray, int]
_Packed = tuple[str, int, tuple[int, int], np.ndarray, np.ndarray]


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # the processes are the parallelism; OpenCV's own threads would oversubscribe


def _run_packed(job: _Packed) -> Prompts:
    kind, count, shape, gt_bits, pred_bits = job
    n = shape[0] * shape[1]
    gt = np.unpackbits(gt_bits, count=n).astype(bool).reshape(shape)
    pred = np.unpackbits(pred_bits, count=n).astype(bool).reshape(shape)
    return corrective_inputs(kind, count, gt, pred)


class CorrectionPool:
    """``correct(jobs)`` == ``[sim.next_round(gt, pred, k) for sim, gt, pred, k in jobs]``, in
    ``workers`` processes (0: here). Use as a context manager, or ``close()`` when done."""

    def __init__(self, workers: int = 0):
        if workers < 0:
            raise ValueError(f"workers must be 0 (no pool) or more, got {workers}")
        self.workers = int(workers)
        self._executor: Executor | None = None

    def _pool(self) -> Executor:
        if self._executor is None:  # started on first use: a run that never reaches round 2 spawns nothing
            self._executor = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker
            )
        return self._executor

    def correct(self, jobs: Sequence[CorrectionJob]) -> list[Prompts]:
        """Each job's new inputs, in job order."""
        if self.workers == 0 or len(jobs) < 2:
            return [sim.next_round(gt, pred, k) for sim, gt, pred, k in jobs]
        packed: list[_Packed] = []
        for sim, gt, pred, k in jobs:
            kind, count = sim.correction_job(gt, pred, k)  # checks the inputs here, with a clear error
            g, p = np.asarray(gt) > 0.5, np.asarray(pred) > 0.5
            packed.append((kind, count, g.shape, np.packbits(g, axis=None), np.packbits(p, axis=None)))
        chunk = -(-len(packed) // self.workers)  # one round trip per worker
        return list(self._pool().map(_run_packed, packed, chunksize=chunk))

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> CorrectionPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
