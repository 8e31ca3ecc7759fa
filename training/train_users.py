"""Who gives a training item its inputs: a simulated user drawn per item, and its round 1.

Round 1 depends only on the ground truth, so it is drawn with the item (in the data loader's
worker processes, beside the crop) instead of in the training step; later rounds depend on the
model's predictions and are made in the step (``training.sim_pool``). Negative items (no person
left in the crop, or drawn with ``negative_prob``) get inputs on a background region away from
every person and a non-person description: target empty, class 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from plugin.prompts import Prompts

from .simulate import UserSimulator

#: Descriptions of things that are not people, for negative items.
NEGATIVE_TEXTS = ("the wall", "the sky", "the floor", "the table", "the tree", "the car", "the window")


@dataclass
class ItemUser:
    """sim: the item's simulated user; gt: what the model must find (zeros for a negative item);
    first: round 1's inputs; is_person: 1.0, or 0.0 for a negative item."""

    sim: UserSimulator
    gt: np.ndarray
    first: Prompts
    is_person: float

    def corrector(self, round_index: int) -> UserSimulator:
        """Who gives round ``round_index``'s inputs: the item's own user while its mode has rounds
        left; after that (box and text have one round) clicks, as a user fixes a box or a
        description with clicks. Training every batch on rounds 2+ is what teaches the CRM and the
        memory prompt; stopping a batch at its shortest mode left them almost untrained."""
        if round_index <= self.sim.rounds:
            return self.sim
        return UserSimulator("click", self.sim.seed)


def distractor_region(
    item_alphas: np.ndarray, shape: tuple[int, int], rng: np.random.Generator
) -> np.ndarray | None:
    """A disk of background (no person within its radius) for a negative item, or None when
    people cover the image."""
    people = (item_alphas > 0.01).any(0) if len(item_alphas) else np.zeros(shape, bool)
    free = cv2.distanceTransform((~people).astype(np.uint8), cv2.DIST_L2, 5)
    radius = 0.1 * min(shape)
    ys, xs = np.nonzero(free > radius)
    if len(xs) == 0:
        return None
    i = int(rng.integers(len(xs)))
    disk = np.zeros(shape, np.uint8)
    cv2.circle(disk, (int(xs[i]), int(ys[i])), int(radius), 1, -1)
    return (disk > 0) & ~people


def draw_mode(inputs: Sequence[str], rng: np.random.Generator) -> str:
    """One simulated input mode, uniform over ``inputs`` (a mode listed twice is drawn twice as
    often)."""
    return inputs[int(rng.integers(len(inputs)))]


def draw_user(
    target: np.ndarray,
    others: np.ndarray,
    text: str | None,
    inputs: Sequence[str],
    negative_prob: float,
    rng: np.random.Generator,
    mode: str | None = None,
) -> ItemUser:
    """An item's user (its mode drawn from ``inputs``, or ``mode`` when the caller drew it
    already) and round 1; a negative item with probability ``negative_prob`` or when the
    target is empty."""
    if mode is None:
        mode = draw_mode(inputs, rng)
    sim = UserSimulator(mode, int(rng.integers(2**31)))
    shape = target.shape
    negative = not (target > 0.5).any() or (negative_prob > 0 and rng.random() < negative_prob)
    region = None
    if negative:
        all_alphas = np.concatenate([target[None], others]) if len(others) else target[None]
        region = distractor_region(all_alphas, shape, rng)
    if negative and region is not None:
        description = NEGATIVE_TEXTS[int(rng.integers(len(NEGATIVE_TEXTS)))]
        first = sim.first_round(region.astype(np.float32), description, ())
        return ItemUser(sim, np.zeros(shape, np.float32), first, 0.0)
    if (target > 0.5).any():
        return ItemUser(sim, target, sim.first_round(target, text, list(others)), 1.0)
    # no person and no free background: point anywhere, nothing to find
    return ItemUser(
        sim, np.zeros(shape, np.float32), Prompts(clicks=[(shape[1] / 2, shape[0] / 2, True)]), 0.0
    )
