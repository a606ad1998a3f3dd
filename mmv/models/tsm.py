"""TSM-ResNetV2: a 2D ResNetV2 over frames, with a temporal channel shift in every block.

The release's shift is not the usual TSM one: it *permutes* channels (MMV_SPEC.md A.3, F.2):
the first ``n`` output channels take the **last** ``n`` channels of frame t+1, the last ``n`` take
the **first** ``n`` channels of frame t-1, the middle stays; zeros at the clip borders.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Optional

import torch
import torch.nn.functional as F

from mmv.models.resnet import ResNetV2

SHIFT_FRACTION = 0.125


def temporal_shift(x: torch.Tensor, num_frames: int, fraction: float = SHIFT_FRACTION) -> torch.Tensor:
    """Shift channels across time for frames folded batch-major into ``x: [B*T, C, H, W]``."""
    bt, c = x.shape[0], x.shape[1]
    n = int(c * fraction)
    if n == 0:
        return x
    if bt % num_frames:
        raise ValueError(f"batch*frames ({bt}) is not a multiple of num_frames ({num_frames})")
    v = x.reshape(bt // num_frames, num_frames, c, *x.shape[2:])
    # Frame t receives the last n channels of frame t+1 (zero after the last frame) ...
    from_next = F.pad(v[:, 1:, c - n:], _time_pad(v, after=1))
    # ... and the first n channels of frame t-1 (zero before the first frame).
    from_prev = F.pad(v[:, :-1, :n], _time_pad(v, before=1))
    out = torch.cat([from_next, v[:, :, n:c - n], from_prev], dim=2)
    return out.reshape(x.shape)


def _time_pad(v: torch.Tensor, before: int = 0, after: int = 0) -> list[int]:
    # F.pad lists the last dimension first; time is dim 1 of [B, T, C, H, W].
    return [0, 0] * (v.dim() - 2) + [before, after]


def _shift(x: torch.Tensor, num_frames: int, fraction: float) -> torch.Tensor:
    # Looked up at call time so the layout can be swapped (tests prove the trap matters).
    return temporal_shift(x, num_frames, fraction)


class TSMResNet(ResNetV2):
    """TSM-ResNetV2 (depth 50 or 101, width x1 or x2) on raw frames ``[B, 3, T, H, W]`` in [0, 1].

    Frames are folded into the batch (batch-major, the release's "gpu" mode), the trunk runs with
    the shift in every block, features are averaged over H, W after the final BN + ReLU, then over T.
    ``shift_fraction=0`` gives the plain per-frame ResNet used for deflation.
    """

    def __init__(self, depth: int = 50, width_mult: int = 1, shift_fraction: float = SHIFT_FRACTION,
                 blocks: Optional[Sequence[int]] = None, channels: Optional[Sequence[int]] = None,
                 stem_channels: Optional[int] = None):
        if blocks is None and depth not in (50, 101, 152, 200):
            raise ValueError(f"TSM-ResNet depth must be 50, 101, 152 or 200, got {depth}")
        if not 0.0 <= shift_fraction <= 0.5:
            raise ValueError(f"shift_fraction must be in [0, 0.5], got {shift_fraction}")
        super().__init__(depth=depth, width_mult=width_mult, in_channels=3, blocks=blocks,
                         channels=channels, stem_channels=stem_channels, bottleneck=True,
                         projection="first",
                         shift=partial(_shift, fraction=shift_fraction) if shift_fraction else None)
        self.shift_fraction = shift_fraction

    def last_conv(self, video: torch.Tensor) -> torch.Tensor:
        """The release's ``last_conv`` endpoint (after the final BN + ReLU): ``[B, T, C, h, w]``."""
        b, t = video.shape[0], video.shape[2]
        frames = video.transpose(1, 2).reshape(b * t, *video.shape[1:2], *video.shape[3:])
        feats = self.forward_features(frames, num_frames=t)
        return feats.reshape(b, t, *feats.shape[1:])

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.last_conv(video).mean(dim=(3, 4)).mean(dim=1)
