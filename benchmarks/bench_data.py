"""Clips per second per worker: decoding raw video files against reading pre-transcoded shards.

Each measurement makes full training samples (window, decode, augmentation, log-mel) in one process,
as one DataLoader worker does, and prints the median time per clip with its spread, and the ratio of
the two paths measured in the same run.

    python benchmarks/bench_data.py                               # the clips in ../shared/data/clips
    python benchmarks/bench_data.py my_videos/ --preset mmv_tiny_tsm --clips 40
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from mmv.data.clips import ClipBuilder, seeded_generator
from mmv.data.sharding import ShardDecoder, shard_items
from mmv.data.shards import ShardDataset
from mmv.data.sources.base import ClipItem, list_videos
from mmv.data.transcode import TranscodeSettings
from mmv.models import get_preset

SHARED_CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips"


def describe(times: list[float]) -> str:
    q = statistics.quantiles(times, n=4) if len(times) >= 4 else [min(times), 0, max(times)]
    med = statistics.median(times)
    return f"median {med * 1e3:7.1f} ms/clip (IQR {q[0] * 1e3:.1f}-{q[2] * 1e3:.1f}), {1 / med:6.1f} clips/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="*", help="video files or folders (default: ../shared/data/clips)")
    parser.add_argument("--preset", default="mmv_s3d", help="model preset whose input protocol to use")
    parser.add_argument("--clips", type=int, default=20, help="clips per measurement")
    parser.add_argument("--shards", help="existing shards to read (default: made from the videos)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one DataLoader worker's view

    paths = []
    for v in args.videos or [SHARED_CLIPS]:
        paths += list_videos(v) if Path(v).is_dir() else [Path(v)]
    if not paths:
        raise SystemExit("no videos given or found")
    protocol = get_preset(args.preset).protocol()
    builder = ClipBuilder(protocol, None, train=True)
    print(f"{len(paths)} videos, protocol of {args.preset}: {protocol.num_frames} frames @ {protocol.fps:g} fps, "
          f"crop {protocol.crop_size}, 1 thread")

    raw_times = []
    for i in range(args.clips):
        path = paths[i % len(paths)]
        start = time.perf_counter()
        builder(str(path), generator=seeded_generator(0, i))
        raw_times.append(time.perf_counter() - start)
    print(f"raw files : {describe(raw_times)}")

    with tempfile.TemporaryDirectory() as tmp:
        shards = args.shards
        if shards is None:
            settings = TranscodeSettings(segment_seconds=max(10.0, protocol.clip_seconds), fps=protocol.fps,
                                         short_side=protocol.resize_short_side)
            start = time.perf_counter()
            shard_items([ClipItem(str(p), source="bench") for p in paths], Path(tmp) / "shards", settings)
            print(f"sharding  : {time.perf_counter() - start:.1f} s for {len(paths)} videos "
                  f"({settings.segment_seconds:g} s segments, {settings.fps:g} fps, short side {settings.short_side})")
            shards = str(Path(tmp) / "shards")
        dataset = ShardDataset(shards, decode=ShardDecoder(builder), resampled=True)
        stream = iter(dataset)
        shard_times = []
        for _ in range(args.clips):
            start = time.perf_counter()
            next(stream)
            shard_times.append(time.perf_counter() - start)
    print(f"shards    : {describe(shard_times)}")
    print(f"speed-up of shards over raw files: {statistics.median(raw_times) / statistics.median(shard_times):.2f}x")


if __name__ == "__main__":
    main()
