"""Read multi-person matting datasets from folders (our canonical layout, SMPMat-style, HIM2K).

Training, evaluation and the baselines all read data through ``MattingDataset`` so that a user can
point them at their own folder; docs/data.md describes the layouts. Canonical layout (what
``training.synth`` writes)::

    DIR/images/NAME.png|.jpg          RGB image
    DIR/alphas/NAME/INST.png          one 8- or 16-bit grey alpha per person (INST: 00, 01, ...)
    DIR/texts/NAME/INST.txt           optional one-line description of that person
    DIR/meta.json                     optional, free-form (exposed as ``dataset.meta``)

HIM2K puts a subset level under each folder (``images/natural/NAME.jpg``,
``alphas/natural/NAME/00.png``): pass ``subset="natural"``, or leave ``subset=None`` and every
subset is read with names ``"natural/NAME"``.

Nothing is dropped silently: with ``strict=True`` (default) the first problem raises
``DataError`` naming the file; with ``strict=False`` the sample (or the one bad instance) is left
out and recorded in ``dataset.skipped`` as ``(name, reason)``.
"""

from __future__ import annotations

import argparse
import json
import re
import struct
import sys
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTS = (".png", ".jpg", ".jpeg")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class DataError(ValueError):
    """A dataset file is missing, mismatched or unreadable; the message names the file."""


@dataclass
class Sample:
    """One image and its people: the unit every training and evaluation step consumes."""

    name: str
    image: np.ndarray  # (H, W, 3) uint8 RGB
    alphas: np.ndarray  # (N, H, W) float32 in [0, 1], one per instance
    texts: list[str | None]  # len N, None where no description was given


@dataclass(frozen=True)
class _Entry:
    name: str
    image: Path
    alphas: tuple[Path, ...]
    texts: tuple[Path | None, ...]


def natural_key(s: str) -> list[int | str]:
    """Sort "2" before "10", so instances keep the order their writer meant."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _png_header(path: Path) -> tuple[int, int, int]:
    """(width, height, bit depth) from the IHDR chunk, without decoding the pixels."""
    with open(path, "rb") as f:
        head = f.read(29)
    if len(head) < 29 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise DataError(f"not a PNG file (bad signature or header): {path}")
    width, height, depth = struct.unpack(">IIB", head[16:25])
    return width, height, depth


def _jpeg_size(path: Path) -> tuple[int, int]:
    """(width, height) from the first SOF marker of a JPEG, without decoding the pixels."""
    data = path.read_bytes()
    if data[:2] != b"\xff\xd8":
        raise DataError(f"not a JPEG file (bad signature): {path}")
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    raise DataError(f"JPEG file has no frame header (truncated or corrupt): {path}")


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG or JPEG read from its header (cheap: no pixel decoding)."""
    if path.suffix.lower() == ".png":
        w, h, _ = _png_header(path)
        return w, h
    return _jpeg_size(path)


