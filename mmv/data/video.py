"""Frames and audio of one time window of a video file, decoded with PyAV (FFmpeg).

Sampling is by time, not by frame index: frame ``i`` of a clip is the frame on screen at
``start + i / fps``, and the audio covers exactly ``[start, start + num_frames / fps)``. That makes the
source frame rate irrelevant (variable frame rate included) and keeps sound and picture in sync, which the
audio-visual contrastive loss depends on. Times are seconds from the first frame of the video stream.

Files are opened once per clip; decoding starts at the keyframe before the window (plus a short audio
pre-roll) rather than at the beginning. Anything wrong with a file becomes a ``DataError`` naming it.
"""

from __future__ import annotations

import heapq
import io
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Optional

import av
import numpy as np
import torch

from mmv.errors import DataError

# A path, or the bytes of a media file held in memory (a shard sample).
Media = os.PathLike | str | bytes
IN_MEMORY = "<in-memory media>"

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    ".mp4 .m4v .mkv .webm .avi .mov .mpg .mpeg .ts .m2ts .mts .flv .wmv .asf .ogv .3gp .divx".split())

AUDIO_PREROLL = 0.5  # s decoded before a window, so MP3/AAC decoders and the resampler have settled
_REORDER = 8  # frames of look-ahead used to repair out-of-order timestamps (packed B-frames in AVI)
_EPS = 1e-6  # s: float slack when comparing a frame time with a sampling time


@dataclass(frozen=True)
class VideoInfo:
    """What a file holds, from its header (and one decoded frame in ``probe_video``)."""

    path: str
    duration: float
    fps: float
    width: int
    height: int
    has_audio: bool
    audio_sample_rate: Optional[int]
    audio_channels: Optional[int]


@dataclass
class Clip:
    """One window: ``frames`` uint8 ``[T, H, W, 3]`` RGB; ``audio`` float32 ``[samples]`` mono in [-1, 1].

    ``has_audio`` is False when the file has no audio stream or audio was not asked for; ``audio`` is then
    zeros of the usual length, so batches keep one shape and a mask can say which audio is real.
    """

    frames: torch.Tensor
    audio: torch.Tensor
    has_audio: bool
    start: float
    fps: float
    sample_rate: int


def probe_video(path: Media) -> VideoInfo:
    """Read a file's header and decode its first frame, so an unusable file is found before training."""
    return _run(path, None, lambda src: src.first_frame() or src.info)


def decode_clip(path: Media, start: float, num_frames: int, fps: float, *, sample_rate: int = 48000,
                with_audio: bool = True, loop: bool = True, info: Optional[VideoInfo] = None) -> Clip:
    """Decode ``num_frames`` frames at ``fps`` from ``start`` (s) and the audio of the same span.

    Audio is the mean of the channels, resampled to ``sample_rate`` by FFmpeg's resampler, exactly
    ``round(num_frames / fps * sample_rate)`` samples. With ``loop`` a window that runs past the end continues
    from the beginning (as the official pipeline loops short videos); without it the last frame is held and
    the audio is silent past the end. ``info`` (from ``probe_video``) saves re-deriving duration and rate.
    """
    if num_frames < 1 or not fps > 0 or sample_rate < 1:
        raise ValueError(f"need num_frames >= 1, fps > 0, sample_rate >= 1; got {num_frames}, {fps}, {sample_rate}")
    if not (math.isfinite(start) and start >= 0):
        raise ValueError(f"start must be a finite time >= 0, got {start}")
    return _run(path, info, lambda src: src.clip(float(start), int(num_frames), float(fps), int(sample_rate),
                                                  with_audio, loop))


def train_window_start(duration: float, clip_seconds: float, generator: torch.Generator) -> float:
    """A uniform random start in ``[0, max(0, duration - clip_seconds)]`` (temporal sampling augmentation)."""
    span = max(0.0, float(duration) - float(clip_seconds))
    return float(torch.rand((), generator=generator, dtype=torch.float64)) * span


def eval_window_starts(duration: float, clip_seconds: float, n: int) -> list[float]:
    """``n`` linearly spaced starts from 0 to ``max(0, duration - clip_seconds)``: the official UCF101 test windows
    (which space frame indices the same way), deterministic so evaluation is repeatable."""
    if n < 1:
        raise ValueError(f"need at least one window, got n={n}")
    span = max(0.0, float(duration) - float(clip_seconds))
    return [float(x) for x in np.linspace(0.0, span, n)]


