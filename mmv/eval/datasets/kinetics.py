"""Kinetics-600: 10-second YouTube clips in 600 classes, linear evaluation trained on train, scored on val.

Two published annotation layouts are read, both with the header ``label,youtube_id,time_start,time_end,split``:
the 2018 release (``kinetics-600_{train,val}.csv``, split value ``val``) and the 2020 re-release
(``kinetics600/{train,validate}.csv``, split value ``validate``, fewer clips). Labels hold spaces, apostrophes
and parentheses (``backflip (human)``) and are used as they are. Class indices follow the sorted label names
of the CSVs read (train and val together; the files define no order).

Clips are found by name anywhere under the media folder: ``{youtube_id}_{start:06d}_{end:06d}.mp4`` (the
downloaders' name), ``{youtube_id}_{start}_{end}.mp4``, or ``{youtube_id}.mp4``. A bare-id file is taken to be the
trimmed clip (``full_videos=True``: the full video, cut at the CSV times). A few YouTube videos give two clips
with different labels (6 in the 2018 val file, 5 in 2020): their bare-id file cannot be both and is counted, not
used, unless ``full_videos``.

Without CSVs, class folders ``train/<label>/*`` and ``val/<label>/*`` (or ``validate/``) are read instead, the
label being the folder's name.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Optional

from mmv.data.sources.base import SourceReport
from mmv.data.video import VIDEO_EXTENSIONS
from mmv.errors import DataError
from mmv.eval.datasets._common import (
    MISSING,
    MediaIndex,
    PathLike,
    benchmark,
    class_folders,
    folder_examples,
    media_folder,
    read_csv,
    require_folder,
)
from mmv.eval.datasets.base import Benchmark, Example

COLUMNS = ("label", "youtube_id", "time_start", "time_end")
SPLIT_VALUES = ("train", "val", "validate", "test")
LAYOUTS = {  # (eval CSV, train CSV) per layout, relative to the annotation folder, in the order tried
    "2018": [("kinetics-600_val.csv", "kinetics-600_train.csv")],
    "2020": [("kinetics600/validate.csv", "kinetics600/train.csv"), ("validate.csv", "train.csv")],
    "other": [("val.csv", "train.csv"), ("annotations/val.csv", "annotations/train.csv"),
              ("annotations/validate.csv", "annotations/train.csv")],
}
AMBIGUOUS = "bare-id file shared by several annotated clips (ambiguous, not used)"
_EVAL_ROLE = re.compile(r"(validate|val)(?=\.csv$)")


def _seconds(value: float) -> str:
    """A time as the file names write it: whole seconds as integers."""
    return str(int(value)) if value.is_integer() else f"{value:g}"


def read_kinetics_csv(path: Path) -> list[tuple[str, str, float, float]]:
    """(label, youtube_id, start, end) per row of a Kinetics CSV, in file order."""
    out = []
    for line_no, row in read_csv(path, COLUMNS):
        label, ytid = row["label"].strip(), row["youtube_id"].strip()
        if not label or not ytid:
            raise DataError(path, f"line {line_no}: empty label or youtube_id")
        if "split" in row and row["split"].strip() not in SPLIT_VALUES:
            raise DataError(path, f"line {line_no}: split {row['split']!r} is not one of {SPLIT_VALUES}")
        try:
            start, end = float(row["time_start"]), float(row["time_end"])
        except ValueError:
            raise DataError(path, f"line {line_no}: times {row['time_start']!r}, {row['time_end']!r} are not "
                                  "numbers") from None
        if not 0 <= start < end:
            raise DataError(path, f"line {line_no}: time_start {start:g} not before time_end {end:g}")
        out.append((label, ytid, start, end))
    return out


def find_csvs(root: PathLike, annotations: Optional[PathLike], layout: Optional[str]
              ) -> tuple[Optional[Path], Optional[Path]]:
    """(eval CSV, train CSV or None); (None, None) when there are none (class-folder layout)."""
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"kinetics: layout must be one of {sorted(LAYOUTS)}, got {layout!r}")
    if annotations is not None and Path(annotations).is_file():
        evaluation = Path(annotations)
        train = evaluation.with_name(_EVAL_ROLE.sub("train", evaluation.name))
        return evaluation, (train if train != evaluation and train.is_file() else None)
    base = Path(annotations) if annotations is not None else Path(root)
    if annotations is not None and not base.is_dir():
        raise FileNotFoundError(f"kinetics: annotations path {base} does not exist")
    pairs = [p for name in ([layout] if layout else list(LAYOUTS)) for p in LAYOUTS[name]]
    for evaluation, train in pairs:
        if (base / evaluation).is_file():
            return base / evaluation, ((base / train) if (base / train).is_file() else None)
    if annotations is not None:
        raise FileNotFoundError(f"kinetics: no validation CSV in {base} (tried {[e for e, _ in pairs]})")
    return None, None


def _examples(rows: list[tuple[str, str, float, float]], classes: list[str], index: Optional[MediaIndex],
              media: Path, shared: Counter, full_videos: bool, report: SourceReport) -> list[Example]:
    label_of = {c: i for i, c in enumerate(classes)}
    out = []
    for label, ytid, start, end in rows:
        s, e = _seconds(start), _seconds(end)
        timed = f"{ytid}_{int(start):06d}_{int(end):06d}" if s.isdigit() and e.isdigit() else f"{ytid}_{s}_{e}"
        labels = (label_of[label],)
        if index is None:
            out.append(Example(id=timed, path=str(media / f"{timed}.mp4"), labels=labels))
            continue
        path = index.find_stem(timed) or index.find_stem(f"{ytid}_{s}_{e}")
        if path is not None:
            out.append(Example(id=timed, path=path, labels=labels))
            continue
        path = index.find_stem(ytid)
        if path is None:
            report.add(MISSING, timed)
        elif full_videos:
            out.append(Example(id=timed, path=path, labels=labels, start=start, end=end))
        elif shared[ytid] > 1:
            report.add(AMBIGUOUS, f"{timed} ({Path(path).name})")
        else:
            out.append(Example(id=timed, path=path, labels=labels))
    return out


def load_kinetics600(root: PathLike, *, split: Optional[str] = None, annotations: Optional[PathLike] = None,
                     require_media: bool = True, media: Optional[PathLike] = None, layout: Optional[str] = None,
                     full_videos: bool = False) -> Benchmark:
    """Kinetics-600: 'train' from the train CSV when present, 'test' from the val (2018) / validate (2020) CSV.

    ``annotations`` is the val/validate CSV itself (its train CSV is looked for beside it) or a folder holding
    one of the layouts; ``layout`` ('2018', '2020') picks one where a folder holds both. Without annotations,
    ``root`` is searched for the CSVs and then for class folders."""
    if split not in (None, "val", "validate"):
        raise ValueError(f"kinetics600: the one official evaluation split is the validation set, got split={split!r}")
    evaluation, train = find_csvs(root, annotations, layout)
    videos = media_folder(root, media, [])
    report = SourceReport("kinetics600")
    if evaluation is None:
        return _class_folder_layout(Path(root), report)
    rows = {"test": read_kinetics_csv(evaluation)}
    if train is not None:
        rows["train"] = read_kinetics_csv(train)
    classes = sorted({r[0] for part in rows.values() for r in part})
    shared = Counter(ytid for part in rows.values() for ytid in {(r[1], r[2]): r[1] for r in part}.values())
    index = None
    if require_media:
        require_folder(videos, "Kinetics-600")
        index = MediaIndex(videos, VIDEO_EXTENSIONS)
    splits = {role: _examples(rows[role], classes, index, videos, shared, full_videos, report)
              for role in ("train", "test") if role in rows}
    protocol = {"layout": "csv", "test_csv": str(evaluation), "train_csv": None if train is None else str(train),
                "media": str(videos), "media_checked": require_media, "full_videos": full_videos}
    return benchmark("kinetics600", "video", classes, splits, report, protocol)


def _class_folder_layout(root: Path, report: SourceReport) -> Benchmark:
    """``train/<label>/*`` and ``val/<label>/*`` (or ``validate/``): labels from the folder names."""
    folders = {"train": root / "train"}
    test = next((root / n for n in ("val", "validate") if (root / n).is_dir()), None)
    if test is not None:
        folders["test"] = test
    if not any(f.is_dir() for f in folders.values()):
        raise FileNotFoundError(f"kinetics: no CSVs (kinetics-600_val.csv, kinetics600/validate.csv ...) and no "
                                f"class folders train/ or val/ under {root}")
    listed = {role: class_folders(f, VIDEO_EXTENSIONS, report) for role, f in folders.items() if f.is_dir()}
    classes = sorted(listed.get("train") or listed["test"])
    splits = {role: folder_examples(by_class, classes, folders[role]) for role, by_class in listed.items()}
    protocol = {"layout": "class folders", **{f"{role}_folder": str(f) for role, f in folders.items()},
                "media_checked": True}
    return benchmark("kinetics600", "video", classes, splits, report, protocol)
