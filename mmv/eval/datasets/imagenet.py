"""ImageNet (ILSVRC-2012) classification from class folders: ``train/<wnid>/*.JPEG`` and ``val/<wnid>/*.JPEG``.

Class indices follow the sorted WordNet ids of the training folders, the order every ImageFolder-style loader
and the standard 0..999 ILSVRC label list use. The official validation tar is flat (50,000 files with a separate
ground-truth file); it must first be sorted into ``val/<wnid>/`` folders (as the common ``valprep.sh`` does).
A flat folder is refused with that advice rather than read without labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from mmv.data.sources.base import SourceReport
from mmv.eval.datasets._common import (
    IMAGE_EXTENSIONS,
    PathLike,
    benchmark,
    check_split,
    class_folders,
    folder_examples,
    media_folder,
    no_annotations,
)
from mmv.eval.datasets.base import Benchmark

FOLDERS = {"train": "train", "test": "val"}


def load_imagenet(root: PathLike, *, split: Optional[str] = None, annotations: Optional[PathLike] = None,
                  require_media: bool = True, media: Optional[PathLike] = None) -> Benchmark:
    """'train' from ``train/`` and 'test' from ``val/`` (either may be absent, not both); labels from folders.

    ``root`` (or ``media``) may also be the ``ILSVRC/Data/CLS-LOC`` folder of the Kaggle layout."""
    check_split("imagenet", split, (None, "val"))
    no_annotations("imagenet", annotations)
    base = media_folder(root, media, ["ILSVRC/Data/CLS-LOC"])
    report = SourceReport("imagenet")
    folders = {role: base / sub for role, sub in FOLDERS.items() if (base / sub).is_dir()}
    if not folders:
        raise FileNotFoundError(f"imagenet: neither {base / 'train'} nor {base / 'val'} exists")
    listed = {role: class_folders(folder, IMAGE_EXTENSIONS, report) for role, folder in folders.items()}
    classes = sorted(listed.get("train") or listed["test"])
    splits = {role: folder_examples(by_class, classes, folders[role]) for role, by_class in listed.items()}
    for role, by_class in listed.items():
        for wnid, files in by_class.items():
            if not files:
                report.add(f"empty class folders in {FOLDERS[role]}/", wnid)
    protocol = {"classes_from": "train" if "train" in listed else "val",
                **{f"{role}_folder": str(Path(f)) for role, f in folders.items()}, "media_checked": True}
    return benchmark("imagenet", "image", classes, splits, report, protocol)
