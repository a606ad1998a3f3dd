"""The demo dataset: real files the loader reads, a digit where the manifest says, speech when it says, captions
in HowTo100M format, disjoint splits, a cache that never trusts a half-built folder, and determinism."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mlxtend")
pytest.importorskip("espeakng_loader")

from mmv.data.sources.howto100m import howto100m_items  # noqa: E402
from mmv.data.text import tokenize  # noqa: E402
from mmv.data.video import decode_clip, probe_video  # noqa: E402
from mmv.demo import dataset as ds  # noqa: E402
from mmv.demo.render import digit_alpha  # noqa: E402

from ..data.fixtures import SHARED  # noqa: E402

FSDD = SHARED / "data" / "fsdd" / "recordings"
SMALL = dict(num_train=6, num_test=4, seconds=3.0, fps=10, size=48, seed=5)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return ds.build_digit_dataset(tmp_path_factory.mktemp("demo") / "digits", workers=1, **SMALL)


def _luma(frame: np.ndarray) -> np.ndarray:
    return frame.astype(np.float64) / 255 @ np.array([0.299, 0.587, 0.114])


def test_layout_and_files_decode(built):
    m = built.manifest()
    assert [e["id"] for e in m["videos"]] == [f"train_{i:05d}" for i in range(6)] + [f"test_{i:05d}" for i in range(4)]
    assert sorted(p.name for p in built.videos("train").iterdir()) == [f"train_{i:05d}.mp4" for i in range(6)]
    for e in m["videos"]:
        info = probe_video(built.root / e["file"])
        assert (info.width, info.height, info.fps) == (48, 48, 10.0)
        assert (info.has_audio, info.audio_sample_rate, info.audio_channels) == (True, 48000, 1)
        assert info.duration == pytest.approx(3.0, abs=0.01)
        assert len(e["track"]) == 30
    assert built.labels() == {e["id"]: e["digit"] for e in m["videos"]}
    assert sorted(built.labels()[f"train_{i:05d}"] for i in range(6)) != [built.labels()["train_00000"]] * 6


def test_frames_show_the_digit_on_its_track(built):
    images, labels = ds.load_mnist()
    size = built.settings["size"]
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    for e in built.manifest()["videos"]:
        assert labels[e["image_index"]] == e["digit"]
        frames = decode_clip(built.root / e["file"], 0.0, 30, 10).frames.numpy()
        for t in (0, 14, 29):
            cx, cy, side = e["track"][t]
            alpha = digit_alpha(images[e["image_index"]], cx, cy, side, size)
            lum = _luma(frames[t])
            background = lum[(np.abs(xx - cx) >= side / 2) | (np.abs(yy - cy) >= side / 2)].mean()
            strokes = alpha > 0.6
            elsewhere = (alpha[::-1, ::-1] > 0.6) & (alpha < 0.05)  # the same shape where the digit is not
            assert abs(lum[strokes].mean() - background) > 0.25, (e["id"], t)  # measured >= 0.37
            assert abs(lum[elsewhere].mean() - background) < 0.15, (e["id"], t)  # measured <= 0.07
        # the digit moves: the first and last frames' strokes are not at the same place
        a0 = digit_alpha(images[e["image_index"]], *e["track"][0], size) > 0.5
        a1 = digit_alpha(images[e["image_index"]], *e["track"][-1], size) > 0.5
        assert (a0 & a1).sum() < a0.sum()


def test_speech_is_heard_when_the_manifest_says(built):
    sr = 48000
    checked = 0
    for e in built.manifest()["videos"]:
        audio = decode_clip(built.root / e["file"], 0.0, 30, 10, with_audio=True).audio.numpy()
        assert audio.size == 3 * sr and np.abs(audio).max() <= 1.0
        speaking = np.zeros(audio.size, bool)
        for u in e["utterances"]:
            assert 0.0 <= u["start"] < u["end"] <= 3.0 and u["word"] == ds.DIGIT_WORDS[e["digit"]]
            speaking[int(u["start"] * sr):int(u["end"] * sr)] = True
        quiet = ~np.convolve(speaking, np.ones(int(0.05 * sr)), "same").astype(bool)  # 25 ms away from speech
        quiet[: int(0.05 * sr)] = False  # AAC's start-up
        if quiet.sum() < 0.15 * sr:
            continue
        floor = np.sqrt(np.mean(audio[quiet] ** 2))
        for u in e["utterances"]:
            part = audio[int(u["start"] * sr):int(u["end"] * sr)]
            assert np.sqrt(np.mean(part ** 2)) > 1.5 * floor, e["id"]  # SNR >= 6 dB gives >= 2.2
        checked += 1
    assert checked >= 5


def test_captions_are_howto100m_narrations(built):
    m = built.manifest()
    by_id = {e["id"]: e for e in m["videos"]}
    mentions = 0
    for split, n in (("train", 6), ("test", 4)):
        items, report = howto100m_items(built.videos(split), built.captions(split))
        assert len(items) == n and report.items == n and not report.problems
        for item in items:
            narrations = by_id[item.video_id]["narrations"]
            assert 2 <= len(item.narrations) <= ds.MAX_TAKES  # one per take of the spoken digit
            assert sorted((n_["start"], n_["end"], n_["text"]) for n_ in narrations) == \
                [(x.start, x.end, x.text) for x in item.narrations]
            digit = by_id[item.video_id]["digit"]
            for n_ in narrations:
                words = tokenize(n_["text"])
                said = ds.DIGIT_WORDS[digit] in words or str(digit) in words
                assert said == n_["mentions_digit"], n_["text"]
                mentions += said
                assert 0.0 <= n_["start"] < n_["end"] <= 3.0
    assert 0 < mentions


def test_every_training_window_hears_the_digit_and_no_narration_gives_the_motion_away(built):
    """The two fixes that made the demo learn (docs/demo.md): the word is said throughout the video, so any
    one-second clip hears a good part of it; and no narration holds a word that the motion alone could match."""
    for e in built.manifest()["videos"]:
        spans = [(u["start"], u["end"]) for u in e["utterances"]]
        assert all(b0 > a1 for (_, a1), (b0, _) in zip(spans, spans[1:]))  # in order, never overlapping
        assert spans[-1][1] <= 3.0
        for start in np.arange(0.0, 2.0 + 1e-9, 0.05):
            heard = sum(max(0.0, min(b, start + 1.0) - max(a, start)) for a, b in spans)
            assert heard >= 0.2, (e["id"], start, spans)  # 0.26 s at least over the 3,100 default videos
        for n_ in e["narrations"]:
            assert not {"left", "right", "up", "down"} & set(tokenize(n_["text"])), n_["text"]


def test_train_and_test_share_no_image_and_no_voice(built):
    m = built.manifest()
    split = {s: [e for e in m["videos"] if e["split"] == s] for s in ("train", "test")}
    assert not {e["image_index"] for e in split["train"]} & {e["image_index"] for e in split["test"]}
    assert not {e["speaker"] for e in split["train"]} & {e["speaker"] for e in split["test"]}
    pools = ds.image_pools(ds.load_mnist()[1])
    for d in range(10):
        assert not set(pools["train"][d]) & set(pools["test"][d]) and len(pools["test"][d]) == 100
    train_voices, test_voices = ds.espeak_voices("train"), ds.espeak_voices("test")
    accents = [{v.split("+")[0] for v in vs} for vs in (train_voices, test_voices)]
    variants = [{v.split("+")[1] for v in vs} for vs in (train_voices, test_voices)]
    assert not accents[0] & accents[1] and not variants[0] & variants[1]
    assert {e["speaker"] for e in split["test"]} <= set(test_voices)


def test_cached_reused_rebuilt_and_never_half_trusted(tmp_path):
    root = tmp_path / "d"
    tiny = dict(num_train=2, num_test=1, seconds=1.5, size=32, workers=1)
    first = ds.build_digit_dataset(root, **tiny)
    assert not first.reused and (root / "COMPLETE").exists()
    video = root / "train" / "videos" / "train_00000.mp4"
    stamp = video.stat().st_mtime_ns
    again = ds.build_digit_dataset(root, **tiny)
    assert again.reused and again.settings_hash == first.settings_hash and video.stat().st_mtime_ns == stamp
    other = ds.build_digit_dataset(root, seed=1, **tiny)
    assert not other.reused and other.settings_hash != first.settings_hash
    assert json.loads((root / "manifest.json").read_text())["settings"]["seed"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no temporary folders left
    # a crash after the files but before the marker: rebuilt, not reused
    (root / "COMPLETE").unlink()
    assert not ds.build_digit_dataset(root, seed=1, **tiny).reused
    # the temporary folder of a dead build is cleaned up
    stale = tmp_path / ".d.building-999999999-dead"
    (stale / "train").mkdir(parents=True)
    ds.build_digit_dataset(root, seed=2, **tiny)
    assert not stale.exists()
    # a folder that is not ours is never overwritten
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        ds.build_digit_dataset(foreign, **tiny)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_same_seed_same_dataset_whatever_the_workers(built, tmp_path):
    progress = []
    twin = ds.build_digit_dataset(tmp_path / "twin", workers=2, progress=lambda d, n: progress.append((d, n)), **SMALL)
    assert progress[-1] == (10, 10) and len(progress) == 10
    for name in ("manifest.json", "labels.json", "train/caption.json", "test/caption.json"):
        assert (twin.root / name).read_bytes() == (built.root / name).read_bytes(), name
    for e in twin.manifest()["videos"]:  # the encoded files too: speech, noise, frames, codecs are deterministic
        assert (twin.root / e["file"]).read_bytes() == (built.root / e["file"]).read_bytes(), e["file"]


@pytest.mark.skipif(not FSDD.is_dir(), reason="no Free Spoken Digit Dataset recordings in ../shared")
def test_fsdd_voices_are_real_people_split_by_speaker(tmp_path):
    info = ds.build_digit_dataset(tmp_path / "fsdd", num_train=3, num_test=2, seconds=2.0, size=32, workers=1,
                                  fsdd_path=FSDD)
    m = info.manifest()
    assert m["settings"]["speech"] == "fsdd"
    train = {e["speaker"] for e in m["videos"] if e["split"] == "train"}
    test = {e["speaker"] for e in m["videos"] if e["split"] == "test"}
    assert train <= {"george", "jackson", "lucas", "nicolas"} and test <= {"theo", "yweweler"}
    for e in m["videos"]:
        for u in e["utterances"]:
            digit, speaker, _ = u["recording"].split("_")
            assert (int(digit), speaker) == (e["digit"], e["speaker"])


def test_fsdd_with_few_speakers_splits_by_take(tmp_path):
    for name in [f"{d}_{s}_{k}.wav" for d in range(10) for s in ("ann", "bob") for k in (0, 4, 5, 9)]:
        (tmp_path / name).write_bytes(b"")
    index = ds.fsdd_index(tmp_path)
    takes = {split: {int(Path(p).stem.split("_")[2]) for sp in index[split].values() for ps in sp.values() for p in ps}
             for split in index}
    assert takes == {"train": {5, 9}, "test": {0, 4}}
    os.remove(tmp_path / "3_ann_0.wav")
    os.remove(tmp_path / "3_ann_4.wav")
    assert sorted(ds.fsdd_index(tmp_path)["test"]) == ["bob"]  # ann lacks a test three


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    broken = tmp_path / "fsdd"
    broken.mkdir()
    for name in [f"{d}_{s}_{k}.wav" for d in range(10) for s in ("ann", "bob") for k in (0, 5)]:
        (broken / name).write_bytes(b"RIFF")  # not a readable wav
    with pytest.raises(ds.BuildError, match=r"(train|test)_\d{5}: ValueError: .*_\d\.wav: not a readable"):
        ds.build_digit_dataset(tmp_path / "d", num_train=2, num_test=2, seconds=1.5, size=32, workers=2,
                               fsdd_path=broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fsdd"]
