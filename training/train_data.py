"""Training items: one image, one target instance, cropped to the training size.

Samples (``training.data.Sample``: image, one alpha per instance, one text per instance) come
from a dataset folder or from ``training.synth`` generated for the run. Each item picks one
instance as the target (the others are distractors the simulated user may mark as background)
and, given input modes, its simulated user and round 1 (``training.train_users``); the pick,
the crop, the flip and the user are drawn from (seed, epoch, index) so a run is reproducible,
and are made in the data loader's workers, beside each other. The epoch travels with each index
(``EpochSampler``), so the workers can live through the whole run.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .train_config import TrainConfig
from .train_users import ItemUser, draw_mode, draw_user


class SampleLike(Protocol):
    name: str
    image: np.ndarray  # (H, W, 3) uint8 RGB
    alphas: np.ndarray  # (N, H, W) float32 in [0, 1]
    texts: list[str | None]


@dataclass
class TrainItem:
    """image (H, W, 3) uint8; target (H, W) float32 alpha (all zero for an image without people);
    others (M, H, W) float32 alphas of the other instances; text: the target's description."""

    image: np.ndarray
    target: np.ndarray
    others: np.ndarray
    text: str | None
    name: str
    user: ItemUser | None = None  # who gives its inputs, with round 1 (None: the dataset was given no modes)


@dataclass
class StepItem:
    """What a training step needs of an item beyond the stacked tensors: its target alpha (H, W),
    its name (for messages) and its simulated user with round 1."""

    target: np.ndarray
    name: str
    user: ItemUser | None


@dataclass
class Batch:
    images: torch.Tensor  # (B, 3, S, S) float in [0, 1]
    targets: torch.Tensor  # (B, 1, S, S) float alpha
    items: Sequence[StepItem | TrainItem]


def load_samples(cfg: TrainConfig) -> Sequence[SampleLike]:
    """The run's samples: the dataset folder, or synthetic data generated once into OUT/synth
    (reused on resume, so a resumed run sees the same data)."""
    from .data import MattingDataset

    if cfg.data is not None:
        root = Path(cfg.data)
        if not root.is_dir():
            raise FileNotFoundError(f"training data folder not found: {root}")
        ds = MattingDataset(root)
        if len(ds) == 0:
            raise ValueError(f"training data folder {root} holds no usable samples")
        return ds
    from .synth import generate

    out = Path(cfg.out) / "synth"
    marker = out / ".complete"
    if not marker.is_file():  # (re)generate: a run interrupted mid-generation starts it over
        generate(out, cfg.synth_count, cfg.seed, size=(cfg.synth_size, cfg.synth_size), mode=cfg.synth,
                 workers=max(1, cfg.workers), overwrite=True, progress=False)
        marker.write_text(f"{cfg.synth} {cfg.synth_count} {cfg.synth_size} {cfg.seed}\n")
    return MattingDataset(out)


def random_crop(sample: SampleLike, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Resize so the short side is ``size`` times a random scale in [1, 1.25], crop a random
    size x size window, flip half the time. Returns (image uint8, alphas (N, size, size))."""
    img = np.asarray(sample.image)
    alphas = np.asarray(sample.alphas, np.float32).reshape(-1, *img.shape[:2])
    h, w = img.shape[:2]
    scale = size * rng.uniform(1.0, 1.25) / min(h, w)
    nh, nw = max(size, int(round(h * scale))), max(size, int(round(w * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    img = cv2.resize(img, (nw, nh), interpolation=interp)
    if len(alphas):
        alphas = np.stack([cv2.resize(a, (nw, nh), interpolation=interp) for a in alphas])
    else:
        alphas = np.zeros((0, nh, nw), np.float32)
    y0 = int(rng.integers(0, nh - size + 1))
    x0 = int(rng.integers(0, nw - size + 1))
    img = img[y0 : y0 + size, x0 : x0 + size]
    alphas = alphas[:, y0 : y0 + size, x0 : x0 + size]
    if rng.random() < 0.5:
        img, alphas = img[:, ::-1], alphas[:, :, ::-1]
    return np.ascontiguousarray(img), np.ascontiguousarray(np.clip(alphas, 0.0, 1.0))


#: Frame sides of ``focus_crop``, over the target's larger side (the engine uses
#: ``plugin.focus.EXPAND``; training draws around it so the frame's margin varies).
FOCUS_EXPAND = (1.15, 1.6)
# Users whose requests the engine never frames: a description alone is one round on the whole
# picture (plugin.focus frames only with a box or from round 2 on). A crop framed around the
# target would tell ISCN who is meant without the words. DFIMat-S trained with focus crops for
# every mode (stop 28) answered the descriptions it missed with a whole wrong person instead of
# a faint mask (validation text SAD 3.90 -> 4.54, as many misses): likely that shortcut.
UNFRAMED_MODES = frozenset({"text"})


def focus_crop(sample: SampleLike, target: int, size: int, rng: np.random.Generator,
               expand: tuple[float, float] = FOCUS_EXPAND) -> tuple[np.ndarray, np.ndarray]:
    """What the engine shows ISCN and MRN from round 2 on (``plugin.focus``): a square around
    instance ``target``, ``expand`` times its larger side (drawn), never smaller than ``size /
    MAX_ZOOM`` pixels of the image and never larger than the image, off centre by up to half its
    margin (the person stays whole), then resized to size x size (magnified bicubic, as
    ``Frame.view``, when smaller); flipped half the time. Same return as ``random_crop``.

    Why: ``random_crop`` shows the whole scene at 1-1.25x, so the largest people fill about 60 %
    of a crop; a focused frame shows its person filling about 75 %. Training on both teaches
    ISCN the view the engine gives it after round 1."""
    from plugin.focus import MAX_ZOOM, Frame

    img = np.asarray(sample.image)
    alphas = np.asarray(sample.alphas, np.float32).reshape(-1, *img.shape[:2])
    h, w = img.shape[:2]
    rows, cols = np.nonzero(alphas[target] > 0.5)
    x0, x1, y0, y1 = cols.min(), cols.max() + 1, rows.min(), rows.max() + 1
    side = min(max(rng.uniform(*expand) * max(x1 - x0, y1 - y0), size / MAX_ZOOM), float(min(h, w)))
    # Off centre by up to half the margin on each axis: the person stays whole in the frame.
    cx = (x0 + x1) / 2 + rng.uniform(-0.5, 0.5) * max(0.0, side - (x1 - x0)) / 2
    cy = (y0 + y1) / 2 + rng.uniform(-0.5, 0.5) * max(0.0, side - (y1 - y0)) / 2
    fx = min(max(cx - side / 2, 0.0), w - side)
    fy = min(max(cy - side / 2, 0.0), h - side)
    frame = Frame(int(fx), int(fy), min(w, int(fx) + int(round(side))), min(h, int(fy) + int(round(side))))
    shrink = frame.width > size
    img = cv2.resize(frame.crop(img), (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    if img.dtype != np.uint8:
        img = np.clip(img, 0.0, 1.0)
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    alphas = np.stack([cv2.resize(frame.crop(a), (size, size), interpolation=interp) for a in alphas])
    if rng.random() < 0.5:
        img, alphas = img[:, ::-1], alphas[:, :, ::-1]
    return np.ascontiguousarray(img), np.ascontiguousarray(np.clip(alphas, 0.0, 1.0))


class InstanceDataset(Dataset):
    """(epoch, i) -> a TrainItem of sample i with one target instance (drawn per epoch); with
    ``inputs`` (simulated input modes) also its user and round 1, a negative item (prompts on
    background, nothing to find) with probability ``negative_prob``. With probability
    ``focus_prob`` the crop is ``focus_crop`` around the target instead of ``random_crop``,
    except for users in ``UNFRAMED_MODES``.
    A plain index i is epoch 0."""

    def __init__(self, samples: Sequence[SampleLike], size: int, seed: int = 0,
                 inputs: Sequence[str] = (), negative_prob: float = 0.0, focus_prob: float = 0.0):
        self.samples = samples
        self.size = size
        self.seed = seed
        self.inputs = tuple(inputs)
        self.negative_prob = negative_prob
        self.focus_prob = focus_prob

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> TrainItem:
        epoch, i = key if isinstance(key, tuple) else (0, key)
        s = self.samples[i]
        rng = np.random.default_rng([self.seed, epoch, i])
        user_rng = np.random.default_rng([self.seed, epoch, i, 1])
        mode = draw_mode(self.inputs, user_rng) if self.inputs else None
        focused = None
        if mode not in UNFRAMED_MODES and self.focus_prob > 0 and rng.random() < self.focus_prob:
            people = [k for k, a in enumerate(np.asarray(s.alphas)) if (a > 0.5).sum() >= 16]
            focused = people[int(rng.integers(len(people)))] if people else None
        if focused is None:
            img, alphas = random_crop(s, self.size, rng)
        else:
            img, alphas = focus_crop(s, focused, self.size, rng)
        texts = list(s.texts) + [None] * max(0, len(alphas) - len(s.texts))
        visible = [k for k in range(len(alphas)) if (alphas[k] > 0.5).sum() >= 16]
        if focused is not None and focused in visible:  # the person the frame was made for
            visible = [focused]
        if not visible:  # no person left in the crop: a negative item
            item = TrainItem(img, np.zeros(img.shape[:2], np.float32), alphas, None, s.name)
        else:
            k = visible[int(rng.integers(len(visible)))]
            item = TrainItem(img, alphas[k], np.delete(alphas, k, axis=0), texts[k], s.name)
        if mode is not None:
            item.user = draw_user(item.target, item.others, item.text, self.inputs, self.negative_prob, user_rng,
                                  mode)
        return item


class EpochSampler(Sampler):
    """(epoch, index) pairs from an index sampler. The loader's workers are told the epoch with
    every index, so they can persist across epochs instead of being forked again for each one
    (a dataset attribute set in the training process would not reach workers already running).

    A resumed run starts mid-epoch: ``skip`` drops that many of the epoch's first indices before
    they reach the loader, so the batches already trained on are never loaded again (the order of
    the rest, and so every later batch, stays what an unbroken run sees)."""

    def __init__(self, indices: Sampler[int]):
        self.indices = indices
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        if skip < 0:
            raise ValueError(f"skip must be >= 0, got {skip}")
        self.epoch, self.skip = epoch, skip
        if hasattr(self.indices, "set_epoch"):  # DistributedSampler shuffles per epoch
            self.indices.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        return itertools.islice(((epoch, int(i)) for i in self.indices), self.skip, None)

    def __len__(self) -> int:
        return max(0, len(self.indices) - self.skip)  # type: ignore[arg-type]


def collate(items: list[TrainItem]) -> Batch:
    """Stack images and targets; keep of each item only what the step reads. The batch crosses
    from a loader worker to the training process pickled: the images (already in the tensor) and
    the other people's alphas (needed only to draw round 1) would triple what it carries."""
    images = torch.from_numpy(np.stack([it.image for it in items])).permute(0, 3, 1, 2).float() / 255.0
    targets = torch.from_numpy(np.stack([it.target for it in items]))[:, None].float()
    return Batch(images, targets, [StepItem(it.target, it.name, it.user) for it in items])


def batch_to(batch: Batch, device: torch.device | str) -> Batch:
    return Batch(batch.images.to(device, non_blocking=True), batch.targets.to(device, non_blocking=True), batch.items)


def describe_data(cfg: TrainConfig) -> dict[str, Any]:
    """What a checkpoint records about its training data."""
    if cfg.data is not None:
        return {"data": str(Path(cfg.data).resolve())}
    return {"synth": cfg.synth, "synth_count": cfg.synth_count, "synth_size": cfg.synth_size, "seed": cfg.seed}
