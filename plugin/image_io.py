"""Images in and alpha mattes out, for the engine and the headless command (numpy + OpenCV).

The engine accepts what GIMP and files give: uint8, uint16 or float; grey (H, W) or (H, W, 1),
RGB or RGBA. Colour stays in its own dtype until a model needs floats, so an 8000 x 8000
picture is not blown up to 768 MB of float32 at once (MRN converts tile by tile).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

#: Smallest and largest image side the engine takes.
MIN_SIDE, MAX_SIDE = 16, 16384


def as_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) view or copy in the image's own dtype (uint8 / uint16 / float32); alpha dropped,
    grey repeated. Floats are clipped to [0, 1]. Raises ValueError on anything else."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {image.shape}")
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE or max(h, w) > MAX_SIDE:
        raise ValueError(f"image is {w}x{h}; sides must be between {MIN_SIDE} and {MAX_SIDE} pixels")
    rgb = image[:, :, :3]
    if rgb.dtype in (np.uint8, np.uint16):
        return rgb
    if np.issubdtype(rgb.dtype, np.floating):
        rgb = rgb.astype(np.float32, copy=False)
        if not np.isfinite(rgb).all():
            raise ValueError("image holds NaN or infinite values")
        return np.clip(rgb, 0.0, 1.0)
    raise ValueError(f"image dtype {image.dtype} is not supported (use uint8, uint16 or float in [0, 1])")


def to_unit_float(rgb: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float RGB -> float32 in [0, 1] (the models' input range)."""
    if rgb.dtype == np.uint8:
        return rgb.astype(np.float32) * np.float32(1.0 / 255.0)
    if rgb.dtype == np.uint16:
        return rgb.astype(np.float32) * np.float32(1.0 / 65535.0)
    return rgb.astype(np.float32, copy=False)


def resize_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """The image encoder's input: (size, size, 3) float32 in [0, 1].

    cv2.INTER_AREA when either side shrinks (it averages, so no aliasing), INTER_LINEAR when
    both grow. Resizing happens in the image's own dtype (cheap for huge images)."""
    h, w = rgb.shape[:2]
    interp = cv2.INTER_AREA if (h > size or w > size) else cv2.INTER_LINEAR
    src = rgb if rgb.dtype != np.float32 else np.ascontiguousarray(rgb)
    return to_unit_float(cv2.resize(np.ascontiguousarray(src), (size, size), interpolation=interp))


def read_image(path: str | Path) -> np.ndarray:
    """A picture file as RGB(A) or grey, uint8 or uint16 as stored; ValueError when unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"image not found: {path}")
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ValueError(f"cannot read image (not a picture OpenCV can decode): {path}")
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    if image.dtype not in (np.uint8, np.uint16):
        image = image.astype(np.float32)
    return image


def alpha_to_png_array(alpha: np.ndarray, sixteen_bit: bool) -> np.ndarray:
    """float alpha in [0, 1] -> uint8 or uint16 grey, rounded."""
    top = 65535.0 if sixteen_bit else 255.0
    return np.clip(np.rint(alpha * top), 0, top).astype(np.uint16 if sixteen_bit else np.uint8)


def write_alpha_png(path: str | Path, alpha: np.ndarray, sixteen_bit: bool = False) -> None:
    """Write a grey PNG atomically: a temp file in the same folder, then a rename, so a failed
    run never leaves a partial file where the user expects the matte."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"output must be a .png file, got {path}")
    ok, buf = cv2.imencode(".png", alpha_to_png_array(alpha, sixteen_bit))
    if not ok:
        raise ValueError(f"could not encode the matte as PNG for {path}")
    write_bytes_atomic(path, buf.tobytes())


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
