"""Mixing sources with sampling weights (e.g. HowTo100M + AudioSet, as the released models trained).

``MixedDataset`` draws sample i of an epoch from source s with probability proportional to the weight
of s, then a random item of s: a pure function of (seed, epoch, i), so any worker and any resume
draws the same sample. ``MixedIterable`` interleaves streams (shards) the same way.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from torch.utils.data import Dataset, IterableDataset


def _cumulative(weights: Sequence[float]) -> list[float]:
    if not weights or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"sampling weights must be >= 0 with a positive sum, got {list(weights)}")
    return list(itertools.accumulate(float(w) for w in weights))


class MixedDataset(Dataset):
    """``length`` samples per epoch drawn from ``datasets`` in proportion to ``weights``."""

    def __init__(self, datasets: Sequence[Dataset], weights: Sequence[float], length: int, seed: int = 0):
        if len(datasets) != len(weights):
            raise ValueError(f"{len(datasets)} datasets but {len(weights)} weights")
        self.datasets, self.cumulative = list(datasets), _cumulative(weights)
        self.length, self.seed, self.epoch = int(length), seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        for ds in self.datasets:
            if hasattr(ds, "set_epoch"):
                ds.set_epoch(epoch)

    def __len__(self) -> int:
        return self.length

    def choose(self, index: int) -> tuple[int, int]:
        """(source, item) that sample ``index`` of this epoch comes from."""
        rng = random.Random(f"{self.seed}/{self.epoch}/{index}")
        source = bisect.bisect_right(self.cumulative, rng.random() * self.cumulative[-1])
        source = min(source, len(self.datasets) - 1)
        return source, rng.randrange(len(self.datasets[source]))

    def __getitem__(self, index: int) -> Any:
        source, item = self.choose(index)
        return self.datasets[source][item]


class MixedIterable(IterableDataset):
    """Interleave iterable datasets by weight; stops when any stream is exhausted (use resampled shards
    for endless training)."""

    def __init__(self, datasets: Sequence[Iterable], weights: Sequence[float], seed: int = 0):
        if len(datasets) != len(weights):
            raise ValueError(f"{len(datasets)} datasets but {len(weights)} weights")
        self.datasets, self.cumulative, self.seed, self.epoch = list(datasets), _cumulative(weights), seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        for ds in self.datasets:
            if hasattr(ds, "set_epoch"):
                ds.set_epoch(epoch)

    def __iter__(self) -> Iterator[Any]:
        rng = random.Random(f"{self.seed}/{self.epoch}")
        streams = [iter(ds) for ds in self.datasets]
        while True:
            source = min(bisect.bisect_right(self.cumulative, rng.random() * self.cumulative[-1]), len(streams) - 1)
            try:
                yield next(streams[source])
            except StopIteration:
                return