def _run(path: Media, info: Optional[VideoInfo], fn):
    """Open the file once, run ``fn`` on it, turn any FFmpeg error into a ``DataError``, always close."""
    if isinstance(path, (bytes, bytearray, memoryview)):
        p, container = IN_MEMORY, _open_bytes(bytes(path))
    else:
        p = os.fspath(path)
        container = _open(p)
    try:
        return fn(_Source(p, container, info))
    except av.error.FFmpegError as e:
        raise DataError(p, _ffmpeg_reason(e)) from e
    finally:
        container.close()


def _msg(e: BaseException) -> str:
    return str(getattr(e, "strerror", None) or e)


def _ffmpeg_reason(e: BaseException) -> str:
    return f"{'corrupt data' if isinstance(e, av.error.InvalidDataError) else 'decoding failed'} (FFmpeg: {_msg(e)})"


def _truncated(reached: float, duration: float) -> str:
    return f"truncated: decoding stopped at {reached:.1f} s of {duration:.1f} s"


def tag_seconds(tag: Optional[str]) -> Optional[float]:
    """Matroska's per-track ``DURATION`` tag, ``HH:MM:SS.nnnnnnnnn``, in seconds (None if absent or malformed)."""
    try:
        h, m, sec = str(tag).split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        return None


def _open_bytes(data: bytes):
    """A container over media held in memory (a sample read from a shard)."""
    if not data:
        raise DataError(IN_MEMORY, "empty media (0 bytes)")
    try:
        return av.open(io.BytesIO(data), metadata_errors="ignore")
    except av.error.FFmpegError as e:
        raise DataError(IN_MEMORY, f"not media FFmpeg can read ({_msg(e)})") from e


def _open(p: str):
    if not os.path.exists(p):
        raise DataError(p, "file not found")
    if not os.path.isfile(p):
        raise DataError(p, "not a regular file")
    if os.path.getsize(p) == 0:
        raise DataError(p, "empty file (0 bytes)")
    try:
        return av.open(p, metadata_errors="ignore")
    except av.error.FFmpegError as e:
        raise DataError(p, f"not a media file FFmpeg can read ({_msg(e)})") from e
    except OSError as e:
        raise DataError(p, f"cannot read file ({_msg(e)})") from e


