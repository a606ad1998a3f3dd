"""S3D-G (separable 3D Inception with self-gating), the release's space-to-depth variant.

Raw frames ``[B, 3, T, H, W]`` in [0, 1] go through space-to-depth (2x2x2 blocks into 24 channels)
and a (2, 4, 4) stride-1 conv: the stem the released weights were trained with (MMV_SPEC.md A.2).
Layers are kept in a ``ModuleDict`` under the release's endpoint names (``Mixed_4b`` ...) so that
intermediate endpoints can be read by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from mmv.models.layers import SameConv, SameMaxPool, batch_norm, space_to_depth

# Inception channels: (b0, b1 reduce, b1, b2 reduce, b2, b3 after pool).
INCEPTION_CHANNELS = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


class SelfGating(nn.Module):
    """``x * sigmoid(Linear(mean_{T,H,W} x))``: channel gating conditioned on the whole clip."""

    def __init__(self, channels: int):
        super().__init__()
        self.fc = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.sigmoid(self.fc(x.mean(dim=(2, 3, 4))))
        return x * weights[:, :, None, None, None]


class SUnit3D(nn.Module):
    """Conv3d -> BN -> ReLU, or for a separable unit (1,k,k) conv -> BN -> ReLU -> (kt,1,1) conv ->
    BN -> ReLU (two BNs), optionally followed by self-gating."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Sequence[int] = (1, 1, 1),
                 stride: Sequence[int] = (1, 1, 1), separable: bool = False, gating: bool = False):
        super().__init__()
        kt, kh, kw = kernel
        st, sh, sw = stride
        if separable and kh != 1:
            self.conv = SameConv(3, in_channels, out_channels, (1, kh, kw), (1, sh, sw))
            self.bn = batch_norm(out_channels, 3)
            self.conv2: Optional[SameConv] = SameConv(3, out_channels, out_channels, (kt, 1, 1),
                                                      (st, 1, 1))
            self.bn2: Optional[nn.Module] = batch_norm(out_channels, 3)
        else:
            self.conv = SameConv(3, in_channels, out_channels, kernel, stride)
            self.bn = batch_norm(out_channels, 3)
            self.conv2 = None
            self.bn2 = None
        self.gating = SelfGating(out_channels) if gating else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv(x)))
        if self.conv2 is not None:
            x = F.relu(self.bn2(self.conv2(x)))
        if self.gating is not None:
            x = self.gating(x)
        return x


class InceptionBlock3D(nn.Module):
    """Four branches concatenated on channels: 1x1; 1x1 -> sep 3x3; 1x1 -> sep 3x3; pool -> 1x1.

    Gating (when on) follows the last unit of every branch but not the 1x1 reductions.
    """

    def __init__(self, in_channels: int, channels: Sequence[int], temporal_kernel: int, gating: bool):
        super().__init__()
        c0, c1a, c1b, c2a, c2b, c3 = channels
        k = (temporal_kernel, 3, 3)
        self.units = nn.ModuleDict({
            "Branch_0_Conv2d_0a_1x1": SUnit3D(in_channels, c0, gating=gating),
            "Branch_1_Conv2d_0a_1x1": SUnit3D(in_channels, c1a),
            "Branch_1_Conv2d_0b_3x3": SUnit3D(c1a, c1b, k, separable=True, gating=gating),
            "Branch_2_Conv2d_0a_1x1": SUnit3D(in_channels, c2a),
            "Branch_2_Conv2d_0b_3x3": SUnit3D(c2a, c2b, k, separable=True, gating=gating),
            "Branch_3_Conv2d_0b_1x1": SUnit3D(in_channels, c3, gating=gating),
        })
        self.pool = SameMaxPool(3, 3, 1)
        self.out_channels = c0 + c1b + c2b + c3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.units
        b0 = u["Branch_0_Conv2d_0a_1x1"](x)
        b1 = u["Branch_1_Conv2d_0b_3x3"](u["Branch_1_Conv2d_0a_1x1"](x))
        b2 = u["Branch_2_Conv2d_0b_3x3"](u["Branch_2_Conv2d_0a_1x1"](x))
        b3 = u["Branch_3_Conv2d_0b_1x1"](self.pool(x))
        return torch.cat([b0, b1, b2, b3], dim=1)


def run_to_endpoint(layers: nn.ModuleDict, x: torch.Tensor, endpoint: str) -> torch.Tensor:
    """``x`` through the S3D ``layers`` in order, stopping after ``endpoint`` (one of ``S3D.ENDPOINTS``); shared by
    the video network and its deflated image network."""
    if endpoint not in S3D.ENDPOINTS:
        raise ValueError(f"unknown S3D endpoint {endpoint!r}; valid: {', '.join(S3D.ENDPOINTS)}")
    for name, layer in layers.items():
        x = layer(x)
        if name == endpoint:
            break
    return x


class S3D(nn.Module):
    """S3D-G video backbone; ``forward`` returns the 1024-d clip representation (mean over T, H, W).

    Args:
      width_mult: scales every channel count (1.0 is the released network; smaller values give
        models that train on a CPU). Gating and temporal convs start at ``Conv2d_2c_3x3`` as released.
    """

    ENDPOINTS = ("Conv2d_1a_7x7", "MaxPool_2a_3x3", "Conv2d_2b_1x1", "Conv2d_2c_3x3", "MaxPool_3a_3x3",
                 "Mixed_3b", "Mixed_3c", "MaxPool_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d",
                 "Mixed_4e", "Mixed_4f", "MaxPool_5a_2x2", "Mixed_5b", "Mixed_5c")

    def __init__(self, width_mult: float = 1.0):
        super().__init__()
        self.width_mult = width_mult

        def ch(c: int) -> int:
            return max(1, int(round(c * width_mult)))

        layers: dict[str, nn.Module] = {
            "Conv2d_1a_7x7": SUnit3D(24, ch(64), (2, 4, 4)),
            "MaxPool_2a_3x3": SameMaxPool(3, (1, 3, 3), (1, 2, 2)),
            "Conv2d_2b_1x1": SUnit3D(ch(64), ch(64)),
            "Conv2d_2c_3x3": SUnit3D(ch(64), ch(192), (3, 3, 3), separable=True, gating=True),
            "MaxPool_3a_3x3": SameMaxPool(3, (1, 3, 3), (1, 2, 2)),
        }
        c_in = ch(192)
        for name, channels in INCEPTION_CHANNELS.items():
            if name == "Mixed_4b":
                layers["MaxPool_4a_3x3"] = SameMaxPool(3, 3, 2)
            if name == "Mixed_5b":
                layers["MaxPool_5a_2x2"] = SameMaxPool(3, 2, 2)
            block = InceptionBlock3D(c_in, [ch(c) for c in channels], temporal_kernel=3, gating=True)
            layers[name] = block
            c_in = block.out_channels
        self.layers = nn.ModuleDict(layers)
        self.out_dim = c_in

    def forward_features(self, video: torch.Tensor, endpoint: str = "Mixed_5c") -> torch.Tensor:
        """Feature map ``[B, C, T', H', W']`` at ``endpoint`` (default: the last block)."""
        return run_to_endpoint(self.layers, space_to_depth(video), endpoint)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.forward_features(video).mean(dim=(2, 3, 4))
