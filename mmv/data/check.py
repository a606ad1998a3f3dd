"""Check a folder of videos before training on it, so that broken files are listed up front with a reason
instead of failing (or being skipped unseen) somewhere in the middle of a run.

A video is usable when PyAV opens it, it has a video stream, its first frame decodes, and it still has frames
near the end of its declared duration: we seek to one second before that end, decode the first frame found
there, and read (without decoding) the packets up to the end. A file cut short (an interrupted download or
copy) either fails to open (MP4 with its index at the end), or stops more than a second before the duration
its header declares. That costs a few milliseconds per file, whatever the file's length. Containers whose
header declares no duration (MPEG-TS, raw streams) cannot be told from shorter files: they pass if they decode.

Which files are looked at: in a folder (walked recursively, in sorted order) every file whose extension is in
``extensions``. Other files are ignored, except that the first 16 bytes of files with an unknown extension are
read: a video container under another name (``clip.mp4.part``, ``clip.bin``, no extension) is reported as
bad, since loaders that go by extension would skip it unseen. Known video extensions left out of
``extensions`` on purpose, and known audio, text and image extensions, are not sniffed.
Paths given one by one are checked whatever their extension.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Optional, Union

import av

from mmv.data.video import VIDEO_EXTENSIONS, tag_seconds
from mmv.errors import DataError

_NOT_SNIFFED = frozenset({".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".opus", ".mka", ".wma", ".txt", ".csv",
                          ".json", ".srt", ".vtt", ".md", ".npy", ".npz", ".pkl", ".jpg", ".jpeg", ".png"})
_END_TOLERANCE_S = 1.0
_MAX_PACKETS_FOR_FIRST_FRAME = 300  # decoders hold back a few frames (B-frames, threads), never hundreds
PathLike = Union[str, os.PathLike]


@dataclass
class CheckReport:
    """What `check_dataset` found: usable files, bad files with a reason, and the usable ones without audio."""

    ok: list[str] = field(default_factory=list)
    bad: list[dict] = field(default_factory=list)
    without_audio: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the whole check; not in to_json, which stays the same from run to run

    def to_json(self) -> dict:
        return {"ok": list(self.ok), "bad": [{"path": b["path"], "reason": b["reason"]} for b in self.bad],
                "without_audio": list(self.without_audio)}

    def summary(self) -> str:
        n = len(self.ok) + len(self.bad)
        per_file = f", {1000 * self.seconds / n:.1f} ms per file" if n else ""
        lines = [f"{n} files checked: {len(self.ok)} ok ({len(self.without_audio)} without audio), "
                 f"{len(self.bad)} bad{per_file}"]
        lines += [f"  bad: {b['path']}: {b['reason']}" for b in self.bad]
        return "\n".join(lines)


def _error_text(e: Exception) -> str:
    """FFmpeg's message without the path PyAV appends."""
    return str(getattr(e, "strerror", None) or e).strip() or type(e).__name__


def _sniff(path: Path) -> Optional[str]:
    """The video container the file's first bytes announce, or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    if head[4:8] == b"ftyp":
        return None if head[8:11] in (b"M4A", b"M4B", b"M4P") else "MP4/QuickTime"
    if head[4:8] in (b"moov", b"mdat", b"wide"):
        return "QuickTime"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska/WebM"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    if head[:3] == b"FLV":
        return "FLV"
    if head[:4] == b"\x00\x00\x01\xba":
        return "MPEG program stream"
    if head[:8] == b"\x30\x26\xb2\x75\x8e\x66\xcf\x11":
        return "ASF/WMV"
    return None


def _declared_end(container: av.container.InputContainer, video: av.VideoStream) -> tuple[Optional[float], str]:
    """(seconds from the video stream's start to its declared end, who declares it): the longest of what the
    stream's header says (duration, frame count / rate, Matroska's DURATION tag), else the container's duration."""
    ends = []
    if video.duration and video.time_base:
        ends.append(float(video.duration * video.time_base))
    if video.frames and video.average_rate:
        ends.append(video.frames / float(video.average_rate))
    tagged = tag_seconds(video.metadata.get("DURATION") or video.metadata.get("duration"))
    if tagged is not None:
        ends.append(tagged)
    if ends:
        return max(ends), "video stream"
    return (container.duration / av.time_base if container.duration else None), "container"


def _first_frames(container: av.container.InputContainer, video: av.VideoStream,
                  audio: Optional[av.AudioStream]) -> tuple[Optional[str], bool]:
    """(reason the first video frame fails, whether an audio frame decodes) reading from the start."""
    got_video = got_audio = False
    tries = 0
    try:
        for packet in container.demux([s for s in (video, audio) if s is not None]):
            if packet.stream.type == "video" and not got_video:
                got_video, tries = bool(packet.decode()), tries + 1
                if tries > _MAX_PACKETS_FOR_FIRST_FRAME and not got_video:
                    break
            elif packet.stream.type == "audio" and not got_audio:
                try:
                    got_audio = bool(packet.decode())
                except av.FFmpegError:
                    audio = None  # an audio track that does not decode is no audio
            if got_video and (got_audio or audio is None):
                break
    except av.FFmpegError as e:
        if not got_video:
            return f"first frame does not decode ({_error_text(e)})", got_audio
    return (None if got_video else "no video frame decodes"), got_audio


