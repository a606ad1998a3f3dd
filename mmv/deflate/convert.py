"""Video backbones turned into image backbones ("deflation", MMV_SPEC.md D).

A static video is one image repeated over time. Away from the clip boundaries every 3D operation of a
video network then reduces to a 2D one, and that 2D network is what deflation builds:

* a 3D conv with kernel ``(kt, kh, kw)`` reads the same frame at every temporal tap, so it equals the
  2D conv whose kernel is the 3D kernel **summed over its temporal axis**; a temporal-only ``(kt, 1, 1)``
  conv of a separable unit becomes a 1x1 channel-mixing conv;
* a max-pool over identical frames is a max-pool over space: pools lose their temporal extent
  (and their temporal stride, which only drops identical frames);
* self-gating's mean over ``(T, H, W)`` becomes a mean over ``(H, W)``; BN is per channel either way;
* TSM: on a static video the release's shift (MMV_SPEC.md A.3) is no identity but a fixed channel
  permutation (the first ``n`` channels receive the *last* ``n`` of the next frame = of this frame,
  and the other way round); ``tsm_shift="fold"`` turns the shift off and folds that permutation into
  the 1x1 conv that follows it, ``"off"`` only turns it off (the paper's literal wording).

Only the temporal padding at the clip boundaries breaks the equivalence (missing taps, zero-shifted
channels), which is why the deflated BN affine parameters are tuned afterwards (``tune.py``).
Spatial padding is TF "SAME" exactly as in the video network (``SameConv`` / ``SameMaxPool``).

**S3D's space-to-depth stem.** The video network folds 2 frames x 2x2 pixels into 24 channels,
``channel = ((dt * 2 + dh) * 2 + dw) * 3 + c = dt * 12 + ((dh * 2 + dw) * 3 + c)``, then applies a
``(2, 4, 4)`` conv, i.e. ``sum over kt, dt`` of 12-channel terms that on a static video all read the
same image pixels. Splitting the 24 input channels as ``[dt=2, 12]`` and summing the weight over ``dt``
and ``kt`` gives a ``(4, 4)`` 2D conv on the *image* space-to-depth (2x2 pixels into 12 channels in the
order ``(dh * 2 + dw) * 3 + c``), exactly equal on the static video except at the last s2d time step,
whose ``kt = 1`` tap reads the temporal zero padding (TF SAME pads time by (0, 1) there).
"""

from __future__ import annotations

import copy
from functools import partial
from typing import Optional

import torch
from torch import nn

from mmv.models.layers import SameConv, SameMaxPool, batch_norm
from mmv.models.resnet import BottleneckV2, ResNetV2
from mmv.models.s3d import S3D, InceptionBlock3D, SelfGating, SUnit3D, run_to_endpoint
from mmv.models.tsm import TSMResNet

TSM_SHIFT_MODES = ("fold", "off")


