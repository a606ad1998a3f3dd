"""WebDataset-style tar shards: writing them, and streaming them to many workers and ranks.

A shard is a plain POSIX tar; the files of one sample share a key (``<key>.mp4``, ``<key>.json``),
as in WebDataset, so shards can be read with WebDataset too. ``shards.json`` beside the shards lists
them with their sample counts. Reading splits the shards over (rank, worker) slots without
duplicates; with fewer shards than slots, the slots that share a shard take every m-th sample of it.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import tarfile
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Optional

import torch
from torch.utils.data import IterableDataset, get_worker_info

from mmv.atomic import atomic_write_text
from mmv.data.samples import Skipped
from mmv.errors import DataError

INDEX_FILE = "shards.json"
_BRACES = re.compile(r"\{(\d+)\.\.(\d+)\}")


class ShardWriter:
    """Writes samples into ``out_dir/{prefix}-000000.tar``, ``-000001.tar`` ... and an index.

    A shard is closed after ``max_samples`` samples or ``max_bytes`` bytes, written under a temporary
    name and renamed when complete, so an interrupted run never leaves a half shard under a real name.
    """

    def __init__(self, out_dir: str | Path, prefix: str = "shard", max_samples: int = 1000,
                 max_bytes: int = 1 << 30):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.prefix, self.max_samples, self.max_bytes = prefix, max_samples, max_bytes
        self.shards: list[dict[str, Any]] = []
        self.extra: dict[str, Any] = {}  # stored in the index at close
        self._tar: Optional[tarfile.TarFile] = None
        self._count = self._bytes = 0
        self._keys: set[str] = set()

    def write(self, key: str, files: dict[str, bytes]) -> None:
        """Add one sample: ``files`` maps an extension (``"mp4"``, ``"json"``) to its bytes."""
        if "." in key or "/" in key or not key:
            raise ValueError(f"sample key {key!r} must be non-empty without '.' or '/'")
        if key in self._keys:
            raise ValueError(f"duplicate sample key {key!r}")
        self._keys.add(key)
        if self._tar is None:
            self._open()
        for ext, data in files.items():
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            self._tar.addfile(info, io.BytesIO(data))
            self._bytes += len(data) + 512
        self._count += 1
        if self._count >= self.max_samples or self._bytes >= self.max_bytes:
            self._close()

    def _open(self) -> None:
        name = f"{self.prefix}-{len(self.shards):06d}.tar"
        self._tmp = self.out_dir / f".{name}.tmp"
        self._name = name
        self._tar = tarfile.open(self._tmp, "w", format=tarfile.USTAR_FORMAT)
        self._count = self._bytes = 0

    def _close(self) -> None:
        if self._tar is None:
            return
        self._tar.close()
        os.replace(self._tmp, self.out_dir / self._name)
        self.shards.append({"name": self._name, "samples": self._count})
        self._tar = None

    def close(self) -> Path:
        """Finish the last shard and write ``shards.json`` (with ``extra``); returns its path."""
        self._close()
        index = {"shards": self.shards, "samples": sum(s["samples"] for s in self.shards), **self.extra}
        return atomic_write_text(self.out_dir / INDEX_FILE, json.dumps(index, indent=2) + "\n")

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            self.close()
        elif self._tar is not None:  # failed: drop the partial shard
            self._tar.close()
            self._tmp.unlink(missing_ok=True)


def expand_urls(spec: str | Path | Iterable[str]) -> list[str]:
    """Shard locations from a folder (its ``shards.json`` or ``*.tar``), a brace pattern
    (``data/shard-{000000..000099}.tar``), a comma list, a URL, or a list of those."""
    if not isinstance(spec, (str, Path)):
        return [url for item in spec for url in expand_urls(item)]
    spec = str(spec)
    if "," in spec and not _is_url(spec):
        return expand_urls(spec.split(","))
    match = _BRACES.search(spec)
    if match:
        lo, hi = match.group(1), match.group(2)
        width = len(lo)
        return [u for i in range(int(lo), int(hi) + 1)
                for u in expand_urls(spec[:match.start()] + f"{i:0{width}d}" + spec[match.end():])]
    path = Path(spec)
    if not _is_url(spec) and path.is_dir():
        index = path / INDEX_FILE
        if index.is_file():
            try:
                return [str(path / s["name"]) for s in json.loads(index.read_text(encoding="utf-8"))["shards"]]
            except (ValueError, KeyError, TypeError) as err:
                raise DataError(index, f"malformed shard index ({err})") from None
        return sorted(str(p) for p in path.glob("*.tar"))
    return [spec]


def _is_url(spec: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*://", spec))


def open_url(url: str) -> IO[bytes]:
    """A readable binary stream for a local path, ``file://`` or ``http(s)://`` URL."""
    if url.startswith(("http://", "https://")):
        try:
            return urllib.request.urlopen(url, timeout=60)  # noqa: S310 - user-given shard location
        except OSError as err:
            raise DataError(url, f"cannot open shard ({err})") from None
    path = url[len("file://"):] if url.startswith("file://") else url
    try:
        return open(path, "rb")
    except OSError as err:
        raise DataError(url, f"cannot open shard ({err.strerror or err})") from None


