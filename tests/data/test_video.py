import math

import av
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmv.data.video import VIDEO_EXTENSIONS, decode_clip, eval_window_starts, probe_video, train_window_start
from mmv.errors import DataError
from tests.data import fixtures as fx

SRC_FPS = 25
N_SRC = 100  # 4 s
LENGTH = N_SRC / SRC_FPS
BURSTS = [0.25 + 0.5 * k for k in range(8)]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    vfr_times = [0.0, 0.1, 0.15, 0.5, 0.52, 1.0, 1.3, 1.31, 1.9]
    v = {
        "mp4": fx.write_video(d / "cfr.mp4", num_frames=N_SRC, fps=SRC_FPS),
        "pcm": fx.write_video(d / "pcm.mov", num_frames=N_SRC, fps=SRC_FPS, audio_codec="pcm_s16le",
                              sample_rate=48000),
        "odd": fx.write_video(d / "odd.mp4", num_frames=30, fps=SRC_FPS, width=97, height=61),
        "avi": fx.write_video(d / "mpeg4.avi", num_frames=N_SRC, fps=SRC_FPS, codec="mpeg4", audio_codec="mp3"),
        "vfr": fx.write_video(d / "vfr.mkv", frame_times=vfr_times, audio=False),
        "silent": fx.write_video(d / "silent.mp4", num_frames=30, fps=SRC_FPS, codec="mpeg4", audio=False),
        "faststart": fx.write_video(d / "fs.mp4", num_frames=N_SRC, fps=SRC_FPS, faststart=True),
    }
    v["vfr_times"] = vfr_times
    return v


def expected_indices(start, num_frames, fps, *, loop=True, length=LENGTH, n_src=N_SRC):
    """Frame shown at start + i / fps in a CFR fixture: floor(t * SRC_FPS), looped or held at the end."""
    out = []
    for i in range(num_frames):
        t = start + i / fps
        t = math.fmod(t, length) if loop else t
        out.append(min(n_src - 1, int(math.floor(t * SRC_FPS + 1e-6))))
    return out


def indices(clip):
    return [fx.read_frame_index(f) for f in clip.frames.numpy()]


def burst_positions(clip):
    return fx.find_bursts(clip.audio.numpy(), clip.sample_rate)


@pytest.mark.parametrize("start,fps,num_frames", [
    (0.0, 10, 8), (0.33, 25, 8), (1.37, 7.5, 6), (2.04, 30, 10), (0.5, 3, 4), (3.96, 25, 1),
])
def test_frames_are_those_shown_at_each_sampling_time(videos, start, fps, num_frames):
    clip = decode_clip(videos["mp4"], start, num_frames, fps)
    assert clip.frames.shape == (num_frames, 48, 64, 3) and clip.frames.dtype == torch.uint8
    assert indices(clip) == expected_indices(start, num_frames, fps)
    assert (clip.start, clip.fps, clip.sample_rate) == (start, fps, 48000)


@settings(max_examples=25, deadline=None)
@given(start_ms=st.integers(0, 6000), fps=st.sampled_from([1, 2, 4, 5, 8, 10, 12.5, 20, 25, 40, 50]),
       num_frames=st.integers(1, 12))
def test_any_window_decodes_the_expected_frames(videos, start_ms, fps, num_frames):
    clip = decode_clip(videos["mp4"], start_ms / 1000, num_frames, fps, with_audio=False)
    assert indices(clip) == expected_indices(start_ms / 1000, num_frames, fps)


@pytest.mark.parametrize("start,num_frames,fps", [(0.0, 10, 10), (0.6, 16, 10), (1.23, 32, 25), (2.9, 8, 8)])
def test_audio_covers_the_same_span_as_the_frames(videos, start, num_frames, fps):
    clip = decode_clip(videos["mp4"], start, num_frames, fps)  # AAC 44.1 kHz stereo -> 48 kHz mono
    end = start + num_frames / fps
    assert clip.has_audio and clip.audio.shape == (round(num_frames / fps * 48000),)
    expected = [t - start for t in BURSTS if start <= t < end - 0.01]
    found = burst_positions(clip)
    assert len(found) == len(expected)
    assert np.allclose(found, expected, atol=0.002)  # within 2 ms through AAC and resampling


def test_pcm_audio_is_sample_exact(videos):
    clip = decode_clip(videos["pcm"], 1.1, 20, 10)  # 48 kHz PCM: no codec delay, no resampling
    found = [round(t * 48000) for t in burst_positions(clip)]
    assert found == [round((t - 1.1) * 48000) for t in BURSTS if 1.1 <= t < 3.1]
    low = decode_clip(videos["pcm"], 1.1, 20, 10, sample_rate=16000)
    assert low.audio.shape == (32000,)
    assert np.allclose(burst_positions(low), [t - 1.1 for t in BURSTS if 1.1 <= t < 3.1], atol=2 / 16000)


