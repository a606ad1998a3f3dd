"""Audio-only files and still images: decoded with PyAV, resampled, looped, and refused clearly."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from mmv.data.audiofile import audio_info, decode_audio, load_audio
from mmv.data.image import decode_image
from mmv.data.video import decode_clip
from mmv.errors import DataError
from tests.data.fixtures import burst_track, find_bursts, write_text_as_video, write_video, write_zero_length
from tests.eval.helpers import make_picture, write_image, write_wav

FSDD = __import__("pathlib").Path(__file__).resolve().parents[3] / "shared" / "data" / "fsdd" / "recordings"


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    """1.5 s at 8 kHz with bursts at 0.25 s and 1.0 s."""
    return write_wav(tmp_path_factory.mktemp("wav") / "b.wav", burst_track(12000, 8000, [0.25, 1.0], freq=500.0))


def test_wav_is_resampled_to_48k_with_bursts_in_place(wav):
    info = audio_info(wav)
    assert (info.sample_rate, info.channels) == (8000, 1) and info.duration == pytest.approx(1.5)
    x = load_audio(wav, 48000)
    assert x.dtype == np.float32 and len(x) == 72000
    assert find_bursts(x, 48000) == pytest.approx([0.25, 1.0], abs=1e-3)
    w = decode_audio(wav, 0.5, 1.0)
    assert len(w) == 48000 and find_bursts(w, 48000) == pytest.approx([0.5], abs=1e-3)
    assert decode_audio(wav.read_bytes(), 0.5, 1.0) == pytest.approx(w)  # the bytes of a zip member


def test_short_files_loop_or_pad(wav):
    whole = load_audio(wav, 48000)
    looped = decode_audio(wav, 1.0, 1.0)  # 0.5 s of file, then the file again from 0
    np.testing.assert_array_equal(looped[:24000], whole[48000:])
    np.testing.assert_array_equal(looped[24000:], whole[:24000])
    padded = decode_audio(wav, 1.0, 1.0, loop=False)
    np.testing.assert_array_equal(padded[:24000], whole[48000:])
    assert not padded[24000:].any()
    # a window after the end starts at start mod duration when looping, and is an error otherwise
    np.testing.assert_array_equal(decode_audio(wav, 1.75, 0.5), whole[12000:36000])
    with pytest.raises(DataError, match="after the end"):
        decode_audio(wav, 2.0, 0.5, loop=False)


def test_audio_track_of_a_video_matches_decode_clip(tmp_path):
    video = write_video(tmp_path / "v.mp4", num_frames=75, fps=25.0, burst_times=[0.4, 1.3, 2.2])
    a = decode_audio(video, 1.0, 1.6)
    b = decode_clip(video, 1.0, 16, 10.0).audio.numpy()
    assert len(a) == len(b) == 76800
    assert find_bursts(a, 48000) == pytest.approx(find_bursts(b, 48000), abs=2e-4)
    assert find_bursts(a, 48000) == pytest.approx([0.3, 1.2], abs=2e-3)


def test_bad_audio_is_a_data_error(tmp_path):
    cases = {
        "missing.wav": "file not found",
        "empty.wav": "empty file",
        "notes.wav": "not a media file",
        "silent.mp4": "no audio stream",
    }
    write_zero_length(tmp_path / "empty.wav")
    write_text_as_video(tmp_path / "notes.wav")
    write_video(tmp_path / "silent.mp4", num_frames=10, audio=False)
    for name, reason in cases.items():
        with pytest.raises(DataError, match=reason) as err:
            decode_audio(tmp_path / name, 0.0, 1.0)
        assert err.value.path.endswith(name)
    with pytest.raises(DataError, match="empty media"):
        decode_audio(b"", 0.0, 1.0)


@pytest.mark.skipif(not FSDD.is_dir(), reason="shared FSDD recordings not present")
def test_fsdd_recording():
    path = FSDD / "0_george_0.wav"
    x = load_audio(path, 48000)
    assert audio_info(path).sample_rate == 8000 and len(x) == 6 * 2384  # 2384 samples at 8 kHz
    assert 0.05 < np.abs(x).max() <= 1.0


def test_png_exact_jpeg_close_and_bytes(tmp_path):
    pic = make_picture()
    png = write_image(tmp_path / "p.png", pic)
    np.testing.assert_array_equal(decode_image(png), pic)
    np.testing.assert_array_equal(decode_image(png.read_bytes()), pic)
    jpg = decode_image(write_image(tmp_path / "p.jpg", pic))
    assert jpg.shape == (48, 64, 3) and jpg.dtype == np.uint8
    assert np.abs(jpg.astype(int) - pic).mean() < 3
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as z:
        z.write(tmp_path / "p.png", "dir/p.png")
    with zipfile.ZipFile(tmp_path / "a.zip") as z:
        np.testing.assert_array_equal(decode_image(z.read("dir/p.png")), pic)


def test_bad_images_are_data_errors(tmp_path):
    png = write_image(tmp_path / "p.png", make_picture()).read_bytes()
    (tmp_path / "cut.png").write_bytes(png[:40])
    write_text_as_video(tmp_path / "notes.jpg")
    for name in ("missing.png", "cut.png", "notes.jpg"):
        with pytest.raises(DataError) as err:
            decode_image(tmp_path / name)
        assert err.value.path.endswith(name)
    with pytest.raises(DataError, match="empty"):
        decode_image(b"")
