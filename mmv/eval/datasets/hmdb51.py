"""HMDB51: 6,766 action videos in 51 class folders, with the official three 70/30 splits.

The split files (``testTrainMulti_7030_splits/``): one ``{class}_test_split{N}.txt`` per class and split, lines
``video.avi 1`` (1 train, 2 test, 0 not used in that split; trailing spaces are tolerated). Class indices
follow the sorted class names, as the split files define no order. Video names may start with ``#``
(``#20_Rhythm_clap_...``): that is a name, not a comment. Videos marked 0 are counted in the report, not listed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from mmv.data.sources.base import SourceReport
from mmv.data.video import VIDEO_EXTENSIONS
from mmv.errors import DataError
from mmv.eval.datasets._common import (
    MediaIndex,
    PathLike,
    benchmark,
    check_split,
    media_folder,
    read_lines,
    require_folder,
    resolve_relative,
)
from mmv.eval.datasets.base import Benchmark

UNUSED = "videos marked 0 in this split (not used)"
_SPLIT_FILE = re.compile(r"(.+)_test_split(\d+)\.txt")


def read_hmdb_splits(folder: Path, split: int) -> tuple[list[str], dict[str, list[tuple[str, int]]]]:
    """Sorted class names, and (class/video, class index) per role ('train': id 1, 'test': id 2, 'unused': 0)."""
    files: dict[str, Path] = {}
    for path in folder.iterdir():
        m = _SPLIT_FILE.fullmatch(path.name)
        if m and int(m.group(2)) == split:
            files[m.group(1)] = path
    if not files:
        raise FileNotFoundError(f"HMDB51 split {split}: no *_test_split{split}.txt files in {folder}")
    classes = sorted(files)
    roles: dict[str, list[tuple[str, int]]] = {"train": [], "test": [], "unused": []}
    seen: dict[str, str] = {}
    for label, name in enumerate(classes):
        path = files[name]
        for line_no, line in read_lines(path):
            parts = line.rsplit(None, 1)
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DataError(path, f"line {line_no}: expected '<video>.avi 0|1|2', found {line!r}")
            video = parts[0].strip()
            if video in seen:
                raise DataError(path, f"line {line_no}: {video!r} is listed again (first in {seen[video]})")
            seen[video] = f"{path.name} line {line_no}"
            role = {"1": "train", "2": "test", "0": "unused"}[parts[1]]
            roles[role].append((f"{name}/{video}", label))
    return classes, roles


def load_hmdb51(root: PathLike, *, split: Optional[int] = None, annotations: Optional[PathLike] = None,
                require_media: bool = True, media: Optional[PathLike] = None) -> Benchmark:
    """HMDB51 official split ``split`` (1, 2 or 3; default 1): 70 train and 30 test videos per class.

    Split files are looked for in ``annotations``, else ``root/testTrainMulti_7030_splits``, else ``root``;
    videos in ``media``, else ``root/hmdb51_org`` or ``root``, as ``<class>/<video>.avi``."""
    split = 1 if split is None else split
    check_split("hmdb51", split, (1, 2, 3))
    base = Path(annotations) if annotations is not None else Path(root)
    candidates = [base, base / "testTrainMulti_7030_splits"]
    folder = next((c for c in candidates if c.is_dir() and any(c.glob(f"*_test_split{split}.txt"))), None)
    if folder is None:
        raise FileNotFoundError(f"HMDB51 split {split}: no *_test_split{split}.txt in " +
                                " or ".join(str(c) for c in candidates))
    classes, roles = read_hmdb_splits(folder, split)
    report = SourceReport("hmdb51")
    for rel, _ in roles["unused"]:
        report.add(UNUSED, rel)
    videos = media_folder(root, media, ["hmdb51_org", "hmdb51", "videos"])
    index = None
    if require_media:
        require_folder(videos, "HMDB51")
        index = MediaIndex(videos, VIDEO_EXTENSIONS)
    splits = {role: resolve_relative(roles[role], videos, index, report) for role in ("train", "test")}
    protocol = {"split": split, "split_files": str(folder), "media": str(videos), "media_checked": require_media,
                "unused": len(roles["unused"])}
    return benchmark("hmdb51", "video", classes, splits, report, protocol)
