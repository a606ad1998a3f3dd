"""UCF101: 13,320 action videos in 101 class folders, with the official three train/test splits.

The split files (``ucfTrainTestlist/``, lines ending in CRLF as published): ``classInd.txt`` lines
``1 ApplyEyeMakeup`` give the class order (index = number - 1); ``trainlist0N.txt`` lines
``Class/v_Class_gXX_cYY.avi N``; ``testlist0N.txt`` lines carry no label, so the label comes from the folder
name through classInd. Class 37's folder is ``HandstandPushups`` while its file names say
``v_HandStandPushups_...``: that mismatch is counted as an annotation quirk, and media paths that miss exactly are
looked up case-insensitively (and counted), for copies where someone "fixed" the case.
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
    locate,
    media_folder,
    read_lines,
    require_folder,
    resolve_relative,
)
from mmv.eval.datasets.base import Benchmark

UCF_QUIRK = "file name's class differs in case from its folder (annotation quirk)"
_UCF_NAME = re.compile(r"v_(.+)_g\d+_c\d+")


def read_class_ind(path: Path) -> list[str]:
    """Class names of classInd.txt in index order; numbers must run 1, 2, 3 ... without gaps."""
    classes: list[str] = []
    for line_no, line in read_lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DataError(path, f"line {line_no}: expected '<number> <ClassName>', found {line!r}")
        if int(parts[0]) != len(classes) + 1:
            raise DataError(path, f"line {line_no}: class number {parts[0]}, expected {len(classes) + 1}")
        if parts[1] in classes:
            raise DataError(path, f"line {line_no}: class {parts[1]!r} repeats")
        classes.append(parts[1])
    if not classes:
        raise DataError(path, "no classes")
    return classes


def _ucf_list(path: Path, classes: list[str], labelled: bool, report: SourceReport) -> list[tuple[str, int]]:
    """(relative path, class index) per line of a train list (``rel N``) or test list (``rel``)."""
    index = {c: i for i, c in enumerate(classes)}
    folded = {c.casefold(): i for i, c in enumerate(classes)}
    out = []
    for line_no, line in read_lines(path):
        parts = line.split()
        if len(parts) != (2 if labelled else 1):
            shape = "'<Class>/<video>.avi <label>'" if labelled else "'<Class>/<video>.avi' (no label)"
            raise DataError(path, f"line {line_no}: expected {shape}, found {line!r}")
        rel = parts[0]
        folder, _, name = rel.rpartition("/")
        if not folder or not name:
            raise DataError(path, f"line {line_no}: {rel!r} is not '<Class>/<video>'")
        label = index.get(folder, folded.get(folder.casefold()))
        if label is None:
            raise DataError(path, f"line {line_no}: folder {folder!r} is not a class of classInd.txt")
        if folder not in index:
            report.add("class folder matched classInd only case-insensitively", rel)
        if labelled:
            if not parts[1].isdigit() or not 1 <= int(parts[1]) <= len(classes):
                raise DataError(path, f"line {line_no}: label {parts[1]!r} is not in 1..{len(classes)}")
            if int(parts[1]) - 1 != label:
                raise DataError(path, f"line {line_no}: label {parts[1]} ({classes[int(parts[1]) - 1]}) disagrees "
                                      f"with the folder {folder!r} (class {label + 1})")
        m = _UCF_NAME.fullmatch(Path(name).stem)
        if m and m.group(1) != folder and m.group(1).casefold() == folder.casefold():
            report.add(UCF_QUIRK, rel)
        out.append((rel, label))
    return out


def load_ucf101(root: PathLike, *, split: Optional[int] = None, annotations: Optional[PathLike] = None,
                require_media: bool = True, media: Optional[PathLike] = None) -> Benchmark:
    """UCF101 official split ``split`` (1, 2 or 3; default 1): train and test lists, labels from classInd.

    Videos are looked for under ``media``, else ``root/UCF-101`` (the official archive's folder), else ``root``;
    the split files under ``annotations``, else ``root/ucfTrainTestlist`` or ``root``."""
    split = 1 if split is None else split
    check_split("ucf101", split, (1, 2, 3))
    class_ind = locate("UCF101 classInd", annotations, root, ["classInd.txt", "ucfTrainTestlist/classInd.txt"])
    folder = class_ind.parent
    classes = read_class_ind(class_ind)
    report = SourceReport("ucf101")
    files = {"train": folder / f"trainlist{split:02d}.txt", "test": folder / f"testlist{split:02d}.txt"}
    for path in files.values():
        if not path.is_file():
            raise FileNotFoundError(f"UCF101 split {split}: {path} does not exist")
    listed = {"train": _ucf_list(files["train"], classes, True, report),
              "test": _ucf_list(files["test"], classes, False, report)}
    videos = media_folder(root, media, ["UCF-101", "UCF101"])
    index = None
    if require_media:
        require_folder(videos, "UCF101")
        index = MediaIndex(videos, VIDEO_EXTENSIONS)
    splits = {name: resolve_relative(rows, videos, index, report) for name, rows in listed.items()}
    protocol = {"split": split, "class_ind": str(class_ind), "train_list": str(files["train"]),
                "test_list": str(files["test"]), "media": str(videos), "media_checked": require_media}
    return benchmark("ucf101", "video", classes, splits, report, protocol)
