"""Sound of audio-only files (WAV, FLAC, OGG, MP3 ...) and of the audio track of videos, with PyAV.

``mmv.data.video.decode_clip`` refuses files without a picture; the audio benchmarks (ESC-50 at 44.1 kHz,
the spoken digits of FSDD at 8 kHz) need sound alone, at the model's 48 kHz. Channels are averaged (FFmpeg's
own downmix can exceed 1) and FFmpeg's resampler converts the rate. Times are seconds from the start of the
first video stream when there is one (the time axis of ``decode_clip``), else from the audio stream's start.

Short files: a window that runs past the end **loops** from the beginning by default, as the video
pipeline does with short videos (MMV_SPEC C.4, "sequence looped if too short"); ``loop=False`` zero-pads
instead. Which one was used is part of the feature spec recorded with every result.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from typing import Optional

import av
import numpy as np

from mmv.errors import DataError

IN_MEMORY = "<in-memory media>"
AUDIO_EXTENSIONS: frozenset[str] = frozenset(".wav .flac .ogg .oga .opus .mp3 .m4a .aac .wma .aif .aiff".split())
PREROLL = 0.5  # s decoded before a window after a seek, so compressed decoders and the resampler settle
_SLACK = 0.05  # s of decoded audio kept around the span, for the resampler's filter


@dataclass(frozen=True)
class AudioInfo:
    """An audio stream's header facts (``duration`` may be 0 when the header does not say)."""

    path: str
    duration: float
    sample_rate: int
    channels: int


def audio_info(media: str | os.PathLike | bytes) -> AudioInfo:
    """Header facts of the first audio stream of ``media``."""
    with _Opened(media) as src:
        return src.info()


def load_audio(media: str | os.PathLike | bytes, sample_rate: int = 48000, start: float = 0.0,
               end: Optional[float] = None) -> np.ndarray:
    """Mono float32 samples at ``sample_rate`` of ``[start, end)`` seconds (``end=None``: to the end of the
    stream). Shorter than asked when the stream ends first; empty when ``start`` is past the end."""
    if sample_rate < 1:
        raise ValueError(f"sample_rate must be >= 1, got {sample_rate}")
    if not (math.isfinite(start) and start >= 0):
        raise ValueError(f"start must be a finite time >= 0, got {start}")
    if end is not None and not end >= start:
        raise ValueError(f"end must be >= start, got start={start}, end={end}")
    with _Opened(media) as src:
        return src.span(float(start), None if end is None else float(end), int(sample_rate))


def decode_audio(media: str | os.PathLike | bytes, start: float, seconds: float, sample_rate: int = 48000,
                 loop: bool = True) -> np.ndarray:
    """Exactly ``round(seconds * sample_rate)`` mono float32 samples in [-1, 1] from ``start`` (s).

    Past the end the window loops from the beginning (``loop=True``) or is zero-padded; a window that starts
    after the end starts at ``start mod duration`` when looping and is an error otherwise.
    """
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    n = int(round(seconds * sample_rate))
    x = load_audio(media, sample_rate, start, start + seconds)
    if len(x) >= n:
        return x[:n]
    if not loop:
        if len(x) == 0:
            raise DataError(_name(media), f"window starts at {start:.2f} s, after the end of the audio")
        return np.concatenate([x, np.zeros(n - len(x), np.float32)])
    whole = load_audio(media, sample_rate)
    return take_window(whole, int(round(start * sample_rate)), n, loop=True, where=_name(media))


def take_window(signal: np.ndarray, offset: int, n: int, *, loop: bool = True, where: str = IN_MEMORY) -> np.ndarray:
    """``n`` samples of ``signal`` from sample ``offset``, looped (or zero-padded) past its end."""
    if len(signal) == 0:
        raise DataError(where, "no audio samples")
    if loop:
        return signal[(offset + np.arange(n)) % len(signal)].astype(np.float32, copy=False)
    out = np.zeros(n, np.float32)
    part = signal[offset:offset + n]
    out[:len(part)] = part
    return out


def _name(media: object) -> str:
    return IN_MEMORY if isinstance(media, (bytes, bytearray, memoryview)) else os.fspath(media)


def _msg(e: BaseException) -> str:
    return str(getattr(e, "strerror", None) or e)