@pytest.mark.parametrize("num_frames,fps,rate", [(7, 7.5, 44100), (32, 10, 48000), (3, 30, 16000), (5, 12.5, 22050)])
def test_audio_length_is_exactly_the_clip_span(videos, num_frames, fps, rate):
    clip = decode_clip(videos["mp4"], 0.2, num_frames, fps, sample_rate=rate)
    assert clip.audio.shape == (round(num_frames / fps * rate),) and clip.audio.dtype == torch.float32


def test_audio_is_mono_mean_of_channels(videos):
    clip = decode_clip(videos["pcm"], 0.0, 10, 10)
    # Both channels carry the 0.8 burst; FFmpeg's own stereo->mono downmix would give 0.8 * sqrt(2).
    assert float(clip.audio.abs().max()) == pytest.approx(0.8, abs=0.01)
    assert float(clip.audio[: int(0.2 * 48000)].abs().max()) == 0.0  # silence before the first burst


def test_window_past_the_end_loops_frames_and_audio(videos):
    start, n, fps = 3.5, 10, 5  # [3.5, 5.5): wraps at 4.0
    clip = decode_clip(videos["mp4"], start, n, fps)
    assert indices(clip) == expected_indices(start, n, fps)
    assert indices(clip)[3:] == [2, 7, 12, 17, 22, 27, 32]
    # Bursts at 3.75, then 0.25, 0.75, 1.25 after the wrap (clip times 0.25, 0.75, 1.25, 1.75).
    assert np.allclose(burst_positions(clip), [0.25, 0.75, 1.25, 1.75], atol=0.002)


def test_start_beyond_the_end_wraps(videos):
    clip = decode_clip(videos["mp4"], 9.0, 4, 10)  # 9.0 mod 4.0 = 1.0
    assert indices(clip) == [25, 27, 30, 32]


def test_clip_longer_than_the_video_repeats_it(videos):
    clip = decode_clip(videos["odd"], 0.0, 30, 10)  # 1.2 s video, 3 s clip
    assert indices(clip) == [int(math.fmod(i / 10, 1.2) * 25 + 1e-6) for i in range(30)]


def test_without_loop_the_last_frame_is_held_and_audio_is_silent(videos):
    clip = decode_clip(videos["mp4"], 3.5, 10, 5, loop=False)
    assert indices(clip) == [87, 92, 97, 99, 99, 99, 99, 99, 99, 99]
    after = clip.audio[int(0.52 * 48000):]
    assert float(after.abs().max()) == 0.0
    with pytest.raises(DataError, match="after the end"):
        decode_clip(videos["mp4"], 4.5, 2, 5, loop=False)


def test_variable_frame_rate(videos):
    times = videos["vfr_times"]
    clip = decode_clip(videos["vfr"], 0.0, 20, 10, loop=False)
    expected = [max(k for k, s in enumerate(times) if s <= i / 10 + 1e-9) for i in range(20)]
    assert indices(clip) == expected
    assert not clip.has_audio


def test_odd_size(videos):
    info = probe_video(videos["odd"])
    assert (info.width, info.height) == (97, 61)
    clip = decode_clip(videos["odd"], 0.4, 5, 25, info=info)
    assert clip.frames.shape == (5, 61, 97, 3)
    assert indices(clip) == [10, 11, 12, 13, 14]


def test_mpeg4_avi_with_mp3(videos):
    clip = decode_clip(videos["avi"], 1.0, 10, 10)
    assert indices(clip) == expected_indices(1.0, 10, 10)
    # MP3 in AVI carries the encoder's delay (LAME: 1105 samples, ~25 ms), which nothing in AVI compensates.
    found = burst_positions(clip)
    assert np.allclose(found, [0.25, 0.75], atol=0.03)


def test_video_without_audio_gives_silence_and_a_flag(videos):
    info = probe_video(videos["silent"])
    assert not info.has_audio and info.audio_sample_rate is None and info.audio_channels is None
    clip = decode_clip(videos["silent"], 0.2, 8, 10)
    assert not clip.has_audio
    assert clip.audio.shape == (38400,) and float(clip.audio.abs().max()) == 0.0
    assert indices(clip) == expected_indices(0.2, 8, 10, length=1.2, n_src=30)


def test_with_audio_false_skips_audio(videos):
    clip = decode_clip(videos["mp4"], 0.0, 10, 10, with_audio=False)
    assert not clip.has_audio and clip.audio.shape == (48000,) and float(clip.audio.abs().max()) == 0.0


