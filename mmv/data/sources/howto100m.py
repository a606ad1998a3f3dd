"""HowTo100M layout: a folder of videos named by video id, and narrations with timestamps.

Narrations come from ``caption.json`` (``{video_id: {"start": [...], "end": [...], "text": [...]}}``)
or from a folder of per-video ``<video_id>.csv`` files (``start,end,text``), as distributed.
"""

from __future__ import annotations

from pathlib import Path

from mmv.data.captions import load_howto100m_captions
from mmv.data.sources.base import ClipItem, SourceReport, list_videos


def howto100m_items(videos: str | Path, captions: str | Path, name: str = "howto100m"
                    ) -> tuple[list[ClipItem], SourceReport]:
    """Items for the videos that have narrations; videos without narrations and narrations without
    a video are counted in the report (a partial download is normal, but it should be visible)."""
    report = SourceReport(name)
    skipped: list = []
    narrations = load_howto100m_captions(captions, skipped=skipped)
    for err in skipped:
        report.add("malformed narrations (skipped)", f"{err.path}: {err.reason}")
    items = []
    seen = set()
    for path in list_videos(videos):
        video_id = path.stem
        seen.add(video_id)
        lines = narrations.get(video_id)
        if not lines:
            report.add("videos without narrations (skipped)", str(path))
            continue
        items.append(ClipItem(str(path), tuple(lines), source=name, video_id=video_id))
    for video_id in sorted(set(narrations) - seen):
        report.add("narrated videos not found on disk", video_id)
    report.items = len(items)
    return items, report
