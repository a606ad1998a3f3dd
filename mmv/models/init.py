"""Initialisation for training from scratch, as Haiku initialised the release (MMV_SPEC.md F.13).

PyTorch's defaults (kaiming-uniform) differ: convs here get VarianceScaling(1.0, fan_in, truncated
normal), linears a truncated normal with std 1/sqrt(fan_in), biases zero, BN scale 1 and offset 0.
Word vectors are left alone: they come from a pretrained table.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mmv.models.layers import SameConv

# Std of a unit normal truncated to [-2, 2]: Haiku's VarianceScaling divides by it.
_TRUNCATED_STD = 0.87962566103423978


def _truncated_normal_(tensor: torch.Tensor, std: float) -> None:
    nn.init.trunc_normal_(tensor, mean=0.0, std=std, a=-2.0 * std, b=2.0 * std)


@torch.no_grad()
def init_like_release(model: nn.Module) -> nn.Module:
    """Re-initialise every conv, linear and BN of ``model`` in place; returns ``model``."""
    for module in model.modules():
        if isinstance(module, (SameConv, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            fan_in = module.weight[0].numel()
            _truncated_normal_(module.weight, math.sqrt(1.0 / fan_in) / _TRUNCATED_STD)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.Linear):
            _truncated_normal_(module.weight, 1.0 / math.sqrt(module.in_features))
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_parameters()
    return model
