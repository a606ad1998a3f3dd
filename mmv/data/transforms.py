"""Spatial and colour augmentations of a clip, as the official (TF / DMVR) pipelines do them.

Video is float ``[3, T, H, W]`` in [0, 1]. Every random choice is drawn once per clip from the caller's
``torch.Generator``, so all frames get the same crop, flip and colour change (what the contrastive
objective expects of one clip) and a seeded worker reproduces its batches exactly. Resizing follows
TF2 ``tf.image.resize`` (bilinear, half-pixel centres, no antialiasing) with the official integer
arithmetic for output sizes, so features match those of the released models' pipelines.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from mmv.models.config import InputProtocol

_CHUNK_ELEMENTS = 1 << 24  # resize at most this many input elements at once (bounds peak memory on HD video)


def to_float(frames: torch.Tensor) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` (as decoded) -> float32 ``[3, T, H, W]`` in [0, 1]."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames [T, H, W, 3], got {tuple(frames.shape)}")
    return frames.permute(3, 0, 1, 2).to(torch.float32).div_(255.0)


def _check(video: torch.Tensor) -> None:
    if video.ndim != 4 or video.shape[0] != 3:
        raise ValueError(f"expected video [3, T, H, W], got {tuple(video.shape)}")


def resize(video: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of every frame to ``height`` x ``width`` as TF2 ``tf.image.resize`` does it.

    Accepts uint8 ``[T, H, W, 3]`` too (converted chunk by chunk, so a 720p clip never exists as a full
    float copy): the result is always float ``[3, T, height, width]``.
    """
    if video.dtype == torch.uint8:
        step = max(1, _CHUNK_ELEMENTS // max(1, video[0].numel()))
        return torch.cat([resize(to_float(video[i:i + step]), height, width) for i in range(0, len(video), step)], 1)
    _check(video)
    c, t, h, w = video.shape
    if (h, w) == (height, width):
        return video
    flat = video.reshape(1, c * t, h, w)
    out = F.interpolate(flat, size=(height, width), mode="bilinear", align_corners=False, antialias=False)
    return out.reshape(c, t, height, width)


def short_side_size(height: int, width: int, size: int) -> tuple[int, int]:
    """The official ``resize_smallest`` output size: short side ``size``, long side by integer division."""
    return max(size, (height * size) // width), max(size, (width * size) // height)


def resize_short_side(video: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so the short side is ``size`` (no-op when it already is), keeping the aspect ratio."""
    h, w = (video.shape[1], video.shape[2]) if video.dtype == torch.uint8 else video.shape[-2:]
    return resize(video, *short_side_size(h, w, size))


def _pad_to(video: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad H and W up to ``size``, centred with the extra pixel after (as ``resize_with_crop_or_pad``)."""
    h, w = video.shape[-2:]
    ph, pw = max(0, size - h), max(0, size - w)
    if ph == 0 and pw == 0:
        return video
    return F.pad(video, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


def center_crop(video: torch.Tensor, size: int) -> torch.Tensor:
    """``size`` x ``size`` centre crop at offset ``(H - size) // 2``; smaller inputs are zero-padded, centred."""
    _check(video)
    video = _pad_to(video, size)
    h, w = video.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return video[..., top:top + size, left:left + size]


def random_crop(video: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """A ``size`` x ``size`` crop at a uniformly random offset, the same for all frames (padded if too small)."""
    _check(video)
    video = _pad_to(video, size)
    h, w = video.shape[-2:]
    top = int(torch.randint(h - size + 1, (), generator=generator))
    left = int(torch.randint(w - size + 1, (), generator=generator))
    return video[..., top:top + size, left:left + size]


def hflip(video: torch.Tensor) -> torch.Tensor:
    """Mirror left-right."""
    return video.flip(-1)


def _channel_max_min(video: torch.Tensor, keepdim: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel max and min over the 3 channels, elementwise (cheaper than a dim-0 reduction with indices)."""
    r, g, b = (video[i:i + 1] for i in range(3)) if keepdim else video.unbind(0)
    return torch.maximum(torch.maximum(r, g), b), torch.minimum(torch.minimum(r, g), b)


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """RGB -> HSV along dim 0 (``[3, ...]``), hue in [0, 1), TF's conventions (saturation 0 where V <= 0)."""
    r, g, b = rgb.unbind(0)
    v, m = _channel_max_min(rgb)
    chroma = v - m
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    h = torch.where(v == r, ((g - b) / safe) % 6, torch.where(v == g, (b - r) / safe + 2, (r - g) / safe + 4))
    h = torch.where(chroma > 0, h / 6, torch.zeros_like(h)) % 1.0
    s = torch.where(v > 0, chroma / torch.where(v > 0, v, torch.ones_like(v)), torch.zeros_like(v))
    return torch.stack([h, s, v])


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """HSV -> RGB along dim 0, the inverse of ``rgb_to_hsv``."""
    h, s, v = hsv.unbind(0)
    n = torch.tensor([5.0, 3.0, 1.0], dtype=hsv.dtype, device=hsv.device).view(3, *([1] * h.ndim))
    k = (n + h * 6) % 6
    return v - v * s * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def adjust_brightness(video: torch.Tensor, delta: float) -> torch.Tensor:
    """Add ``delta`` to every value (no clipping here: DMVR clips once, after all colour steps)."""
    return video + delta


def adjust_saturation(video: torch.Tensor, factor: float) -> torch.Tensor:
    """Scale HSV saturation by ``factor``, clamped to [0, 1], hue and value kept (``tf.image.adjust_saturation``).

    Done in RGB: at fixed hue and value each channel is ``v - (v - c) * s'/s``, which avoids a full HSV round trip.
    """
    v, m = _channel_max_min(video, keepdim=True)
    chroma = v - m
    # s'/s = min(factor, 1/s) with s = chroma / v; TF gives pixels with V <= 0 saturation 0 (grey V).
    ratio = torch.where(chroma > 0, v / chroma, 0.0).clamp_(0.0, max(factor, 0.0))
    ratio.masked_fill_(v <= 0, 0.0)
    return torch.addcmul(v, v - video, ratio, value=-1.0)


def adjust_contrast(video: torch.Tensor, factor: float) -> torch.Tensor:
    """``(x - mean) * factor + mean`` with the mean of each channel of each frame (``tf.image.adjust_contrast``)."""
    mean = video.mean(dim=(-2, -1), keepdim=True)
    return torch.add(mean * (1.0 - factor), video, alpha=factor)


def adjust_hue(video: torch.Tensor, delta: float) -> torch.Tensor:
    """Rotate the hue by ``delta`` turns (``tf.image.adjust_hue``; TF turns pixels with V <= 0 grey).

    Fused form of ``hsv_to_rgb(rgb_to_hsv(x))`` with the hue shifted: V and chroma (= V * S) do not change,
    so only the hue sector is recomputed (about 3x faster than the two conversions).
    """
    r, g, b = video.unbind(0)
    v, m = _channel_max_min(video)
    chroma = v - m
    inv = torch.where(chroma > 0, chroma, 1.0).reciprocal_()
    h6 = torch.where(v == r, (g - b).mul_(inv),
                     torch.where(v == g, (b - r).mul_(inv).add_(2.0), (r - g).mul_(inv).add_(4.0)))
    h6.add_(6.0 * (delta % 1.0))
    chroma.masked_fill_(v <= 0, 0.0)
    n = torch.tensor([5.0, 3.0, 1.0], dtype=video.dtype, device=video.device).view(3, *([1] * v.ndim))
    k = (n + h6).remainder_(6.0)
    weight = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return torch.addcmul(v, chroma, weight, value=-1.0)


def color_augment(video: torch.Tensor, generator: torch.Generator, *, brightness: float = 32 / 255,
                  saturation: tuple[float, float] = (0.6, 1.4), contrast: tuple[float, float] = (0.6, 1.4),
                  hue: float = 0.2, p: float = 0.8) -> torch.Tensor:
    """DMVR's ``color_default_augm``: with probability ``p``, in this fixed order (DMVR's, not random),
    random brightness delta in [-b, b], saturation factor, contrast factor, hue delta in [-hue, hue]; then
    clip to [0, 1]. One draw for the whole clip. All five numbers are drawn even when the step is skipped,
    so the generator advances the same way for every clip."""
    _check(video)
    apply = float(torch.rand((), generator=generator)) < p
    d_b = _uniform(generator, -brightness, brightness)
    f_s = _uniform(generator, *saturation)
    f_c = _uniform(generator, *contrast)
    d_h = _uniform(generator, -hue, hue)
    if not apply:
        return video
    video = adjust_brightness(video, d_b)
    video = adjust_saturation(video, f_s)
    video = adjust_contrast(video, f_c)
    video = adjust_hue(video, d_h)
    return video.clamp_(0.0, 1.0)


def jitter_size(height: int, width: int, generator: torch.Generator, *, min_scale: float = 0.8,
                max_scale: float = 1.2, p: float = 0.8) -> tuple[int, int]:
    """DMVR's ``scale_jitter_augm`` size: with probability ``p`` each side times its own factor in
    [min_scale, max_scale], truncated to int (``tf.cast``); else unchanged."""
    apply = float(torch.rand((), generator=generator)) < p
    sh = _uniform(generator, min_scale, max_scale)
    sw = _uniform(generator, min_scale, max_scale)
    if not apply:
        return height, width
    return int(sh * height), int(sw * width)


def scale_jitter(video: torch.Tensor, generator: torch.Generator, *, min_scale: float = 0.8, max_scale: float = 1.2,
                 p: float = 0.8) -> torch.Tensor:
    """Resize by independent random height and width factors (aspect-ratio jitter), probability ``p``."""
    _check(video)
    h, w = video.shape[-2:]
    return resize(video, *jitter_size(h, w, generator, min_scale=min_scale, max_scale=max_scale, p=p))


def _to_range(video: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    lo, hi = value_range
    if (lo, hi) == (0.0, 1.0):
        return video.contiguous()  # a crop is a view of the whole resized clip: do not keep that alive
    return video * (hi - lo) + lo


class TrainTransform:
    """Training augmentation for a set of weights' input protocol.

    Order as in the official pipeline: horizontal flip (p=0.5) before resizing; resize of the short side to
    ``resize_short_side`` with scale jitter folded into that one resize (one interpolation instead of two,
    each side kept >= ``crop_size`` so the crop never needs padding); random ``crop_size`` crop; colour
    augmentation; mapping to ``value_range``.
    """

    def __init__(self, protocol: Optional[InputProtocol] = None, *, flip_p: float = 0.5, jitter: bool = True,
                 color: bool = True):
        self.protocol = protocol or InputProtocol()
        self.flip_p, self.jitter, self.color = flip_p, jitter, color

    def __call__(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """uint8 ``[T, H, W, 3]`` -> float ``[3, T, crop_size, crop_size]``."""
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"expected frames [T, H, W, 3], got {tuple(frames.shape)}")
        proto = self.protocol
        crop = proto.crop_size
        flip = float(torch.rand((), generator=generator)) < self.flip_p
        h, w = short_side_size(frames.shape[1], frames.shape[2], proto.resize_short_side)
        if self.jitter:
            h, w = jitter_size(h, w, generator)
        h, w = max(h, crop), max(w, crop)
        if flip:
            frames = frames.flip(2)
        video = random_crop(resize(frames, h, w), crop, generator)
        if self.color:
            video = color_augment(video, generator)
        return _to_range(video, proto.value_range)


class EvalTransform:
    """Evaluation preprocessing: resize the short side to ``resize_short_side``, centre crop
    ``eval_crop_size`` (zero-padded if smaller, as ``resize_with_crop_or_pad``); no randomness."""

    def __init__(self, protocol: Optional[InputProtocol] = None):
        self.protocol = protocol or InputProtocol()

    def __call__(self, frames: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """uint8 ``[T, H, W, 3]`` -> float ``[3, T, eval_crop_size, eval_crop_size]``; ``generator`` is ignored."""
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"expected frames [T, H, W, 3], got {tuple(frames.shape)}")
        proto = self.protocol
        video = center_crop(resize_short_side(frames, proto.resize_short_side), proto.eval_crop_size)
        return _to_range(video, proto.value_range)
