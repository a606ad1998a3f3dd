"""Narrations: HowTo100M caption files, SubRip/WebVTT subtitles, and the narration nearest a clip.

MMV pairs a clip with the speech said around it, so every reader here gives `Narration`s sorted by start.
Nothing is dropped silently. What makes a whole file unusable (undecodable, not JSON, a CSV without the
``start,end,text`` header, a .vtt without ``WEBVTT``) always raises `DataError`. A bad cue or row (bad or
out-of-range timestamp, end before start, non-numeric time, a block without a timing line) raises `DataError`
naming the file and line; pass a list as ``skipped=`` to go on without it instead: each is appended there as
a `DataError`, for the run to count and report. In caption.json, an entry broken as a whole (not an object, a
missing key, lists of unequal length) is then skipped whole; a bad value skips only its cue. Subtitle cues
left with no text once tags are stripped are formatting, not speech, and are dropped; in HowTo100M files an
empty text is kept (every word was a stop word).
"""

from __future__ import annotations

import csv
import heapq
import html
import json
import math
import os
import re
import time
from bisect import bisect_left
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Optional

from mmv.errors import DataError

SUBTITLE_EXTENSIONS = (".srt", ".vtt")
_TS = r"(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[.,](\d{1,3}))?"
_TIMING = re.compile(rf"[ \t]*{_TS}[ \t]*-->[ \t]*{_TS}(?:[ \t].*)?")
_VTT_HEADER = re.compile(r"WEBVTT(?:[ \t].*)?")
_VTT_SKIP_BLOCK = re.compile(r"(?:NOTE|STYLE|REGION)(?:[ \t].*)?")
_TAG = re.compile(r"<[^<>]*>")  # <i>, </c>, <c.colorE5E5E5>, <00:00:01.000>, <v Speaker>, <font ...>
_ASS_TAG = re.compile(r"\{\\[^{}]*\}")  # {\an8}, {\i1}: SubStation overrides that some .srt files carry
_NEWLINE = re.compile(r"\r\n|\r|\n")
_RACY_NS = 2 * 10**9  # a folder changed this recently is listed afresh: its timestamp may hide a later change
_CONTIGUOUS_S = 0.05  # a cue starting at most this long after the previous one ends continues it (rolling captions)


@dataclass(frozen=True, slots=True)
class Narration:
    """One piece of speech: seconds from the start of the video, and its text."""

    start: float
    end: float
    text: str


def _problem(path: object, where: str, reason: str, skipped: Optional[list[DataError]]) -> None:
    """Raise, or record and go on when the caller collects skipped cues."""
    error = DataError(path, f"{where}: {reason}")
    if skipped is None:
        raise error
    skipped.append(error)


