"""PASCAL VOC 2007 classification: 9,963 images, 20 classes, multi-label, scored by mean average precision.

Layout (``VOCdevkit/VOC2007/`` as both official tars extract): ``ImageSets/Main/{trainval,test}.txt`` list image
ids (``000005``); ``ImageSets/Main/{class}_{split}.txt`` lines ``000005 -1`` / ``000007  1`` (two spaces before a
1) give 1 (positive), -1 (negative) or 0 (only "difficult" objects of that class); images are
``JPEGImages/{id}.jpg``. The standard VOC07 classification mAP ignores difficult pairs: by default (``difficult=
'ignore'``) they are neither label nor negative and go to ``Example.ignore``; ``'positive'`` or ``'negative'``
count them as such. Beware the class named ``train`` (``train_trainval.txt``, ``train_test.txt``).

The train and test lists may live in different folders: the only public copies of the test lists end lines in
CRLF and sit in a folder of their own. Each split's ``ImageSets/Main`` is therefore looked for separately
(`find_main_folders`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from mmv.data.sources.base import SourceReport
from mmv.errors import DataError
from mmv.eval.datasets._common import (
    IMAGE_EXTENSIONS,
    MISSING,
    MediaIndex,
    PathLike,
    benchmark,
    check_split,
    media_folder,
    read_lines,
    require_folder,
)
from mmv.eval.datasets.base import Benchmark, Example

CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
           "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
SPLIT_PAIRS = {"test": ("trainval", "test"), "val": ("train", "val")}  # split= -> (train list, test list)
DIFFICULT = ("ignore", "positive", "negative")
_ID = re.compile(r"\d{6}")


def find_main_folders(base: Path) -> list[Path]:
    """Candidate ``ImageSets/Main`` folders under ``base``, nearest first."""
    fixed = [base, base / "ImageSets/Main", base / "VOC2007/ImageSets/Main", base / "VOCdevkit/VOC2007/ImageSets/Main"]
    found = sorted(base.glob("*/VOC2007/ImageSets/Main")) + sorted(base.glob("*/VOCdevkit/VOC2007/ImageSets/Main"))
    return [p for p in dict.fromkeys(fixed + found) if p.is_dir()]


def read_image_set(path: Path) -> list[str]:
    """Image ids of a ``{split}.txt`` list, in file order."""
    ids: list[str] = []
    seen = set()
    for line_no, line in read_lines(path):
        image = line.strip()
        if not _ID.fullmatch(image):
            raise DataError(path, f"line {line_no}: expected a six-digit image id, found {line!r}")
        if image in seen:
            raise DataError(path, f"line {line_no}: image {image} is listed twice")
        seen.add(image)
        ids.append(image)
    return ids


def read_class_set(path: Path, ids: list[str]) -> dict[str, int]:
    """{image id: 1, -1 or 0} of a ``{class}_{split}.txt`` file, which must cover exactly the split's ids."""
    values: dict[str, int] = {}
    for line_no, line in read_lines(path):
        parts = line.split()
        if len(parts) != 2 or not _ID.fullmatch(parts[0]) or parts[1] not in ("1", "-1", "0"):
            raise DataError(path, f"line {line_no}: expected '<image id> 1|-1|0', found {line!r}")
        if parts[0] in values:
            raise DataError(path, f"line {line_no}: image {parts[0]} is listed twice")
        values[parts[0]] = int(parts[1])
    if len(values) != len(ids) or not all(i in values for i in ids):
        lacking = [i for i in ids if i not in values][:5]
        extra = [i for i in values if i not in set(ids)][:5]
        raise DataError(path, f"does not list the same images as the split's list ({len(values)} vs {len(ids)}; "
                              f"lacking e.g. {lacking}, extra e.g. {extra})")
    return values


def _split_examples(main: Path, split: str, difficult: str) -> tuple[list[tuple[str, tuple, tuple]], dict]:
    """(image id, labels, ignored classes) per image of ``split``, and counts for the protocol."""
    ids = read_image_set(main / f"{split}.txt")
    labels: dict[str, list[int]] = {i: [] for i in ids}
    ignored: dict[str, list[int]] = {i: [] for i in ids}
    positives, difficult_pairs = {}, 0
    for c, name in enumerate(CLASSES):
        path = main / f"{name}_{split}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"VOC07 {split}: {path} does not exist (every class has a list)")
        values = read_class_set(path, ids)
        positives[name] = sum(v == 1 for v in values.values())
        for image, v in values.items():
            if v == 1 or (v == 0 and difficult == "positive"):
                labels[image].append(c)
            elif v == 0 and difficult == "ignore":
                ignored[image].append(c)
            difficult_pairs += v == 0
    rows = [(i, tuple(labels[i]), tuple(ignored[i])) for i in ids]
    return rows, {"images": len(ids), "positives": positives, "difficult_pairs": difficult_pairs}


def load_voc07(root: PathLike, *, split: Optional[str] = None, annotations: Optional[PathLike] = None,
               require_media: bool = True, media: Optional[PathLike] = None, difficult: str = "ignore"
               ) -> Benchmark:
    """VOC07 'train' = trainval and 'test' = test (``split='val'``: train and val, for tuning).

    Image-set lists are looked for, per split, in ``annotations`` or ``root``: the folder itself, its
    ``ImageSets/Main``, ``VOC2007/...``, ``VOCdevkit/VOC2007/...``, then ``*/VOC2007/...`` one level down.
    Images are ``{id}.jpg`` in ``media``, else ``root/VOCdevkit/VOC2007/JPEGImages`` (or ``VOC2007/``, ``.``)."""
    split = "test" if split is None else split
    check_split("voc07", split, tuple(SPLIT_PAIRS))
    if difficult not in DIFFICULT:
        raise ValueError(f"voc07: difficult must be one of {DIFFICULT}, got {difficult!r}")
    base = Path(annotations) if annotations is not None else Path(root)
    candidates = find_main_folders(base)
    report = SourceReport("voc07")
    images = media_folder(root, media, ["VOCdevkit/VOC2007/JPEGImages", "VOC2007/JPEGImages", "JPEGImages"])
    index = None
    if require_media:
        require_folder(images, "VOC07")
        index = MediaIndex(images, IMAGE_EXTENSIONS)
    splits: dict[str, list[Example]] = {}
    protocol: dict = {"split": split, "difficult": difficult, "metric": "mAP over the 20 classes",
                      "media": str(images), "media_checked": require_media}
    for role, name in zip(("train", "test"), SPLIT_PAIRS[split]):
        main = next((c for c in candidates if (c / f"{name}.txt").is_file()), None)
        if main is None:
            raise FileNotFoundError(f"VOC07: no ImageSets/Main/{name}.txt under {base} (looked in "
                                    f"{[str(c) for c in candidates] or 'no ImageSets/Main folder'})")
        rows, counts = _split_examples(main, name, difficult)
        protocol[role] = {"list": name, "folder": str(main), **counts}
        examples = []
        for image, labels, ignore in rows:
            path = str(images / f"{image}.jpg") if index is None else index.find(f"{image}.jpg")[0]
            if path is None:
                report.add(MISSING, f"{image}.jpg")
                continue
            examples.append(Example(id=image, path=path, labels=labels, ignore=ignore))
        splits[role] = examples
    return benchmark("voc07", "image", list(CLASSES), splits, report, protocol, multilabel=True)
