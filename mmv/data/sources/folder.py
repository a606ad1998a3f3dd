"""A plain folder of videos: video and audio only."""

from __future__ import annotations

from pathlib import Path

from mmv.data.sources.base import ClipItem, SourceReport, list_videos


def folder_items(videos: str | Path, name: str = "folder") -> tuple[list[ClipItem], SourceReport]:
    items = [ClipItem(str(p), source=name, video_id=p.stem) for p in list_videos(videos)]
    return items, SourceReport(name, items=len(items))
