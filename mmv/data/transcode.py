"""Re-encode a long video into short, uniform mp4 segments: fixed fps, fixed short side, short GOP,
mono 48 kHz AAC. Training reads such segments much faster than the original files (every clip is a
few keyframes away, frames are small), which is what ``mmv shard`` stores in its tar shards.

One pass per source video: frames and audio are routed to the segment they fall in, and each segment
is encoded as soon as it is complete, so memory stays bounded by one segment.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Optional

import av
import numpy as np

from mmv.errors import DataError


@dataclass(frozen=True)
class EncodedSegment:
    """``[start, end)`` seconds of the source, encoded as an mp4 whose time starts at 0."""

    start: float
    end: float
    data: bytes
    has_audio: bool
    num_frames: int


@dataclass(frozen=True)
class TranscodeSettings:
    segment_seconds: float = 10.0
    fps: float = 10.0
    short_side: int = 256
    gop: int = 10
    crf: int = 23
    sample_rate: int = 48000
    min_seconds: float = 1.0  # a shorter tail segment is dropped


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def output_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) with the short side at ``short_side`` (even numbers, as yuv420p needs)."""
    if width <= height:
        return _even(short_side), _even(height * short_side / width)
    return _even(width * short_side / height), _even(short_side)


class _SegmentEncoder:
    def __init__(self, start: float, width: int, height: int, settings: TranscodeSettings, with_audio: bool):
        self.start = start
        self.settings = settings
        self.buffer = io.BytesIO()
        self.container = av.open(self.buffer, mode="w", format="mp4")
        rate = Fraction(settings.fps).limit_denominator(1001)
        self.time_base = 1 / rate
        self.video = self.container.add_stream("libx264", rate=rate)
        self.video.width, self.video.height = width, height
        self.video.pix_fmt = "yuv420p"
        self.video.codec_context.gop_size = settings.gop
        self.video.codec_context.options = {"crf": str(settings.crf), "preset": "veryfast", "bf": "0"}
        self.audio = None
        if with_audio:
            self.audio = self.container.add_stream("aac", rate=settings.sample_rate, layout="mono")
            self.fifo = av.AudioFifo()
        self.frames = 0
        self.samples = 0

    def add_frame(self, frame: av.VideoFrame) -> None:
        out = frame.reformat(width=self.video.width, height=self.video.height, format="yuv420p")
        out.pts = self.frames
        out.time_base = self.time_base
        self.container.mux(self.video.encode(out))
        self.frames += 1

    def add_audio(self, samples: np.ndarray) -> None:
        if self.audio is None or samples.size == 0:
            return
        frame = av.AudioFrame.from_ndarray(samples.astype(np.float32)[None, :], format="fltp", layout="mono")
        frame.sample_rate = self.settings.sample_rate
        frame.pts = None
        self.fifo.write(frame)
        self._drain(self.audio.codec_context.frame_size or 1024)

    def _drain(self, size: int, final: bool = False) -> None:
        while self.fifo.samples >= size or (final and self.fifo.samples):
            chunk = self.fifo.read(min(size, self.fifo.samples))
            chunk.pts = self.samples
            self.samples += chunk.samples
            self.container.mux(self.audio.encode(chunk))

    def finish(self) -> bytes:
        self.container.mux(self.video.encode(None))
        if self.audio is not None:
            self._drain(self.audio.codec_context.frame_size or 1024, final=True)
            self.container.mux(self.audio.encode(None))
        self.container.close()
        return self.buffer.getvalue()


class _AudioBuffer:
    """Resampled mono audio indexed by absolute sample number; keeps only what is not consumed yet."""

    def __init__(self) -> None:
        self.first = 0
        self.data = np.zeros(0, np.float32)

    @property
    def end(self) -> int:
        return self.first + self.data.size

    def append(self, first: int, samples: np.ndarray) -> None:
        if self.data.size == 0 and self.first == 0:
            self.first = first
        if first > self.end:  # a gap in the stream: silence
            samples = np.concatenate([np.zeros(first - self.end, np.float32), samples])
        elif first < self.end:  # overlap: keep what we have
            samples = samples[self.end - first:]
        self.data = np.concatenate([self.data, samples.astype(np.float32)])

    def take(self, lo: int, hi: int) -> np.ndarray:
        """Samples ``[lo, hi)`` (zeros where nothing was decoded); forgets everything before ``hi``."""
        out = np.zeros(hi - lo, np.float32)
        a, b = max(lo, self.first), min(hi, self.end)
        if b > a:
            out[a - lo: b - lo] = self.data[a - self.first: b - self.first]
        drop = min(max(hi - self.first, 0), self.data.size)
        self.data, self.first = self.data[drop:], self.first + drop
        return out


