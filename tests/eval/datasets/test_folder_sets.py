"""Sets labelled by their folder or file names: ImageNet, CIFAR-10 (on disk and in a zip), FSDD."""

from __future__ import annotations

import os
import zipfile

import pytest

from mmv.errors import DataError
from mmv.eval.datasets import base
from mmv.eval.datasets.base import read_media
from mmv.eval.datasets.cifar10 import load_cifar10
from mmv.eval.datasets.fsdd import BAD_NAME, load_fsdd
from mmv.eval.datasets.imagenet import load_imagenet
from tests.eval.datasets.layouts import touch

OTHER_TYPE = "files of another type in a class folder (ignored)"


def test_imagenet_class_folders(tmp_path):
    touch(tmp_path, "train/n01440764/n01440764_10026.JPEG", "train/n01443537/n01443537_1.JPEG",
          "train/n01443537/n01443537_2.jpeg", "train/n01443537/readme.txt", "train/.cache/x.JPEG",
          "val/n01440764/ILSVRC2012_val_00000293.JPEG", "val/n01443537/ILSVRC2012_val_00000236.JPEG")
    bench = load_imagenet(tmp_path)
    assert bench.classes == ["n01440764", "n01443537"]
    assert [(e.id, e.label) for e in bench.split("train")] == [("n01440764/n01440764_10026", 0),
                                                               ("n01443537/n01443537_1", 1),
                                                               ("n01443537/n01443537_2", 1)]
    assert [(e.id, e.label) for e in bench.split("test")] == [("n01440764/ILSVRC2012_val_00000293", 0),
                                                              ("n01443537/ILSVRC2012_val_00000236", 1)]
    assert bench.report.problems == {OTHER_TYPE: 1}
    touch(tmp_path, "val/ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(DataError, match="lie directly in the folder"):
        load_imagenet(tmp_path)
    with pytest.raises(ValueError, match="no annotation files"):
        load_imagenet(tmp_path, annotations=tmp_path / "LOC_val_solution.csv")


def test_imagenet_val_class_missing_from_train(tmp_path):
    touch(tmp_path, "train/n01/a.JPEG", "val/n02/b.JPEG")
    with pytest.raises(DataError, match="n02: class folder not among the 1 classes"):
        load_imagenet(tmp_path)


def make_zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("cifar10/", b"")
        for name in members:
            archive.writestr(name, name.encode())


def test_cifar10_from_a_zip(tmp_path):
    make_zip(tmp_path / "cifar10_small.zip", ["cifar10/test/cat/0001.jpg", "cifar10/train/cat/0000.jpg",
                                             "cifar10/train/airplane/0001.jpg", "cifar10/train/airplane/0000.jpg",
                                             "cifar10/test/airplane/0000.jpg", "cifar10/README.md",
                                             "cifar10/train/cat/labels.csv"])
    bench = load_cifar10(tmp_path)  # the one zip in the folder
    assert bench.classes == ["airplane", "cat"] and list(bench.splits) == ["train", "test"]
    train = bench.split("train")
    assert [(e.id, e.label, e.member) for e in train] == [("airplane/0000", 0, "cifar10/train/airplane/0000.jpg"),
                                                          ("airplane/0001", 0, "cifar10/train/airplane/0001.jpg"),
                                                          ("cat/0000", 1, "cifar10/train/cat/0000.jpg")]
    assert all(e.path == str(tmp_path / "cifar10_small.zip") for e in train)
    assert [e.id for e in bench.split("test")] == ["airplane/0000", "cat/0001"]
    assert read_media(train[2]) == b"cifar10/train/cat/0000.jpg"
    assert bench.report.problems == {"zip members outside <split>/<class>/ (ignored)": 1, OTHER_TYPE: 1}
    make_zip(tmp_path / "cifar10_small.zip", ["a/train/cat/0.jpg", "b/train/cat/1.jpg"])
    with pytest.raises(DataError, match="several train/test trees"):
        load_cifar10(tmp_path / "cifar10_small.zip")


def test_cifar10_class_folders_on_disk(tmp_path):
    touch(tmp_path / "cifar10", "train/truck/1.png", "train/bird/2.png", "test/bird/3.png")
    bench = load_cifar10(tmp_path)
    assert bench.classes == ["bird", "truck"]
    assert [(e.id, e.label, e.member) for e in bench.split("train")] == [("bird/2", 0, None), ("truck/1", 1, None)]
    assert [e.path for e in bench.split("test")] == [str(tmp_path / "cifar10/test/bird/3.png")]


def test_read_media_keeps_an_archive_open_and_notices_changes(tmp_path):
    path = tmp_path / "a.zip"
    make_zip(path, ["x/train/c/0.jpg"])
    example = base.Example(id="c/0", path=str(path), labels=(0,), member="x/train/c/0.jpg")
    assert read_media(example) == b"x/train/c/0.jpg"
    first = base._open_archive(str(path))
    assert base._open_archive(str(path)) is first
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x/train/c/0.jpg", b"new bytes")
    os.utime(path, ns=(1, 1))  # a different modification time even on coarse clocks
    assert read_media(example) == b"new bytes"
    assert base._open_archive(str(path)) is not first
    assert read_media(base.Example(id="f", path=str(path))) == str(path)


def fsdd_layout(root):
    names = [f"{d}_{s}_{t}.wav" for d in (0, 7) for s in ("george", "jackson") for t in (0, 4, 5, 49)]
    touch(root / "recordings", *names, "README.txt", "7_jackson.wav")


def test_fsdd_official_split(tmp_path):
    fsdd_layout(tmp_path)
    bench = load_fsdd(tmp_path)
    assert bench.classes == [str(d) for d in range(10)] and bench.modality == "audio"
    test, train = bench.split("test"), bench.split("train")
    assert [e.id for e in test] == ["0_george_0", "0_george_4", "0_jackson_0", "0_jackson_4", "7_george_0",
                                    "7_george_4", "7_jackson_0", "7_jackson_4"]
    assert [e.label for e in test] == [0] * 4 + [7] * 4
    assert len(train) == 8 and {e.id.rsplit("_", 1)[1] for e in train} == {"5", "49"}
    assert bench.report.problems == {BAD_NAME: 2}
    assert sorted(bench.report.examples[BAD_NAME]) == ["7_jackson.wav", "README.txt"]


def test_fsdd_held_out_speaker(tmp_path):
    fsdd_layout(tmp_path)
    bench = load_fsdd(tmp_path / "recordings", split="speaker:george")
    assert len(bench.split("test")) == 8 and all("_george_" in e.id for e in bench.split("test"))
    assert len(bench.split("train")) == 8 and all("_jackson_" in e.id for e in bench.split("train"))
    assert bench.protocol["held_out_speaker"] == "george"
    with pytest.raises(ValueError, match=r"no speaker 'theo'; the speakers are \['george', 'jackson'\]"):
        load_fsdd(tmp_path, split="speaker:theo")
    with pytest.raises(ValueError, match="split must be 'official' or 'speaker:<name>'"):
        load_fsdd(tmp_path, split=1)