def test_probe(videos):
    info = probe_video(videos["mp4"])
    assert info.path == str(videos["mp4"])
    assert info.duration == pytest.approx(4.0) and info.fps == pytest.approx(25.0)
    assert (info.width, info.height, info.has_audio, info.audio_sample_rate, info.audio_channels) == (
        64, 48, True, 44100, 2)
    assert ".mp4" in VIDEO_EXTENSIONS and ".webm" in VIDEO_EXTENSIONS and ".avi" in VIDEO_EXTENSIONS


def test_info_argument_gives_the_same_clip(videos):
    info = probe_video(videos["mp4"])
    a = decode_clip(videos["mp4"], 1.3, 6, 10, info=info)
    b = decode_clip(videos["mp4"], 1.3, 6, 10)
    assert torch.equal(a.frames, b.frames) and torch.equal(a.audio, b.audio)


def test_eval_windows_are_linearly_spaced_and_deterministic(videos):
    assert eval_window_starts(10.0, 3.2, 5) == pytest.approx([0.0, 1.7, 3.4, 5.1, 6.8])
    assert eval_window_starts(2.0, 3.2, 3) == [0.0, 0.0, 0.0]
    assert eval_window_starts(10.0, 3.2, 1) == [0.0]
    with pytest.raises(ValueError):
        eval_window_starts(10.0, 3.2, 0)
    starts = eval_window_starts(LENGTH, 1.0, 4)
    first = [indices(decode_clip(videos["mp4"], s, 4, 4))[0] for s in starts]
    assert first == [0, 25, 50, 75]
    again = decode_clip(videos["mp4"], starts[2], 4, 4)
    assert torch.equal(again.frames, decode_clip(videos["mp4"], starts[2], 4, 4).frames)


def test_train_window_start_is_uniform_in_range_and_seeded():
    draws = [train_window_start(10.0, 3.2, torch.Generator().manual_seed(s)) for s in range(300)]
    assert all(0.0 <= d <= 6.8 for d in draws)
    assert min(draws) < 0.3 and max(draws) > 6.5 and abs(np.mean(draws) - 3.4) < 0.4
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert [train_window_start(10.0, 3.2, g1) for _ in range(3)] == [train_window_start(10.0, 3.2, g2)
                                                                     for _ in range(3)]
    assert train_window_start(2.0, 3.2, g1) == 0.0


def test_bad_arguments_are_value_errors(videos):
    for kwargs in ({"num_frames": 0, "fps": 10}, {"num_frames": 4, "fps": 0}):
        with pytest.raises(ValueError):
            decode_clip(videos["mp4"], 0.0, **kwargs)
    with pytest.raises(ValueError):
        decode_clip(videos["mp4"], -1.0, 4, 10)


def _bad_files(d, videos):
    return {
        "empty": (fx.write_zero_length(d / "empty.mp4"), "empty file"),
        "text": (fx.write_text_as_video(d / "notes.mp4"), "not a media file"),
        "random": (fx.write_random_bytes(d / "noise.mkv"), "not a media file"),
        "audio_only": (fx.write_audio_only(d / "sound.mp4"), "no video stream"),
        "missing": (d / "missing.mp4", "file not found"),
        "truncated_index_at_end": (fx.write_truncated(videos["mp4"], d / "cut.mp4"), "not a media file"),
        "corrupt_header": (fx.write_corrupted(videos["mp4"], d / "bad.mp4", keep=0.0), "not a media file"),
    }


@pytest.mark.parametrize("kind", ["empty", "text", "random", "audio_only", "missing", "truncated_index_at_end",
                                  "corrupt_header"])
def test_bad_files_raise_data_error_with_path_and_reason(videos, tmp_path, kind):
    path, reason = _bad_files(tmp_path, videos)[kind]
    for call in (lambda: probe_video(path), lambda: decode_clip(path, 0.0, 4, 10)):
        with pytest.raises(DataError) as err:
            call()
        assert err.value.path == str(path) and reason in err.value.reason
        assert isinstance(err.value, ValueError)


def test_truncated_file_with_index_first_reports_how_far_it_got(videos, tmp_path):
    path = fx.write_truncated(videos["faststart"], tmp_path / "cut.mp4", 0.5)
    assert probe_video(path).duration == pytest.approx(4.0)  # the header still promises 4 s
    assert indices(decode_clip(path, 0.0, 3, 10)) == [0, 2, 5]  # the start is intact
    with pytest.raises(DataError, match=r"truncated: decoding stopped at \d\.\d s of 4\.0 s"):
        decode_clip(path, 3.0, 4, 10)


