"""Pre-activation ResNet (ResNetV2) as in the MMV release: the audio tower and the trunk of TSM.

Pre-activation means BN + ReLU come *before* each conv: no BN after the stem, one final BN + ReLU
before pooling. The stride sits on the 3x3 conv and on the projection shortcut (MMV_SPEC.md A.3, A.4).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from mmv.models.layers import SameConv, SameMaxPool, batch_norm

ShiftFn = Callable[[torch.Tensor, int], torch.Tensor]

# Blocks per group for each depth; depths below 50 use basic (two-conv) blocks.
RESNET_BLOCKS = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
}


class PreActBlock(nn.Module):
    """Pre-activation block: ``shortcut + residual(shift(ReLU(BN(x))))``.

    The projection shortcut reads the pre-activated input; an identity shortcut reads the raw input.
    ``shift`` (TSM) is applied to the pre-activation of the residual branch only, after the
    projection has been computed from the unshifted pre-activation.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, projection: bool,
                 shift: Optional[ShiftFn] = None):
        super().__init__()
        self.bn0 = batch_norm(in_channels, 2)
        self.shortcut = SameConv(2, in_channels, out_channels, 1, stride) if projection else None
        self.shift = shift

    def residual(self, preact: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, num_frames: int = 1) -> torch.Tensor:
        preact = F.relu(self.bn0(x))
        shortcut = x if self.shortcut is None else self.shortcut(preact)
        r = preact if self.shift is None else self.shift(preact, num_frames)
        return shortcut + self.residual(r)


class BottleneckV2(PreActBlock):
    """conv1x1 (C/4), BN-ReLU-conv3x3 (C/4, strided), BN-ReLU-conv1x1 (C): ResNet50 and deeper."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, projection: bool,
                 shift: Optional[ShiftFn] = None):
        super().__init__(in_channels, out_channels, stride, projection, shift)
        mid = out_channels // 4
        self.conv0 = SameConv(2, in_channels, mid, 1)
        self.bn1 = batch_norm(mid, 2)
        self.conv1 = SameConv(2, mid, mid, 3, stride)
        self.bn2 = batch_norm(mid, 2)
        self.conv2 = SameConv(2, mid, out_channels, 1)

    def residual(self, preact: torch.Tensor) -> torch.Tensor:
        r = self.conv1(F.relu(self.bn1(self.conv0(preact))))
        return self.conv2(F.relu(self.bn2(r)))


class BasicV2(PreActBlock):
    """conv *1x1*, BN-ReLU-conv3x3 (strided): the release's ResNet18/34 block.

    The first conv of the released ``BasicBlock`` has a 1x1 kernel, not the 3x3 of the ResNet paper;
    we keep it so that weights trained with the release load unchanged.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, projection: bool,
                 shift: Optional[ShiftFn] = None):
        super().__init__(in_channels, out_channels, stride, projection, shift)
        self.conv0 = SameConv(2, in_channels, out_channels, 1)
        self.bn1 = batch_norm(out_channels, 2)
        self.conv1 = SameConv(2, out_channels, out_channels, 3, stride)

    def residual(self, preact: torch.Tensor) -> torch.Tensor:
        return self.conv1(F.relu(self.bn1(self.conv0(preact))))


class ResNetV2(nn.Module):
    """Image-like ResNetV2 trunk: stem conv 7x7/2, max-pool 3x3/2, four groups, final BN + ReLU.

    ``forward`` returns the spatially averaged features ``[N, C]``; ``forward_features`` the last
    feature map before (``"last_conv"``, as the release's audio endpoint) or after the final BN + ReLU.

    Args:
      depth: 18, 34, 50, 101, 152 or 200 (sets blocks and block type) unless ``blocks`` is given.
      width_mult: multiplies every channel count (TSM-ResNet50x2 uses 2).
      in_channels: 3 for frames, 1 for a log-mel spectrogram.
      blocks, channels, stem_channels, bottleneck: explicit architecture (small test models).
      projection: ``"on_change"`` (release ResNet: project when the channel count changes) or
        ``"first"`` (release TSM: always project in the first block of each group).
      shift: optional temporal shift applied in every block (TSM).
    """

    def __init__(self, depth: int = 50, width_mult: int = 1, in_channels: int = 3,
                 blocks: Optional[Sequence[int]] = None, channels: Optional[Sequence[int]] = None,
                 stem_channels: Optional[int] = None, bottleneck: Optional[bool] = None,
                 projection: str = "on_change", shift: Optional[ShiftFn] = None):
        super().__init__()
        if blocks is None:
            if depth not in RESNET_BLOCKS:
                raise ValueError(f"ResNet depth must be one of {sorted(RESNET_BLOCKS)}, got {depth}")
            blocks = RESNET_BLOCKS[depth]
        if bottleneck is None:
            bottleneck = depth >= 50
        if channels is None:
            channels = (256, 512, 1024, 2048) if bottleneck else (64, 128, 256, 512)
        if stem_channels is None:
            stem_channels = 64
        if projection not in ("on_change", "first"):
            raise ValueError(f"projection must be 'on_change' or 'first', got {projection!r}")
        if len(blocks) != 4 or len(channels) != 4:
            raise ValueError("blocks and channels need one entry per group (4)")
        channels = [c * width_mult for c in channels]
        block_cls = BottleneckV2 if bottleneck else BasicV2

        self.stem = SameConv(2, in_channels, stem_channels * width_mult, 7, 2)
        self.pool = SameMaxPool(2, 3, 2)
        self.groups = nn.ModuleList()
        c_in = stem_channels * width_mult
        for g, (n_blocks, c_out) in enumerate(zip(blocks, channels)):
            group = nn.ModuleList()
            for b in range(n_blocks):
                proj = (b == 0) if projection == "first" else (b == 0 and c_in != c_out)
                stride = (1 if g == 0 else 2) if b == 0 else 1
                group.append(block_cls(c_in, c_out, stride, proj, shift))
                c_in = c_out
            self.groups.append(group)
        self.final_bn = batch_norm(c_in, 2)
        self.out_dim = c_in

    def forward_features(self, x: torch.Tensor, num_frames: int = 1,
                         final_activation: bool = True) -> torch.Tensor:
        x = self.pool(self.stem(x))
        for group in self.groups:
            for block in group:
                x = block(x, num_frames)
        return F.relu(self.final_bn(x)) if final_activation else x

    def forward(self, x: torch.Tensor, num_frames: int = 1) -> torch.Tensor:
        return self.forward_features(x, num_frames).mean(dim=(2, 3))


class AudioResNet(ResNetV2):
    """The audio tower: ResNetV2 on a log-mel spectrogram ``[B, 1, frames, mel]`` (time is height)."""

    def __init__(self, depth: int = 50, width_mult: int = 1, **kwargs):
        super().__init__(depth=depth, width_mult=width_mult, in_channels=1, projection="on_change",
                         **kwargs)

    def last_conv(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """The release's ``last_conv`` endpoint: the feature map *before* the final BN + ReLU."""
        return self.forward_features(spectrogram, final_activation=False)
