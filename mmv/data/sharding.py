"""``mmv shard``: pre-transcode a source into tar shards, and turn shard samples back into clips.

Each source video is cut into consecutive segments (``TranscodeSettings``); a sample is the segment's
mp4 and a JSON record with its narrations (times relative to the segment, including those up to
``margin`` seconds outside it, so that the K nearest narrations of any clip are available), labels,
and where it came from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

from mmv.data.captions import Narration
from mmv.data.clips import ClipBuilder, seeded_generator
from mmv.data.shards import ShardWriter
from mmv.data.sources.base import ClipItem, SourceReport
from mmv.data.transcode import TranscodeSettings, transcode_segments
from mmv.errors import DataError

NARRATION_MARGIN = 30.0  # s of narrations kept around each segment


def sample_key(item: ClipItem, index: int) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", item.video_id or Path(item.path).stem) or "video"
    return f"{item.source or 'src'}_{stem}_{index:05d}"


def shard_items(items: Sequence[ClipItem], out_dir: str | Path, settings: Optional[TranscodeSettings] = None, *,
                margin: float = NARRATION_MARGIN, max_samples: int = 1000, max_bytes: int = 1 << 30,
                name: str = "shards", progress: Optional[Callable[[int, int], None]] = None) -> SourceReport:
    """Write the segments of ``items`` into shards in ``out_dir``; a file that fails is skipped and
    reported (the report is also stored in ``shards.json``)."""
    settings = settings or TranscodeSettings()
    report = SourceReport(name)
    keys: set[str] = set()
    with ShardWriter(out_dir, max_samples=max_samples, max_bytes=max_bytes) as writer:
        for done, item in enumerate(items):
            try:
                segments = list(transcode_segments(item.path, settings))
            except DataError as err:
                report.add("videos that could not be transcoded", f"{err.path}: {err.reason}")
                continue
            for i, seg in enumerate(segments):
                if item.span is not None and (seg.end <= item.span[0] or seg.start >= item.span[1]):
                    continue
                key = sample_key(item, i)
                while key in keys:
                    key += "x"
                keys.add(key)
                record = {
                    "source": item.source, "video_id": item.video_id, "path": item.path,
                    "start": seg.start, "end": seg.end, "has_audio": seg.has_audio, "fps": settings.fps,
                    "labels": list(item.labels),
                    "span": None if item.span is None else [item.span[0] - seg.start, item.span[1] - seg.start],
                    "narrations": [{"start": n.start - seg.start, "end": n.end - seg.start, "text": n.text}
                                   for n in item.narrations
                                   if n.end > seg.start - margin and n.start < seg.end + margin],
                }
                writer.write(key, {"mp4": seg.data, "json": json.dumps(record).encode("utf-8")})
            report.items += 1
            if progress is not None:
                progress(done + 1, len(items))
        writer.extra = {"settings": settings.__dict__, "report": report.to_json()}
    return report


class ShardDecoder:
    """Turns a shard sample into a training sample with ``builder`` (picklable for DataLoader workers)."""

    def __init__(self, builder: ClipBuilder, seed: int = 0):
        self.builder, self.seed = builder, seed

    def __call__(self, raw: dict[str, Any]) -> dict[str, Any]:
        where = f"{raw.get('__url__', '?')}#{raw.get('__key__', '?')}"
        if "mp4" not in raw or "json" not in raw:
            raise DataError(where, f"sample lacks mp4 or json (has {sorted(k for k in raw if not k.startswith('__'))})")
        try:
            record = json.loads(raw["json"])
            narrations = tuple(Narration(float(n["start"]), float(n["end"]), str(n["text"]))
                               for n in record.get("narrations", []))
            span = tuple(record["span"]) if record.get("span") else None
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(where, f"malformed sample record ({err})") from None
        generator = seeded_generator(self.seed, raw.get("__epoch__", 0), raw.get("__key__"))
        meta = {"path": where, "source": record.get("source", ""), "labels": record.get("labels", [])}
        return self.builder(raw["mp4"], narrations, span, generator=generator, meta=meta)