class _TailStream:
    """Reads through to a stream, remembering the total and the last bytes, to see a tar's end marker."""

    def __init__(self, stream: IO[bytes]):
        self.stream, self.total, self.tail = stream, 0, b""

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.total += len(data)
        self.tail = (self.tail + data)[-_END_MARKER:]
        return data

    def complete(self) -> bool:
        """True when the stream ended with a tar end-of-archive marker (two zero blocks)."""
        while self.read(1 << 16):
            pass
        return self.total % 512 == 0 and self.total >= _END_MARKER and self.tail == bytes(_END_MARKER)


_END_MARKER = 1024


def iter_tar_samples(url: str) -> Iterator[dict[str, Any]]:
    """Samples of one shard as ``{"__key__", "__url__", ext: bytes, ...}``, streaming.

    A shard that is corrupt or cut short raises ``DataError`` after the complete samples before the damage;
    the sample being read when the damage shows is not handed out.
    """
    stream = open_url(url)
    reader = _TailStream(stream)
    try:
        with tarfile.open(fileobj=reader, mode="r|*") as tar:
            current: Optional[dict[str, Any]] = None
            for member in tar:
                if not member.isfile():
                    continue
                base = member.name.rsplit("/", 1)[-1]
                key, _, ext = base.partition(".")
                data = tar.extractfile(member).read()
                if len(data) != member.size:
                    raise DataError(url, f"truncated shard: {member.name} has {len(data)} of {member.size} bytes")
                if current is not None and current["__key__"] != key:
                    yield current
                    current = None
                if current is None:
                    current = {"__key__": key, "__url__": url}
                current[ext] = data
            if not reader.complete():
                raise DataError(url, "truncated shard: no end-of-archive marker")
            if current is not None:
                yield current
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DataError(url, f"corrupt or truncated shard ({err})") from None
    finally:
        stream.close()


def distributed_slot() -> tuple[int, int]:
    """(index, count) of this (rank, DataLoader worker) among all readers."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    else:
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    info = get_worker_info()
    worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
    return rank * workers + worker, world * workers


@dataclass(frozen=True)
class ShardAssignment:
    """Which shards a slot reads, and which of their samples (every ``stride``-th from ``offset``)."""

    urls: list[str]
    offset: int = 0
    stride: int = 1


def assign_shards(urls: list[str], slot: int, slots: int) -> ShardAssignment:
    """Split shards over ``slots`` readers so that every sample is read by exactly one of them."""
    if not urls:
        raise ValueError("no shards to read")
    if len(urls) >= slots:
        return ShardAssignment(urls[slot::slots])
    shard = slot % len(urls)
    sharing = len(range(shard, slots, len(urls)))  # slots reading this shard
    return ShardAssignment([urls[shard]], offset=slot // len(urls), stride=sharing)


class ShardDataset(IterableDataset):
    """Streams samples from tar shards, split over ranks and workers, shuffled per epoch.

    Args:
      urls: anything ``expand_urls`` accepts.
      decode: turns a raw sample (``{"__key__", "mp4": bytes, "json": bytes}``) into what the loader
        yields. A ``DataError`` (from it, or from a damaged shard) yields a ``Skipped`` record instead,
        so that the skip travels with the batch to the trainer, which counts and reports it.
      shuffle_buffer: samples held for shuffling (0: shard order, no shuffling).
      resampled: draw shards with replacement forever (multi-epoch training with any shard count).
      seed: shard order, shuffling and resampling are functions of (seed, epoch, slot).
    """

    def __init__(self, urls: str | Iterable[str], decode: Callable[[dict[str, Any]], Any] = lambda s: s,
                 shuffle_buffer: int = 0, resampled: bool = False, seed: int = 0):
        super().__init__()
        self.urls = expand_urls(urls)
        if not self.urls:
            raise DataError(str(urls), "no shards found")
        self.decode, self.shuffle_buffer, self.resampled, self.seed = decode, shuffle_buffer, resampled, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _raw(self, rng: random.Random, slot: int, slots: int) -> Iterator[dict[str, Any]]:
        if self.resampled:
            while True:
                yield from self._read(rng.choice(self.urls), 0, 1)
        assignment = assign_shards(self.urls, slot, slots)
        urls = list(assignment.urls)
        if self.shuffle_buffer:
            rng.shuffle(urls)
        for url in urls:
            yield from self._read(url, assignment.offset, assignment.stride)

    def _read(self, url: str, offset: int, stride: int) -> Iterator[dict[str, Any] | Skipped]:
        try:
            for i, sample in enumerate(iter_tar_samples(url)):
                if i % stride == offset:
                    yield sample
        except DataError as err:
            yield Skipped(err.path, err.reason)

    def __iter__(self) -> Iterator[Any]:
        slot, slots = distributed_slot()
        rng = random.Random(f"{self.seed}/{self.epoch}/{slot}")
        buffer: list[Any] = []
        for raw in self._raw(rng, slot, slots):
            if isinstance(raw, Skipped):
                yield raw
                continue
            raw["__epoch__"] = self.epoch
            try:
                sample = self.decode(raw)
            except DataError as err:
                sample = Skipped(f"{raw['__url__']}#{raw['__key__']}", err.reason)
            if not self.shuffle_buffer:
                yield sample
                continue
            buffer.append(sample)
            if len(buffer) >= self.shuffle_buffer:
                yield buffer.pop(rng.randrange(len(buffer)))
        rng.shuffle(buffer)
        yield from buffer