class _Source:
    """An open container with its chosen streams and time origin."""

    def __init__(self, path: str, container, info: Optional[VideoInfo]):
        self.path, self.container = path, container
        attached = av.stream.Disposition.attached_pic
        videos = [s for s in container.streams.video if not (s.disposition & attached)]
        if not videos:
            raise DataError(path, "no video stream" + (" (audio only)" if container.streams.audio else ""))
        self.vs = videos[0]
        audios = [s for s in container.streams.audio if s.codec_context is not None]  # None: no decoder
        self.audio = audios[0] if audios else None
        if self.vs.codec_context is None:
            raise DataError(path, f"no decoder for the video codec ({self.vs.codec_tag})")
        self.vs.thread_type = "AUTO"
        vs_start = self.vs.start_time
        self.origin = float(vs_start * self.vs.time_base) if vs_start is not None else (container.start_time or 0) / 1e6
        self.at_start = True
        self.info = info if info is not None else self._read_info()

    def _read_info(self) -> VideoInfo:
        vs, c = self.vs, self.container
        if vs.duration:
            duration = float(vs.duration * vs.time_base)
        elif tag_seconds(vs.metadata.get("DURATION")):  # Matroska: per-track tag, the header has only the max
            duration = tag_seconds(vs.metadata["DURATION"])
        elif c.duration:
            duration = (c.duration + (c.start_time or 0)) / av.time_base - self.origin
        else:
            duration = self._scan_duration()
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        fps = float(rate) if rate else (vs.frames / duration if vs.frames and duration > 0 else 0.0)
        if not duration > 0:
            raise DataError(self.path, "zero duration (no video frames)")
        a = self.audio
        return VideoInfo(self.path, duration, fps, vs.codec_context.width, vs.codec_context.height, a is not None,
                         a.codec_context.sample_rate if a is not None else None,
                         a.codec_context.channels if a is not None else None)

    def _packet_end(self, packet) -> float:
        ts = packet.pts if packet.pts is not None else packet.dts
        return -math.inf if ts is None else float((ts + (packet.duration or 0)) * packet.time_base) - self.origin

    def _scan_duration(self) -> float:
        """How far the video packets really go: for headers without a duration, and for the message about a
        file cut short. Demuxes without decoding, from the start."""
        self._seek(0.0, force=True)
        end = 0.0
        try:
            for packet in self.container.demux(self.vs):
                end = max(end, self._packet_end(packet))
        except av.error.FFmpegError:
            pass
        self._seek(0.0, force=True)
        return end

    def _seek(self, t: float, force: bool = False) -> None:
        if t <= 0 and self.at_start and not force:
            return
        ts = int(math.floor((max(t, 0.0) + self.origin) / self.vs.time_base))
        try:
            self.container.seek(ts, stream=self.vs, backward=True, any_frame=False)
        except av.error.FFmpegError:
            try:  # some demuxers refuse a target before the first keyframe
                self.container.seek(0, backward=True)
            except av.error.FFmpegError as e:
                raise DataError(self.path, f"cannot seek to {t:.2f} s ({_msg(e)})") from e
        for s in (self.vs, self.audio):
            if s is not None:
                s.codec_context.flush_buffers()
        self.at_start = t <= 0

    def first_frame(self) -> None:
        for _ in self._frames(self.container.demux(self.vs), depth=0):
            return
        raise DataError(self.path, "no decodable video frames")

    def _frames(self, packets, depth: int = _REORDER) -> Iterator[tuple[float, av.VideoFrame]]:
        """Video frames with display times, in display order.

        Decoders emit frames in display order, but some files attach the wrong timestamps to them (MPEG-4
        part 2 with packed B-frames in AVI gives pts 1, 2, 4, 3, ...). Handing the sorted timestamps of a
        small look-ahead window out in output order repairs that and changes nothing for sane files.
        """
        pending: list[av.VideoFrame] = []
        times: list[float] = []
        last = -math.inf
        for packet in packets:
            for frame in packet.decode():
                ts = frame.pts if frame.pts is not None else frame.dts
                t = float(ts * frame.time_base) - self.origin if ts is not None else last + 1e-3
                last = max(last, t)
                pending.append(frame)
                heapq.heappush(times, t)
                if len(pending) > depth:
                    yield heapq.heappop(times), pending.pop(0)
        while pending:
            yield heapq.heappop(times), pending.pop(0)

    def clip(self, start: float, num_frames: int, fps: float, sample_rate: int, with_audio: bool, loop: bool) -> Clip:
        length = self.info.duration
        span = num_frames / fps
        frame_t = start + np.arange(num_frames) / fps
        n_audio = int(round(span * sample_rate))
        audio_t = start + np.arange(n_audio) / sample_rate
        if loop:
            frame_t, audio_t = np.mod(frame_t, length), np.mod(audio_t, length)
            s0, e0 = start % length, start % length + span
            if span >= length or e0 - length >= s0:
                ranges = [(0.0, length)]
            elif e0 <= length:
                ranges = [(s0, e0)]
            else:
                ranges = [(0.0, e0 - length), (s0, length)]
        else:
            if start >= length:
                raise DataError(self.path, f"window starts at {start:.2f} s, after the end ({length:.2f} s)")
            ranges = [(start, start + span)]
        want_audio = with_audio and self.audio is not None
        self.sample_rate = sample_rate
        frames: list[Optional[np.ndarray]] = [None] * num_frames
        audio = np.zeros(n_audio, np.float32)
        for i, (a, b) in enumerate(ranges):
            last = i == len(ranges) - 1
            in_range = (frame_t >= a - _EPS) & ((frame_t < b + _EPS) | last)
            idx = [k for k in np.flatnonzero(in_range) if frames[k] is None]
            idx.sort(key=lambda k: frame_t[k])
            buf = self._decode_range(a, b, frame_t[idx], idx, frames, want_audio)
            if buf is not None:
                t0, samples = buf
                sel = np.flatnonzero((audio_t >= a - _EPS) & (audio_t < b + _EPS))
                pos = np.floor((audio_t[sel] - t0) * sample_rate + 0.5).astype(np.int64)
                ok = (pos >= 0) & (pos < len(samples))
                audio[sel[ok]] = samples[pos[ok]]
        if any(f is None for f in frames):
            raise DataError(self.path, f"could not decode the window at {start:.2f} s")
        shapes = {f.shape for f in frames}
        if len(shapes) != 1:
            raise DataError(self.path, f"frame size changes inside the video ({sorted(shapes)})")
        return Clip(torch.from_numpy(np.stack(frames)), torch.from_numpy(np.clip(audio, -1.0, 1.0)), want_audio,
                    start, fps, sample_rate)

    def _decode_range(self, a: float, b: float, need_t: np.ndarray, need_idx: list[int],
                      frames: list[Optional[np.ndarray]], want_audio: bool):
        """Decode ``[a, b)``: fill ``frames[need_idx[j]]`` with the frame shown at ``need_t[j]`` and return the
        range's audio as ``(time of its first sample, mono samples at the target rate)``, or None."""
        target = a - (AUDIO_PREROLL if want_audio else 0.0)
        self._seek(target)
        result = self._decode_from_here(a, b, need_t, need_idx, frames, want_audio, retry=target > 0)
        if result is False:  # the seek landed after the window: decode from the beginning instead
            self._seek(0.0, force=True)
            result = self._decode_from_here(a, b, need_t, need_idx, frames, want_audio, retry=False)
        return result

    def _decode_from_here(self, a, b, need_t, need_idx, frames, want_audio, retry):
        streams = [self.vs] + ([self.audio] if want_audio else [])
        demuxed = self.container.demux(*streams)
        state = {"end": -math.inf, "video_done": False}

        def video_packets():
            for packet in demuxed:
                state["end"] = max(state["end"], self._packet_end(packet))
                if packet.stream is self.vs:
                    if not state["video_done"]:
                        yield packet
                else:
                    self._take_audio(packet, a, b, audio_frames)
                if state["video_done"] and self.audio_done:
                    return

        audio_frames: list[tuple[float, av.AudioFrame]] = []
        self.audio_done = not want_audio
        j, prev, cache = 0, None, (None, None)
        for t, frame in self._frames(video_packets()):
            if prev is None and retry and t > a + _EPS:
                return False  # the seek landed after the window's start
            while j < len(need_t) and need_t[j] + _EPS < t:
                cache = self._assign(prev or (t, frame), cache, frames, need_idx[j])
                j += 1
            prev = (t, frame)
            state["video_done"] = j == len(need_t)
            if state["video_done"] and self.audio_done:
                break
        if prev is None:
            if a <= 0:
                raise DataError(self.path, "no decodable video frames")
            reached = self._scan_duration()
            if reached < a:
                raise DataError(self.path, _truncated(reached, self.info.duration))
            raise DataError(self.path, f"no frame decodes after {a:.2f} s")
        if j < len(need_t):
            wanted = min(float(need_t[-1]), self.info.duration)
            reached = max(prev[0], state["end"])
            tol = max(0.5, 3.0 / self.info.fps if self.info.fps > 0 else 0.5)
            if reached < wanted - tol:
                raise DataError(self.path, _truncated(reached, self.info.duration))
            for k in need_idx[j:]:
                cache = self._assign(prev, cache, frames, k)
        self.at_start = False
        if retry and audio_frames and audio_frames[0][0] > a + 1e-3:
            return False  # the audio of the window's start lies before where the seek landed
        return self._resample(audio_frames) if want_audio else None

    @staticmethod
    def _assign(item, cache, frames, k):
        frame = item[1]
        if cache[0] is not frame:
            cache = (frame, frame.to_ndarray(format="rgb24"))
        frames[k] = cache[1]
        return cache

    def _take_audio(self, packet, a: float, b: float, out: list) -> None:
        if self.audio_done:
            return
        for frame in packet.decode():
            t = (float(frame.pts * frame.time_base) - self.origin if frame.pts is not None
                 else out[-1][0] + out[-1][1].samples / out[-1][1].sample_rate if out else a)
            if t + frame.samples / frame.sample_rate < a - 0.05:
                continue  # keep 50 ms before the window as resampler history
            out.append((t, frame))
            if t > b + 0.05:
                self.audio_done = True

    def _resample(self, audio_frames):
        if not audio_frames:
            return None
        sr = self.sample_rate
        resampler = av.AudioResampler(format="fltp", rate=sr)
        chunks: list[np.ndarray] = []

        def mono(outs) -> list[np.ndarray]:  # mean of the channels: stays in [-1, 1], unlike FFmpeg's downmix
            return [o.to_ndarray().mean(axis=0, keepdims=True) for o in outs]

        t0 = expected = audio_frames[0][0]
        try:
            for t, frame in audio_frames:
                gap = t - expected
                if gap < -0.002:
                    continue  # overlapping timestamps: keep the earlier audio
                if gap > 0.002:  # a hole in the stream: silence, so that later samples keep their times
                    chunks += mono(resampler.resample(None))
                    chunks.append(np.zeros((1, int(round(gap * sr))), np.float32))
                    resampler = av.AudioResampler(format="fltp", rate=sr)
                expected = t + frame.samples / frame.sample_rate
                frame.pts = None
                chunks += mono(resampler.resample(frame))
            chunks += mono(resampler.resample(None))
        except ValueError as e:
            raise DataError(self.path, f"audio format changes inside the stream ({e})") from e
        return t0, np.concatenate(chunks, axis=1)[0].astype(np.float32)
