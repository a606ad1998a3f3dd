"""Projection heads from a backbone representation into a shared embedding space.

Modes follow the release's ``EmbeddingModule`` (MMV_SPEC.md A.6, F.7):

* ``linear``: Linear(out) **with bias, always**, then BN if ``bn_out``.
* ``mlp@d1[@d2...]``: for each inner width, Linear(d, bias) -> BN -> ReLU; then Linear(out) whose bias
  is dropped when ``bn_out`` (the BN offset plays that role), then BN if ``bn_out``.
* ``mlp_nobn@d1[...]``: the same without the inner BNs.

Inputs may have extra leading dimensions (``[B, K, C]`` for K narrations per clip); BN statistics are
taken over all of them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmv.models.layers import batch_norm


def parse_head_mode(mode: str) -> tuple[list[int], bool]:
    """``"mlp@512@256"`` -> ([512, 256], inner_bn=True); ``"linear"`` -> ([], False)."""
    if mode == "linear":
        return [], False
    kind, *dims = mode.split("@")
    if kind not in ("mlp", "mlp_nobn") or not dims:
        raise ValueError(f"unknown head mode {mode!r}: use 'linear', 'mlp@D[@D...]' or 'mlp_nobn@D[...]'")
    try:
        inner = [int(d) for d in dims]
    except ValueError:
        raise ValueError(f"head mode {mode!r}: inner widths must be integers") from None
    if any(d <= 0 for d in inner):
        raise ValueError(f"head mode {mode!r}: inner widths must be positive")
    return inner, kind == "mlp"


class ProjectionHead(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, mode: str = "linear", bn_out: bool = False):
        super().__init__()
        inner, inner_bn = parse_head_mode(mode)
        self.mode = mode
        self.in_dim, self.out_dim = in_dim, out_dim
        self.inner = nn.ModuleList()
        self.inner_bn = nn.ModuleList()
        d = in_dim
        for width in inner:
            self.inner.append(nn.Linear(d, width))
            if inner_bn:
                self.inner_bn.append(batch_norm(width, 1))
            d = width
        final_bias = mode == "linear" or not bn_out
        self.proj = nn.Linear(d, out_dim, bias=final_bias)
        self.out_bn = batch_norm(out_dim, 1) if bn_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])
        for i, linear in enumerate(self.inner):
            x = linear(x)
            if self.inner_bn:
                x = self.inner_bn[i](x)
            x = F.relu(x)
        x = self.proj(x)
        if self.out_bn is not None:
            x = self.out_bn(x)
        return x.reshape(*lead, x.shape[-1])
