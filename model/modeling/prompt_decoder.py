"""ISCN decoder: learnable queries, image cross-attention, prompt self-attention, heads.

Token sequence of the prompt self-attention, in this order:
object queries Q_o (context), the text query Q_t, the visual query Q_v, visual prompts P_v,
the memory prompt (the previous prediction's pooled features), text prompts P_t.
Queries see every valid prompt; prompts see only valid prompts (and themselves), so padding and
absent inputs never leak in. The previous prediction enters twice, as the paper's CRM asks:
through the memory prompt in the prompt self-attention, and as a learned soft mask (a per-head
bias of the attention logits) in the queries' cross-attention to the image.
The target readout is Q_t and Q_v together; the mask is its embedding times the per-pixel
embedding (X-Decoder's MaskPredictor) and the class logit says whether the target is a person.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .common import MLP, NEG_INF, Attention, grid_embed


@dataclass
class DecoderOutput:
    """mask_logits (B, 1, H, W) at the caller's image size; class_logits (B,);
    low_res_logits (B, 1, S/4, S/4) (stored as the next round's previous mask);
    aux_low_res_logits: one per decoder stage, for deep supervision; conflict_map: M_ref (B, S/4, S/4).
    """

    mask_logits: torch.Tensor
    class_logits: torch.Tensor
    low_res_logits: torch.Tensor
    aux_low_res_logits: list[torch.Tensor]
    conflict_map: torch.Tensor


class DecoderStage(nn.Module):
    def __init__(self, dim: int, heads: int, ffn_dim: int):
        super().__init__()
        self.norm_cross = nn.LayerNorm(dim)
        self.cross = Attention(dim, heads)
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, heads)
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = MLP(dim, ffn_dim, dim)
        self.mask_scale = nn.Parameter(torch.zeros(heads, 1, 1))  # learned strength of the soft mask

    def forward(
        self,
        tokens: torch.Tensor,
        n_queries: int,
        query_pos: torch.Tensor,
        image: torch.Tensor,
        image_pos: torch.Tensor,
        prev_logit: torch.Tensor,
        self_bias: torch.Tensor,
    ) -> torch.Tensor:
        q = tokens[:, :n_queries]
        qn = self.norm_cross(q)
        bias = self.mask_scale.unsqueeze(0) * prev_logit  # (B, heads, 1, N)
        q = q + self.cross(qn + query_pos, image + image_pos, image, bias)
        tokens = torch.cat([q, tokens[:, n_queries:]], dim=1)
        tn = self.norm_self(tokens)
        tokens = tokens + self.self_attn(tn, tn, tn, self_bias)
        return tokens + self.ffn(self.norm_ffn(tokens))


class PromptDecoder(nn.Module):
    def __init__(self, dim: int, heads: int, stages: int, object_queries: int, text_width: int):
        super().__init__()
        self.dim, self.heads = dim, heads
        self.n_obj = object_queries
        self.n_queries = object_queries + 2  # + Q_t + Q_v
        self.query_feat = nn.Embedding(self.n_queries, dim)
        self.query_pos = nn.Embedding(self.n_queries, dim)
        self.level_embed = nn.Embedding(3, dim)
        self.text_proj = nn.Linear(text_width, dim)
        self.text_type = nn.Parameter(torch.zeros(dim))
        self.memory_proj = nn.Linear(dim, dim)
        self.stages = nn.ModuleList(DecoderStage(dim, heads, 2 * dim) for _ in range(stages))
        self.out_norm = nn.LayerNorm(dim)
        self.readout = MLP(2 * dim, dim, dim)
        self.mask_embed = MLP(dim, dim, dim, layers=3)  # MaskPredictor's embedding
        self.class_embed = nn.Linear(dim, 1)  # ConceptClassifier: person or not

    def _self_attention_bias(
        self, prompt_valid: torch.Tensor, n_queries: int
    ) -> torch.Tensor:
        """(B, 1, N, N) additive bias: queries see all queries and valid prompts; prompts see valid prompts."""
        b, n_prompts = prompt_valid.shape
        dtype = prompt_valid.dtype
        key_ok = torch.cat([prompt_valid.new_ones(b, n_queries), prompt_valid], dim=1)  # (B, N)
        n = n_queries + n_prompts
        row_is_query = torch.cat(
            [torch.ones(n_queries, dtype=dtype, device=prompt_valid.device),
             torch.zeros(n_prompts, dtype=dtype, device=prompt_valid.device)]
        )
        col_is_query = row_is_query
        # prompts never look at queries: the prompts describe the user's intent, not the model's guess
        allowed = key_ok[:, None, :] * (1.0 - (1.0 - row_is_query)[:, None] * col_is_query[None, :])
        eye = torch.eye(n, dtype=dtype, device=prompt_valid.device)
        allowed = torch.maximum(allowed, eye.unsqueeze(0))
        return ((1.0 - allowed) * NEG_INF).unsqueeze(1)

    def predict(self, tokens: torch.Tensor, mask_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.out_norm(tokens[:, self.n_obj : self.n_obj + 2]).flatten(1)  # Q_t, Q_v
        target = self.readout(t)
        emb = self.mask_embed(target)
        logits = torch.einsum("bd,bdhw->bhw", emb, mask_features).unsqueeze(1)
        return logits, self.class_embed(target).squeeze(-1)

    def forward(
        self,
        levels: list[torch.Tensor],
        mask_features: torch.Tensor,
        visual_tokens: torch.Tensor,
        visual_valid: torch.Tensor,
        text_hidden: torch.Tensor,
        text_mask: torch.Tensor,
        prev_prob: torch.Tensor,
        prev_valid: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        b = mask_features.shape[0]
        dtype = mask_features.dtype
        on = prev_valid.to(dtype).view(b, 1)

        # Memory prompt: features under the previous mask (masked average pooling).
        w = prev_prob.flatten(2)  # (B, 1, N4)
        feats = mask_features.flatten(2)  # (B, D, N4)
        pooled = (feats * w).sum(-1) / (w.sum(-1) + 1e-6)
        memory = self.memory_proj(pooled).unsqueeze(1)  # (B, 1, D)

        text_tokens = self.text_proj(text_hidden) + self.text_type
        prompts = torch.cat([visual_tokens, memory, text_tokens], dim=1)
        prompt_valid = torch.cat([visual_valid.to(dtype), on, text_mask.to(dtype)], dim=1)
        self_bias = self._self_attention_bias(prompt_valid, self.n_queries)

        queries = self.query_feat.weight.unsqueeze(0).expand(b, -1, -1)
        query_pos = self.query_pos.weight.unsqueeze(0)
        tokens = torch.cat([queries, prompts], dim=1)

        # Soft mask for cross-attention per level: +1 inside the previous mask, -1 outside, 0 without one.
        level_inputs = []
        for i, lvl in enumerate(levels):
            h, w_ = lvl.shape[-2:]
            factor = prev_prob.shape[-1] // w_
            p = F.avg_pool2d(prev_prob, factor, factor) if factor > 1 else prev_prob
            prev_logit = ((2.0 * p - 1.0) * on.view(b, 1, 1, 1)).flatten(2).unsqueeze(1)  # (B,1,1,N)
            pos = grid_embed(h, w_, self.dim, lvl).unsqueeze(0) + self.level_embed.weight[i]
            level_inputs.append((lvl.flatten(2).transpose(1, 2), pos, prev_logit))

        aux = []
        for s, stage in enumerate(self.stages):
            image, pos, prev_logit = level_inputs[s % len(level_inputs)]
            tokens = stage(tokens, self.n_queries, query_pos, image, pos, prev_logit, self_bias)
            if s < len(self.stages) - 1:
                aux.append(self.predict(tokens, mask_features)[0])
        logits, cls = self.predict(tokens, mask_features)
        return logits, cls, aux
