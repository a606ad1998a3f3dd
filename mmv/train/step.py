"""The model side of a training step: the model of a run, its optimizer, and forward/backward.

Shared by the loop and ``benchmarks/bench_train.py``, so that the benchmark measures the step that
training runs: the model in (bf16) autocast, ``MMVLoss`` in float32, backward through the gradient
scaler (fp16 only), and the global gradient norm (clipped when asked).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any, Optional

import torch
from torch import nn

from mmv.data.text import Vocabulary
from mmv.models import create_model, get_preset
from mmv.models.config import InputProtocol
from mmv.models.mmv import MMV
from mmv.train.config import TrainConfig


def protocol_for(config: TrainConfig) -> InputProtocol:
    """The model preset's input protocol with ``protocol_overrides`` applied."""
    base = get_preset(config.model).protocol().to_dict()
    return InputProtocol.from_dict({**base, **config.protocol_overrides})


def resolve_precision(config: TrainConfig, device: torch.device) -> str:
    if config.precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if config.precision == "fp16" and device.type != "cuda":
        raise ValueError("precision fp16 needs CUDA (on CPU use bf16 or fp32)")
    return config.precision


def build_model(config: TrainConfig, protocol: InputProtocol, vocab: Vocabulary,
                table: Optional[torch.Tensor]) -> MMV:
    """The preset with the run's word table (or, when resuming, a table of the right size to load into)."""
    overrides = dict(config.model_overrides)
    if table is None:  # the checkpoint brings the table
        text = get_preset(config.model).config().text
        overrides["text"] = dataclasses.replace(text, vocab_size=len(vocab))
        if "text" in config.model_overrides:
            raise ValueError("model_overrides.text cannot be combined with a word table")
    model = create_model(config.model, word_vectors=table, protocol=protocol, **overrides)
    model.check_inputs = False  # the input check is a device sync per call; the data pipeline is trusted
    model.vocab = list(vocab.words)
    return model


def initial_model(config: TrainConfig, protocol: InputProtocol, vocab: Vocabulary,
                  table: Optional[torch.Tensor]) -> tuple[MMV, list[str]]:
    """The run's network at step 0 and the modules frozen in it: seeded by ``config.seed``, so every rank builds
    the same weights (DDP also broadcasts them) and anyone can rebuild them (the demo's untrained baseline)."""
    torch.manual_seed(config.seed)
    model = build_model(config, protocol, vocab, table)
    return model, freeze_unused(model)


def freeze_unused(model: MMV) -> list[str]:
    """``requires_grad_(False)`` on the modules no loss term reads, so DDP needs no unused-parameter search."""
    from mmv.losses import modules_unused_by_loss

    names = modules_unused_by_loss(model)
    for name in names:
        model.get_submodule(name).requires_grad_(False)
    return names


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Adam / AdamW over the trainable parameters; BN parameters and biases without weight decay unless asked."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() > 1 or config.decay_norm_and_bias else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=config.lr, betas=tuple(config.betas), eps=config.eps)


def to_channels_last(model: nn.Module) -> None:
    for p in list(model.parameters()) + list(model.buffers()):
        if p.dim() == 4:
            p.data = p.data.contiguous(memory_format=torch.channels_last)
        elif p.dim() == 5:
            p.data = p.data.contiguous(memory_format=torch.channels_last_3d)


def move_batch(batch: dict[str, Any], device: torch.device, channels_last: bool = False) -> dict[str, Any]:
    """The batch's tensors on ``device`` (asynchronous from pinned memory)."""
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device, non_blocking=True)
            if channels_last and value.dim() == 5 and value.is_floating_point():
                value = value.contiguous(memory_format=torch.channels_last_3d)
            elif channels_last and value.dim() == 4 and value.is_floating_point():
                value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out


class StepRunner:
    """Forward, loss, backward and the gradient norm of one batch (shared with the benchmark)."""

    def __init__(self, model: nn.Module, loss_fn: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device,
                 precision: str = "fp32", grad_clip: float = 0.0, channels_last: bool = False):
        self.model, self.loss_fn, self.optimizer, self.device = model, loss_fn, optimizer, device
        self.precision, self.grad_clip, self.channels_last = precision, grad_clip, channels_last
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.params = [p for p in model.parameters() if p.requires_grad]

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision in ("bf16", "fp16"):
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
            return torch.autocast(self.device.type, dtype=dtype)
        return contextlib.nullcontext()

    def forward_backward(self, batch: dict[str, Any]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Loss terms (detached) and the global gradient norm (before clipping)."""
        batch = move_batch(batch, self.device, self.channels_last)
        with self.autocast():
            outputs = self.model(video=batch["video"], audio=batch["audio"], text=batch["text"])
        losses = self.loss_fn(outputs, batch)  # scores in float32 at least, autocast off: mmv.losses
        self.scaler.scale(losses["loss"]).backward()
        self.scaler.unscale_(self.optimizer)
        max_norm = self.grad_clip if self.grad_clip > 0 else math.inf
        norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm)
        return {k: v.detach() for k, v in losses.items()}, norm.detach()

    def step(self) -> None:
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
