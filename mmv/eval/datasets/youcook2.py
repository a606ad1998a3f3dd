"""YouCook2 validation clips: zero-shot text-to-video retrieval of recipe steps.

``youcookii_annotations_trainval.json`` holds ``{"database": {video_id: {"subset": "training"|"validation",
"recipe_type": "101", "duration": ..., "annotations": [{"id": 0, "segment": [start, end], "sentence": ...}]}}}``.
Each annotated step of a validation video is one retrieval example: its segment (seconds) and its sentence. Videos
are found by id anywhere under the media folder, with any video extension, as the official download script
nests them (``raw_videos/validation/<recipe_type>/<id>.mp4``). Many YouTube videos have gone since: the report
counts the steps whose video is missing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

from mmv.data.sources.base import SourceReport
from mmv.data.video import VIDEO_EXTENSIONS
from mmv.errors import DataError
from mmv.eval.datasets._common import (
    MISSING,
    MediaIndex,
    PathLike,
    benchmark,
    check_split,
    locate,
    media_folder,
    read_text,
    require_folder,
)
from mmv.eval.datasets.base import Benchmark, Example

NAMES = ["youcookii_annotations_trainval.json", "annotations/youcookii_annotations_trainval.json",
         "YouCookII/annotations/youcookii_annotations_trainval.json"]


def read_validation_steps(path: Path, subset: str = "validation") -> list[tuple[str, str, int, float, float, str]]:
    """(video_id, recipe_type, step id, start, end, sentence) per step of the ``subset`` videos, in file order."""
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise DataError(path, f"line {e.lineno}: not JSON: {e.msg}") from e
    database = data.get("database") if isinstance(data, dict) else None
    if not isinstance(database, dict):
        raise DataError(path, "no 'database' object at the top level")
    steps = []
    for video, entry in database.items():
        where = f"database/{video}"
        if not isinstance(entry, dict) or not isinstance(entry.get("subset"), str):
            raise DataError(path, f"{where}: not an object with a 'subset'")
        if entry["subset"] != subset:
            continue
        annotations = entry.get("annotations")
        if not isinstance(annotations, list):
            raise DataError(path, f"{where}: 'annotations' is not a list")
        for i, step in enumerate(annotations):
            steps.append((video, str(entry.get("recipe_type", "")), *_step(path, f"{where}/annotations/{i}", step, i)))
    return steps


def _step(path: Path, where: str, step: Any, position: int) -> tuple[int, float, float, str]:
    if not isinstance(step, dict):
        raise DataError(path, f"{where}: not an object")
    segment, sentence = step.get("segment"), step.get("sentence")
    if (not isinstance(segment, list) or len(segment) != 2
            or not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in segment)):
        raise DataError(path, f"{where}: 'segment' is not [start, end] in seconds: {segment!r}")
    start, end = float(segment[0]), float(segment[1])
    if not (math.isfinite(start) and math.isfinite(end)) or not 0 <= start < end:
        raise DataError(path, f"{where}: segment {segment} does not run forward from 0 or later")
    if not isinstance(sentence, str) or not sentence.strip():
        raise DataError(path, f"{where}: 'sentence' is missing or empty")
    step_id = step.get("id", position)
    if not isinstance(step_id, int):
        raise DataError(path, f"{where}: 'id' {step_id!r} is not an integer")
    return step_id, start, end, sentence.strip()


def load_youcook2(root: PathLike, *, split: Optional[str] = None, annotations: Optional[PathLike] = None,
                  require_media: bool = True, media: Optional[PathLike] = None) -> Benchmark:
    """The validation steps as 'test': one example per step, cut at its segment, with its sentence."""
    check_split("youcook2", split, (None, "validation"))
    json_path = locate("YouCook2 annotations", annotations, root, NAMES)
    steps = read_validation_steps(json_path)
    report = SourceReport("youcook2")
    videos = media_folder(root, media, ["raw_videos"])
    index = None
    if require_media:
        require_folder(videos, "YouCook2")
        index = MediaIndex(videos, VIDEO_EXTENSIONS)
    examples = []
    for video, recipe, step_id, start, end, sentence in steps:
        eid = f"{video}_{step_id}"
        if index is None:
            path: Optional[str] = str(videos / "validation" / recipe / f"{video}.mp4")
        else:
            path = index.find_stem(video)
        if path is None:
            report.add(MISSING, eid)
            continue
        examples.append(Example(id=eid, path=path, start=start, end=end, captions=(sentence,)))
    protocol = {"split": "validation", "annotations": str(json_path), "steps": len(steps),
                "videos": len({s[0] for s in steps}), "media": str(videos), "media_checked": require_media}
    return benchmark("youcook2", "video", [], {"test": examples}, report, protocol)
