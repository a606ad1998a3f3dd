"""Learned deflation: train only the BN scale and offset of the image network (MMV_SPEC.md D, E Table 3).

Loss: L1 between ``image_net(image)`` and ``video_net(static_video(image))``. Naive deflation is exact
only away from the clip boundaries (temporal zero padding, the TSM shift's zeros, and S3D's gating and
final means that mix boundary frames into every position), so the affine BN parameters absorb the rest.

BN runs in **eval mode** in the image network during tuning: the running statistics stay those of the
video network. Naive deflation is built on them (at interior positions the deflated activations *are*
the video activations, normalised by the same statistics); train-mode BN would normalise with image-batch
statistics instead, i.e. another function, and would also overwrite the running statistics. The paper
trains gamma and beta only; so do we. Which output is matched is UNCONFIRMED in the paper: the backbone
representation (``video_repr``) by default, a head output (``video_va`` / ``video_vat``) on request.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import torch
from torch import nn

from mmv.deflate.convert import static_video
from mmv.models.mmv import MMV

OUTPUTS = ("video_repr", "video_va", "video_vat")
Batch = Any  # a tensor [B, 3, H, W], a (tensor, ...) tuple/list, or a dict with "image"


@dataclass
class Gap:
    """How far the image network is from the video network on static videos of held-out images.

    ``mean_l1``: mean absolute difference per element; ``relative_l1``: sum |image - video| / sum |video|.
    """

    mean_l1: float
    relative_l1: float
    num_images: int


@dataclass
class TuneResult:
    before: Gap
    after: Gap
    steps: int
    lr: float
    output: str
    num_frames: int
    optimizer: str
    schedule: str
    bn_mode: str
    trained_parameters: list[str]
    losses: list[float] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the loss curve is small; the curve is kept at 100 points at most."""
        d = asdict(self)
        stride = max(1, math.ceil(len(self.losses) / 100))
        d["losses"] = self.losses[::stride]
        d["trained_parameter_count"] = len(self.trained_parameters)
        return d


def bn_affine_parameters(net: nn.Module) -> dict[str, nn.Parameter]:
    """``name -> parameter`` of every BN scale (``weight``) and offset (``bias``) in ``net``."""
    names = {}
    for mname, module in net.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
            for pname in ("weight", "bias"):
                names[f"{mname}.{pname}" if mname else pname] = getattr(module, pname)
    return names


def _unpack(batch: Batch, skipped: Optional[set[str]] = None) -> Optional[torch.Tensor]:
    """The images of a batch (None when every file in it was unusable); unusable files go to ``skipped``."""
    if isinstance(batch, torch.Tensor):
        x = batch
    elif isinstance(batch, dict):
        x = batch["image"]
        if skipped is not None:
            skipped.update(batch.get("skipped", ()))
    elif isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        x = batch[0]
    else:
        raise TypeError(f"cannot find images in a batch of type {type(batch).__name__}")
    return x if x is not None and x.shape[0] > 0 else None


def _functions(image_net: nn.Module, video_net: nn.Module, output: str
               ) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    if isinstance(video_net, MMV):
        def video_fn(v: torch.Tensor) -> torch.Tensor:
            return video_net.embed_video(v)[output]

        def image_fn(x: torch.Tensor) -> torch.Tensor:
            rep = image_net(x)
            return rep if output == "video_repr" else video_net.video_heads(rep)[output]

        return image_fn, video_fn
    if output != "video_repr":
        raise ValueError(f"matching {output!r} needs the whole MMV model as video_net (its heads), "
                         f"not a bare backbone")
    return image_net, video_net


@torch.no_grad()
def measure_gap(image_net: nn.Module, video_net: nn.Module, images: Iterable[Batch], num_frames: int,
                output: str = "video_repr", device: str | torch.device = "cpu",
                skipped: Optional[set[str]] = None) -> Gap:
    """L1 gap between the image network and the video network on static videos of ``images``."""
    image_fn, video_fn = _functions(image_net, video_net, output)
    was = image_net.training, video_net.training
    image_net.eval()
    video_net.eval()
    diff = ref = 0.0
    elements = count = 0
    for batch in images:
        x = _unpack(batch, skipped)
        if x is None:
            continue
        x = x.to(device)
        a, b = image_fn(x), video_fn(static_video(x, num_frames))
        diff += float((a - b).abs().sum(dtype=torch.float64))
        ref += float(b.abs().sum(dtype=torch.float64))
        elements += b.numel()
        count += x.shape[0]
    image_net.train(was[0])
    video_net.train(was[1])
    if count == 0:
        raise ValueError("no held-out images to measure the gap on")
    return Gap(diff / elements, diff / max(ref, 1e-30), count)


