"""AudioSet: 10-second YouTube segments with any number of the 527 ontology classes (multi-label, mAP).

The class list is ``class_labels_indices.csv`` (``index,mid,display_name``, every name double-quoted): the
class index is that file's ``index``, the class name its ``display_name``. The segment CSVs
(``balanced_train_segments.csv``, ``unbalanced_train_segments.csv``, ``eval_segments.csv``) start with '#'
lines and separate fields by a comma and a space, labels quoted and comma-joined; both kinds of file are parsed
by `mmv.data.audioset` (which also rejects rows a spreadsheet mangled, ``#NAME?`` for ids starting with '-').

Clips are found as `mmv.data.audioset.segment_file` finds them (``{YTID}_{start}.wav``, ``{YTID}_{start_ms}_{end_ms}``,
``Y{YTID}_...``, ``{YTID}.mp4`` ..., in subfolders too). As in the AudioSet training source, a file named by the
bare id is taken to be the full video and the example is cut at the segment's times (``full_videos=False``:
it is the cut segment itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from mmv.data.audioset import ClipIndex, Segment, read_class_labels, read_segments
from mmv.data.sources.base import SourceReport
from mmv.eval.datasets._common import MISSING, PathLike, benchmark, check_split, locate, media_folder, require_folder
from mmv.eval.datasets.base import Benchmark, Example

TRAIN_FILES = {"balanced": "balanced_train_segments.csv", "unbalanced": "unbalanced_train_segments.csv"}
EVAL_FILE = "eval_segments.csv"
UNKNOWN_MID = "label MIDs not in class_labels_indices.csv (dropped from the example)"


def _segment_id(segment: Segment) -> str:
    return f"{segment.ytid}_{segment.start:g}"


def _examples(segments: list[Segment], label_of: dict[str, int], index: Optional[ClipIndex], media: Path,
              full_videos: bool, report: SourceReport) -> list[Example]:
    out = []
    for segment in segments:
        sid = _segment_id(segment)
        labels = []
        for mid in segment.labels:
            if mid in label_of:
                labels.append(label_of[mid])
            else:
                report.add(UNKNOWN_MID, f"{sid}: {mid}")
        labels_t = tuple(sorted(set(labels)))
        if index is None:
            out.append(Example(id=sid, path=str(media / f"{sid}.wav"), labels=labels_t))
            continue
        path = index.find(segment)
        if path is None:
            report.add(MISSING, sid)
            continue
        if full_videos and path.stem in (segment.ytid, "Y" + segment.ytid):
            out.append(Example(id=sid, path=str(path), labels=labels_t, start=segment.start, end=segment.end))
        else:
            out.append(Example(id=sid, path=str(path), labels=labels_t))
    return out


def load_audioset(root: PathLike, *, split: Optional[str] = None, annotations: Optional[PathLike] = None,
                  require_media: bool = True, media: Optional[PathLike] = None, full_videos: bool = True
                  ) -> Benchmark:
    """AudioSet 'train' (``split='balanced'``, the default, or ``'unbalanced'``) and 'test' (eval_segments.csv).

    The CSVs are looked for in ``annotations`` (a folder), else ``root`` (or its ``metadata/``); clips anywhere
    under ``media``, else ``root``."""
    split = "balanced" if split is None else split
    check_split("audioset", split, tuple(TRAIN_FILES))
    classes_csv = locate("AudioSet class list", annotations, root,
                         ["class_labels_indices.csv", "metadata/class_labels_indices.csv"])
    folder = classes_csv.parent
    files = {"train": folder / TRAIN_FILES[split], "test": folder / EVAL_FILE}
    for path in files.values():
        if not path.is_file():
            raise FileNotFoundError(f"AudioSet: {path} does not exist (segment CSVs are looked for beside "
                                    f"{classes_csv.name})")
    table = read_class_labels(classes_csv)
    classes = [name for _, _, name in table]
    label_of = {mid: i for i, mid, _ in table}
    report = SourceReport("audioset")
    clips = media_folder(root, media, [])
    index = None
    if require_media:
        require_folder(clips, "AudioSet")
        index = ClipIndex(clips)
    splits = {role: _examples(read_segments(path), label_of, index, clips, full_videos, report)
              for role, path in files.items()}
    protocol = {"train_segments": split, "train_csv": str(files["train"]), "test_csv": str(files["test"]),
                "class_labels": str(classes_csv), "media": str(clips), "media_checked": require_media,
                "full_videos": full_videos}
    return benchmark("audioset", "audio", classes, splits, report, protocol, multilabel=True)
