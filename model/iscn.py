"""Interactive semantic capture network: finds the one person the prompts point at.

Split as the plug-in uses it: ``encode_image`` once per image, then ``decode`` once per round.
The image is resized to the model's square input (S x S); prompts are normalised coordinates, so
they do not care about that resize, and masks come back at the caller's image size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from plugin.prompts import PromptArrays, Prompts, collate_prompts, encode_prompts

from .modeling.common import normalize_image
from .modeling.contrastive_reasoning import (
    ContrastiveReasoning,
    add_to_levels,
    conflict_from_maps,
    prompt_maps,
)
from .modeling.dense_prompts import DensePromptEmbedding
from .modeling.image_encoder import ImageEncoder, ImageFeatures
from .modeling.prompt_decoder import DecoderOutput, PromptDecoder
from .modeling.text_encoder import TEXT_WIDTH
from .modeling.visual_sampler import VisualSampler


@dataclass
class PromptTensors:
    """Visual prompts as tensors (see ``plugin.prompts.PromptArrays``) plus the descriptions."""

    points: torch.Tensor
    kinds: torch.Tensor
    labels: torch.Tensor
    valid: torch.Tensor
    texts: list[str]

    @classmethod
    def from_arrays(cls, arrays: PromptArrays, device: torch.device | str = "cpu") -> PromptTensors:
        return cls(
            torch.from_numpy(arrays.points).to(device),
            torch.from_numpy(arrays.kinds).to(device),
            torch.from_numpy(arrays.labels).to(device),
            torch.from_numpy(arrays.valid).to(device),
            list(arrays.texts),
        )


PromptInput = Prompts | Sequence[Prompts] | PromptArrays | PromptTensors


class ISCN(nn.Module):
    def __init__(
        self,
        image_size: int,
        encoder_dims: tuple[int, ...],
        encoder_depths: tuple[int, ...],
        dim: int,
        heads: int,
        stages: int,
        object_queries: int,
        text_encoder: nn.Module | None,  # MiniLMTextEncoder or OnnxTextEncoder
    ):
        super().__init__()
        if image_size % 32:
            raise ValueError(f"ISCN image_size must be a multiple of 32, got {image_size}")
        self.image_size = image_size
        self.encoder = ImageEncoder(encoder_dims, encoder_depths, dim)
        self.sampler = VisualSampler(dim)
        self.dense_prompts = DensePromptEmbedding(dim)
        self.crm = ContrastiveReasoning(dim)
        self.decoder = PromptDecoder(dim, heads, stages, object_queries, TEXT_WIDTH)
        self.text_encoder = text_encoder

    @property
    def mask_size(self) -> int:
        """Side of the low-resolution mask grid (stride 4): where previous masks and M_ref live."""
        return self.image_size // 4

    # -- image -------------------------------------------------------------------------------
    def encode_image(self, image: torch.Tensor) -> ImageFeatures:
        """image float (B, 3, H, W) in [0, 1] -> features reused by every round on this image."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be (B, 3, H, W), got shape {tuple(image.shape)}")
        h, w = int(image.shape[-2]), int(image.shape[-1])
        x = image
        if (h, w) != (self.image_size, self.image_size):
            downscale = h > self.image_size or w > self.image_size
            x = F.interpolate(
                image, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False,
                antialias=downscale,
            )
        levels, mask_features = self.encoder(normalize_image(x))
        return ImageFeatures(levels, mask_features, (h, w))

    # -- prompts -----------------------------------------------------------------------------
    def prompt_tensors(self, prompts: PromptInput, image_size: tuple[int, int], batch: int) -> PromptTensors:
        device = next(self.parameters()).device
        if isinstance(prompts, PromptTensors):
            return prompts
        if isinstance(prompts, Prompts):
            prompts = [prompts] * batch
        if isinstance(prompts, PromptArrays):
            arrays = prompts
        else:
            prompts = list(prompts)
            if len(prompts) != batch:
                raise ValueError(f"got {len(prompts)} Prompts for a batch of {batch} images")
            h, w = image_size
            arrays = collate_prompts([encode_prompts(p, w, h) for p in prompts])
        return PromptTensors.from_arrays(arrays, device)

    def encode_text(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(hidden (B, T, 384), mask (B, T)); without a text encoder only empty texts are allowed."""
        device = next(self.parameters()).device
        if self.text_encoder is None:
            if any(t.strip() for t in texts):
                raise ValueError("this ISCN was built without a text encoder, so it cannot take text")
            return torch.zeros(len(texts), 2, TEXT_WIDTH, device=device), torch.zeros(len(texts), 2, device=device)
        return self.text_encoder.encode(texts, device)

    # -- one round ---------------------------------------------------------------------------
    def decode(
        self, feats: ImageFeatures, prompts: PromptInput, prev_mask: torch.Tensor | None = None
    ) -> DecoderOutput:
        """One interaction round.

        prompts: every input so far (rounds accumulate, see ``Prompts.merged``), one ``Prompts``
        for the whole batch or one per image; prev_mask: the previous round's mask probability
        (B, 1, h, w) in [0, 1] at any size (``out.low_res_logits.sigmoid()`` is the natural one).
        """
        b = feats.mask_features.shape[0]
        pt = self.prompt_tensors(prompts, feats.image_size, b)
        text_hidden, text_mask = self.encode_text(pt.texts)
        m = self.mask_size
        if prev_mask is None:
            prev = feats.mask_features.new_zeros(b, 1, m, m)
            prev_valid = feats.mask_features.new_zeros(b)
        else:
            prev = self._resize_prev(prev_mask.to(feats.mask_features.dtype), b)
            prev_valid = feats.mask_features.new_ones(b)
        logits, cls, aux, m_ref = self.decode_tensors(
            feats.levels, feats.mask_features, pt.points, pt.kinds, pt.labels, pt.valid,
            text_hidden, text_mask, prev, prev_valid,
        )
        full = F.interpolate(logits, size=feats.image_size, mode="bilinear", align_corners=False)
        return DecoderOutput(full, cls, logits, aux, m_ref)

    def _resize_prev(self, prev: torch.Tensor, batch: int) -> torch.Tensor:
        if prev.dim() != 4 or prev.shape[1] != 1 or prev.shape[0] not in (1, batch):
            raise ValueError(f"prev_mask must be (B, 1, h, w), got shape {tuple(prev.shape)}")
        if float(prev.detach().min()) < 0.0 or float(prev.detach().max()) > 1.0:
            raise ValueError("prev_mask must hold probabilities in [0, 1] (apply sigmoid to logits)")
        m = self.mask_size
        if prev.shape[-2:] != (m, m):
            prev = F.interpolate(prev, size=(m, m), mode="bilinear", align_corners=False,
                                 antialias=prev.shape[-1] > m or prev.shape[-2] > m)
        return prev.expand(batch, -1, -1, -1)

    def decode_tensors(
        self,
        levels: list[torch.Tensor],
        mask_features: torch.Tensor,
        points: torch.Tensor,
        kinds: torch.Tensor,
        labels: torch.Tensor,
        valid: torch.Tensor,
        text_hidden: torch.Tensor,
        text_mask: torch.Tensor,
        prev_prob: torch.Tensor,
        prev_valid: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """The traceable core of ``decode`` (what the ONNX decoder graph holds), all at S/4."""
        fg_in, bg_in, inside_box = prompt_maps(points, kinds, labels, valid, tuple(prev_prob.shape[-2:]))
        m_ref = conflict_from_maps(fg_in, bg_in, prev_prob, prev_valid)
        dense = self.dense_prompts(fg_in, bg_in, inside_box) + self.crm(m_ref, mask_features)
        levels, mask_features = add_to_levels(dense, levels, mask_features)
        visual = self.sampler(mask_features, points, kinds, labels)
        logits, cls, aux = self.decoder(
            levels, mask_features, visual, valid, text_hidden, text_mask, prev_prob, prev_valid
        )
        return logits, cls, aux, m_ref


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 or float [0, 1] numpy image -> (1, 3, H, W) float tensor."""
    arr = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]