def read_alpha(path: Path) -> np.ndarray:
    """A grey 8- or 16-bit PNG as float32 (H, W) in [0, 1]; DataError naming the file otherwise."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DataError(f"corrupt or unreadable alpha PNG: {path}")
    if raw.ndim == 3:
        colour = raw[..., :3]
        if not (np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 0], colour[..., 2])):
            raise DataError(f"alpha PNG must be grey, this one has colour: {path}")
        raw = colour[..., 0]
    if raw.dtype == np.uint8:
        return raw.astype(np.float32) / 255.0
    if raw.dtype == np.uint16:
        return raw.astype(np.float32) / 65535.0
    raise DataError(f"alpha PNG must be 8- or 16-bit, got {raw.dtype}: {path}")


def read_image(path: Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB; DataError naming the file when it cannot be decoded."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError(f"corrupt or unreadable image: {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_text(path: Path) -> str | None:
    """First line of a description file, stripped; None when it is empty."""
    try:
        line = path.read_text(encoding="utf-8").splitlines()
    except (UnicodeDecodeError, OSError) as exc:
        raise DataError(f"unreadable description (must be UTF-8 text): {path}: {exc}") from exc
    text = line[0].strip() if line else ""
    return text or None


class MattingDataset:
    """Samples of a folder in the canonical or HIM2K layout (see the module docstring)."""

    def __init__(self, root: str | Path, subset: str | None = None, strict: bool = True, verify: bool = False):
        """Index the folder (reading file headers only, so it is quick for large sets).

        ``verify=True`` also decodes every sample now, so ``skipped`` is complete before training
        starts; otherwise undecodable pixels and empty alphas are found when a sample is read."""
        self.root = Path(root)
        self.subset = subset
        self.strict = strict
        self.names: list[str] = []
        self.skipped: list[tuple[str, str]] = []
        self.meta: dict = {}
        self._entries: list[_Entry] = []
        self._bad: set[int] = set()
        self._index()
        if verify:
            for i in range(len(self._entries)):
                self._try_load(i)

    # ----- indexing -------------------------------------------------------------------------

    def _problem(self, name: str, reason: str) -> None:
        """Raise in strict mode, record otherwise: the one place a problem is handled."""
        if self.strict:
            raise DataError(reason)
        self.skipped.append((name, reason))

    def _index(self) -> None:
        images, alphas, texts = self.root / "images", self.root / "alphas", self.root / "texts"
        for d in (images, alphas):
            if not d.is_dir():
                raise DataError(f"dataset folder {self.root} has no {d.name}/ folder (expected {d})")
        meta = self.root / "meta.json"
        if meta.is_file():
            try:
                self.meta = json.loads(meta.read_text(encoding="utf-8"))
            except (ValueError, OSError) as exc:
                raise DataError(f"meta.json is not valid JSON: {meta}: {exc}") from exc
        if self.subset is not None:
            if not (images / self.subset).is_dir():
                found = sorted(p.name for p in images.iterdir() if p.is_dir())
                raise DataError(f"no subset folder {images / self.subset}; subsets found: {found or 'none'}")
            self.layout = "him2k"
            self._index_folder(images / self.subset, alphas / self.subset, texts / self.subset, "")
            return
        has_files = any(p.suffix.lower() in IMAGE_EXTS for p in images.iterdir() if p.is_file())
        subsets = sorted((p.name for p in images.iterdir() if p.is_dir()), key=natural_key)
        if has_files or not subsets:
            self.layout = "canonical"
            self._index_folder(images, alphas, texts, "")
        else:
            self.layout = "him2k"
            for s in subsets:
                self._index_folder(images / s, alphas / s, texts / s, s + "/")
        if not self._entries and not self.skipped:
            raise DataError(f"no images ({', '.join(IMAGE_EXTS)}) found under {images}")

    def _index_folder(self, images: Path, alphas: Path, texts: Path, prefix: str) -> None:
        by_stem: dict[str, list[Path]] = {}
        for p in sorted(images.iterdir()):
            if p.is_file() and p.suffix.lower() in IMAGE_EXTS:
                by_stem.setdefault(p.stem, []).append(p)
        if alphas.is_dir():
            for d in sorted(alphas.iterdir()):
                if d.is_dir() and d.name not in by_stem:
                    self._problem(prefix + d.name, f"mismatched alpha folder: {d} has no image in {images}")
        for stem in sorted(by_stem, key=natural_key):
            name = prefix + stem
            found = by_stem[stem]
            if len(found) > 1:
                self._problem(name, f"ambiguous image: several files named {stem}: {[str(p) for p in found]}")
                continue
            entry = self._index_one(name, found[0], alphas / stem, texts / stem)
            if entry is not None:
                self._entries.append(entry)
                self.names.append(name)

    def _index_one(self, name: str, image: Path, alpha_dir: Path, text_dir: Path) -> _Entry | None:
        if not alpha_dir.is_dir():
            self._problem(name, f"missing alphas: no folder {alpha_dir} for image {image}")
            return None
        files = sorted((p for p in alpha_dir.iterdir() if p.is_file() and not p.name.startswith(".")),
                       key=lambda p: natural_key(p.stem))
        wrong = [p for p in files if p.suffix.lower() != ".png"]
        if wrong:
            self._problem(name, f"mismatched alpha file: alphas must be PNG, found {wrong[0]}")
            return None
        if not files:
            self._problem(name, f"missing alphas: folder {alpha_dir} holds no PNG for image {image}")
            return None
        try:
            size = image_size(image)
            for p in files:
                w, h, depth = _png_header(p)
                if depth not in (8, 16):
                    raise DataError(f"alpha PNG must be 8- or 16-bit, got {depth}-bit: {p}")
                if (w, h) != size:
                    raise DataError(
                        f"size mismatch: alpha {p} is {w}x{h} but image {image} is {size[0]}x{size[1]}"
                    )
        except DataError as exc:
            self._problem(name, str(exc))
            return None
        text_paths: list[Path | None] = []
        stems = {p.stem for p in files}
        if text_dir.is_dir():
            for t in sorted(text_dir.glob("*.txt")):
                if t.stem not in stems:
                    self._problem(name, f"mismatched description: {t} has no alpha {alpha_dir / (t.stem + '.png')}")
                    return None
        for p in files:
            t = text_dir / (p.stem + ".txt")
            text_paths.append(t if t.is_file() else None)
        return _Entry(name, image, tuple(files), tuple(text_paths))

    # ----- reading --------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, i: int) -> Sample:
        """Sample i. With strict=False an unusable sample is recorded in ``skipped`` and the next
        usable one is returned instead (training loops need a sample, never a hole)."""
        n = len(self._entries)
        if not -n <= i < n:
            raise IndexError(f"sample {i} out of range for {n} samples in {self.root}")
        i %= n
        for k in range(n):
            j = (i + k) % n
            if j in self._bad:
                continue
            sample = self._try_load(j)
            if sample is not None:
                return sample
        raise DataError(f"no usable sample left in {self.root}: {self.describe_skipped()}")

    def _try_load(self, i: int) -> Sample | None:
        entry = self._entries[i]
        try:
            return self._load(entry)
        except DataError as exc:
            if self.strict:
                raise
            self._bad.add(i)
            self.skipped.append((entry.name, str(exc)))
            warnings.warn(f"skipping {entry.name}: {exc}", stacklevel=3)
            return None

    def _load(self, entry: _Entry) -> Sample:
        image = read_image(entry.image)
        h, w = image.shape[:2]
        alphas: list[np.ndarray] = []
        texts: list[str | None] = []
        for a_path, t_path in zip(entry.alphas, entry.texts, strict=True):
            alpha = read_alpha(a_path)
            if alpha.shape != (h, w):
                raise DataError(
                    f"size mismatch: alpha {a_path} is {alpha.shape[1]}x{alpha.shape[0]} "
                    f"but image {entry.image} is {w}x{h}"
                )
            if not alpha.any():
                reason = f"empty instance: alpha {a_path} is all zero"
                if self.strict:
                    raise DataError(reason)
                key = f"{entry.name}/{a_path.stem}"
                if (key, reason) not in self.skipped:
                    self.skipped.append((key, reason))
                continue
            alphas.append(alpha)
            texts.append(read_text(t_path) if t_path is not None else None)
        if not alphas:
            raise DataError(f"empty sample: every alpha of image {entry.image} is all zero")
        return Sample(entry.name, image, np.stack(alphas).astype(np.float32), texts)

    def describe_skipped(self) -> str:
        """One line for logs: how many things were left out and why, by kind of problem."""
        if not self.skipped:
            return f"nothing skipped in {self.root}"
        kinds = Counter(reason.split(":", 1)[0] for _, reason in self.skipped)
        parts = ", ".join(f"{count} {kind}" for kind, count in kinds.most_common())
        return f"skipped {len(self.skipped)} in {self.root} ({parts}); see .skipped for the files"


def main(argv: Sequence[str] | None = None) -> int:
    """Check a dataset folder: decode everything and print what would be skipped."""
    ap = argparse.ArgumentParser(prog="python -m training.data", description=main.__doc__)
    ap.add_argument("root", help="dataset folder (images/, alphas/, optional texts/ and meta.json)")
    ap.add_argument("--subset", default=None, help="HIM2K-style subset folder, e.g. natural")
    args = ap.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # every problem is printed below instead
            ds = MattingDataset(args.root, subset=args.subset, strict=False, verify=True)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    usable = len(ds) - len(ds._bad)
    print(f"{usable} usable samples ({ds.layout} layout); {ds.describe_skipped()}")
    for name, reason in ds.skipped:
        print(f"  {name}: {reason}")
    return 0 if not ds.skipped else 1


if __name__ == "__main__":
    raise SystemExit(main())
