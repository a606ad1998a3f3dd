"""Building blocks shared by the backbones: TF "SAME" convolutions and pools, batch norm, space-to-depth.

The released MMV networks were written in Haiku, where every conv and pool uses TensorFlow's "SAME"
padding. For a stride-2 layer on an even input that pads one pixel *after* and none before, which
PyTorch's symmetric ``padding=k//2`` gets wrong (MMV_SPEC.md F.1). These layers compute the padding
from the size of the tensor they actually receive, so any input size behaves as in TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-5
# Haiku's EMA decay 0.9 is PyTorch's momentum 0.1.
BN_MOMENTUM = 0.1


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TensorFlow "SAME" for one spatial dimension.

    The total is ``max((ceil(n / s) - 1) * s + k - n, 0)``; the odd pixel goes *after*.
    """
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pads_for(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int]) -> list[tuple[int, int]]:
    spatial = x.shape[-len(kernel):]
    return [same_padding(n, k, s) for n, k, s in zip(spatial, kernel, stride)]


def _flat_pad(pads: list[tuple[int, int]]) -> list[int]:
    # F.pad takes the last dimension first.
    flat: list[int] = []
    for before, after in reversed(pads):
        flat += [before, after]
    return flat


def _symmetric(pads: list[tuple[int, int]]) -> bool:
    return all(before == after for before, after in pads)


class SameConv(nn.Module):
    """Conv2d / Conv3d without bias (unless asked) and with TF "SAME" padding.

    The weight keeps PyTorch's layout ``[out, in, *kernel]``.
    """

    def __init__(self, dims: int, in_channels: int, out_channels: int, kernel: int | Sequence[int],
                 stride: int | Sequence[int] = 1, bias: bool = False):
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims}")
        self.dims = dims
        self.kernel = _tuple(kernel, dims)
        self.stride = _tuple(stride, dims)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    @property
    def in_channels(self) -> int:
        return self.weight.shape[1]

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = F.conv2d if self.dims == 2 else F.conv3d
        pads = _pads_for(x, self.kernel, self.stride)
        if _symmetric(pads):
            return conv(x, self.weight, self.bias, self.stride, [p for p, _ in pads])
        return conv(F.pad(x, _flat_pad(pads)), self.weight, self.bias, self.stride)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel={self.kernel}, stride={self.stride}, "
                f"bias={self.bias is not None}, padding=SAME")


class SameMaxPool(nn.Module):
    """Max-pool with TF "SAME" padding: padded positions never win (they are -inf)."""

    def __init__(self, dims: int, kernel: int | Sequence[int], stride: int | Sequence[int]):
        super().__init__()
        self.dims = dims
        self.kernel = _tuple(kernel, dims)
        self.stride = _tuple(stride, dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = F.max_pool2d if self.dims == 2 else F.max_pool3d
        pads = _pads_for(x, self.kernel, self.stride)
        if _symmetric(pads) and all(p <= k // 2 for (p, _), k in zip(pads, self.kernel)):
            # PyTorch's own padding of a max-pool is already -inf.
            return pool(x, self.kernel, self.stride, [p for p, _ in pads])
        return pool(F.pad(x, _flat_pad(pads), value=float("-inf")), self.kernel, self.stride)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, padding=SAME"


def batch_norm(channels: int, dims: int) -> nn.Module:
    """The release's batch norm (decay 0.9, eps 1e-5, scale and offset) for ``[B, C, *spatial]``.

    Plain ``nn.BatchNorm{1,2,3}d`` so that ``nn.SyncBatchNorm.convert_sync_batchnorm`` turns every one
    of them into the cross-replica BN the release trained with.
    """
    cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims]
    return cls(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def space_to_depth(video: torch.Tensor) -> torch.Tensor:
    """``[B, C, T, H, W] -> [B, 8C, T/2, H/2, W/2]`` in the channel order of the release.

    Channel ``((dt * 2 + dh) * 2 + dw) * C + c`` holds pixel ``(2t + dt, 2h + dh, 2w + dw)`` of colour
    ``c`` (MMV_SPEC.md A.2): the layout the S3D weights were trained on.
    """
    b, c, t, h, w = video.shape
    if t % 2 or h % 2 or w % 2:
        raise ValueError(
            f"S3D's space-to-depth input needs an even number of frames, height and width; got "
            f"T={t}, H={h}, W={w}")
    x = video.reshape(b, c, t // 2, 2, h // 2, 2, w // 2, 2)
    # -> [B, dt, dh, dw, C, T/2, H/2, W/2]
    x = x.permute(0, 3, 5, 7, 1, 2, 4, 6)
    return x.reshape(b, 8 * c, t // 2, h // 2, w // 2)


def _tuple(value: int | Sequence[int], dims: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * dims
    value = tuple(int(v) for v in value)
    if len(value) != dims:
        raise ValueError(f"expected {dims} values, got {value}")
    return value
