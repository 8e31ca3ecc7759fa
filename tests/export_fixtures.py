"""Helpers of the export, engine and command tests: one exported DFIMat-S shared by the session.

The exported checkpoint is the shared fixed-seed one with its zero-initialised parameters (CRM
embedding, soft-mask strengths, ...) set to small random values, so the paths they gate (the
conflict map, the previous mask) really change the outputs that parity is checked on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ExportedModels:
    models_dir: Path
    checkpoint: Path


def perturbed_checkpoint(src: Path, dst: Path, seed: int = 1) -> Path:
    """A copy of ``src`` whose all-zero trainable tensors hold N(0, 0.1) values."""
    import torch

    from model import load_checkpoint, save_checkpoint

    net, extra = load_checkpoint(src, text_encoder=False)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if not name.startswith("iscn.text_encoder.") and float(p.abs().max()) == 0.0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    extra = dict(extra, metrics={"sad": 12.5, "mse": 0.004}, training_data=["SMPMat (test fixture)"])
    save_checkpoint(net, dst, extra=extra)
    return dst


def export_small(src_checkpoint: Path, workdir: Path) -> ExportedModels:
    """Export the perturbed checkpoint once (parity is checked by the tests themselves)."""
    from export import ExportOptions, export_models

    ckpt = perturbed_checkpoint(src_checkpoint, workdir / "small_perturbed.pt")
    out = workdir / "models"
    export_models(ExportOptions(checkpoint=ckpt, out=out, check=False, log=lambda _msg: None))
    return ExportedModels(out, ckpt)


@lru_cache(maxsize=2)
def load_net(checkpoint: Path):
    """The PyTorch model of a checkpoint, loaded once per test session, in eval mode."""
    from model import load_checkpoint

    net, _ = load_checkpoint(checkpoint)
    return net.eval()


def torch_round(net, engine_input: np.ndarray, rgb01: np.ndarray, arrays, texts: list[str],
                prev: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The PyTorch pipeline on the engine's S x S input: (low-res logits, coarse, alpha) with the
    coarse mask upsampled like the engine (bilinear, half-pixel centres) before MRN."""
    import torch
    import torch.nn.functional as F

    from model import PromptTensors

    h, w = rgb01.shape[:2]
    with torch.no_grad():
        feats = net.iscn.encode_image(torch.from_numpy(engine_input))
        pt = PromptTensors.from_arrays(arrays)
        hidden, tmask = net.iscn.encode_text(texts)
        m = net.iscn.mask_size
        prev_t = torch.zeros(1, 1, m, m) if prev is None else torch.from_numpy(prev.astype(np.float32))[None, None]
        prev_valid = torch.tensor([0.0 if prev is None else 1.0])
        logits, _cls, _aux, _m_ref = net.iscn.decode_tensors(
            feats.levels, feats.mask_features, pt.points, pt.kinds, pt.labels, pt.valid, hidden, tmask,
            prev_t, prev_valid,
        )
        coarse = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False).sigmoid()
        image = torch.from_numpy(np.ascontiguousarray(rgb01.transpose(2, 0, 1)))[None]
        alpha = net.mrn(image, coarse)
    return logits[0, 0].numpy(), coarse[0, 0].numpy(), alpha[0, 0].numpy()


def sample_image(height: int = 150, width: int = 200, seed: int = 0) -> np.ndarray:
    """A uint8 RGB picture with structure (a bright figure on a gradient) and a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([xx / width, yy / height, 0.5 * np.ones_like(xx)], axis=-1) * 160
    figure = ((xx - width * 0.45) ** 2 / (width * 0.15) ** 2 + (yy - height * 0.5) ** 2 / (height * 0.3) ** 2) < 1
    img[figure] = (220, 180, 150)
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)
