"""Free Spoken Digit Dataset: 3,000 8 kHz recordings of the digits 0-9, 6 speakers x 50 takes each.

Files are ``recordings/{digit}_{speaker}_{take}.wav``; the name is the only annotation. The official split
(FSDD's README) puts takes 0-4 in test and 5-49 in train (300 / 2,700). ``split="speaker:<name>"`` holds one
speaker out instead: train on the other speakers, test on every recording of that one, a check that features
carry the word rather than the voice. Class index = the digit.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from mmv.data.sources.base import SourceReport
from mmv.eval.datasets._common import PathLike, benchmark, media_folder, no_annotations
from mmv.eval.datasets.base import Benchmark, Example

CLASSES = [str(d) for d in range(10)]
TEST_TAKES = range(5)  # takes 0-4 are the official test set
_NAME = re.compile(r"(\d)_([A-Za-z]+)_(\d+)\.wav")
BAD_NAME = "files not named {digit}_{speaker}_{take}.wav (ignored)"


def list_recordings(folder: Path, report: SourceReport) -> list[tuple[Path, int, str, int]]:
    """(path, digit, speaker, take) of every recording, sorted by digit, speaker and take."""
    out = []
    for path in folder.iterdir():
        if path.name.startswith(".") or not path.is_file():
            continue
        m = _NAME.fullmatch(path.name)
        if m is None:
            report.add(BAD_NAME, path.name)
            continue
        out.append((path, int(m.group(1)), m.group(2), int(m.group(3))))
    return sorted(out, key=lambda r: (r[1], r[2], r[3]))


def load_fsdd(root: PathLike, *, split: Optional[str] = None, annotations: Optional[PathLike] = None,
              require_media: bool = True, media: Optional[PathLike] = None) -> Benchmark:
    """'train' and 'test' by the official take split (``split=None`` or ``'official'``) or a held-out speaker
    (``'speaker:george'``); recordings in ``media``, else ``root/recordings``, else ``root``."""
    no_annotations("fsdd", annotations)
    split = "official" if split is None else split
    folder = media_folder(root, media, ["recordings"])
    if not folder.is_dir():
        raise FileNotFoundError(f"fsdd: {folder} does not exist")
    report = SourceReport("fsdd")
    recordings = list_recordings(folder, report)
    speakers = sorted({r[2] for r in recordings})
    if split == "official":
        is_test = [take in TEST_TAKES for _, _, _, take in recordings]
        protocol: dict = {"split": "official", "test_takes": [TEST_TAKES.start, TEST_TAKES.stop - 1]}
    elif isinstance(split, str) and split.startswith("speaker:"):
        held_out = split.partition(":")[2]
        if held_out not in speakers:
            raise ValueError(f"fsdd: no speaker {held_out!r}; the speakers are {speakers}")
        is_test = [speaker == held_out for _, _, speaker, _ in recordings]
        protocol = {"split": split, "held_out_speaker": held_out}
    else:
        raise ValueError(f"fsdd: split must be 'official' or 'speaker:<name>' (one of {speakers}), got {split!r}")
    splits: dict[str, list[Example]] = {"train": [], "test": []}
    for (path, digit, _, _), test in zip(recordings, is_test):
        splits["test" if test else "train"].append(Example(id=path.stem, path=str(path), labels=(digit,)))
    protocol.update({"speakers": speakers, "folder": str(folder), "media_checked": True})
    return benchmark("fsdd", "audio", list(CLASSES), splits, report, protocol)
