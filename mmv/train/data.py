"""The training loader: sources of a data spec, mixed by weight, split over ranks, resumable exactly.

Raw sources (HowTo100M, subtitles, AudioSet, folders) are map-style: sample ``i`` of epoch ``e`` is a
pure function of ``(seed, e, i)`` (``ClipDataset``, ``MixedDataset``), and ``EpochBatchSampler`` cuts a
seeded order of each epoch into global batches, rank ``r`` taking the ``r``-th slice of each. The data
position is therefore ``(epoch, batches done)``: a resumed run asks for the same indices, and nothing
before them is decoded.

When a spec names shards, every source becomes an endless stream per (rank, worker) slot: shards are
drawn with replacement, seeded by ``(seed, source, epoch, slot)``, through a shuffle buffer, mixed by
weight; raw source items are drawn as indices. Each sample records how many raw stream items its slot
has read, so resuming replays the raw streams (reading, not decoding) up to that point; the worker
that should produce the next batch is given that role, so batches come in the same order as before.
An epoch of a stream is ``epoch_samples`` samples (from ``shards.json`` by default).

A sample that cannot be decoded is replaced by another draw (map-style: a seeded other index; streams:
the next item), so every batch is full, as DDP, SyncBatchNorm and the contrastive loss want; the
skipped files travel in ``batch["skipped"]`` to be counted and reported.
"""

from __future__ import annotations

import json
import random
import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler, get_worker_info

from mmv.data.clips import ClipBuilder, ClipDataset, seeded_generator, stable_seed
from mmv.data.samples import Skipped, collate
from mmv.data.sharding import ShardDecoder
from mmv.data.shards import INDEX_FILE, expand_urls, iter_tar_samples
from mmv.data.sources.base import ClipItem, SourceReport
from mmv.data.sources.mixing import MixedDataset, _cumulative
from mmv.data.sources.spec import SourceSpec, load_items, read_spec
from mmv.errors import DataError


@dataclass
class DataPosition:
    """Where the data stands: ``batch`` global batches of ``epoch`` done; for streams, the raw items read
    by each (rank, worker) slot."""

    epoch: int = 0
    batch: int = 0
    streams: dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batch": self.batch, "streams": {str(k): v for k, v in self.streams.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataPosition:
        return cls(int(data["epoch"]), int(data["batch"]), {int(k): int(v) for k, v in data.get("streams", {}).items()})


@dataclass
class Sources:
    """The sources of a spec: raw ones with their items, shard ones with their URLs and sample counts."""

    specs: list[SourceSpec]
    items: dict[str, list[ClipItem]] = field(default_factory=dict)
    reports: list[SourceReport] = field(default_factory=list)
    shard_urls: dict[str, list[str]] = field(default_factory=dict)
    shard_samples: dict[str, Optional[int]] = field(default_factory=dict)

    @property
    def streaming(self) -> bool:
        return bool(self.shard_urls)


def _shard_sample_count(location: str) -> Optional[int]:
    index = Path(location) / INDEX_FILE
    if not index.is_file():
        return None
    try:
        return int(json.loads(index.read_text(encoding="utf-8"))["samples"])
    except (ValueError, KeyError, TypeError):
        return None


def load_sources(data: str | Path) -> Sources:
    """Read a spec (or folder) and list every source; a source with nothing usable is an error."""
    if not data:
        raise ValueError("no training data given (a JSON source spec or a folder)")
    if not Path(data).exists() and "://" not in str(data):
        raise FileNotFoundError(f"{data}: no such source spec or folder")
    sources = Sources(read_spec(data))
    for spec in sources.specs:
        if spec.is_shards:
            urls = expand_urls(spec.paths["urls"])
            if not urls:
                raise DataError(spec.paths["urls"], f"source {spec.name}: no shards found")
            sources.shard_urls[spec.name] = urls
            sources.shard_samples[spec.name] = _shard_sample_count(spec.paths["urls"])
            continue
        items, report = load_items(spec)
        sources.reports.append(report)
        if not items:
            raise DataError(spec.paths.get("videos", spec.name), f"source {spec.name}: no usable videos\n"
                            + report.summary())
        sources.items[spec.name] = items
    return sources


