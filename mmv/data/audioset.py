"""AudioSet: segment lists, the class index, and where a segment's clip lies on disk.

The segment CSVs (balanced_train_segments.csv, eval_segments.csv, unbalanced_train_segments.csv) start with
three '#' lines and separate fields by a comma and a space: ``--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"``.
YouTube ids may start with '-'; a spreadsheet round trip turns those into ``#NAME?``, which would then pass for
a comment line, so '#' lines that have the shape of a data row are reported instead of skipped.

Bad rows raise `DataError` naming the file and line; pass a list as ``skipped=`` to skip them instead, each
appended there as a `DataError` for the run to count and report. The class list has no such mode: a missing or
repeated class would shift every label index after it.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

from mmv.errors import DataError

# Video containers first, then audio-only dumps: when a folder holds both, the clip with pictures wins.
CLIP_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".flv", ".wav", ".flac", ".mp3", ".m4a", ".ogg")
_RACY_NS = 2 * 10**9
_YTID = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class Segment:
    """One labelled 10-second (or shorter) piece of a YouTube video; times in seconds, labels are MIDs."""

    ytid: str
    start: float
    end: float
    labels: tuple[str, ...]


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(path, f"cannot read: {e}") from e


def _row_shaped(fields: list[str]) -> bool:
    """Four fields with numbers in the time columns: a data row, even when it starts with '#'."""
    if len(fields) != 4:
        return False
    try:
        float(fields[1]), float(fields[2])
    except ValueError:
        return False
    return True


def _parse_row(fields: list[str]) -> Segment | str:
    """The segment of one CSV row, or the reason it is not one."""
    if len(fields) != 4:
        return f"{len(fields)} fields, expected 4 (YTID, start_seconds, end_seconds, positive_labels)"
    ytid, start, end, labels = (f.strip() for f in fields)
    if not _YTID.fullmatch(ytid):
        return f"not a YouTube id: {ytid!r}" + (" (mangled by a spreadsheet?)" if ytid.startswith("#") else "")
    try:
        s, e = float(start), float(end)
    except ValueError:
        return f"time is not a number: {start!r}, {end!r}"
    if not (math.isfinite(s) and math.isfinite(e)) or s < 0:
        return f"time out of range: {start!r}, {end!r}"
    if e <= s:
        return f"end {e} not after start {s}"
    mids = tuple(m.strip() for m in labels.split(","))
    if not all(mids):
        return f"empty label in {labels!r}"
    return Segment(ytid, s, e, mids)


def read_segments(path: str | Path, *, skipped: Optional[list[DataError]] = None) -> list[Segment]:
    """Segments in file order; '#' comments and blank lines are skipped (see the module notes for bad rows)."""
    path = Path(path)
    segments = []
    for line_no, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            fields = next(csv.reader([line], skipinitialspace=True))
        except csv.Error as e:
            fields, reason = [], f"not CSV: {e}"
        else:
            if line.startswith("#") and not _row_shaped(fields):
                continue  # a real comment: '# YTID, start_seconds, ...' has no numbers where the times go
            parsed = _parse_row(fields)
            if isinstance(parsed, Segment):
                segments.append(parsed)
                continue
            reason = parsed
        error = DataError(path, f"line {line_no}: {reason}")
        if skipped is None:
            raise error
        skipped.append(error)
    return segments


def read_class_labels(path: str | Path) -> list[tuple[int, str, str]]:
    """(index, mid, display_name) for each class of class_labels_indices.csv, in index order 0..n-1."""
    path = Path(path)
    rows = list(csv.reader(io.StringIO(_read_text(path))))
    if not rows or [h.strip() for h in rows[0]] != ["index", "mid", "display_name"]:
        raise DataError(path, f"line 1: expected header index,mid,display_name, found {rows[0] if rows else None}")
    classes: list[tuple[int, str, str]] = []
    seen_mids: dict[str, int] = {}
    for line_no, row in enumerate(rows[1:], 2):
        if not row:
            continue
        if len(row) != 3:
            raise DataError(path, f"line {line_no}: {len(row)} fields, expected 3 (is a name with a comma unquoted?)")
        index, mid, name = row[0].strip(), row[1].strip(), row[2].strip()
        if not index.isdigit() or int(index) != len(classes):
            raise DataError(path, f"line {line_no}: index {index!r}, expected {len(classes)}")
        if not mid or mid in seen_mids:
            raise DataError(path, f"line {line_no}: mid {mid!r} is empty or repeats line {seen_mids.get(mid)}")
        seen_mids[mid] = line_no
        classes.append((int(index), mid, name))
    return classes


# ---------------------------------------------------------------- local clips


def _names(segment: Segment) -> list[str]:
    """File stems a segment's clip may have, in order of preference: named with both times first, then start
    only, then the bare id."""
    y, s, e = segment.ytid, segment.start, segment.end
    ms_s, ms_e = round(s * 1000), round(e * 1000)
    timed = [f"{y}_{ms_s}_{ms_e}", f"{y}_{s:.3f}_{e:.3f}"]
    if s.is_integer() and e.is_integer():
        timed += [f"{y}_{int(s)}_{int(e)}", f"{y}_{int(s):06d}_{int(e):06d}"]
    if s.is_integer():
        timed.append(f"{y}_{int(s)}")
    bare = [f"Y{y}", y]
    return timed + ["Y" + name for name in timed] + bare


class ClipIndex:
    """All clips under a folder (recursively), listed once, so that finding a segment is a dict look-up even
    in folders of millions of files. Names are case-sensitive (YouTube ids are), extensions are not."""

    def __init__(self, video_dir: str | Path, extensions: Sequence[str] = CLIP_EXTENSIONS):
        self.root = Path(video_dir)
        if not self.root.is_dir():
            raise DataError(self.root, "not a folder")
        rank = {ext.lower(): i for i, ext in enumerate(extensions)}
        self._by_stem: dict[str, tuple[int, str]] = {}
        for folder, dirs, files in os.walk(self.root):
            dirs.sort()
            for name in sorted(files):
                stem, ext = os.path.splitext(name)
                r = rank.get(ext.lower())
                if r is not None and (stem not in self._by_stem or r < self._by_stem[stem][0]):
                    self._by_stem[stem] = (r, os.path.join(folder, name))

    def __len__(self) -> int:
        return len(self._by_stem)

    def find(self, segment: Segment) -> Optional[Path]:
        """The clip of the segment, or None; see `segment_file` for the names looked for."""
        for stem in _names(segment):
            hit = self._by_stem.get(stem)
            if hit is not None:
                return Path(hit[1])
        return None


@lru_cache(maxsize=8)
def _cached_index(root: str, extensions: tuple[str, ...], mtime_ns: int) -> ClipIndex:
    return ClipIndex(root, extensions)


def segment_file(
    video_dir: str | Path, segment: Segment, extensions: Sequence[str] = CLIP_EXTENSIONS
) -> Optional[Path]:
    """The local clip of a segment, or None when it is not there.

    Names looked for, in this order (``ext`` in the order of ``extensions`` where one name has several):
    ``<ytid>_<start_ms>_<end_ms>`` (``abc_30000_40000.mp4``), ``<ytid>_<start:.3f>_<end:.3f>`` (``abc_30.000_40.000``),
    for whole-second times ``<ytid>_<start>_<end>`` and ``<ytid>_<start:06d>_<end:06d>``, then ``<ytid>_<int start>``,
    the same with a leading ``Y`` (DCASE style), then ``Y<ytid>`` and ``<ytid>``. Files may be in subfolders.
    A bare-id name matches every segment of that video: it may hold the cut segment (AudioSet dumps) or the
    whole video, which only its duration tells.

    The folder is indexed once (`ClipIndex`) and the index reused while the folder's own modification time
    stays the same (and is over 2 s old, as timestamps are coarse); files added deeper down are not seen until
    then, so build a `ClipIndex` yourself when clips arrive during a run.
    """
    root = os.path.abspath(video_dir)
    try:
        mtime_ns = os.stat(root).st_mtime_ns
    except OSError as e:
        raise DataError(video_dir, f"cannot list: {e.strerror or e}") from e
    racy = time.time_ns() - mtime_ns < _RACY_NS  # changed just now: a later change may carry the same timestamp
    return (_cached_index.__wrapped__ if racy else _cached_index)(root, tuple(extensions), mtime_ns).find(segment)
