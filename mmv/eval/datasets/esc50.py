"""ESC-50: 2,000 five-second environmental sound clips, 50 classes of 40, in 5 folds of 400.

``meta/esc50.csv`` (header ``filename,fold,target,category,esc10,src_file,take``) names each clip under
``audio/``. The class index is the CSV's ``target`` (its ``category`` is the name), so indices match every
published result. Evaluation is 5-fold cross-validation: ``split=k`` tests on fold k and trains on the other
four; the paper's number is the mean over k = 1..5. Clips cut from one recording share a fold by construction,
which is why the folds, not a random split, must be used.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from mmv.data.sources.base import SourceReport
from mmv.errors import DataError
from mmv.eval.datasets._common import (
    AUDIO_EXTENSIONS,
    MediaIndex,
    PathLike,
    benchmark,
    check_split,
    locate,
    media_folder,
    read_csv,
    require_folder,
    resolve_relative,
)
from mmv.eval.datasets.base import Benchmark

COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
FOLDS = (1, 2, 3, 4, 5)
_NAME = re.compile(r"(\d+)-[^-]+-[^-]+-(\d+)\.wav")


def read_esc50_csv(path: Path) -> tuple[list[str], list[tuple[str, int, int]]]:
    """Class names by target index, and (filename, fold, target) per clip in file order."""
    names: dict[int, str] = {}
    clips = []
    for line_no, row in read_csv(path, COLUMNS):
        filename = row["filename"].strip()
        try:
            fold, target = int(row["fold"]), int(row["target"])
        except ValueError:
            raise DataError(path, f"line {line_no}: fold {row['fold']!r} or target {row['target']!r} is not an "
                                  "integer") from None
        if fold not in FOLDS:
            raise DataError(path, f"line {line_no}: fold {fold} is not one of {FOLDS}")
        category = row["category"].strip()
        if names.setdefault(target, category) != category:
            raise DataError(path, f"line {line_no}: target {target} is {category!r} here but {names[target]!r} "
                                  "before")
        m = _NAME.fullmatch(filename)
        if m is None or (int(m.group(1)), int(m.group(2))) != (fold, target):
            raise DataError(path, f"line {line_no}: file name {filename!r} does not read "
                                  f"'{fold}-<source>-<take>-{target}.wav'")
        clips.append((filename, fold, target))
    if not clips:
        raise DataError(path, "no clips")
    if sorted(names) != list(range(len(names))):
        raise DataError(path, f"targets are not 0..{len(names) - 1}: {sorted(names)}")
    return [names[i] for i in range(len(names))], clips


def load_esc50(root: PathLike, *, split: Optional[int] = None, annotations: Optional[PathLike] = None,
               require_media: bool = True, media: Optional[PathLike] = None) -> Benchmark:
    """ESC-50 with fold ``split`` (1-5, default 1) as 'test' and the other four folds as 'train'.

    The CSV is ``annotations`` (the file, or a folder holding ``meta/esc50.csv``), else ``root/meta/esc50.csv``;
    clips are in ``media``, else ``root/audio``."""
    fold = 1 if split is None else split
    check_split("esc50", fold, FOLDS)
    csv_path = locate("ESC-50 meta CSV", annotations, root, ["meta/esc50.csv", "esc50.csv"])
    classes, clips = read_esc50_csv(csv_path)
    report = SourceReport("esc50")
    audio = media_folder(root, media, ["audio"])
    index = None
    if require_media:
        require_folder(audio, "ESC-50")
        index = MediaIndex(audio, AUDIO_EXTENSIONS)
    listed = {"train": [(f, t) for f, k, t in clips if k != fold], "test": [(f, t) for f, k, t in clips if k == fold]}
    splits = {role: resolve_relative(rows, audio, index, report) for role, rows in listed.items()}
    protocol = {"fold": fold, "test_fold": fold, "train_folds": [k for k in FOLDS if k != fold],
                "csv": str(csv_path), "media": str(audio), "media_checked": require_media}
    return benchmark("esc50", "audio", classes, splits, report, protocol)
