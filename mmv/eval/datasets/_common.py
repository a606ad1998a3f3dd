"""What the adapters share: reading annotation files as published, finding them, and finding media once.

Annotation files are read as bytes and decoded here (UTF-8, a BOM tolerated), so CRLF, CR and LF endings all
give the same lines. A malformed file raises `DataError` naming the file and line. Media folders are walked
once per load (`MediaIndex`), so that matching tens of thousands of names is a dict look-up, not a stat each.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Optional

from mmv.data.sources.base import SourceReport
from mmv.data.video import VIDEO_EXTENSIONS
from mmv.errors import DataError
from mmv.eval.datasets.base import Benchmark, Example

PathLike = str | os.PathLike
AUDIO_EXTENSIONS = frozenset(".wav .flac .mp3 .m4a .ogg .opus .aac".split())
IMAGE_EXTENSIONS = frozenset(".jpg .jpeg .png .bmp .webp .ppm .tif .tiff".split())
_EOL = re.compile(r"\r\n|\r|\n")

# Problem names shared by the adapters, so that reports read the same everywhere.
MISSING = "missing media (annotated, not on disk)"
CASE_FOUND = "media found only by case-insensitive name"


def read_text(path: PathLike) -> str:
    """The file's text, decoded as UTF-8 (a BOM dropped); unreadable files raise `DataError`."""
    try:
        return Path(path).read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(path, f"cannot read: {e}") from e


def read_lines(path: PathLike) -> list[tuple[int, str]]:
    """(1-based line number, line) for each non-blank line, whatever the line endings; trailing spaces removed."""
    lines = _EOL.split(read_text(path))
    return [(n, line.rstrip()) for n, line in enumerate(lines, 1) if line.strip()]


def read_csv(path: PathLike, required: Sequence[str], *, skipinitialspace: bool = False,
             ) -> list[tuple[int, dict[str, str]]]:
    """(line number, row as a dict) for each data row of a CSV whose header holds the ``required`` columns.

    Extra columns are kept; a row with another number of fields than the header raises `DataError`."""
    text = read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=skipinitialspace)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataError(path, "line 1: empty file, expected a CSV header") from None
    except csv.Error as e:
        raise DataError(path, f"line 1: not CSV: {e}") from e
    missing = [c for c in required if c not in header]
    if missing:
        hint = " (separated by ';'? this file must be comma-separated)" if ";" in ",".join(header) else ""
        raise DataError(path, f"line 1: header {header} lacks {missing}; expected {list(required)}{hint}")
    rows = []
    try:
        for row in reader:
            if not row or not any(f.strip() for f in row):
                continue
            if len(row) != len(header):
                raise DataError(path, f"line {reader.line_num}: {len(row)} fields, expected {len(header)} ({header})")
            rows.append((reader.line_num, dict(zip(header, row))))
    except csv.Error as e:
        raise DataError(path, f"line {reader.line_num}: not CSV: {e}") from e
    return rows


def locate(what: str, annotations: Optional[PathLike], root: PathLike, names: Sequence[str]) -> Path:
    """The annotation file ``what``: ``annotations`` itself when it is a file, else the first of ``names``
    (relative paths) found under ``annotations`` (when given) or else under ``root``."""
    if annotations is not None:
        base = Path(annotations)
        if base.is_file():
            return base
        if not base.is_dir():
            raise FileNotFoundError(f"{what}: annotations path {base} does not exist")
    else:
        base = Path(root)
    tried = [base / n for n in names]
    for path in tried:
        if path.is_file():
            return path
    raise FileNotFoundError(f"{what}: none of " + ", ".join(str(p) for p in tried) + " exists")


def media_folder(root: PathLike, media: Optional[PathLike], subfolders: Sequence[str]) -> Path:
    """Where the media are: ``media`` when given, else the first existing ``root/<subfolder>``, else ``root``."""
    if media is not None:
        return Path(media)
    for sub in subfolders:
        if (Path(root) / sub).is_dir():
            return Path(root) / sub
    return Path(root)


def require_folder(path: Path, what: str) -> None:
    if not path.is_dir():
        raise FileNotFoundError(f"{what}: media folder {path} does not exist (pass require_media=False to list the "
                                "annotations without media)")


