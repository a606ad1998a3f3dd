"""Dataset checker: tiny videos written with PyAV, broken copies of them, and the two real clips."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import av
import numpy as np
import pytest

from mmv.data.check import VIDEO_EXTENSIONS, CheckReport, check_dataset, check_video
from mmv.errors import DataError

CLIPS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "clips"
SECONDS, FPS, SIZE = 4, 10, 32


def write_video(path: Path, vcodec: str = "libx264", acodec: str | None = "aac", fmt: str | None = None,
                options: dict | None = None) -> Path:
    """A SECONDS-long 32x32 clip, keyframe every 5 frames, with a 440 Hz tone when acodec is given."""
    with av.open(str(path), "w", format=fmt, options=options or {}) as out:
        video = out.add_stream(vcodec, rate=FPS)
        video.width = video.height = SIZE
        video.pix_fmt = "yuv420p"
        video.gop_size = 5
        if vcodec == "libx264":
            video.options = {"preset": "ultrafast"}
        audio = add_audio(out, acodec) if acodec else None  # every stream before the first packet
        for i in range(SECONDS * FPS):
            frame = av.VideoFrame.from_ndarray(np.full((SIZE, SIZE, 3), i * 6, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())
        if audio is not None:
            write_tone(out, audio)
    return path


def add_audio(out: av.container.OutputContainer, acodec: str) -> av.AudioStream:
    audio = out.add_stream(acodec, rate=16000 if acodec == "aac" else 32000)
    audio.layout = "mono"
    return audio


def write_tone(out: av.container.OutputContainer, audio: av.AudioStream) -> None:
    rate, size = audio.codec_context.sample_rate, audio.codec_context.frame_size or 1024
    fmt = audio.codec_context.format.name
    for t in range(0, SECONDS * rate, size):
        tone = np.sin(np.arange(t, t + size) / rate * 2 * np.pi * 440)[None]
        samples = tone.astype(np.float32) if fmt == "fltp" else (tone * 20000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples, format=fmt, layout="mono")
        frame.sample_rate, frame.pts = rate, t
        out.mux(audio.encode(frame))
    out.mux(audio.encode())


def truncate(src: Path, dst: Path, fraction: float = 0.6) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    (root / "sub").mkdir()
    write_video(root / "h264_aac.mp4")
    write_video(root / "mpeg4_mp2.mp4", "mpeg4", "mp2")
    write_video(root / "silent.mp4", acodec=None)
    write_video(root / "sub" / "faststart.mp4", options={"movflags": "faststart"})
    write_video(root / "sub" / "clip.mkv")
    write_video(root / "sub" / "clip.avi", "mpeg4", "mp2")
    truncate(root / "h264_aac.mp4", root / "cut_index_at_end.mp4")
    truncate(root / "sub" / "faststart.mp4", root / "cut_faststart.mp4")
    truncate(root / "sub" / "clip.mkv", root / "cut.mkv")
    truncate(root / "sub" / "clip.avi", root / "cut.avi")
    (root / "empty.mp4").write_bytes(b"")
    (root / "notes.mp4").write_text("this is not a video\n")
    with av.open(str(root / "audio_only.mp4"), "w", format="ipod") as out:  # an .m4a under a video name
        write_tone(out, add_audio(out, "aac"))
    shutil.copy(root / "silent.mp4", root / "download.mp4.part")
    (root / "labels.csv").write_text("a,b\n")
    (root / "README").write_text("clips for the tests\n")
    return root


EXPECTED_OK = ["h264_aac.mp4", "mpeg4_mp2.mp4", "silent.mp4", "sub/clip.avi", "sub/clip.mkv", "sub/faststart.mp4"]
EXPECTED_BAD = {
    "audio_only.mp4": "no video stream (audio only)",
    "cut.avi": "truncated: video stops at",
    "cut.mkv": "truncated: video stops at",
    "cut_faststart.mp4": "truncated: no frame decodes near the end (4.00 s, as the video stream declares)",
    "cut_index_at_end.mp4": "MP4 without a readable index",
    "download.mp4.part": "MP4/QuickTime data under the extension '.part'",
    "empty.mp4": "empty file (0 bytes)",
    "notes.mp4": "not a readable media file (Invalid data found when processing input)",
}


def rel(root: Path, paths: list[str]) -> list[str]:
    return [Path(p).relative_to(root).as_posix() for p in paths]


def test_check_dataset_sorts_files_into_ok_bad_and_without_audio(dataset):
    report = check_dataset(dataset)
    assert rel(dataset, report.ok) == EXPECTED_OK
    assert rel(dataset, report.without_audio) == ["silent.mp4"]
    bad = dict(zip(rel(dataset, [b["path"] for b in report.bad]), [b["reason"] for b in report.bad]))
    assert sorted(bad) == sorted(EXPECTED_BAD)
    for name, reason in EXPECTED_BAD.items():
        assert bad[name].startswith(reason), (name, bad[name])
    for name in ("cut.avi", "cut.mkv"):  # 60 % of the bytes: about 2.4 s of 4 s
        stopped = float(bad[name].split("stops at ")[1].split(" s")[0])
        assert 1.5 < stopped < 3.0 and bad[name].endswith("of the 4.00 s the video stream declares")


def test_report_json_and_summary(dataset):
    report = check_dataset(dataset)
    data = json.loads(json.dumps(report.to_json()))
    assert set(data) == {"ok", "bad", "without_audio"}
    assert set(data["without_audio"]) <= set(data["ok"])
    assert all(set(b) == {"path", "reason"} for b in data["bad"])
    assert check_dataset(dataset).to_json() == data  # deterministic
    text = report.summary()
    assert text.splitlines()[0].startswith("14 files checked: 6 ok (1 without audio), 8 bad, ")
    assert f"  bad: {dataset / 'empty.mp4'}: empty file (0 bytes)" in text.splitlines()
    assert CheckReport().summary() == "0 files checked: 0 ok (0 without audio), 0 bad"


def test_check_video_on_single_files(dataset):
    assert check_video(dataset / "h264_aac.mp4") == (True, None, True)
    assert check_video(dataset / "silent.mp4") == (True, None, False)
    assert check_video(dataset / "audio_only.mp4") == (False, "no video stream (audio only)", False)
    assert check_video(dataset / "missing.mp4")[:2] == (False, "cannot read (No such file or directory)")


def test_still_image_is_not_a_video(tmp_path):
    with av.open(str(tmp_path / "frame.mp4"), "w", format="image2") as out:
        stream = out.add_stream("png")
        stream.width = stream.height = 8
        stream.pix_fmt = "rgb24"
        out.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((8, 8, 3), np.uint8), format="rgb24")))
        out.mux(stream.encode())
    assert check_video(tmp_path / "frame.mp4") == (False, "a still image (png_pipe), not a video", False)


def test_explicit_paths_extensions_and_missing_root(dataset, tmp_path):
    report = check_dataset([dataset / "download.mp4.part", dataset / "sub", dataset / "gone.mp4",
                            dataset / "sub" / "clip.mkv"])
    assert rel(dataset, report.ok) == ["download.mp4.part", "sub/clip.avi", "sub/clip.mkv", "sub/faststart.mp4"]
    assert report.bad == [{"path": str(dataset / "gone.mp4"), "reason": "missing file"}]
    only_mkv = check_dataset(dataset / "sub", extensions=[".MKV"])
    assert rel(dataset, only_mkv.ok) == ["sub/clip.mkv"] and only_mkv.bad == []
    with pytest.raises(DataError, match="no such file or folder"):
        check_dataset(tmp_path / "nowhere")
    assert ".mp4" in VIDEO_EXTENSIONS and all(e == e.lower() and e.startswith(".") for e in VIDEO_EXTENSIONS)


def test_check_is_fast_per_file(dataset):
    report = check_dataset(dataset)
    per_file_ms = 1000 * report.seconds / (len(report.ok) + len(report.bad))
    print(f"checker: {per_file_ms:.1f} ms per file on {len(report.ok) + len(report.bad)} tiny files")
    assert per_file_ms < 100


@pytest.mark.skipif(not CLIPS.is_dir(), reason=f"real clips not found in {CLIPS}")
def test_real_clips_are_usable_with_audio():
    started = time.perf_counter()
    report = check_dataset(CLIPS)
    ms = 1000 * (time.perf_counter() - started) / max(1, len(report.ok))
    print(f"checker: {ms:.1f} ms per real clip")
    assert [Path(p).name for p in report.ok] == ["big_buck_bunny_0_30.webm", "ucf101_style_test.avi"]
    assert report.bad == [] and report.without_audio == []
