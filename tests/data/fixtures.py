"""Tiny test videos written with PyAV, whose content says what was decoded.

Every frame carries its index as a barcode (``pattern_frame`` / ``read_frame_index``), and the audio is
silence with short tone bursts at known times (``burst_track`` / ``find_bursts``), so a test can check
*which* frame and *which* stretch of sound a decoder returned, not only shapes. The bad-file writers
produce each kind of broken input a dataset can hold. Other test modules import these helpers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Optional, Union

import av
import numpy as np

PathLike = Union[str, os.PathLike]

BITS = 8  # barcode bars: indices 0..255
SHARED = Path(__file__).resolve().parents[2].parent / "shared"
BBB_CLIP = SHARED / "data" / "clips" / "big_buck_bunny_0_30.webm"
UCF_CLIP = SHARED / "data" / "clips" / "ucf101_style_test.avi"

BURST_HZ = 2000.0
BURST_SECONDS = 0.01


def pattern_frame(index: int, width: int, height: int) -> np.ndarray:
    """An RGB uint8 ``[height, width, 3]`` frame showing ``index`` in binary as ``BITS`` vertical bars.

    Bar ``b`` (left to right) is white when bit ``b`` of the index is set, dark blue otherwise: black and
    white survive lossy codecs, chroma subsampling and odd sizes, so decoding recovers the index exactly.
    """
    if not 0 <= index < 2**BITS:
        raise ValueError(f"frame index {index} does not fit in {BITS} bits")
    frame = np.zeros((height, width, 3), np.uint8)
    frame[..., 2] = 40
    edges = np.linspace(0, width, BITS + 1).round().astype(int)
    for b in range(BITS):
        if index >> b & 1:
            frame[:, edges[b]:edges[b + 1]] = 255
    return frame


def read_frame_index(frame) -> int:
    """The index shown by a (decoded, possibly slightly blurred) ``pattern_frame``; accepts HWC arrays or tensors."""
    arr = np.asarray(frame, dtype=np.float32)
    width = arr.shape[1]
    edges = np.linspace(0, width, BITS + 1)
    centres = ((edges[:-1] + edges[1:]) / 2).astype(int)
    luma = arr[:, centres].mean(axis=(0, 2))
    return int(sum(1 << b for b in range(BITS) if luma[b] > 128))


def burst_track(num_samples: int, sample_rate: int, times: Sequence[float], *, amplitude: float = 0.8,
                freq: float = BURST_HZ, seconds: float = BURST_SECONDS) -> np.ndarray:
    """Silence with a ``seconds``-long cosine burst starting at each of ``times`` (float32 ``[num_samples]``).

    A burst onset is a sharp, codec-proof time marker: ``find_bursts`` locates it within a few samples.
    """
    out = np.zeros(num_samples, np.float32)
    n = int(round(seconds * sample_rate))
    tone = amplitude * np.cos(2 * np.pi * freq * np.arange(n) / sample_rate)  # starts at full amplitude
    for t in times:
        i = int(round(t * sample_rate))
        j = min(num_samples, i + n)
        if 0 <= i < num_samples:
            out[i:j] = tone[: j - i]
    return out


def find_bursts(audio, sample_rate: int, *, threshold: float = 0.25) -> list[float]:
    """Onset times (seconds from the first sample) of the bursts in ``audio``: the first sample whose magnitude
    exceeds ``threshold`` after at least 20 ms below it."""
    x = np.abs(np.asarray(audio, dtype=np.float32))
    loud = np.flatnonzero(x > threshold)
    if loud.size == 0:
        return []
    gap = int(0.02 * sample_rate)
    starts = [loud[0]] + [b for a, b in zip(loud[:-1], loud[1:]) if b - a > gap]
    return [float(s) / sample_rate for s in starts]


def write_video(path: PathLike, *, num_frames: int = 50, fps: float = 25.0, width: int = 64, height: int = 48,
                codec: str = "libx264", frame_times: Optional[Sequence[float]] = None, audio: bool = True,
                audio_codec: str = "aac", sample_rate: int = 44100, channels: int = 2,
                burst_times: Optional[Sequence[float]] = None, audio_seconds: Optional[float] = None,
                gop: int = 12, faststart: bool = False) -> Path:
    """Write a test video: frame ``i`` is ``pattern_frame(i)``, the audio is ``burst_track(burst_times)``.

    The container follows the extension (.mp4, .mkv, .avi, .mov, ...). ``codec``: ``libx264`` (4:4:4 when a
    side is odd, as 4:2:0 H.264 needs even sizes) or ``mpeg4``. ``frame_times`` (seconds, increasing) makes a
    variable-frame-rate file with one frame per entry (``num_frames``/``fps`` are then ignored for video).
    ``burst_times`` defaults to every 0.5 s from 0.25 s; ``audio_seconds`` defaults to the video's length.
    ``gop`` is the keyframe interval, so seeks have something to do. ``faststart`` puts an mp4's index first,
    so a truncated copy still opens (and must then be reported as truncated). At most 256 frames (the
    barcode's range); ``channels`` is 1 or 2.
    """
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    # Constant rate: time base 1/fps (AVI can only say that); variable rate: milliseconds.
    tb = Fraction(1, 1000) if frame_times is not None else 1 / rate
    if frame_times is None:
        frame_times = [i / fps for i in range(num_frames)]
    frame_times = list(frame_times)
    step = frame_times[-1] - frame_times[-2] if len(frame_times) > 1 else 1 / fps
    video_seconds = frame_times[-1] + step
    options = {"movflags": "faststart"} if faststart else {}
    # Otherwise the muxer shifts timestamps to hide MP3's negative start *after* the first video packet went
    # out, which in AVI leaves a one-frame hole after frame 0.
    options["avoid_negative_ts"] = "disabled"
    with av.open(str(path), "w", options=options) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height = width, height
        odd = width % 2 or height % 2
        stream.pix_fmt = "yuv444p" if codec == "libx264" and odd else "yuv420p"
        stream.codec_context.time_base = tb
        stream.codec_context.gop_size = gop
        if codec == "libx264":
            stream.options = {"crf": "10", "preset": "ultrafast", "bf": "2", "keyint": str(gop)}
        else:
            stream.codec_context.bit_rate = 2_000_000
        astream = None
        if audio:
            astream = out.add_stream(audio_codec, rate=sample_rate, layout="stereo" if channels == 2 else "mono")
        for i, t in enumerate(frame_times):
            frame = av.VideoFrame.from_ndarray(pattern_frame(i, width, height), format="rgb24")
            frame.pts = int(round(t / tb))
            frame.time_base = tb
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if astream is not None:
            seconds = video_seconds if audio_seconds is None else audio_seconds
            times = burst_times if burst_times is not None else np.arange(0.25, seconds, 0.5)
            mono = burst_track(int(round(seconds * sample_rate)), sample_rate, times)
            samples = np.repeat(mono[None], channels, axis=0)
            chunk = 4096
            for s in range(0, samples.shape[1], chunk):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, s:s + chunk]), format="fltp",
                                                   layout="stereo" if channels == 2 else "mono")
                frame.sample_rate = sample_rate
                frame.pts = s
                frame.time_base = Fraction(1, sample_rate)
                for packet in astream.encode(frame):
                    out.mux(packet)
            for packet in astream.encode():
                out.mux(packet)
    return path


def write_audio_only(path: PathLike, seconds: float = 1.0, sample_rate: int = 44100) -> Path:
    """A valid media file with an audio stream and no video stream (e.g. .mp4 holding only AAC)."""
    path = Path(path)
    with av.open(str(path), "w") as out:
        astream = out.add_stream("aac", rate=sample_rate, layout="mono")
        x = burst_track(int(seconds * sample_rate), sample_rate, [0.1])
        frame = av.AudioFrame.from_ndarray(x[None], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = sample_rate, 0
        for packet in astream.encode(frame):
            out.mux(packet)
        for packet in astream.encode():
            out.mux(packet)
    return path


def write_zero_length(path: PathLike) -> Path:
    """An empty file with a video name."""
    path = Path(path)
    path.write_bytes(b"")
    return path


def write_text_as_video(path: PathLike) -> Path:
    """A text file renamed to a video name."""
    path = Path(path)
    path.write_text("This is not a video.\nJust some notes saved with the wrong extension.\n" * 20)
    return path


def write_random_bytes(path: PathLike, size: int = 8192, seed: int = 0) -> Path:
    """``size`` seeded random bytes under a video name (no recognisable container)."""
    path = Path(path)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def write_truncated(src: PathLike, dst: PathLike, fraction: float = 0.5) -> Path:
    """Copy the first ``fraction`` of ``src``'s bytes to ``dst``, as an interrupted download would leave it."""
    data = Path(src).read_bytes()
    dst = Path(dst)
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def write_corrupted(src: PathLike, dst: PathLike, *, keep: float = 0.1, seed: int = 0) -> Path:
    """Copy ``src`` to ``dst`` with everything after its first ``keep`` fraction of bytes replaced by random bytes
    (same length), so the header looks valid but the payload is garbage."""
    data = bytearray(Path(src).read_bytes())
    start = int(len(data) * keep)
    data[start:] = np.random.default_rng(seed).integers(0, 256, len(data) - start, dtype=np.uint8).tobytes()
    dst = Path(dst)
    dst.write_bytes(bytes(data))
    return dst
