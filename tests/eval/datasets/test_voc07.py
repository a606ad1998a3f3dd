"""PASCAL VOC 2007: ImageSets/Main lists (trainval LF, test CRLF elsewhere), 1 / -1 / 0 (difficult)."""

from __future__ import annotations

import pytest

from mmv.errors import DataError
from mmv.eval.datasets._common import MISSING
from mmv.eval.datasets.voc07 import CLASSES, load_voc07
from tests.eval.datasets.layouts import touch, write

# image id -> {class: value}; classes not named are -1
TRAINVAL = {"000005": {"chair": 1, "train": 0}, "000007": {"car": 1}, "000009": {"horse": 1, "person": 1}}
TEST = {"000001": {"dog": 1, "person": 1}, "000002": {"train": 1, "aeroplane": 0}}


def write_sets(main, split, images, eol):
    write(main / f"{split}.txt", list(images), eol=eol)
    for name in CLASSES:
        lines = []
        for image, values in images.items():
            v = values.get(name, -1)
            lines.append(f"{image} {v:2d}")  # fixed width: '000005 -1', '000007  1', '000002  0'
        write(main / f"{name}_{split}.txt", lines, eol=eol)


def voc_layout(root):
    write_sets(root / "VOCdevkit/VOC2007/ImageSets/Main", "trainval", TRAINVAL, "\n")
    write_sets(root / "BING-Objectness/VOC2007/ImageSets/Main", "test", TEST, "\r\n")
    touch(root / "VOCdevkit/VOC2007/JPEGImages", "000005.jpg", "000007.jpg", "000009.jpg", "000001.jpg")


def test_voc07_lists_from_two_folders_with_difficult_ignored(tmp_path):
    voc_layout(tmp_path)
    bench = load_voc07(tmp_path)
    c = CLASSES.index
    assert bench.classes == list(CLASSES) and bench.multilabel and bench.modality == "image"
    assert [(e.id, e.labels, e.ignore) for e in bench.split("train")] == [
        ("000005", (c("chair"),), (c("train"),)), ("000007", (c("car"),), ()),
        ("000009", (c("horse"), c("person")), ())]
    assert [(e.id, e.labels) for e in bench.split("test")] == [("000001", (c("dog"), c("person")))]
    assert bench.split("test")[0].path == str(tmp_path / "VOCdevkit/VOC2007/JPEGImages/000001.jpg")
    assert bench.report.problems == {MISSING: 1} and bench.report.examples[MISSING] == ["000002.jpg"]
    test = bench.protocol["test"]
    assert test["folder"] == str(tmp_path / "BING-Objectness/VOC2007/ImageSets/Main")
    assert (test["images"], test["positives"]["train"], test["positives"]["aeroplane"], test["difficult_pairs"]) == \
        (2, 1, 0, 1)
    assert bench.protocol["train"]["positives"]["chair"] == 1


@pytest.mark.parametrize("difficult,labels,ignore", [("positive", ("chair", "train"), ()),
                                                     ("negative", ("chair",), ())])
def test_voc07_difficult_modes(tmp_path, difficult, labels, ignore):
    voc_layout(tmp_path)
    first = load_voc07(tmp_path, difficult=difficult, require_media=False).split("train")[0]
    assert first.labels == tuple(CLASSES.index(n) for n in labels) and first.ignore == ignore


def test_voc07_train_val_split_and_errors(tmp_path):
    voc_layout(tmp_path)
    main = tmp_path / "VOCdevkit/VOC2007/ImageSets/Main"
    write_sets(main, "train", {"000005": {"chair": 1}}, "\n")
    write_sets(main, "val", {"000007": {"car": 1}, "000009": {}}, "\n")
    bench = load_voc07(tmp_path, split="val")
    assert [e.id for e in bench.split("train")] == ["000005"] and [e.id for e in bench.split("test")] == ["000007",
                                                                                                         "000009"]
    write(main / "car_val.txt", ["000007  1"])
    with pytest.raises(DataError, match=r"car_val.txt: does not list the same images .*lacking e.g. \['000009'\]"):
        load_voc07(tmp_path, split="val")
    write(main / "car_val.txt", ["000007  2", "000009 -1"])
    with pytest.raises(DataError, match="car_val.txt: line 1: expected '<image id> 1|-1|0'"):
        load_voc07(tmp_path, split="val")
    write(main / "val.txt", ["000007", "7"])
    with pytest.raises(DataError, match="val.txt: line 2: expected a six-digit image id"):
        load_voc07(tmp_path, split="val")
    (tmp_path / "BING-Objectness/VOC2007/ImageSets/Main/test.txt").unlink()
    with pytest.raises(FileNotFoundError, match="no ImageSets/Main/test.txt"):
        load_voc07(tmp_path)
    with pytest.raises(ValueError, match="difficult must be one of"):
        load_voc07(tmp_path, difficult="drop")
