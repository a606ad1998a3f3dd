"""AudioSet layout: segment CSVs (YTID, start, end, labels) over locally held clips; no text."""

from __future__ import annotations

from pathlib import Path

from mmv.data.audioset import read_segments, segment_file
from mmv.data.sources.base import ClipItem, SourceReport

# A file longer than its segment by more than this is taken to be the full YouTube video, and the
# clip window is kept inside the segment; otherwise the file is the trimmed segment itself.
FULL_VIDEO_SLACK = 1.0


def audioset_items(videos: str | Path, segments: str | Path, name: str = "audioset",
                   durations: dict[str, float] | None = None) -> tuple[list[ClipItem], SourceReport]:
    """Items for the segments whose clip is found in ``videos``; missing clips are counted.

    ``durations`` (path -> seconds, e.g. from a dataset check) lets full-length downloads be told
    apart from trimmed clips without opening every file; without it, files named by YTID alone are
    taken as full videos and the window is limited to the segment.
    """
    report = SourceReport(name)
    items = []
    skipped: list = []
    rows = read_segments(segments, skipped=skipped)
    for err in skipped:
        report.add("malformed segment rows (skipped)", f"{err.path}: {err.reason}")
    for segment in rows:
        path = segment_file(videos, segment)
        if path is None:
            report.add("segments without a local clip", f"{segment.ytid}@{segment.start:g}")
            continue
        length = segment.end - segment.start
        known = (durations or {}).get(str(path))
        full = (known > length + FULL_VIDEO_SLACK if known is not None
                else path.stem in (segment.ytid, "Y" + segment.ytid))
        span = (segment.start, segment.end) if full else None
        items.append(ClipItem(str(path), (), span=span, labels=segment.labels, source=name, video_id=segment.ytid))
    report.items = len(items)
    return items, report
