"""Tar shards: writing, streaming, and splitting over ranks and workers without duplicates."""

import functools
import http.server
import json
import tarfile
import threading

import pytest
from torch.utils.data import DataLoader

from mmv.data.samples import Skipped
from mmv.data.shards import ShardDataset, ShardWriter, assign_shards, expand_urls, iter_tar_samples
from mmv.errors import DataError


def write_numbered(folder, n_samples, per_shard):
    with ShardWriter(folder, max_samples=per_shard) as writer:
        for i in range(n_samples):
            writer.write(f"s{i:04d}", {"txt": str(i).encode(), "json": json.dumps({"i": i}).encode()})
    return folder


def numbers(samples):
    return [int(s["txt"]) for s in samples if not isinstance(s, Skipped)]


def test_writer_layout_and_index(tmp_path):
    write_numbered(tmp_path, 7, per_shard=3)
    index = json.loads((tmp_path / "shards.json").read_text())
    assert index["samples"] == 7 and [s["samples"] for s in index["shards"]] == [3, 3, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-000000.tar", "shard-000001.tar",
                                                         "shard-000002.tar", "shards.json"]
    with tarfile.open(tmp_path / "shard-000000.tar") as tar:
        assert tar.getnames() == ["s0000.txt", "s0000.json", "s0001.txt", "s0001.json", "s0002.txt", "s0002.json"]
    samples = list(iter_tar_samples(str(tmp_path / "shard-000001.tar")))
    assert [s["__key__"] for s in samples] == ["s0003", "s0004", "s0005"]
    assert json.loads(samples[0]["json"]) == {"i": 3}


def test_writer_refuses_bad_keys_and_cleans_up_on_failure(tmp_path):
    writer = ShardWriter(tmp_path)
    with pytest.raises(ValueError, match="without"):
        writer.write("a.b", {"txt": b""})
    writer.write("a", {"txt": b""})
    with pytest.raises(ValueError, match="duplicate"):
        writer.write("a", {"txt": b""})
    with pytest.raises(RuntimeError), ShardWriter(tmp_path / "fail") as failing:
        failing.write("x", {"txt": b"1"})
        raise RuntimeError("interrupted")
    assert list((tmp_path / "fail").iterdir()) == []


def test_expand_urls(tmp_path):
    assert expand_urls("data/s-{08..10}.tar") == ["data/s-08.tar", "data/s-09.tar", "data/s-10.tar"]
    assert expand_urls(["a.tar,b.tar", "c-{1..2}.tar"]) == ["a.tar", "b.tar", "c-1.tar", "c-2.tar"]
    assert expand_urls("https://host/x-{0..1}.tar") == ["https://host/x-0.tar", "https://host/x-1.tar"]
    write_numbered(tmp_path, 4, per_shard=2)
    assert expand_urls(tmp_path) == [str(tmp_path / "shard-000000.tar"), str(tmp_path / "shard-000001.tar")]


@pytest.mark.parametrize("shards,slots", [(5, 2), (4, 4), (2, 5), (1, 3), (3, 8), (7, 3)])
def test_assignment_covers_every_sample_once(shards, slots):
    per_shard = 6
    seen = []
    for slot in range(slots):
        a = assign_shards([f"u{i}" for i in range(shards)], slot, slots)
        for url in a.urls:
            seen += [(url, j) for j in range(per_shard) if j % a.stride == a.offset]
    assert sorted(seen) == sorted((f"u{i}", j) for i in range(shards) for j in range(per_shard))


def test_ranks_and_workers_read_disjoint_samples(tmp_path, monkeypatch):
    write_numbered(tmp_path, 12, per_shard=4)  # 3 shards for 2 ranks x 2 workers: some shards are shared
    seen = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        loader = DataLoader(ShardDataset(tmp_path), batch_size=None, num_workers=2)
        seen += numbers(loader)
    assert sorted(seen) == list(range(12))


def test_shuffling_is_per_epoch_and_reproducible(tmp_path):
    write_numbered(tmp_path, 20, per_shard=5)
    dataset = ShardDataset(tmp_path, shuffle_buffer=6, seed=1)
    first, again = numbers(dataset), numbers(dataset)
    assert first == again and sorted(first) == list(range(20)) and first != list(range(20))
    dataset.set_epoch(1)
    assert numbers(dataset) != first


def test_resampled_stream_is_endless(tmp_path):
    write_numbered(tmp_path, 4, per_shard=2)
    stream = iter(ShardDataset(tmp_path, resampled=True, seed=0))
    drawn = [int(next(stream)["txt"]) for _ in range(30)]
    assert set(drawn) == {0, 1, 2, 3}


def test_damaged_shards_and_samples_become_skipped_records(tmp_path):
    write_numbered(tmp_path, 6, per_shard=3)
    first = tmp_path / "shard-000000.tar"
    first.write_bytes(first.read_bytes()[:1500])  # cut inside the second sample

    def decode(raw):
        if raw["__key__"] == "s0004":
            raise DataError(raw["__key__"], "cannot decode")
        return raw

    out = list(ShardDataset(tmp_path, decode=decode))
    skipped = [s for s in out if isinstance(s, Skipped)]
    assert numbers(out) == [3, 5]  # the cut sample 0 is not handed out half-read
    assert [s.reason for s in skipped] == ["truncated shard: no end-of-archive marker", "cannot decode"]
    whole = tmp_path / "shard-000001.tar"
    data = whole.read_bytes()
    whole.write_bytes(data[:2048 + 1024])  # cut exactly after the second member: no marker either
    assert [s.reason for s in ShardDataset(whole) if isinstance(s, Skipped)] == [
        "truncated shard: no end-of-archive marker"]
    assert skipped[1].path.endswith("shard-000001.tar#s0004")
    with pytest.raises(DataError, match="no shards found"):
        ShardDataset(tmp_path / "empty-{1..0}.tar")


def test_streaming_over_http(tmp_path):
    write_numbered(tmp_path, 5, per_shard=5)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/shard-{{000000..000000}}.tar"
        assert numbers(ShardDataset(url)) == [0, 1, 2, 3, 4]
        missing = f"http://127.0.0.1:{server.server_address[1]}/nope.tar"
        assert "cannot open shard" in list(ShardDataset(missing))[0].reason
    finally:
        server.shutdown()