def _cycle(images: Iterable[Batch]) -> Iterator[Batch]:
    """Batches forever: re-iterates a list or a DataLoader (new shuffle each pass)."""
    while True:
        empty = True
        for batch in images:
            empty = False
            yield batch
        if empty:
            raise ValueError("the training images are empty (or a one-shot iterator that is exhausted)")


def tune_deflated(image_net: nn.Module, video_net: nn.Module, images: Iterable[Batch],
                  heldout: Iterable[Batch], *, steps: int = 1000, lr: float = 1e-3, output: str = "video_repr",
                  num_frames: Optional[int] = None, device: str | torch.device = "cpu",
                  progress: Optional[Callable[[int, float], None]] = None) -> tuple[nn.Module, TuneResult]:
    """Train the BN gamma/beta of ``image_net`` (in place) to match ``video_net`` on static videos.

    Args:
      image_net: a deflated network (``deflate_video_backbone`` / ``ImageNetwork``), ``[B,3,H,W] -> [B,D]``.
      video_net: the ``MMV`` model (any ``output``) or its video backbone (``video_repr`` only); frozen, eval.
      images, heldout: re-iterable batches of images ``[B, 3, H, W]`` in the video network's value range;
        ``heldout`` only measures the gap (before and after) and must not overlap ``images``.
      steps, lr: Adam on the BN affine parameters, cosine decay from ``lr`` to 0 over ``steps``.
      num_frames: frames of the static video; default the model's protocol (32 for the release).
      progress: called as ``progress(step, loss)`` after every step.
    Returns the tuned ``image_net`` and the before/after gaps with every setting.
    """
    if num_frames is None:
        protocol = getattr(video_net, "protocol", None)
        if protocol is None:
            raise ValueError("num_frames is needed when video_net is a bare backbone")
        num_frames = protocol.num_frames
    image_net.to(device)
    video_net.to(device).eval()
    image_fn, video_fn = _functions(image_net, video_net, output)

    video_grads = {n: p.requires_grad for n, p in video_net.named_parameters()}
    image_grads = {n: p.requires_grad for n, p in image_net.named_parameters()}
    affine = bn_affine_parameters(image_net)
    if not affine:
        raise ValueError("the image network has no BN scale/offset to tune")
    for p in video_net.parameters():
        p.requires_grad_(False)
    for p in image_net.parameters():
        p.requires_grad_(False)
    for p in affine.values():
        p.requires_grad_(True)

    skipped: set[str] = set()
    before = measure_gap(image_net, video_net, heldout, num_frames, output, device, skipped)
    optimizer = torch.optim.Adam(list(affine.values()), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, steps) / max(steps, 1))))
    losses: list[float] = []
    image_net.eval()  # BN keeps the video network's running statistics (see module docstring)
    try:
        batches = _cycle(images)
        for step in range(steps):
            x = _unpack(next(batches), skipped)
            while x is None:
                x = _unpack(next(batches), skipped)
            x = x.to(device)
            with torch.no_grad():
                target = video_fn(static_video(x, num_frames))
            loss = (image_fn(x) - target).abs().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(step + 1, losses[-1])
    finally:
        for n, p in image_net.named_parameters():
            p.requires_grad_(image_grads[n])
        for n, p in video_net.named_parameters():
            p.requires_grad_(video_grads[n])
    after = measure_gap(image_net, video_net, heldout, num_frames, output, device)
    result = TuneResult(before=before, after=after, steps=steps, lr=lr, output=output, num_frames=num_frames,
                        optimizer="adam", schedule="cosine to 0, no warm-up", bn_mode="eval (video running stats)",
                        trained_parameters=sorted(affine), losses=losses, skipped=sorted(skipped))
    return image_net, result