class MediaIndex:
    """Every media file below a folder, listed once: by relative path (exact and case-folded) and by stem.

    Hidden files and folders are skipped. When several files share a stem, the first in ``extensions`` order
    (then path order) wins, so a folder holding both ``x.mp4`` and ``x.wav`` resolves ``x`` to the video."""

    def __init__(self, root: PathLike, extensions: Iterable[str]):
        self.root = Path(root)
        order = {e.lower(): i for i, e in enumerate(sorted(extensions, key=_extension_rank))}
        self.by_relative: dict[str, str] = {}
        self._folded: dict[str, list[str]] = {}
        self._by_stem: dict[str, tuple[int, str]] = {}
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            rel_folder = os.path.relpath(folder, self.root)
            for name in sorted(files):
                stem, ext = os.path.splitext(name)
                rank = order.get(ext.lower())
                if rank is None or name.startswith("."):
                    continue
                path = os.path.join(folder, name)
                rel = name if rel_folder == "." else f"{rel_folder.replace(os.sep, '/')}/{name}"
                self.by_relative[rel] = path
                self._folded.setdefault(rel.casefold(), []).append(path)
                if stem not in self._by_stem or rank < self._by_stem[stem][0]:
                    self._by_stem[stem] = (rank, path)

    def __len__(self) -> int:
        return len(self.by_relative)

    def find(self, relative: str) -> tuple[Optional[str], bool]:
        """(path, found_by_case_folding) for a relative path like ``Class/v_x.avi``; (None, False) if absent.

        Case-folded matches are used only when exactly one file matches, never guessed among several."""
        hit = self.by_relative.get(relative)
        if hit is not None:
            return hit, False
        folded = self._folded.get(relative.casefold(), [])
        return (folded[0], True) if len(folded) == 1 else (None, False)

    def find_stem(self, stem: str) -> Optional[str]:
        """The file named ``stem`` plus any listed extension, in any subfolder."""
        hit = self._by_stem.get(stem)
        return None if hit is None else hit[1]


def _extension_rank(ext: str) -> tuple[int, str]:
    """Video containers before audio before images, so that a clip with pictures wins a shared stem."""
    e = ext.lower()
    kind = 0 if e in VIDEO_EXTENSIONS else 1 if e in AUDIO_EXTENSIONS else 2
    return kind, {".mp4": "0", ".mkv": "1", ".webm": "2", ".avi": "3"}.get(e, e)


def resolve_relative(listed: list[tuple[str, int]], media: Path, index: Optional[MediaIndex],
             report: SourceReport) -> list[Example]:
    """Examples for the listed relative paths: found on disk (or, unchecked, where they should be)."""
    out = []
    for rel, label in listed:
        stem = Path(rel).stem
        if index is None:
            out.append(Example(id=stem, path=str(media / rel), labels=(label,)))
            continue
        path, folded = index.find(rel)
        if path is None:
            report.add(MISSING, rel)
            continue
        if folded:
            report.add(CASE_FOUND, f"{rel} -> {Path(path).relative_to(media).as_posix()}")
        out.append(Example(id=stem, path=path, labels=(label,)))
    return out


def class_folders(folder: Path, extensions: Iterable[str], report: SourceReport) -> dict[str, list[Path]]:
    """{class folder name: files sorted} for ``folder/<class>/<file>``; files of other types are counted."""
    exts = {e.lower() for e in extensions}
    out: dict[str, list[Path]] = {}
    loose = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    if any(p.suffix.lower() in exts for p in loose):
        raise DataError(folder, f"{len(loose)} media files lie directly in the folder; expected class folders "
                                "<split>/<class>/<file> (a flat folder has no labels)")
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = []
        with os.scandir(sub) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                if os.path.splitext(entry.name)[1].lower() in exts:
                    files.append(Path(entry.path))
                else:
                    report.add("files of another type in a class folder (ignored)", entry.path)
        out[sub.name] = sorted(files)
    return out


def folder_examples(by_class: dict[str, list[Path]], classes: list[str], where: Path) -> list[Example]:
    """Examples of class folders, labelled by the folder's index in ``classes``."""
    index = {c: i for i, c in enumerate(classes)}
    out = []
    for name, files in by_class.items():
        if name not in index:
            raise DataError(where / name, f"class folder not among the {len(classes)} classes of the training split")
        out += [Example(id=f"{name}/{p.stem}", path=str(p), labels=(index[name],)) for p in files]
    return out


def benchmark(name: str, modality: str, classes: list[str], splits: dict[str, list[Example]], report: SourceReport,
              protocol: dict, *, multilabel: bool = False) -> Benchmark:
    """The finished benchmark, with the report's item count filled in."""
    report.items = sum(len(v) for v in splits.values())
    return Benchmark(name=name, modality=modality, classes=classes, splits=splits, multilabel=multilabel,
                     protocol=protocol, report=report)


def no_annotations(name: str, annotations: Optional[PathLike]) -> None:
    """Benchmarks labelled by their file or folder names take no annotation files."""
    if annotations is not None:
        raise ValueError(f"{name} has no annotation files: its labels come from the media names; "
                         f"got annotations={annotations}")


def check_split(name: str, split: object, allowed: Sequence[object]) -> None:
    if split not in allowed:
        raise ValueError(f"{name}: split must be one of {list(allowed)}, got {split!r}")
