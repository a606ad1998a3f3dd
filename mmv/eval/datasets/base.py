"""What every benchmark adapter produces: labelled (or captioned) examples per split, and a report.

An adapter reads a benchmark's official annotation files as they are published (CRLF endings, quoting,
comma+space separators ...) and pairs them with the media found under a root folder. Media that the
annotations name but the disk lacks are counted in ``Benchmark.report``, never silently dropped.
"""

from __future__ import annotations

import os
import threading
import zipfile
from dataclasses import dataclass, field
from typing import Any, Optional

from mmv.data.sources.base import SourceReport
from mmv.errors import UnknownNameError

MODALITIES = ("video", "audio", "image")


@dataclass(frozen=True)
class Example:
    """One media file (or a segment of one, or a member of a zip archive) with its labels or captions.

    Attributes:
      id: a stable identifier (the annotation's own key where there is one).
      path: the file on disk; for ``member`` the zip archive holding it.
      labels: class indices into ``Benchmark.classes``; one for single-label sets, any number (also none)
        for multi-label sets; empty for retrieval sets.
      start, end: the segment of the file in seconds (``end=None``: to the end of the file).
      member: the name of the file inside the zip archive ``path``.
      captions: the texts of a retrieval example (MSRVTT sentence, YouCook2 step).
      ignore: class indices that are neither positive nor negative for this example and that a metric
        should leave out (PASCAL VOC's "difficult" objects, which the VOC07 mAP ignores).
    """

    id: str
    path: str
    labels: tuple[int, ...] = ()
    start: float = 0.0
    end: Optional[float] = None
    member: Optional[str] = None
    captions: tuple[str, ...] = ()
    ignore: tuple[int, ...] = ()

    @property
    def label(self) -> int:
        """The single label of a single-label example."""
        if len(self.labels) != 1:
            raise ValueError(f"example {self.id} has {len(self.labels)} labels, not exactly one")
        return self.labels[0]


@dataclass
class Benchmark:
    """A benchmark's examples per split, its classes, and what the adapter could not use.

    ``protocol`` records how the splits were chosen (official split number, fold, held-out speaker ...),
    so that every result written from it can carry those facts.
    """

    name: str
    modality: str
    classes: list[str]
    splits: dict[str, list[Example]]
    multilabel: bool = False
    protocol: dict[str, Any] = field(default_factory=dict)
    report: Optional[SourceReport] = None

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")

    def split(self, name: str) -> list[Example]:
        try:
            return self.splits[name]
        except KeyError:
            raise UnknownNameError(f"{self.name} has no split {name!r}; it has {sorted(self.splits)}") from None


def read_media(example: Example) -> str | bytes:
    """What a decoder opens for ``example``: the file path, or the bytes of a zip member.

    Archives stay open between calls (see `_open_archive`): reopening one re-reads its whole directory, which for
    a 20,000-member zip costs more than reading a member."""
    if example.member is None:
        return example.path
    return _open_archive(example.path).read(example.member)


_ARCHIVES: dict[tuple[int, str], tuple[tuple[int, int], zipfile.ZipFile]] = {}
_ARCHIVES_LOCK = threading.Lock()
_MAX_ARCHIVES = 8


def _open_archive(path: str) -> zipfile.ZipFile:
    """The open archive at ``path``, per process (a forked worker must not share the parent's file offset) and
    reopened when the file changed (its size or modification time)."""
    full = os.path.abspath(path)
    st = os.stat(full)
    stamp = (st.st_mtime_ns, st.st_size)
    key = (os.getpid(), full)
    with _ARCHIVES_LOCK:
        held = _ARCHIVES.get(key)
        if held is not None and held[0] == stamp:
            return held[1]
        if held is not None:
            held[1].close()
        for old in [k for k in _ARCHIVES if k[0] != key[0]]:
            del _ARCHIVES[old]  # inherited from a parent process: not ours to read or close
        while len(_ARCHIVES) >= _MAX_ARCHIVES:
            _ARCHIVES.pop(next(iter(_ARCHIVES)))[1].close()
        archive = zipfile.ZipFile(full)
        _ARCHIVES[key] = (stamp, archive)
        return archive
