"""The paper's learning-rate schedule (MMV_SPEC D): a half-cosine warm-up, then a half-period cosine decay.

A pure function of the step, so that a resumed run needs only the step to continue the schedule exactly
(no scheduler object whose state could drift from the optimizer's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int, final_ratio: float = 0.0) -> float:
    """Learning rate of update number ``step`` (1-based: the first optimizer step is step 1).

    Warm-up (``step <= warmup_steps``): ``base * (1 - cos(pi * step / warmup)) / 2``, rising from near 0
    to ``base`` at the end of the warm-up. Decay: ``base * (final + (1 - final) * (1 + cos(pi * p)) / 2)``
    with ``p`` going from 0 after the warm-up to 1 at ``total_steps``: half a cosine period.
    """
    if step < 1:
        raise ValueError(f"steps are counted from 1, got {step}")
    if warmup_steps > 0 and step <= warmup_steps:
        return base_lr * 0.5 * (1.0 - math.cos(math.pi * step / warmup_steps))
    decay_steps = total_steps - warmup_steps
    if decay_steps <= 0:
        return base_lr
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return base_lr * (final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


@dataclass(frozen=True)
class WarmupCosine:
    """``lr_at`` with its settings bound; ``state_dict`` records them in checkpoints."""

    base_lr: float
    warmup_steps: int
    total_steps: int
    final_ratio: float = 0.0

    def __call__(self, step: int) -> float:
        return lr_at(step, self.base_lr, self.warmup_steps, self.total_steps, self.final_ratio)

    def state_dict(self) -> dict[str, float]:
        return {"base_lr": self.base_lr, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps,
                "final_ratio": self.final_ratio}