def worker_init(worker_id: int) -> None:
    """DataLoader workers decode with one torch thread each (the workers are the parallelism).

    They ignore SIGTERM: a scheduler that preempts a job signals every process of it, and a worker that
    died of it would abort the run before the trainer (which handles SIGTERM) could write its checkpoint;
    the loader stops its workers itself when the trainer leaves.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    torch.set_num_threads(1)
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover
        pass


def collate_train(samples: Sequence[dict[str, Any] | Skipped]) -> dict[str, Any]:
    """``collate``, with the skips recorded inside samples (replaced draws) added to ``batch["skipped"]``."""
    batch = collate(samples)
    for meta in batch.get("meta", []):
        batch["skipped"].extend(meta.pop("skipped", []))
    return batch


class UnusableData(DataError):
    """Draw after draw failed to decode (a ``DataError``, also after a DataLoader worker re-raises it)."""


def _give_up(index: Any, skipped: list[tuple[str, str]]) -> DataError:
    path, reason = skipped[-1]
    return UnusableData(path, f"{len(skipped)} draws in a row could not be used (sample {index}); the last: "
                        f"{reason}. Is most of the data unreadable? Check it with `mmv data check`")


# ---------------------------------------------------------------------------------------------------
# map-style sources


class RetryingSamples(Dataset):
    """Sample ``(epoch, i)`` of ``base``; when it cannot be decoded, a seeded other index, up to
    ``max_retries`` times (a run does not stop for a few bad files)."""

    def __init__(self, base: Dataset, seed: int, max_retries: int):
        self.base, self.seed, self.max_retries = base, seed, max_retries

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        epoch, index = key
        if getattr(self.base, "epoch", epoch) != epoch:
            self.base.set_epoch(epoch)
        skipped: list[tuple[str, str]] = []
        candidate = index
        for attempt in range(self.max_retries + 1):
            sample = self.base[candidate]
            if not isinstance(sample, Skipped):
                sample.setdefault("meta", {})["skipped"] = skipped
                return sample
            skipped.append((sample.path, sample.reason))
            candidate = random.Random(f"{self.seed}/retry/{epoch}/{index}/{attempt}").randrange(len(self.base))
        raise _give_up(index, skipped)


class EpochBatchSampler(Sampler):
    """Endless batches of ``(epoch, index)`` for one rank, from ``start`` on.

    Epoch ``e`` is a seeded order of ``epoch_samples`` indices (concatenated permutations of
    ``range(num_items)``); global batch ``g`` is its ``g``-th block of ``batch_size * world_size``, and
    rank ``r`` takes the ``r``-th ``batch_size`` of the block, so ranks together see exactly the batch a
    single process would.
    """

    def __init__(self, num_items: int, epoch_samples: int, batch_size: int, rank: int = 0, world_size: int = 1,
                 seed: int = 0, start: Optional[DataPosition] = None):
        self.num_items, self.epoch_samples = num_items, epoch_samples
        self.batch_size, self.rank, self.world_size, self.seed = batch_size, rank, world_size, seed
        self.start = start or DataPosition()
        self.batches_per_epoch = epoch_samples // (batch_size * world_size)
        if self.batches_per_epoch < 1:
            raise ValueError(f"an epoch of {epoch_samples} samples holds no global batch of {batch_size * world_size}; "
                             f"lower batch_size or raise epoch_samples")

    def epoch_order(self, epoch: int) -> list[int]:
        order: list[int] = []
        rounds = 0
        while len(order) < self.epoch_samples:
            gen = seeded_generator(self.seed, "order", epoch, rounds)
            order.extend(torch.randperm(self.num_items, generator=gen).tolist())
            rounds += 1
        return order[: self.epoch_samples]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, first = self.start.epoch, self.start.batch
        per_global = self.batch_size * self.world_size
        while True:
            order = self.epoch_order(epoch)
            for g in range(first, self.batches_per_epoch):
                lo = g * per_global + self.rank * self.batch_size
                yield [(epoch, i) for i in order[lo: lo + self.batch_size]]
            epoch, first = epoch + 1, 0


# ---------------------------------------------------------------------------------------------------
# streams (when shards are involved)


def _identity(sample: Any) -> Any:
    return sample


class _ShardSource:
    """Raw samples of a shard source for one slot: shards drawn with replacement, a shuffle buffer."""

    def __init__(self, name: str, urls: list[str], shuffle_buffer: int):
        self.name, self.urls, self.shuffle_buffer = name, urls, shuffle_buffer

    def stream(self, seed: int, epoch: int, slot: int) -> Iterator[dict[str, Any] | Skipped]:
        rng = random.Random(stable_seed(seed, self.name, epoch, slot))
        buffer: list[Any] = []
        while True:
            url = rng.choice(self.urls)
            try:
                for raw in iter_tar_samples(url):
                    raw["__epoch__"] = epoch
                    if not self.shuffle_buffer:
                        yield raw
                        continue
                    buffer.append(raw)
                    if len(buffer) >= self.shuffle_buffer:
                        yield buffer.pop(rng.randrange(len(buffer)))
            except DataError as err:
                yield Skipped(err.path, err.reason)


class _ItemSource:
    """A raw source inside a stream: endless seeded draws of its indices."""

    def __init__(self, name: str, index: int, length: int):
        self.name, self.index, self.length = name, index, length

    def stream(self, seed: int, epoch: int, slot: int) -> Iterator[dict[str, Any]]:
        rng = random.Random(stable_seed(seed, self.name, epoch, slot))
        while True:
            yield {"__map__": self.index, "__index__": rng.randrange(self.length), "__epoch__": epoch}


class SampleStream(IterableDataset):
    """Mixed, decoded samples for each (rank, worker) slot; see the module docstring."""

    def __init__(self, sources: Sequence[Any], weights: Sequence[float], datasets: Sequence[ClipDataset],
                 decode: Callable[[dict[str, Any]], Any], seed: int, rank: int, num_workers: int,
                 max_failures: int):
        self.sources, self.cumulative = list(sources), _cumulative(weights)
        self.datasets, self.decode, self.seed = list(datasets), decode, seed
        self.rank, self.num_workers, self.max_failures = rank, max(1, num_workers), max_failures
        self.epoch, self.skip, self.role_offset = 0, {}, 0

    def start_at(self, epoch: int, skip: dict[int, int], role_offset: int) -> None:
        """Set before the loader's workers start: epoch, raw items to skip per slot, which role worker 0 plays."""
        self.epoch, self.skip, self.role_offset = epoch, dict(skip), role_offset

    def _slot(self) -> int:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        return self.rank * self.num_workers + (worker + self.role_offset) % self.num_workers

    def _decode(self, raw: dict[str, Any]) -> Any:
        if "__map__" in raw:
            ds = self.datasets[raw["__map__"]]
            if ds.epoch != raw["__epoch__"]:
                ds.set_epoch(raw["__epoch__"])
            return ds[raw["__index__"]]
        try:
            return self.decode(raw)
        except DataError as err:
            return Skipped(f"{raw.get('__url__', '?')}#{raw.get('__key__', '?')}", err.reason)

    def _raw(self, slot: int) -> Iterator[Any]:
        streams = [s.stream(self.seed, self.epoch, slot) for s in self.sources]
        rng = random.Random(stable_seed(self.seed, "mix", self.epoch, slot))
        total = self.cumulative[-1]
        import bisect

        while True:
            k = min(bisect.bisect_right(self.cumulative, rng.random() * total), len(streams) - 1)
            yield next(streams[k])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        slot = self._slot()
        to_skip = self.skip.get(slot, 0)
        pending: list[tuple[str, str]] = []
        for consumed, raw in enumerate(self._raw(slot), start=1):
            if consumed <= to_skip:
                continue  # read again, not decoded: the replay of a resumed run
            sample = raw if isinstance(raw, Skipped) else self._decode(raw)
            if isinstance(sample, Skipped):
                pending.append((sample.path, sample.reason))
                if len(pending) > self.max_failures:
                    raise _give_up(f"slot {slot}", pending)
                continue
            meta = sample.setdefault("meta", {})
            meta["skipped"], meta["stream"] = pending, (slot, consumed)
            pending = []
            yield sample


