"""Small building blocks shared by the ISCN and MRN parts."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: Additive attention bias for forbidden pairs: finite so fp16 graphs never produce NaN.
NEG_INF = -1.0e4

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_image(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] RGB to ImageNet statistics: both networks take plain [0, 1] images at their API."""
    mean = image.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = image.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (image - mean) / std


class LayerNorm2d(nn.Module):
    """LayerNorm over channels of a (B, C, H, W) map."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class MLP(nn.Module):
    def __init__(self, in_dim: int, hidden: int, out_dim: int, layers: int = 2):
        super().__init__()
        dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.gelu(x)
        return x


def sine_embed(coords: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of normalised (x, y) in [0, 1]: (..., 2) -> (..., dim)."""
    quarter = dim // 4
    freqs = torch.exp(
        torch.arange(quarter, device=coords.device, dtype=coords.dtype) * (-math.log(1000.0) / max(quarter, 1))
    )
    ang = coords.unsqueeze(-1) * (2.0 * math.pi) * freqs * 32.0  # (..., 2, quarter)
    emb = torch.cat([ang.sin(), ang.cos()], dim=-1)  # (..., 2, dim/2)
    emb = emb.flatten(-2)
    if emb.shape[-1] < dim:
        emb = F.pad(emb, (0, dim - emb.shape[-1]))
    return emb


def grid_embed(height: int, width: int, dim: int, like: torch.Tensor) -> torch.Tensor:
    """Positional embedding of every cell centre of an (height, width) map: (H*W, dim)."""
    ys = (torch.arange(height, device=like.device, dtype=like.dtype) + 0.5) / height
    xs = (torch.arange(width, device=like.device, dtype=like.dtype) + 0.5) / width
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return sine_embed(torch.stack([gx, gy], dim=-1).reshape(-1, 2), dim)


class Attention(nn.Module):
    """Multi-head attention with an optional additive bias (masks as NEG_INF, soft masks as values)."""

    def __init__(self, dim: int, heads: int, kv_dim: int | None = None):
        super().__init__()
        kv_dim = kv_dim or dim
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(kv_dim, dim)
        self.v = nn.Linear(kv_dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        b, nq, d = q.shape
        nk = k.shape[1]
        h = self.heads
        qh = self.q(q).reshape(b, nq, h, d // h).transpose(1, 2)
        kh = self.k(k).reshape(b, nk, h, d // h).transpose(1, 2)
        vh = self.v(v).reshape(b, nk, h, d // h).transpose(1, 2)
        logits = (qh * self.scale) @ kh.transpose(-1, -2)
        if bias is not None:
            logits = logits + bias
        attn = logits.softmax(dim=-1)
        return self.out((attn @ vh).transpose(1, 2).reshape(b, nq, d))


def zero_init(conv: nn.Conv2d) -> nn.Conv2d:
    """Zero a layer that adds to an existing path, so a fresh model starts without it."""
    nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv
