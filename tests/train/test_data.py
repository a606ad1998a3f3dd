"""The training loader: rank split, exact resume positions (map-style and shard streams), mixing, bad files."""

from __future__ import annotations

import json

import pytest
import torch

from mmv.data.clips import ClipBuilder
from mmv.data.samples import Skipped
from mmv.data.sharding import shard_items
from mmv.data.sources.spec import load_items, read_spec
from mmv.data.text import Tokenizer, Vocabulary
from mmv.data.transcode import TranscodeSettings
from mmv.errors import DataError
from mmv.train.data import DataPosition, EpochBatchSampler, RetryingSamples, TrainingData, load_sources
from mmv.train.step import protocol_for
from tests.train.fixtures import build_dataset, tiny_config

TENSORS = ("video", "audio", "audio_mask", "text", "text_mask")


def _take(it, n):
    return [next(it) for _ in range(n)]


def test_ranks_split_each_global_batch_and_resume_mid_epoch():
    one = EpochBatchSampler(10, 10, batch_size=4, seed=3)
    r0 = EpochBatchSampler(10, 10, batch_size=2, rank=0, world_size=2, seed=3)
    r1 = EpochBatchSampler(10, 10, batch_size=2, rank=1, world_size=2, seed=3)
    assert one.batches_per_epoch == 2  # the last 2 samples of each epoch are dropped
    whole = _take(iter(one), 6)
    halves = [a + b for a, b in zip(_take(iter(r0), 6), _take(iter(r1), 6))]
    assert whole == halves  # the ranks together see exactly the single-process batches
    assert [b[0][0] for b in whole] == [0, 0, 1, 1, 2, 2]  # (epoch, index) pairs
    assert {i for b in whole[:2] for _, i in b} <= set(range(10)) and len({i for b in whole[:2] for _, i in b}) == 8
    assert whole[0] != whole[2]  # each epoch has its own order
    resumed = EpochBatchSampler(10, 10, batch_size=4, seed=3, start=DataPosition(epoch=1, batch=1))
    assert _take(iter(resumed), 3) == whole[3:6]
    longer = EpochBatchSampler(3, 9, batch_size=3, seed=0)  # epochs longer than the item list repeat it
    assert sorted(i for b in _take(iter(longer), 3) for _, i in b) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    with pytest.raises(ValueError, match="holds no global batch"):
        EpochBatchSampler(3, 3, batch_size=4)


class _Flaky(torch.utils.data.Dataset):
    """Even indices are unreadable; odd ones give their index."""

    epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return 50

    def __getitem__(self, i):
        return Skipped(f"/videos/{i}.mp4", "broken") if i % 2 == 0 else {"x": i, "meta": {}}


def test_unreadable_samples_are_replaced_and_reported():
    samples = RetryingSamples(_Flaky(), seed=0, max_retries=20)
    out = samples[(0, 4)]
    assert out["x"] % 2 == 1 and out["meta"]["skipped"][0] == ("/videos/4.mp4", "broken")
    assert samples[(0, 4)]["x"] == out["x"]  # the replacement is seeded
    assert samples[(0, 3)] == {"x": 3, "meta": {"skipped": []}}
    with pytest.raises(DataError, match=r"1 draws in a row could not be used.*mmv data check"):
        RetryingSamples(_Flaky(), seed=0, max_retries=0)[(0, 2)]
    # raised in a DataLoader worker, it reaches the trainer as a DataError still (the CLI reports it, exit 2)
    loader = torch.utils.data.DataLoader(RetryingSamples(_Flaky(), seed=0, max_retries=0), batch_size=None,
                                         sampler=[(0, 2)], num_workers=1)
    with pytest.raises(DataError, match=r"draws in a row could not be used"):
        next(iter(loader))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    spec = build_dataset(root, n=4)
    (root / "videos" / "vid9.mp4").write_bytes(b"not a video at all")  # narrated, listed, undecodable
    captions = json.loads((root / "caption.json").read_text())
    captions["vid9"] = captions["vid0"]
    (root / "caption.json").write_text(json.dumps(captions))
    return spec


def _builder(spec, out):
    config = tiny_config(spec, out)
    protocol = protocol_for(config)
    vocab = Vocabulary.build(["red green blue yellow stripes bars squares plain"])
    return ClipBuilder(protocol, Tokenizer(vocab, protocol.max_words), num_candidates=3)


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in TENSORS)


def test_map_style_resume_and_skips(dataset, tmp_path):
    builder = _builder(dataset, tmp_path)
    data = TrainingData(load_sources(dataset), builder, batch_size=2, seed=1)
    assert data.batches_per_epoch == 2  # 5 items, batch 2
    run = _take(data.batches(DataPosition()), 5)
    assert [(p.epoch, p.batch) for p, _ in run] == [(0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    assert all(b["size"] == 2 and b["video"].shape == (2, 3, 4, 32, 32) for _, b in run)
    skipped = [s for _, b in run for s in b["skipped"]]
    assert skipped and all(path.endswith("vid9.mp4") for path, _ in skipped)  # replaced, and reported
    resumed = _take(data.batches(run[1][0]), 3)
    assert all(_same(a, b) for (_, a), (_, b) in zip(run[2:], resumed))
    assert [p for p, _ in resumed] == [p for p, _ in run[2:]]
    assert not torch.equal(run[0][1]["video"], run[2][1]["video"])


def test_two_sources_are_mixed_by_weight(dataset, tmp_path):
    folder = dataset.parent / "videos"
    spec = tmp_path / "mixed.json"
    spec.write_text(json.dumps({"sources": [
        {"type": "howto100m", "name": "ht", "videos": str(folder), "captions": str(dataset.parent / "caption.json"),
         "weight": 3},
        {"type": "folder", "name": "plain", "videos": str(folder), "weight": 1}]}))
    data = TrainingData(load_sources(spec), _builder(dataset, tmp_path), batch_size=4, seed=0, epoch_samples=8)
    metas = [m for _, b in _take(data.batches(DataPosition()), 2) for m in b["meta"]]
    sources = [m["source"] for m in metas]
    assert set(sources) == {"ht", "plain"}
    # folder items have no narrations: their text rows are all masked
    batches = _take(data.batches(DataPosition()), 2)
    for _, b in batches:
        for meta, mask in zip(b["meta"], b["text_mask"]):
            assert bool(mask.any()) == (meta["source"] == "ht")


@pytest.fixture(scope="module")
def shards(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    items, _ = load_items(read_spec(dataset)[0])
    items = [i for i in items if not i.path.endswith("vid9.mp4")]
    shard_items(items, out, TranscodeSettings(segment_seconds=2, fps=4, short_side=36), max_samples=3)
    return out


@pytest.mark.parametrize("workers", [0, 2])
def test_shard_stream_resumes_exactly(dataset, shards, tmp_path, workers):
    builder = _builder(dataset, tmp_path)
    sources = load_sources(shards)
    assert sources.streaming and sources.shard_samples[next(iter(sources.shard_samples))] == 8
    data = TrainingData(sources, builder, batch_size=2, seed=0, num_workers=workers, shuffle_buffer=3)
    assert data.batches_per_epoch == 4
    run = _take(data.batches(DataPosition()), 7)
    assert [(p.epoch, p.batch) for p, _ in run] == [(0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3)]
    position = run[4][0]
    assert position.streams  # raw items read per slot
    resumed = _take(data.batches(position), 2)
    assert all(_same(a, b) for (_, a), (_, b) in zip(run[5:], resumed))
    keys = [m["path"] for _, b in run for m in b["meta"]]
    assert all("#" in k for k in keys)  # shard#key
