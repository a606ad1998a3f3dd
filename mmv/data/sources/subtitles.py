"""Any folder of videos with SRT or WebVTT sidecar files: what most users actually have."""

from __future__ import annotations

from pathlib import Path

from mmv.data.captions import find_subtitles, read_subtitles
from mmv.data.sources.base import ClipItem, SourceReport, list_videos
from mmv.errors import DataError


def subtitle_items(videos: str | Path, name: str = "subtitles", require_text: bool = False
                   ) -> tuple[list[ClipItem], SourceReport]:
    """Items for every video; its sidecar subtitles (``video.srt``, ``video.en.vtt``...) give the
    narrations. Videos without subtitles train video-audio only, unless ``require_text``."""
    report = SourceReport(name)
    items = []
    for path in list_videos(videos):
        sidecar = find_subtitles(path)
        narrations: tuple = ()
        if sidecar is None:
            report.add("videos without subtitles" + (" (skipped)" if require_text else " (no text)"), str(path))
            if require_text:
                continue
        else:
            skipped: list[DataError] = []
            try:
                narrations = tuple(read_subtitles(sidecar, skipped=skipped))
            except DataError as err:
                report.add("unreadable subtitle files (video kept without text)", f"{err.path}: {err.reason}")
            for err in skipped:
                report.add("malformed subtitle cues (skipped)", f"{err.path}: {err.reason}")
        items.append(ClipItem(str(path), narrations, source=name, video_id=path.stem))
    report.items = len(items)
    return items, report
