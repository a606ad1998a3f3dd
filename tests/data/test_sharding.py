"""Transcoding into segments, ``mmv shard``, and training samples read back from shards."""

import io
import json

import av
import numpy as np
import pytest
import torch

from mmv.cli import main
from mmv.data.captions import Narration
from mmv.data.clips import ClipBuilder
from mmv.data.samples import Skipped
from mmv.data.sharding import ShardDecoder, shard_items
from mmv.data.shards import ShardDataset, iter_tar_samples
from mmv.data.sources.base import ClipItem
from mmv.data.text import Tokenizer, Vocabulary
from mmv.data.transcode import TranscodeSettings, output_size, transcode_segments
from mmv.models.config import InputProtocol
from tests.data.fixtures import BBB_CLIP, find_bursts, read_frame_index, write_text_as_video, write_video

SETTINGS = TranscodeSettings(segment_seconds=2.0, fps=5.0, short_side=48, gop=5)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    # 5 s at 25 fps, 64x48, a tone burst every 0.5 s from 0.25 s
    return write_video(tmp_path_factory.mktemp("src") / "cooking.mp4", num_frames=125, fps=25, width=64, height=48)


def decoded(segment):
    with av.open(io.BytesIO(segment.data)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    with av.open(io.BytesIO(segment.data)) as c:
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    return frames, audio


def test_output_size_keeps_aspect_with_even_sides():
    assert output_size(1280, 720, 256) == (456, 256)
    assert output_size(240, 320, 100) == (100, 134)
    assert output_size(97, 61, 48) == (76, 48)


def test_segments_hold_the_right_frames_and_sound(video):
    segments = list(transcode_segments(video, SETTINGS))
    assert [(s.start, s.end, s.num_frames) for s in segments] == [(0.0, 2.0, 10), (2.0, 4.0, 10), (4.0, 5.0, 5)]
    frames, audio = decoded(segments[1])
    # output frame j of segment 1 is shown at 2 + j/5 s: source frame 50 + 5j of the 25 fps video
    assert [read_frame_index(f) for f in frames] == [50 + 5 * j for j in range(10)]
    assert frames[0].shape == (48, 64, 3)
    bursts = find_bursts(audio[:96000], 48000)
    assert np.allclose(bursts, [0.25, 0.75, 1.25, 1.75], atol=0.03)  # 2.25 s ... of the source


def test_transcoding_a_real_clip():
    if not BBB_CLIP.is_file():
        pytest.skip("shared clips not present")
    segments = list(transcode_segments(BBB_CLIP, TranscodeSettings(segment_seconds=10, fps=10, short_side=128)))
    assert [s.num_frames for s in segments] == [100, 100, 100] and all(s.has_audio for s in segments)
    frames, audio = decoded(segments[2])
    assert frames[0].shape == (128, 228, 3) and np.abs(audio).max() > 0.01


def test_shard_items_and_read_back(video, tmp_path):
    bad = write_text_as_video(tmp_path / "broken.mp4")
    narrations = (Narration(0.5, 1.0, "crack eggs"), Narration(2.5, 3.0, "whisk"), Narration(60.0, 61.0, "serve"))
    items = [ClipItem(str(video), narrations, source="ht", video_id="cooking"), ClipItem(str(bad), source="ht")]
    report = shard_items(items, tmp_path / "shards", SETTINGS, margin=10.0, max_samples=2)
    assert report.items == 1 and report.problems == {"videos that could not be transcoded": 1}
    index = json.loads((tmp_path / "shards" / "shards.json").read_text())
    assert index["samples"] == 3 and index["settings"]["fps"] == 5.0
    assert index["report"]["problems"] == report.problems
    samples = [s for url in ["shard-000000.tar", "shard-000001.tar"]
               for s in iter_tar_samples(str(tmp_path / "shards" / url))]
    assert [s["__key__"] for s in samples] == ["ht_cooking_00000", "ht_cooking_00001", "ht_cooking_00002"]
    record = json.loads(samples[1]["json"])
    assert (record["start"], record["end"], record["has_audio"]) == (2.0, 4.0, True)
    # narrations within 10 s of the segment, in segment time; the one at 60 s is too far
    assert record["narrations"] == [{"start": -1.5, "end": -1.0, "text": "crack eggs"},
                                    {"start": 0.5, "end": 1.0, "text": "whisk"}]

    protocol = InputProtocol(num_frames=4, fps=5.0, resize_short_side=48, crop_size=48, eval_crop_size=48, max_words=4)
    tokenizer = Tokenizer(Vocabulary.from_words(["crack", "eggs", "whisk"]), max_words=4)
    dataset = ShardDataset(tmp_path / "shards", decode=ShardDecoder(ClipBuilder(protocol, tokenizer, 2), seed=0))
    out = list(dataset)
    assert len(out) == 3 and not any(isinstance(s, Skipped) for s in out)
    second = out[1]
    assert second["video"].shape == (3, 4, 48, 48) and second["audio"].shape == (1, 38, 80)
    # the window (0.8 s) overlaps "whisk" (0.5-1.0 s of the segment): it is row 0
    assert second["text"][0].tolist() == [tokenizer.vocab.id("whisk"), 0, 0, 0]
    assert second["text_mask"].tolist() == [True, True]
    again = list(ShardDataset(tmp_path / "shards", decode=ShardDecoder(ClipBuilder(protocol, tokenizer, 2), seed=0)))
    assert torch.equal(again[1]["video"], second["video"])


def test_cli_shard_and_check(video, tmp_path, capsys):
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "cooking.mp4").write_bytes(video.read_bytes())
    write_text_as_video(folder / "notes.mp4")
    assert main(["data", "check", str(folder), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] == [str(folder / "cooking.mp4")] and report["without_audio"] == []
    assert [b["path"] for b in report["bad"]] == [str(folder / "notes.mp4")]
    assert main(["shard", str(folder), str(tmp_path / "out"), "--segment", "2", "--fps", "5",
                 "--short-side", "48"]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "1 usable videos" in out and "1 videos that could not be transcoded" in out
    assert json.loads((tmp_path / "out" / "shards.json").read_text())["samples"] == 3