def _seconds(value: object) -> Optional[float]:
    """A finite number of seconds, or None (bools, strings, NaN, infinities and huge ints are not times)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if abs(value) < 1e308 else None  # exact for huge ints, False for NaN


def load_howto100m_captions(
    path: str | Path, *, video_ids: Optional[Collection[str]] = None, skipped: Optional[list[DataError]] = None
) -> dict[str, list[Narration]]:
    """video_id -> narrations, from caption.json or from a folder of per-video ``<video_id>.csv`` (MIL-NCE's zip).

    ``video_ids`` keeps only those videos, which saves memory on the full 1.2M-video file.
    """
    path = Path(path)
    if path.is_dir():
        out = {}
        for csv_path in sorted(path.glob("*.csv")):
            if video_ids is None or csv_path.stem in video_ids:
                out[csv_path.stem] = read_caption_csv(csv_path, skipped=skipped)
        return out
    try:
        with open(path, encoding="utf-8-sig") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(path, f"cannot read: {e}") from e
    except json.JSONDecodeError as e:
        raise DataError(path, f"line {e.lineno}: not JSON ({e.msg})") from e
    if not isinstance(data, dict):
        raise DataError(path, f"expected an object video_id -> {{start, end, text}}, got {type(data).__name__}")
    out = {}
    for video_id, entry in data.items():
        if video_ids is not None and video_id not in video_ids:
            continue
        where = f"entry {video_id!r}"
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), list) for k in ("start", "end", "text")):
            _problem(path, where, "expected lists 'start', 'end' and 'text'", skipped)
            continue
        lengths = [len(entry[k]) for k in ("start", "end", "text")]
        if len(set(lengths)) != 1:
            _problem(path, where, "unequal lengths of start/end/text: {}/{}/{}".format(*lengths), skipped)
            continue
        narrations = []
        for i, (start, end, text) in enumerate(zip(entry["start"], entry["end"], entry["text"])):
            s, e = _seconds(start), _seconds(end)
            if s is None or e is None:
                _problem(path, f"{where}, cue {i}", f"time is not a finite number: {start!r}, {end!r}", skipped)
            elif e < s:
                _problem(path, f"{where}, cue {i}", f"end {e} before start {s}", skipped)
            elif not isinstance(text, str):
                _problem(path, f"{where}, cue {i}", f"text is not a string: {text!r}", skipped)
            else:
                narrations.append(Narration(s, e, text))
        out[video_id] = sorted(narrations, key=lambda n: (n.start, n.end))
    return out


def read_caption_csv(path: str | Path, *, skipped: Optional[list[DataError]] = None) -> list[Narration]:
    """One video's narrations from a ``start,end,text`` CSV; empty text is kept (all its words were stop words)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(path, f"cannot read: {e}") from e
    header = [h.strip() for h in (rows[0] if rows else [])]
    if not {"start", "end", "text"} <= set(header):
        raise DataError(path, f"line 1: header {rows[0] if rows else '(empty file)'} lacks start, end and text")
    col = {name: header.index(name) for name in ("start", "end", "text")}
    narrations = []
    for line, row in enumerate(rows[1:], 2):
        if not row:
            continue
        if len(row) != len(header):
            _problem(path, f"line {line}", f"{len(row)} fields, the header has {len(header)}", skipped)
            continue
        try:
            s, e = float(row[col["start"]]), float(row[col["end"]])
        except ValueError:
            s = e = math.nan
        if not (math.isfinite(s) and math.isfinite(e)):
            _problem(path, f"line {line}", f"time is not a finite number: {row[col['start']]!r}, "
                                            f"{row[col['end']]!r}", skipped)
        elif e < s:
            _problem(path, f"line {line}", f"end {e} before start {s}", skipped)
        else:
            narrations.append(Narration(s, e, row[col["text"]]))
    return sorted(narrations, key=lambda n: (n.start, n.end))


def _timing(line: str) -> tuple[float, float] | str:
    """(start, end) of a timing line, or the reason it is not one."""
    m = _TIMING.fullmatch(line)
    if m is None:
        return f"bad timing line {line.strip()[:60]!r}"
    times = []
    for h, mi, s, frac in (m.groups()[:4], m.groups()[4:]):
        if int(mi) >= 60 or int(s) >= 60:
            return f"minutes or seconds out of range in {line.strip()[:60]!r}"
        ms = ((int(h or 0) * 60 + int(mi)) * 60 + int(s)) * 1000 + int((frac or "0").ljust(3, "0"))
        times.append(ms / 1000)  # one rounding: "00:00:03.510" gives exactly the float 3.51
    if times[1] < times[0]:
        return f"end before start in {line.strip()[:60]!r}"
    return times[0], times[1]


def _clean(line: str, vtt: bool) -> str:
    text = _TAG.sub("", _ASS_TAG.sub("", line))
    return " ".join((html.unescape(text) if vtt else text).split())


def _srt_cues(lines: list[str], source: str, skipped: Optional[list[DataError]]) -> list[tuple]:
    """(start, end, text lines) per cue. A cue's text runs up to the next timing line, as in FFmpeg's reader,
    so blank lines inside a cue do not lose text; a number right above a timing line is that cue's index."""
    cues: list[list] = [[None, None, []]]  # [start, end, [(line number, text)]]; the first collects stray text
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if "-->" not in line:
            if line:
                cues[-1][2].append((n, line))
            continue
        above = cues[-1][2]
        if above and above[-1][0] == n - 1 and above[-1][1].isdigit():
            above.pop()
        times = _timing(raw)
        if isinstance(times, str):
            _problem(source, f"line {n}", times, skipped)
            times = (None, None)
        cues.append([*times, []])
    if cues[0][2]:
        _problem(source, f"line {cues[0][2][0][0]}", f"text outside any cue: {cues[0][2][0][1][:60]!r}", skipped)
    return [(s, e, [t for _, t in text]) for s, e, text in cues if s is not None]


def _vtt_cues(lines: list[str], source: str, skipped: Optional[list[DataError]]) -> list[tuple]:
    """(start, end, text lines) per cue, following the WebVTT parser: blocks end at an empty line, and a line
    with '-->' starts a new cue. A line holding only spaces is cue text, not a separator (YouTube uses it)."""
    if not lines or not _VTT_HEADER.fullmatch(lines[0]):
        raise DataError(source, f"line 1: missing 'WEBVTT' header, found {(lines or [''])[0][:40]!r}")
    i, n = 1, len(lines)
    while i < n and lines[i] != "" and "-->" not in lines[i]:  # header block: Kind:, Language:, ...
        i += 1
    cues = []
    while i < n:
        if lines[i].strip() == "":
            i += 1
            continue
        if _VTT_SKIP_BLOCK.fullmatch(lines[i]):  # NOTE, STYLE, REGION
            while i < n and lines[i] != "":
                i += 1
            continue
        if "-->" not in lines[i] and (i + 1 >= n or "-->" not in lines[i + 1]):
            _problem(source, f"line {i + 1}", f"block without a timing line: {lines[i].strip()[:60]!r}", skipped)
            while i < n and lines[i] != "":
                i += 1
            continue
        if "-->" not in lines[i]:
            i += 1  # cue identifier
        times = _timing(lines[i])
        if isinstance(times, str):
            _problem(source, f"line {i + 1}", times, skipped)
        i += 1
        text = []
        while i < n and lines[i] != "" and "-->" not in lines[i]:
            text.append(lines[i])
            i += 1
        if not isinstance(times, str):
            cues.append((*times, text))
    return cues


def _narrations(cues: list[tuple], vtt: bool, dedupe: bool) -> list[Narration]:
    """Clean the text; with ``dedupe``, undo rolling captions.

    YouTube's automatic captions show two lines per cue: the line already said, then the line being said, and
    between them a 10 ms cue repeating the finished line. So for a cue that starts when the previous one ends
    (within 50 ms), the leading lines equal to the previous cue's trailing lines are dropped; a cue left with
    nothing new only extends the last narration's end. What remains is each line once, timed from the cue
    that first shows it. Subtitles without rolling lines are unchanged unless consecutive cues repeat a line.
    """
    out: list[Narration] = []
    prev_lines: list[str] = []
    prev_end = -math.inf
    for start, end, raw in cues:
        lines = [t for t in (_clean(line, vtt) for line in raw) if t]
        if not lines:
            continue
        new = lines
        if dedupe and out and start <= prev_end + _CONTIGUOUS_S:
            overlap = max((k for k in range(1, min(len(lines), len(prev_lines)) + 1)
                           if prev_lines[-k:] == lines[:k]), default=0)
            new = lines[overlap:]
            if not new:
                if end > out[-1].end:
                    out[-1] = replace(out[-1], end=end)
                prev_lines, prev_end = lines, max(prev_end, end)
                continue
        out.append(Narration(start, end, " ".join(new)))
        prev_lines, prev_end = lines, end
    return sorted(out, key=lambda x: (x.start, x.end))


def _split_lines(text: str) -> list[str]:
    lines = _NEWLINE.split(text.removeprefix("\ufeff"))
    return lines[:-1] if lines and lines[-1] == "" else lines


def parse_srt(
    text: str, source: str = "<srt>", *, skipped: Optional[list[DataError]] = None, dedupe: bool = True
) -> list[Narration]:
    """Narrations of a SubRip text; tags such as <i> and {\\an8} are stripped, text lines joined by a space."""
    return _narrations(_srt_cues(_split_lines(text), source, skipped), vtt=False, dedupe=dedupe)


def parse_vtt(
    text: str, source: str = "<vtt>", *, skipped: Optional[list[DataError]] = None, dedupe: bool = True
) -> list[Narration]:
    """Narrations of a WebVTT text; cue settings, NOTE/STYLE/REGION blocks and tags (<c>, <v ...>, inline
    timestamps) are dropped, entities such as &amp; decoded; rolling captions de-duplicated (see `_narrations`)."""
    return _narrations(_vtt_cues(_split_lines(text), source, skipped), vtt=True, dedupe=dedupe)


def _decode(data: bytes, path: object) -> str:
    """Text of a subtitle file: by its byte-order mark, else UTF-8, else Windows-1252, else Latin-1."""
    boms = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
            (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
    for bom, encoding in boms:
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(encoding)
            except UnicodeDecodeError as e:
                raise DataError(path, f"byte {e.start + len(bom)}: not {encoding} despite its byte-order mark") from e
    for encoding in ("utf-8", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            pass
    return data.decode("latin-1")


def read_subtitles(
    path: str | Path, *, skipped: Optional[list[DataError]] = None, dedupe: bool = True
) -> list[Narration]:
    """Narrations of a .srt or .vtt file (chosen by extension); see `parse_srt` and `parse_vtt`."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUBTITLE_EXTENSIONS:
        raise DataError(path, f"not a subtitle file: extension {path.suffix!r}, expected .srt or .vtt")
    try:
        text = _decode(path.read_bytes(), path)
    except OSError as e:
        raise DataError(path, f"cannot read: {e.strerror or e}") from e
    parse = parse_srt if suffix == ".srt" else parse_vtt
    return parse(text, str(path), skipped=skipped, dedupe=dedupe)


def _subtitle_listing(folder: str) -> tuple[str, ...]:
    """The cached listing, unless the folder changed so recently that another change may share its timestamp."""
    mtime_ns = os.stat(folder).st_mtime_ns
    racy = time.time_ns() - mtime_ns < _RACY_NS
    return (_subtitle_names.__wrapped__ if racy else _subtitle_names)(folder, mtime_ns)


@lru_cache(maxsize=16)
def _subtitle_names(folder: str, mtime_ns: int) -> tuple[str, ...]:
    """Sorted names of a folder's subtitle files: listed once, and again only when the folder changes."""
    with os.scandir(folder) as entries:
        return tuple(sorted(e.name for e in entries if os.path.splitext(e.name)[1].lower() in SUBTITLE_EXTENSIONS
                            and e.is_file()))


def find_subtitles(video_path: str | Path, languages: Sequence[str] = ("en",)) -> Optional[Path]:
    """The sidecar subtitle file of a video, or None.

    Looked for next to the video, in this order: ``video.srt``, ``video.vtt`` (no language: the user's own
    choice), then for each language in turn ``video.<lang>.srt``, ``video.<lang>.vtt``, then regional variants
    ``video.<lang>-<region>.srt/.vtt`` in name order (yt-dlp writes ``video.en.vtt`` or ``video.en-US.vtt``).
    SubRip comes first because it has no rolling-caption repeats. Extensions and language codes match in any
    case; subtitles in other languages are not used. A folder is listed once and the listing reused while its
    modification time stays the same, so that a folder of 100k videos costs one listing, not 100k.
    """
    video_path = Path(video_path)
    folder, stem, langs = video_path.parent, video_path.stem, [lang.lower() for lang in languages]
    try:
        names = _subtitle_listing(str(folder))
    except OSError:
        return None

    def rank(name: str) -> Optional[tuple]:
        middle, ext = name[len(stem):].lower().rsplit(".", 1)
        order = SUBTITLE_EXTENSIONS.index("." + ext)
        if not middle:
            return (0, "", order)
        for i, lang in enumerate(langs):
            if middle == "." + lang or middle.startswith(f".{lang}-"):
                return (1 + i, middle[len(lang) + 1:], order)
        return None

    ranked = sorted((r, n) for n in names[bisect_left(names, stem + "."):bisect_left(names, stem + "/")]
                    if (r := rank(n)) is not None)
    return folder / ranked[0][1] if ranked else None


def _distance(n: Narration, start: float, end: float) -> float:
    """Seconds between the narration and the window; 0 when they overlap or touch."""
    return max(0.0, n.start - end, start - n.end)


def nearest_narrations(narrations: Sequence[Narration], start: float, end: float, k: int) -> list[Narration]:
    """The k narrations closest to the clip window [start, end), in time order.

    Closest means the gap between the intervals (0 when they overlap); ties go to the narration whose centre is
    nearer the window's centre, then to the earlier start, then to file order.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if end < start:
        raise ValueError(f"window ends before it starts: [{start}, {end})")
    centre = 0.5 * (start + end)
    keyed = ((_distance(n, start, end), abs(0.5 * (n.start + n.end) - centre), n.start, i)
             for i, n in enumerate(narrations))
    chosen = [key[3] for key in heapq.nsmallest(k, keyed)]
    return [narrations[i] for i in sorted(chosen, key=lambda i: (narrations[i].start, narrations[i].end, i))]


def narration_at(narrations: Sequence[Narration], start: float, end: float) -> Optional[Narration]:
    """The narration overlapping [start, end) the most (ties: nearer centre, then earlier start); when none
    overlaps, the nearest one as in `nearest_narrations`; None when there are no narrations."""
    if end < start:
        raise ValueError(f"window ends before it starts: [{start}, {end})")
    centre = 0.5 * (start + end)
    overlapping = [(max(n.start, start) - min(n.end, end), abs(0.5 * (n.start + n.end) - centre), n.start, i)
                   for i, n in enumerate(narrations) if min(n.end, end) > max(n.start, start)]
    if overlapping:
        return narrations[min(overlapping)[3]]
    nearest = nearest_narrations(narrations, start, end, 1)
    return nearest[0] if nearest else None