# ---------------------------------------------------------------------------------------------------


class TrainingData:
    """Batches for one rank, endless, from a ``DataPosition``; yields ``(position after, batch)``."""

    def __init__(self, sources: Sources, builder: ClipBuilder, *, batch_size: int, rank: int = 0,
                 world_size: int = 1, seed: int = 0, epoch_samples: int = 0, num_workers: int = 0,
                 prefetch_factor: int = 2, pin_memory: bool = False, shuffle_buffer: int = 0,
                 max_retries: int = 20):
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} (global) does not split over {world_size} ranks")
        self.sources, self.seed, self.rank, self.world_size = sources, seed, rank, world_size
        self.per_rank = batch_size // world_size
        self.num_workers, self.prefetch_factor, self.pin_memory = num_workers, prefetch_factor, pin_memory
        names = [s.name for s in sources.specs]
        weights = [s.weight for s in sources.specs]
        self.datasets = [ClipDataset(sources.items[n], builder, seed=seed) for n in names if n in sources.items]
        if sources.streaming:
            known = [len(sources.items[n]) if n in sources.items else sources.shard_samples.get(n) for n in names]
            if not epoch_samples and any(k is None for k in known):
                raise ValueError("epoch_samples: the shard counts are unknown (no shards.json); set epoch_samples")
            self.epoch_samples = epoch_samples or sum(known)
            streams, m = [], 0
            for n in names:
                if n in sources.shard_urls:
                    streams.append(_ShardSource(n, sources.shard_urls[n], shuffle_buffer))
                else:
                    streams.append(_ItemSource(n, m, len(sources.items[n])))
                    m += 1
            self.stream = SampleStream(streams, weights, self.datasets, ShardDecoder(builder, seed), seed, rank,
                                       num_workers, max_failures=max(100, 10 * max_retries))
        else:
            self.stream = None
            if len(self.datasets) == 1:
                base: Dataset = self.datasets[0]
                self.epoch_samples = epoch_samples or len(base)
            else:
                self.epoch_samples = epoch_samples or sum(len(d) for d in self.datasets)
                base = MixedDataset(self.datasets, weights, self.epoch_samples, seed=seed)
            self.samples = RetryingSamples(base, seed, max_retries)
        self.batches_per_epoch = self.epoch_samples // batch_size
        if self.batches_per_epoch < 1:
            raise ValueError(f"an epoch of {self.epoch_samples} samples holds no global batch of {batch_size}; "
                             f"lower batch_size or set epoch_samples")

    def _loader(self, dataset: Dataset, **kwargs: Any) -> DataLoader:
        extra: dict[str, Any] = {}
        if self.num_workers:
            extra = {"prefetch_factor": self.prefetch_factor, "worker_init_fn": worker_init}
        return DataLoader(dataset, num_workers=self.num_workers, collate_fn=collate_train,
                          pin_memory=self.pin_memory, **extra, **kwargs)

    def batches(self, start: DataPosition) -> Iterator[tuple[DataPosition, dict[str, Any]]]:
        pos = DataPosition(start.epoch, start.batch, dict(start.streams))
        if self.stream is None:
            sampler = EpochBatchSampler(len(self.samples), self.epoch_samples, self.per_rank, self.rank,
                                        self.world_size, self.seed, pos)
            for batch in self._loader(self.samples, batch_sampler=sampler):
                pos = _advance(pos, self.batches_per_epoch)
                yield pos, batch
            return
        while True:
            skip = pos.streams if pos.batch else {}
            self.stream.start_at(pos.epoch, skip, pos.batch % max(1, self.num_workers))
            loader = self._loader(self.stream, batch_size=self.per_rank, drop_last=True)
            for batch in loader:
                streams = dict(pos.streams)
                for meta in batch.get("meta", []):
                    slot, consumed = meta.pop("stream")
                    streams[slot] = max(streams.get(slot, 0), consumed)
                pos = _advance(DataPosition(pos.epoch, pos.batch, streams), self.batches_per_epoch)
                yield pos, batch
                if pos.batch == 0:
                    break  # epoch done: new workers for the next epoch's streams
            del loader


def _advance(pos: DataPosition, batches_per_epoch: int) -> DataPosition:
    if pos.batch + 1 >= batches_per_epoch:
        return DataPosition(pos.epoch + 1, 0, {})
    return DataPosition(pos.epoch, pos.batch + 1, pos.streams)