def transcode_segments(path: str | Path, settings: Optional[TranscodeSettings] = None) -> Iterator[EncodedSegment]:
    """Yield the consecutive segments of ``path`` re-encoded with ``settings``; raises ``DataError``.

    Output frame j shows the source frame displayed at time j / fps (the last one that started at or
    before it), so variable frame rates come out regular; the audio of each segment is the same span.
    """
    settings = settings or TranscodeSettings()
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as err:
        raise DataError(path, f"not a readable media file ({err})") from None
    with container:
        if not container.streams.video:
            raise DataError(path, "no video stream")
        vstream = container.streams.video[0]
        astream = container.streams.audio[0] if container.streams.audio else None
        width, height = output_size(vstream.codec_context.width, vstream.codec_context.height, settings.short_side)
        per_segment = max(1, int(round(settings.segment_seconds * settings.fps)))
        resampler = (av.AudioResampler(format="flt", layout="mono", rate=settings.sample_rate)
                     if astream is not None else None)
        audio = _AudioBuffer()
        audio_next: Optional[int] = None  # absolute index of the next resampled sample
        waiting: list[_SegmentEncoder] = []  # video complete, waiting for their audio
        encoder: Optional[_SegmentEncoder] = None
        previous: Optional[av.VideoFrame] = None
        target = 0  # index of the next output frame, shown at time target / fps
        last_time = 0.0

        def emit(frame: av.VideoFrame) -> None:
            nonlocal encoder, target
            if encoder is None:
                encoder = _SegmentEncoder(target / settings.fps, width, height, settings, astream is not None)
            encoder.add_frame(frame)
            target += 1
            if target % per_segment == 0:
                waiting.append(encoder)
                encoder = None

        def ready(final: bool) -> Iterator[EncodedSegment]:
            while waiting and (final or astream is None or audio.end >= _audio_span(waiting[0], settings)[1]):
                done = waiting.pop(0)
                done.add_audio(audio.take(*_audio_span(done, settings)))
                yield EncodedSegment(start=done.start, end=done.start + done.frames / settings.fps,
                                     data=done.finish(), has_audio=done.audio is not None, num_frames=done.frames)

        try:
            for frame in container.decode(*([vstream] + ([astream] if astream is not None else []))):
                if frame.time is None:
                    continue
                if isinstance(frame, av.AudioFrame):
                    for out in resampler.resample(frame):
                        if audio_next is None:
                            audio_next = int(round(float(frame.time) * settings.sample_rate))
                        data = out.to_ndarray().reshape(-1)
                        audio.append(audio_next, data)
                        audio_next += data.size
                else:
                    t = float(frame.time)
                    while previous is not None and target / settings.fps < t:
                        emit(previous)
                    previous, last_time = frame, max(last_time, t)
                yield from ready(final=False)
            if previous is not None:  # the last frame lasts one source frame period
                period = 1.0 / float(vstream.average_rate) if vstream.average_rate else 1.0 / settings.fps
                while target / settings.fps < last_time + period:
                    emit(previous)
        except av.error.FFmpegError as err:
            raise DataError(path, f"decoding failed after {last_time:.1f} s ({err})") from None
        if previous is None:
            raise DataError(path, "no decodable video frames")
        if encoder is not None and encoder.frames / settings.fps >= settings.min_seconds:
            waiting.append(encoder)
        yield from ready(final=True)


def _audio_span(encoder: _SegmentEncoder, settings: TranscodeSettings) -> tuple[int, int]:
    first = int(round(encoder.start * settings.sample_rate))
    return first, first + int(round(encoder.frames / settings.fps * settings.sample_rate))
