"""Round state of one interactive target: what the next round needs from the last one.

Small and self-describing so it can live in a GIMP layer parasite or a JSON file. The previous
mask is ISCN's low-resolution probability (stride 4 of the model input), stored as PNG-free
zlib-compressed uint8; inputs are every prompt used so far (rounds accumulate them).
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .prompts import Prompts

STATE_VERSION = 1


class StateError(ValueError):
    """A stored state that cannot be used (corrupt, or written by an incompatible version)."""


def image_checksum(image: np.ndarray) -> str:
    """sha256 of the pixels and shape: a changed image must start over at round 1."""
    h = hashlib.sha256()
    h.update(repr((image.shape, str(image.dtype))).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


@dataclass
class RoundState:
    round: int
    prev_mask: np.ndarray  # float32 (m, m) in [0, 1]
    inputs: Prompts
    model_version: str
    image_checksum: str
    version: int = STATE_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        q = np.clip(np.rint(self.prev_mask * 255.0), 0, 255).astype(np.uint8)
        payload = {
            "version": self.version,
            "round": self.round,
            "mask_shape": list(q.shape),
            "mask": base64.b64encode(zlib.compress(q.tobytes(), 9)).decode("ascii"),
            "inputs": self.inputs.to_dict(),
            "model_version": self.model_version,
            "image_checksum": self.image_checksum,
            "extra": self.extra,
        }
        return json.dumps(payload, separators=(",", ":"), sort_keys=True)

    def to_bytes(self) -> bytes:
        """ASCII bytes (JSON), so GIMP's signed-byte parasites take them unchanged."""
        return self.to_json().encode("ascii")

    @classmethod
    def from_json(cls, text: str | bytes) -> RoundState:
        try:
            d = json.loads(text)
            if d.get("version") != STATE_VERSION:
                raise StateError(f"round state version {d.get('version')} is not {STATE_VERSION}")
            shape = tuple(int(v) for v in d["mask_shape"])
            raw = zlib.decompress(base64.b64decode(d["mask"]))
            mask = np.frombuffer(raw, np.uint8).reshape(shape).astype(np.float32) / 255.0
            return cls(
                round=int(d["round"]),
                prev_mask=mask,
                inputs=Prompts.from_dict(d["inputs"]),
                model_version=str(d["model_version"]),
                image_checksum=str(d["image_checksum"]),
                extra=dict(d.get("extra", {})),
            )
        except StateError:
            raise
        except Exception as exc:
            raise StateError(f"round state is corrupt: {exc}") from exc

    from_bytes = from_json
