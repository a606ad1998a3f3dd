"""CIFAR-10 as image files in class folders (``train/<class>/*.jpg``, ``test/<class>/*.jpg``), on disk or in a zip.

The sorted class names (airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck) are also CIFAR-10's
own label order. A zip is listed once from its central directory and its images become ``Example.member``s of
the archive, read with `base.read_media` (which keeps the archive open). The project's real copy,
``../shared/data/cifar10/cifar10_20k.zip``, holds ``cifar10/{train,test}/<class>/*.jpg``: the first 1,000
training images of each class and the whole test set (10,000 images).
"""

from __future__ import annotations

import posixpath
import zipfile
from pathlib import Path
from typing import Optional

from mmv.data.sources.base import SourceReport
from mmv.errors import DataError
from mmv.eval.datasets._common import (
    IMAGE_EXTENSIONS,
    PathLike,
    benchmark,
    check_split,
    class_folders,
    folder_examples,
    no_annotations,
)
from mmv.eval.datasets.base import Benchmark, Example

ROLES = ("train", "test")


def find_source(root: Path) -> Path:
    """The zip or the folder holding ``train/`` and ``test/``: ``root`` itself, ``root/cifar10``, or the one zip
    in ``root``."""
    if root.is_file():
        return root
    for folder in (root, root / "cifar10", root / "cifar-10"):
        if any((folder / r).is_dir() for r in ROLES):
            return folder
    zips = sorted(root.glob("*.zip")) if root.is_dir() else []
    if len(zips) == 1:
        return zips[0]
    raise FileNotFoundError(f"cifar10: no train/ or test/ class folders under {root}, and "
                            f"{'no' if not zips else 'more than one'} zip archive there")


def list_zip(path: Path, report: SourceReport) -> dict[str, dict[str, list[str]]]:
    """{role: {class: member names sorted}} for members ``[<prefix>/]{train,test}/<class>/<file>``."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile) as e:
        raise DataError(path, f"not a readable zip archive: {e}") from e
    found: dict[str, dict[str, list[str]]] = {}
    prefixes = set()
    for name in names:
        if name.endswith("/"):
            continue
        parts = name.split("/")
        if len(parts) < 3 or parts[-3] not in ROLES or any(p.startswith(".") for p in parts):
            report.add("zip members outside <split>/<class>/ (ignored)", name)
            continue
        if posixpath.splitext(parts[-1])[1].lower() not in IMAGE_EXTENSIONS:
            report.add("files of another type in a class folder (ignored)", name)
            continue
        prefixes.add("/".join(parts[:-3]))
        found.setdefault(parts[-3], {}).setdefault(parts[-2], []).append(name)
    if len(prefixes) > 1:
        raise DataError(path, f"holds several train/test trees ({sorted(prefixes)}); expected one")
    if not found:
        raise DataError(path, "holds no <split>/<class>/<image> members")
    return {role: {c: sorted(m) for c, m in sorted(by_class.items())} for role, by_class in found.items()}


def load_cifar10(root: PathLike, *, split: Optional[str] = None, annotations: Optional[PathLike] = None,
                 require_media: bool = True, media: Optional[PathLike] = None) -> Benchmark:
    """'train' and 'test' from the class folders (``root`` may be a folder or a zip archive)."""
    check_split("cifar10", split, (None, "test"))
    no_annotations("cifar10", annotations)
    source = find_source(Path(media if media is not None else root))
    report = SourceReport("cifar10")
    if source.is_file():
        listed = list_zip(source, report)
        classes = sorted(listed.get("train") or listed["test"])
        index = {c: i for i, c in enumerate(classes)}
        splits = {}
        for role in (r for r in ROLES if r in listed):
            by_class = listed[role]
            unknown = sorted(set(by_class) - set(index))
            if unknown:
                raise DataError(source, f"{role}/ has class folders {unknown} that train/ lacks")
            splits[role] = [Example(id=f"{c}/{posixpath.splitext(posixpath.basename(m))[0]}", path=str(source),
                                    labels=(index[c],), member=m) for c, members in by_class.items() for m in members]
    else:
        folders = {role: source / role for role in ROLES if (source / role).is_dir()}
        by_role = {role: class_folders(f, IMAGE_EXTENSIONS, report) for role, f in folders.items()}
        classes = sorted(by_role.get("train") or by_role["test"])
        splits = {role: folder_examples(by_class, classes, folders[role]) for role, by_class in by_role.items()}
    protocol = {"source": str(source), "archive": source.is_file(), "media_checked": True}
    return benchmark("cifar10", "image", classes, splits, report, protocol)