class _Opened:
    """An open container with its first decodable audio stream and time origin; closes on exit."""

    def __init__(self, media: str | os.PathLike | bytes):
        self.path = _name(media)
        if isinstance(media, (bytes, bytearray, memoryview)):
            if not bytes(media):
                raise DataError(self.path, "empty media (0 bytes)")
            source: object = io.BytesIO(bytes(media))
        else:
            if not os.path.exists(self.path):
                raise DataError(self.path, "file not found")
            if not os.path.isfile(self.path):
                raise DataError(self.path, "not a regular file")
            if os.path.getsize(self.path) == 0:
                raise DataError(self.path, "empty file (0 bytes)")
            source = self.path
        try:
            self.container = av.open(source, metadata_errors="ignore")
        except av.error.FFmpegError as e:
            raise DataError(self.path, f"not a media file FFmpeg can read ({_msg(e)})") from e
        except OSError as e:
            raise DataError(self.path, f"cannot read file ({_msg(e)})") from e
        try:
            self._choose_streams()
        except BaseException:
            self.container.close()
            raise

    def _choose_streams(self) -> None:
        c = self.container
        streams = [s for s in c.streams.audio if s.codec_context is not None]
        if not streams:
            raise DataError(self.path, "no audio stream" if not c.streams.audio else "no decoder for the audio codec")
        self.stream = streams[0]
        attached = av.stream.Disposition.attached_pic
        videos = [s for s in c.streams.video if not (s.disposition & attached)]
        ref = videos[0] if videos else self.stream
        if ref.start_time is not None:
            self.origin = float(ref.start_time * ref.time_base)
        else:
            self.origin = (c.start_time or 0) / av.time_base

    def __enter__(self) -> _Opened:
        return self

    def __exit__(self, *exc) -> None:
        self.container.close()

    def info(self) -> AudioInfo:
        s, c = self.stream, self.container
        if s.duration:
            duration = float(s.duration * s.time_base)
        elif c.duration:
            duration = c.duration / av.time_base
        else:
            duration = 0.0
        cc = s.codec_context
        return AudioInfo(self.path, duration, int(cc.sample_rate or 0), int(cc.channels or 0))

    def _seek(self, t: float) -> None:
        s = self.stream
        try:
            self.container.seek(int(math.floor((t + self.origin) / s.time_base)), stream=s, backward=True)
        except av.error.FFmpegError:
            self.container.seek(0, backward=True)
        s.codec_context.flush_buffers()

    def span(self, start: float, end: Optional[float], rate: int) -> np.ndarray:
        try:
            if start > PREROLL:
                self._seek(start - PREROLL)
                got = self._decode(start, end, rate, after_seek=True)
                if got is not None:
                    return got
                self._seek(0.0)  # the seek landed after the window: decode from the beginning
            got = self._decode(start, end, rate, after_seek=False)
            return got if got is not None else np.zeros(0, np.float32)
        except av.error.FFmpegError as e:
            kind = "corrupt data" if isinstance(e, av.error.InvalidDataError) else "decoding failed"
            raise DataError(self.path, f"{kind} (FFmpeg: {_msg(e)})") from e

    def _decode(self, start: float, end: Optional[float], rate: int, after_seek: bool) -> Optional[np.ndarray]:
        """Samples of ``[start, end)`` from the current position; None when that position is after ``start``
        (a seek that overshot), an empty array when the stream ends before ``start``."""
        s = self.stream
        kept: list[tuple[float, av.AudioFrame]] = []
        t_next: Optional[float] = None
        for frame in self.container.decode(s):
            tb = frame.time_base or s.time_base
            t = float(frame.pts * tb) - self.origin if frame.pts is not None else (t_next or 0.0)
            t_next = t + frame.samples / frame.sample_rate
            if t_next < start - _SLACK:
                continue
            if not kept and after_seek and t > start + 1e-3:
                return None
            kept.append((t, frame))
            if end is not None and t > end + _SLACK:
                break
        if not kept:
            return np.zeros(0, np.float32)
        t0 = kept[0][0]
        samples = self._resample([f for _, f in kept], rate)
        first = int(round((start - t0) * rate))
        if first < 0:  # the stream starts after ``start`` (positive start time): silence before it
            samples = np.concatenate([np.zeros(-first, np.float32), samples])
            first = 0
        last = len(samples) if end is None else min(len(samples), first + int(round((end - start) * rate)))
        return samples[first:last] if last > first else np.zeros(0, np.float32)

    def _resample(self, frames: list[av.AudioFrame], rate: int) -> np.ndarray:
        """Frames in order, concatenated and resampled to mono ``rate`` (timestamp gaps are not filled)."""
        resampler = av.AudioResampler(format="fltp", rate=rate)
        chunks: list[np.ndarray] = []
        try:
            for frame in frames:
                frame.pts = None  # the resampler must not insert or drop samples from timestamps
                chunks += [o.to_ndarray().mean(axis=0) for o in resampler.resample(frame)]
            chunks += [o.to_ndarray().mean(axis=0) for o in resampler.resample(None)]
        except ValueError as e:
            raise DataError(self.path, f"audio format changes inside the stream ({e})") from e
        if not chunks:
            return np.zeros(0, np.float32)
        return np.clip(np.concatenate(chunks), -1.0, 1.0).astype(np.float32)