def test_truncated_mkv(videos, tmp_path):
    mkv = fx.write_video(tmp_path / "full.mkv", num_frames=N_SRC, fps=SRC_FPS)
    path = fx.write_truncated(mkv, tmp_path / "cut.mkv", 0.5)
    with pytest.raises(DataError, match="truncated"):
        decode_clip(path, 3.0, 4, 10)


def test_corrupt_payload(videos, tmp_path):
    path = fx.write_corrupted(videos["faststart"], tmp_path / "garbled.mp4", keep=0.3)
    with pytest.raises(DataError, match="corrupt|no decodable|truncated"):
        decode_clip(path, 2.0, 4, 10)


def test_fixture_pattern_round_trips():
    for i in (0, 1, 77, 255):
        assert fx.read_frame_index(fx.pattern_frame(i, 97, 61)) == i
    track = fx.burst_track(48000, 48000, [0.1, 0.6])
    assert fx.find_bursts(track, 48000) == pytest.approx([0.1, 0.6], abs=1e-4)


# Real clips (skipped when the shared data is absent).

need_bbb = pytest.mark.skipif(not fx.BBB_CLIP.is_file(), reason="shared BBB clip not present")
need_ucf = pytest.mark.skipif(not fx.UCF_CLIP.is_file(), reason="shared UCF-style clip not present")


@need_bbb
def test_big_buck_bunny_window():
    info = probe_video(fx.BBB_CLIP)
    assert (info.width, info.height, info.audio_sample_rate) == (1280, 720, 44100)
    assert info.duration == pytest.approx(30.0, abs=0.05) and info.fps == pytest.approx(24.0)
    clip = decode_clip(fx.BBB_CLIP, 18.0, 8, 10, info=info)  # 18-18.8 s: the bunny scene, with sound
    assert clip.frames.shape == (8, 720, 1280, 3) and clip.audio.shape == (38400,)
    assert 0.05 < float(clip.audio.abs().max()) <= 1.0 and float(clip.audio.std()) > 1e-3
    assert float(clip.frames.float().std()) > 10
    other = decode_clip(fx.BBB_CLIP, 6.0, 1, 10, info=info, with_audio=False)
    assert float((clip.frames[0].float() - other.frames[0].float()).abs().mean()) > 5


@need_ucf
def test_ucf_style_avi_frames_follow_decoder_output_order():
    # MPEG-4 part 2 with packed B-frames: FFmpeg tags the frames with pts 1, 2, 4, 3, 5, 7, 6, ...
    # Frames come out of the decoder in display order; the clip must follow that order, not the tags.
    with av.open(str(fx.UCF_CLIP)) as c:
        seq = [f.to_ndarray(format="rgb24") for _, f in zip(range(40), c.decode(video=0))]
    clip = decode_clip(fx.UCF_CLIP, 0.4, 20, 25)
    first_pts = 1  # the first frame is shown at 0.04 s
    for i, frame in enumerate(clip.frames.numpy()):
        assert np.array_equal(frame, seq[10 + i - first_pts])
    assert clip.has_audio and float(clip.audio.abs().max()) > 0.05
    assert float(clip.frames.float().std()) > 10


def _count_decoded(monkeypatch):
    from mmv.data import video as video_module

    count = [0]
    original = video_module._Source._frames

    def counting(self, packets, depth=video_module._REORDER):
        for item in original(self, packets, depth):
            count[0] += 1
            yield item

    monkeypatch.setattr(video_module._Source, "_frames", counting)
    return count


def test_decoding_starts_near_the_window_not_at_the_beginning(tmp_path, monkeypatch):
    path = fx.write_video(tmp_path / "long.mp4", num_frames=250, fps=25, gop=12, audio=False)
    count = _count_decoded(monkeypatch)
    clip = decode_clip(path, 9.0, 4, 10)
    assert indices(clip) == [225, 227, 230, 232]
    assert count[0] < 40  # keyframe interval + window + reorder look-ahead; 235+ from the start


def test_a_seek_that_lands_after_the_window_is_retried_from_the_start(videos, monkeypatch):
    from mmv.data import video as video_module

    original = video_module._Source._seek

    def overshoot(self, t, force=False):
        original(self, t + 1.5 if t > 0 else t, force)  # land well after the window's start

    monkeypatch.setattr(video_module._Source, "_seek", overshoot)
    clip = decode_clip(videos["mp4"], 2.0, 5, 10)
    assert indices(clip) == expected_indices(2.0, 5, 10)
    assert np.allclose(burst_positions(clip), [0.25], atol=0.002)
