"""The model side of a step: frozen heads, optimizer groups, clipping, precision variants."""

from __future__ import annotations

import pytest
import torch

from mmv.losses import MMVLoss
from mmv.models import create_model
from mmv.models.config import InputProtocol
from mmv.train.config import TrainConfig
from mmv.train.step import StepRunner, freeze_unused, make_optimizer, resolve_precision


def _setup(**config_changes):
    torch.manual_seed(0)
    protocol = InputProtocol(num_frames=4, fps=4.0, resize_short_side=36, crop_size=32, eval_crop_size=32)
    model = create_model("mmv_tiny_tsm", protocol=protocol)
    model.check_inputs = False
    frozen = freeze_unused(model)
    config = TrainConfig(**config_changes)
    gen = torch.Generator().manual_seed(1)
    batch = {"video": torch.rand(4, 3, 4, 32, 32, generator=gen), "audio": torch.randn(4, 1, 47, 80, generator=gen),
             "text": torch.randint(2, 100, (4, 2, 16), generator=gen), "audio_mask": torch.ones(4, dtype=torch.bool),
             "text_mask": torch.ones(4, 2, dtype=torch.bool)}
    return model, frozen, config, batch


def test_unused_heads_are_frozen_and_out_of_the_optimizer():
    model, frozen, config, _ = _setup(weight_decay=0.1)
    assert frozen == ["heads.audio2txt_embd", "heads.txt2audio_embd"]
    opt = make_optimizer(config, model)
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not any(id(p) in in_opt for p in model.heads["audio2txt_embd"].parameters())
    assert id(model.text.embed.weight) not in in_opt  # the word table stays frozen
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() > 1 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    assert isinstance(make_optimizer(TrainConfig(optimizer="adamw"), model), torch.optim.AdamW)


def test_clipping_bounds_the_norm_and_reports_it_unclipped():
    model, _, config, batch = _setup()
    free = StepRunner(model, MMVLoss(), make_optimizer(config, model), torch.device("cpu"))
    losses, norm = free.forward_backward(batch)
    grads = [p.grad.clone() for p in free.params]
    assert norm > 1.0 and torch.isfinite(losses["loss"])
    assert float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))) == pytest.approx(float(norm))
    free.optimizer.zero_grad()
    clipped = StepRunner(model, MMVLoss(), make_optimizer(config, model), torch.device("cpu"), grad_clip=1.0)
    _, norm2 = clipped.forward_backward(batch)
    assert float(norm2) == pytest.approx(float(norm), rel=1e-5)  # reported before clipping
    total = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in clipped.params]))
    assert float(total) == pytest.approx(1.0, rel=1e-4)
    for g, p in zip(grads, clipped.params):  # same direction
        assert torch.allclose(p.grad, g / float(norm), atol=1e-6)


def test_bf16_autocast_on_cpu_gives_a_close_loss():
    model, _, config, batch = _setup()
    fp32 = StepRunner(model, MMVLoss(), make_optimizer(config, model), torch.device("cpu"))
    bf16 = StepRunner(model, MMVLoss(), make_optimizer(config, model), torch.device("cpu"), precision="bf16")
    model.eval()  # the same BN statistics for both
    a, _ = fp32.forward_backward(batch)
    b, _ = bf16.forward_backward(batch)
    assert float(b["loss"]) == pytest.approx(float(a["loss"]), rel=0.05) and float(a["loss"]) != float(b["loss"])
    assert resolve_precision(TrainConfig(), torch.device("cpu")) == "fp32"
    assert resolve_precision(TrainConfig(), torch.device("cuda")) == "bf16"
    with pytest.raises(ValueError, match="fp16 needs CUDA"):
        resolve_precision(TrainConfig(precision="fp16"), torch.device("cpu"))
