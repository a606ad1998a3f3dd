"""The text tower: frozen word vectors -> per-word linear -> ReLU -> max over words.

As released, there is no padding mask: padded positions (whatever the pad id's vector is) take part
in the max (MMV_SPEC.md A.5, F.8). The word table is a frozen parameter so that it travels with the
weights, as it does in the released checkpoints.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


class TextTower(nn.Module):
    """Sentence representation ``[..., sentence_dim]`` from word ids ``[..., N]`` (int64)."""

    def __init__(self, vocab_size: int, word_dim: int, sentence_dim: int = 2048,
                 word_vectors: Optional[torch.Tensor] = None):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim)
        self.embed.weight.requires_grad_(False)
        if word_vectors is not None:
            self.set_word_vectors(word_vectors)
        # The release's Conv1D with kernel 1 is a linear map applied to every word.
        self.proj = nn.Linear(word_dim, sentence_dim)
        self.out_dim = sentence_dim

    @property
    def vocab_size(self) -> int:
        return self.embed.num_embeddings

    @property
    def word_dim(self) -> int:
        return self.embed.embedding_dim

    def set_word_vectors(self, vectors: torch.Tensor) -> None:
        """Replace the frozen word table (same shape)."""
        if tuple(vectors.shape) != tuple(self.embed.weight.shape):
            raise ValueError(f"word vectors of shape {tuple(vectors.shape)} do not fit the table "
                             f"{tuple(self.embed.weight.shape)}")
        with torch.no_grad():
            self.embed.weight.copy_(vectors)

    def forward(self, word_ids: torch.Tensor, check: bool = True) -> torch.Tensor:
        """Sentence vectors of ``word_ids [..., N]``; ``check=False`` skips the id range check (a device
        sync per call), as the training loop does."""
        if word_ids.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"word ids must be int64 or int32, got {word_ids.dtype}")
        if check and word_ids.numel() and (int(word_ids.min()) < 0 or int(word_ids.max()) >= self.vocab_size):
            raise ValueError(f"word ids must lie in [0, {self.vocab_size}); got "
                             f"[{int(word_ids.min())}, {int(word_ids.max())}]")
        words = self.embed(word_ids.long()).detach()  # frozen, as the release's stop_gradient
        return F.relu(self.proj(words)).amax(dim=-2)
