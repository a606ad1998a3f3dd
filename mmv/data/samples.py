"""One training sample, the record of a skipped one, and batching.

A sample is a dict of tensors for one clip:

========== ============================ ==================================================
key        shape / type                 meaning
========== ============================ ==================================================
video      float [3, T, H, W] in [0, 1] the frames after augmentation
audio      float [1, frames, mel]       log-mel of the same time span
audio_mask bool []                      False when the video has no audio track (silence)
text       int64 [K, N]                 word ids of the K narrations nearest in time
text_mask  bool [K]                     which of the K rows are real narrations
meta       dict                         path, start (s), source name, labels
========== ============================ ==================================================

A file that cannot be used becomes a ``Skipped`` record instead of an exception: it travels through
DataLoader workers to the batch (``batch["skipped"]``) so the trainer counts and reports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

TENSOR_KEYS = ("video", "audio", "audio_mask", "text", "text_mask")


@dataclass(frozen=True)
class Skipped:
    """A sample that could not be made: where, and why."""

    path: str
    reason: str


def collate(samples: Sequence[dict[str, Any] | Skipped]) -> dict[str, Any]:
    """Stack samples into a batch; ``Skipped`` records go to ``batch["skipped"]`` as (path, reason).

    ``batch["size"]`` is the number of usable samples (0 when every sample of the batch was skipped).
    """
    good = [s for s in samples if not isinstance(s, Skipped)]
    batch: dict[str, Any] = {"skipped": [(s.path, s.reason) for s in samples if isinstance(s, Skipped)],
                             "size": len(good)}
    if not good:
        return batch
    for key in TENSOR_KEYS:
        if key in good[0]:
            try:
                batch[key] = torch.stack([s[key] for s in good])
            except RuntimeError as err:  # a source produced a different clip shape: a bug, not bad data
                shapes = sorted({tuple(s[key].shape) for s in good})
                raise RuntimeError(f"cannot batch '{key}': samples have shapes {shapes}") from err
    batch["meta"] = [s.get("meta", {}) for s in good]
    return batch
