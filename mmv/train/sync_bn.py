"""Cross-replica batch norm: statistics over the global batch, on CPU (gloo) as well as CUDA (NCCL).

The release normalises with the mean and biased variance ``E[x^2] - E[x]^2`` of the whole global batch
(Haiku's cross-replica BN, MMV_SPEC A.1 / D). PyTorch's ``nn.SyncBatchNorm`` does that but refuses
CPU tensors, so CPU runs and the multi-rank tests need ``CrossReplicaBatchNorm``. It keeps the names
and semantics of ``nn.BatchNorm{1,2,3}d`` (``weight``, ``bias``, ``running_mean``, ``running_var``,
``num_batches_tracked``; eps, momentum, unbiased ``running_var``), so state_dicts are interchangeable
with the plain model and ``mmv.weights.save_model``.

Numerics: each rank computes its local per-channel mean and sum of squared deviations in two passes
(``torch.var_mean``), and the ranks' values are combined with Chan et al.'s parallel formula
``M2 = sum_r M2_r + sum_r n_r (mean_r - mean)^2``. This is the release's biased variance, but it
never subtracts two large numbers, so a channel whose mean is large against its spread loses no
precision (``E[x^2] - E[x]^2`` in float32 loses it all when ``|mean| / std`` nears 1e3). One
all_gather of ``[mean, M2, count]`` per layer in forward, one all_reduce in backward, through
autograd, so the gradients are those of one process holding the whole batch.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmv.losses import all_gather_with_grad, world_size


class _AnyDimBatchNorm(_BatchNorm):
    """Plain batch norm for ``[N, C, *]``: what ``revert_sync_batchnorm`` builds when the original class is unknown."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input [N, C, *], got {input.dim()}D")


class CrossReplicaBatchNorm(_AnyDimBatchNorm):
    """Batch norm whose training statistics cover every rank of ``process_group``; inputs ``[N, C, *]``.

    Outside training, or when torch.distributed is not initialised (or has one rank), it is exactly
    ``nn.BatchNorm{1,2,3}d``. Ranks may hold different batch sizes (each contributes its count).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1, affine: bool = True,
                 track_running_stats: bool = True, process_group: Optional[Any] = None,
                 device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype)
        self.process_group = process_group

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        if input.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels in dim 1, got input of shape "
                             f"{tuple(input.shape)}")
        if not self.training or world_size(self.process_group) == 1:
            return super().forward(input)
        return self._cross_replica(input)

    def _cross_replica(self, x: torch.Tensor) -> torch.Tensor:
        c = self.num_features
        stats = all_gather_with_grad(_local_moments(x)[None], self.process_group, equal_sizes=True)
        mean, var, total = _combine_moments(stats, c)

        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * total / (total - 1).clamp(min=1)
                self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)

        # Normalise in (at least) float32 around the float64 mean's rounding; the output keeps x's dtype.
        work = torch.promote_types(x.dtype, torch.float32)
        shape = [1, c] + [1] * (x.dim() - 2)
        scale = torch.rsqrt(var + self.eps).to(work)
        if self.affine:
            scale = scale * self.weight.to(work)
        y = (x.to(work) - mean.to(work).view(shape)) * scale.view(shape)
        if self.affine:
            y = y + self.bias.to(work).view(shape)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", cross_replica=True"


def _share_state(src: _BatchNorm, dst: _BatchNorm) -> _BatchNorm:
    """Make ``dst`` use ``src``'s parameters and buffers (the same tensors: optimisers keep working)."""
    if src.affine:
        dst.weight, dst.bias = src.weight, src.bias
    dst.running_mean, dst.running_var = src.running_mean, src.running_var
    dst.num_batches_tracked = src.num_batches_tracked
    dst.train(src.training)
    if hasattr(src, "qconfig"):
        dst.qconfig = src.qconfig
    return dst


def _on_cuda(module: nn.Module) -> bool:
    tensors = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
    return any(t.is_cuda for t in tensors)


def convert_sync_batchnorm(module: nn.Module, prefer_native: bool = True,
                           process_group: Optional[Any] = None) -> nn.Module:
    """Replace every ``nn.BatchNorm{1,2,3}d`` in ``module`` by a cross-replica one; returns the module.

    A BN whose tensors are on CUDA becomes ``nn.SyncBatchNorm`` (faster fused kernels) when
    ``prefer_native``; otherwise (CPU, or ``prefer_native=False``) ``CrossReplicaBatchNorm``. So move the
    model to its device *before* converting. Parameters and buffers are shared, not copied, and the
    state_dict keys do not change. ``revert_sync_batchnorm`` undoes it.
    """
    if isinstance(module, _BatchNorm) and not isinstance(module, (nn.SyncBatchNorm, CrossReplicaBatchNorm)):
        cls = nn.SyncBatchNorm if prefer_native and _on_cuda(module) else CrossReplicaBatchNorm
        new = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats,
                  process_group)
        new._plain_cls = type(module)  # for revert_sync_batchnorm
        return _share_state(module, new)
    for name, child in module.named_children():
        converted = convert_sync_batchnorm(child, prefer_native, process_group)
        if converted is not child:
            setattr(module, name, converted)
    return module


def revert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.SyncBatchNorm`` / ``CrossReplicaBatchNorm`` by plain batch norm; returns the module.

    Layers converted by ``convert_sync_batchnorm`` get their original class back; others a plain batch
    norm that accepts ``[N, C, *]`` (the numbers and the state_dict are the same either way).
    """
    if isinstance(module, (nn.SyncBatchNorm, CrossReplicaBatchNorm)):
        cls = getattr(module, "_plain_cls", None) or _AnyDimBatchNorm
        new = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        return _share_state(module, new)
    for name, child in module.named_children():
        reverted = revert_sync_batchnorm(child)
        if reverted is not child:
            setattr(module, name, reverted)
    return module


def _local_moments(x: torch.Tensor) -> torch.Tensor:
    """``[mean, correction, M2, count]`` of this rank's ``[N, C, *]`` (``3C + 1`` values).

    ``mean`` is rounded to x's precision; ``correction`` = mean(x - mean) recovers that rounding, and M2
    is taken around the rounded mean, where the deviations are exact (Sterbenz) when the spread is small.
    """
    dims = [0, *range(2, x.dim())]
    xs = x.to(torch.promote_types(x.dtype, torch.float32))  # half inputs: statistics in float32
    n = xs.numel() // xs.shape[1]
    mean = xs.sum(dims) / max(n, 1)
    dev = xs - mean.view(1, -1, *([1] * (x.dim() - 2)))
    count = xs.new_full((1,), float(n))
    return torch.cat([mean, dev.sum(dims) / max(n, 1), (dev * dev).sum(dims), count])


def _combine_moments(stats: torch.Tensor, c: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Global mean, biased variance and count from every rank's ``_local_moments`` (float64 arithmetic).

    Chan et al.: ``M2 = sum_r M2_r + sum_r n_r (mean_r - mean)^2``, with each rank's exact mean and M2.
    """
    stats = stats.double()
    mean_r = stats[:, :c] + stats[:, c:2 * c]
    counts = stats[:, 3 * c:]
    m2_r = stats[:, 2 * c:3 * c] - counts * stats[:, c:2 * c] ** 2
    total = counts.sum()
    mean = (counts * mean_r).sum(0) / total.clamp(min=1)
    var = (m2_r.sum(0) + (counts * (mean_r - mean) ** 2).sum(0)) / total.clamp(min=1)
    return mean, var.clamp(min=0), total