def _check_end(container: av.container.InputContainer, video: av.VideoStream, path: Path) -> Optional[str]:
    """Why the video does not reach its declared end, or None when it does (or declares no end)."""
    end, declared_by = _declared_end(container, video)
    tb = video.time_base or Fraction(1, av.time_base)
    origin = float((video.start_time or 0) * tb)
    fps = float(video.average_rate or video.guessed_rate or 25)
    tolerance = max(_END_TOLERANCE_S, 2 / fps)
    decoded, reached = False, None
    try:
        if end is not None:
            container.seek(int((origin + max(0.0, end - tolerance)) / tb), stream=video, backward=True)
    except av.FFmpegError:  # not seekable: read every packet from the start instead
        container.close()
        container = av.open(str(path), metadata_errors="ignore")
        video, decoded = container.streams.video[0], True
    try:
        for packet in container.demux(video):
            t = packet.pts if packet.pts is not None else packet.dts
            if t is not None:
                t_end = float((t + (packet.duration or 0)) * tb) - origin
                reached = t_end if reached is None else max(reached, t_end)
            if not decoded:  # the first frame after the seek (the empty packet at the end flushes the decoder)
                decoded = bool(packet.decode())
    except av.FFmpegError as e:
        return f"read error near the end ({_error_text(e)}): truncated?"
    finally:
        container.close()
    if end is None:
        return None
    if not decoded:
        return f"truncated: no frame decodes near the end ({end:.2f} s, as the {declared_by} declares)"
    if reached is None or reached < end - tolerance:
        return f"truncated: video stops at {reached or 0:.2f} s of the {end:.2f} s the {declared_by} declares"
    return None


def check_video(path: PathLike) -> tuple[bool, Optional[str], bool]:
    """(usable, the reason when not, has audio): see the module notes for what "usable" takes.

    has_audio means an audio stream whose first frame decodes; a file without it is still usable.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        return False, f"cannot read ({e.strerror or e})", False
    if size == 0:
        return False, "empty file (0 bytes)", False
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError) as e:
        if _sniff(path) == "MP4/QuickTime":  # the index (moov atom) is written last: missing when the file is cut
            return False, f"MP4 without a readable index ({_error_text(e)}): truncated?", False
        return False, f"not a readable media file ({_error_text(e)})", False
    try:
        fmt = container.format.name
        if fmt.endswith("_pipe") or fmt in ("image2", "gif"):
            return False, f"a still image ({fmt}), not a video", False
        if not container.streams.video:
            return False, "no video stream" + (" (audio only)" if container.streams.audio else ""), False
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        reason, has_audio = _first_frames(container, video, audio)
        if reason is None:
            reason = _check_end(container, video, path)
        return reason is None, reason, has_audio
    finally:
        container.close()


def _walk(folder: Path) -> Iterator[Path]:
    for parent, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            yield Path(parent) / name


def _files(root: PathLike | Iterable[PathLike], extensions: frozenset[str]) -> Iterator[tuple[Path, Optional[str]]]:
    """(path, reason it is bad before opening it, or None to open it), without repeats."""
    single = isinstance(root, (str, os.PathLike))
    if single and not Path(root).exists():
        raise DataError(root, "no such file or folder")
    seen: set[Path] = set()
    for item in ([root] if single else root):
        item = Path(item)
        if item.is_dir():
            for path in _walk(item):
                suffix = path.suffix.lower()
                if path in seen:
                    continue
                seen.add(path)
                if suffix in extensions:
                    yield path, None
                elif suffix not in _NOT_SNIFFED and suffix not in VIDEO_EXTENSIONS and (kind := _sniff(path)):
                    yield path, f"{kind} data under the extension {path.suffix or '(none)'!r}, which loaders skip"
        elif item not in seen:
            seen.add(item)
            yield item, (None if item.exists() else "missing file")


def check_dataset(root: PathLike | Iterable[PathLike], *, extensions: Iterable[str] = VIDEO_EXTENSIONS) -> CheckReport:
    """Check every video under a folder (or each of a list of paths and folders); see the module notes."""
    extensions = frozenset(e.lower() for e in extensions)
    report = CheckReport()
    started = time.perf_counter()
    for path, reason in _files(root, extensions):
        has_audio = False
        if reason is None:
            try:
                _, reason, has_audio = check_video(path)
            except Exception as e:  # a checker bug must not end a run over a million files; it is reported
                reason = f"checker failed: {type(e).__name__}: {e}"
        if reason is None:
            report.ok.append(str(path))
            if not has_audio:
                report.without_audio.append(str(path))
        else:
            report.bad.append({"path": str(path), "reason": reason})
    report.seconds = time.perf_counter() - started
    return report