def static_video(images: torch.Tensor, num_frames: int) -> torch.Tensor:
    """``[B, C, H, W] -> [B, C, T, H, W]``: every frame is the image (the video a deflated net must match)."""
    if images.dim() != 4:
        raise ValueError(f"images must be [B, C, H, W], got shape {tuple(images.shape)}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    return images.unsqueeze(2).expand(-1, -1, num_frames, -1, -1).contiguous()


def space_to_depth_image(images: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W] -> [B, 4C, H/2, W/2]``; channel ``(dh * 2 + dw) * C + c`` holds pixel ``(2h+dh, 2w+dw)``.

    The image counterpart of ``layers.space_to_depth``: its channels are the ``dt``-free part of the video
    layout, which is what lets the S3D stem weights be summed over ``dt``.
    """
    b, c, h, w = images.shape
    if h % 2 or w % 2:
        raise ValueError(f"S3D's space-to-depth input needs an even height and width; got H={h}, W={w}")
    x = images.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 3, 5, 1, 2, 4)
    return x.reshape(b, 4 * c, h // 2, w // 2)


# --------------------------------------------------------------------------------------------- S3D


def _conv2d_from(conv: SameConv, weight: Optional[torch.Tensor] = None) -> SameConv:
    """2D SAME conv with the spatial kernel/stride of a 3D one and its weight summed over time."""
    w = conv.weight.detach().sum(dim=2) if weight is None else weight
    out = SameConv(2, w.shape[1], w.shape[0], conv.kernel[1:], conv.stride[1:], bias=conv.bias is not None)
    # New Parameters (not copy_) keep the video network's dtype and device: float64 proofs stay float64.
    out.weight = nn.Parameter(w.clone())
    if conv.bias is not None:
        out.bias = nn.Parameter(conv.bias.detach().clone())
    return out


def _bn2d_from(bn: nn.Module) -> nn.Module:
    """BatchNorm2d with the same affine parameters and running statistics as a BatchNorm3d."""
    out = batch_norm(bn.num_features, 2).to(bn.running_mean.device, bn.running_mean.dtype)
    out.load_state_dict(bn.state_dict())
    return out


class ImageSelfGating(nn.Module):
    """``x * sigmoid(Linear(mean_{H,W} x))``: S3D-G gating on a single frame (mean over T dropped)."""

    def __init__(self, gating: SelfGating):
        super().__init__()
        self.fc = copy.deepcopy(gating.fc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc(x.mean(dim=(2, 3))))[:, :, None, None]


class ImageSUnit(nn.Module):
    """Deflated ``SUnit3D``: conv -> BN -> ReLU (-> 1x1 conv -> BN -> ReLU) (-> gating), same names."""

    def __init__(self, unit: SUnit3D, stem_s2d: bool = False):
        super().__init__()
        weight = None
        if stem_s2d:
            w = unit.conv.weight.detach()  # [O, 24, kt, kh, kw], 24 = [dt=2, (dh, dw, c)=12]
            if w.shape[1] != 24:
                raise ValueError(f"S3D stem expects 24 space-to-depth channels, got {w.shape[1]}")
            weight = w.reshape(w.shape[0], 2, 12, *w.shape[2:]).sum(dim=(1, 3))
        self.conv = _conv2d_from(unit.conv, weight)
        self.bn = _bn2d_from(unit.bn)
        self.conv2 = _conv2d_from(unit.conv2) if unit.conv2 is not None else None
        self.bn2 = _bn2d_from(unit.bn2) if unit.bn2 is not None else None
        self.gating = ImageSelfGating(unit.gating) if unit.gating is not None else None

    forward = SUnit3D.forward  # the same sequence (conv, BN, ReLU, second conv, gating) on the 2-D layers


def _pool2d_from(pool: SameMaxPool) -> SameMaxPool:
    return SameMaxPool(2, pool.kernel[1:], pool.stride[1:])


class ImageInception(nn.Module):
    """Deflated ``InceptionBlock3D`` (the branch-3 pool keeps its 3x3 spatial extent, stride 1)."""

    def __init__(self, block: InceptionBlock3D):
        super().__init__()
        self.units = nn.ModuleDict({name: ImageSUnit(unit) for name, unit in block.units.items()})
        self.pool = _pool2d_from(block.pool)
        self.out_channels = block.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.units
        b0 = u["Branch_0_Conv2d_0a_1x1"](x)
        b1 = u["Branch_1_Conv2d_0b_3x3"](u["Branch_1_Conv2d_0a_1x1"](x))
        b2 = u["Branch_2_Conv2d_0b_3x3"](u["Branch_2_Conv2d_0a_1x1"](x))
        b3 = u["Branch_3_Conv2d_0b_1x1"](self.pool(x))
        return torch.cat([b0, b1, b2, b3], dim=1)


class ImageS3D(nn.Module):
    """Deflated S3D-G on images ``[B, 3, H, W]`` (H, W even) -> ``[B, out_dim]`` (mean over H, W).

    Parameter names equal the video network's (``layers.Mixed_4b.units...``), so a state dict maps 1:1
    (conv weights have one axis less; the stem has 12 input channels instead of 24).
    """

    ENDPOINTS = S3D.ENDPOINTS

    def __init__(self, video: S3D):
        super().__init__()
        layers: dict[str, nn.Module] = {}
        for name, layer in video.layers.items():
            if isinstance(layer, SUnit3D):
                layers[name] = ImageSUnit(layer, stem_s2d=name == "Conv2d_1a_7x7")
            elif isinstance(layer, SameMaxPool):
                layers[name] = _pool2d_from(layer)
            elif isinstance(layer, InceptionBlock3D):
                layers[name] = ImageInception(layer)
            else:
                raise TypeError(f"cannot deflate S3D layer {name} of type {type(layer).__name__}")
        self.layers = nn.ModuleDict(layers)
        self.width_mult = video.width_mult
        self.out_dim = video.out_dim

    def forward_features(self, images: torch.Tensor, endpoint: str = "Mixed_5c") -> torch.Tensor:
        """Feature map ``[B, C, H', W']`` at ``endpoint``."""
        return run_to_endpoint(self.layers, space_to_depth_image(images), endpoint)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_features(images).mean(dim=(2, 3))


# --------------------------------------------------------------------------------------------- TSM


def shift_permutation(channels: int, fraction: float) -> torch.Tensor:
    """Where each channel of the release's shift comes from on a static (interior) frame.

    ``shifted[..., j] == x[..., perm[j]]``: the first ``n`` take the last ``n``, the last ``n`` the first
    ``n``, the middle stays (``n = int(channels * fraction)`` as in ``temporal_shift``). An involution.
    """
    n = int(channels * fraction)
    idx = torch.arange(channels)
    if n == 0:
        return idx
    return torch.cat([idx[channels - n:], idx[n:channels - n], idx[:n]])


def _deflate_tsm(video: TSMResNet, tsm_shift: str) -> ResNetV2:
    if tsm_shift not in TSM_SHIFT_MODES:
        raise ValueError(f"tsm_shift must be one of {TSM_SHIFT_MODES}, got {tsm_shift!r}")
    first = video.groups[0][0]
    image = ResNetV2(in_channels=video.stem.in_channels, blocks=[len(g) for g in video.groups],
                     channels=[g[-1].conv2.out_channels if isinstance(g[-1], BottleneckV2)
                               else g[-1].conv1.out_channels for g in video.groups],
                     stem_channels=video.stem.out_channels, bottleneck=isinstance(first, BottleneckV2),
                     projection="first", shift=None)
    image.to(video.stem.weight.device, video.stem.weight.dtype)
    image.load_state_dict(video.state_dict())
    if tsm_shift == "fold":
        with torch.no_grad():
            for group in image.groups:
                for block in group:
                    w = block.conv0.weight
                    # conv0(P x) == (W P) x: permute the input channels of the 1x1 conv after the shift.
                    w.copy_(w[:, shift_permutation(w.shape[1], video.shift_fraction).to(w.device)])
    return image


# ------------------------------------------------------------------------------------------ public


def deflate_video_backbone(backbone: nn.Module, tsm_shift: str = "fold") -> nn.Module:
    """The image network ``[B, 3, H, W] -> [B, out_dim]`` equivalent to ``backbone`` on static videos.

    Same input value range, same representation dimension, weights copied (the video network is not
    changed). ``tsm_shift``: ``"fold"`` (exact on interior frames: the shift's static-video channel
    permutation folded into each block's first conv) or ``"off"`` (shift dropped, weights as they are).
    Returns a module in the same train/eval mode as ``backbone``.
    """
    if isinstance(backbone, S3D):
        out: nn.Module = ImageS3D(backbone)
    elif isinstance(backbone, TSMResNet):
        out = _deflate_tsm(backbone, tsm_shift)
    else:
        raise TypeError(f"cannot deflate a {type(backbone).__name__}: only S3D and TSMResNet video backbones")
    return out.train(backbone.training)


def circular_temporal_shift(x: torch.Tensor, num_frames: int, fraction: float) -> torch.Tensor:
    """The release's channel layout of the shift with time wrapping around (no clip boundary)."""
    bt, c = x.shape[0], x.shape[1]
    n = int(c * fraction)
    if n == 0:
        return x
    v = x.reshape(bt // num_frames, num_frames, c, *x.shape[2:])
    out = torch.cat([v[:, :, c - n:].roll(-1, dims=1), v[:, :, n:c - n], v[:, :, :n].roll(1, dims=1)], dim=2)
    return out.reshape(x.shape)


def boundary_free_copy(backbone: nn.Module) -> nn.Module:
    """A copy of a video backbone on which deflation is exact at every frame of a static video.

    S3D: every temporal conv keeps only its centre tap (the tap that TF SAME aligns with the output
    frame: index ``pad_before``, i.e. 1 of 3 and 0 of the stem's 2), so zero padding is never read.
    TSM: the shift wraps around in time instead of reading zeros. The proof test of the conversion.
    """
    out = copy.deepcopy(backbone)
    if isinstance(out, S3D):
        with torch.no_grad():
            for module in out.modules():
                if isinstance(module, SameConv) and module.dims == 3 and module.kernel[0] > 1:
                    if module.stride[0] != 1:
                        raise ValueError("centre tap of a temporally strided conv depends on the input size")
                    centre = (module.kernel[0] - 1) // 2  # TF SAME pad-before of a stride-1 kernel
                    keep = module.weight[:, :, centre].clone()
                    module.weight.zero_()
                    module.weight[:, :, centre] = keep
    elif isinstance(out, TSMResNet):
        for group in out.groups:
            for block in group:
                if block.shift is not None:
                    block.shift = partial(circular_temporal_shift, fraction=out.shift_fraction)
    else:
        raise TypeError(f"not a video backbone: {type(backbone).__name__}")
    return out
