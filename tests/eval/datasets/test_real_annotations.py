"""The real annotation files in ../shared/data/annotations, read as published (no media: ``require_media=False``),
and the two real sets FSDD and CIFAR-10 loaded end to end. Skipped where ../shared/data is absent."""

from __future__ import annotations

from collections import Counter

import pytest

from mmv.eval.datasets import load_benchmark, read_media
from mmv.eval.datasets._common import CASE_FOUND, MISSING
from mmv.eval.datasets.ucf101 import UCF_QUIRK
from tests.eval.datasets.layouts import ANNOTATIONS, SHARED_DATA, touch


def need(path):
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path


@pytest.mark.parametrize("split,train,test", [(1, 9537, 3783), (2, 9586, 3734), (3, 9624, 3696)])
def test_ucf101_official_splits(split, train, test, tmp_path):
    bench = load_benchmark("ucf101", tmp_path, split=split, annotations=need(ANNOTATIONS / "ucf101"),
                           require_media=False)
    assert (len(bench.split("train")), len(bench.split("test")), len(bench.classes)) == (train, test, 101)
    assert bench.classes[36] == "HandstandPushups" and bench.classes[0] == "ApplyEyeMakeup"
    assert bench.report.problems == {UCF_QUIRK: 128}  # the class's 128 videos, in train or test
    labels = Counter(e.label for s in ("train", "test") for e in bench.split(s))
    assert len(labels) == 101 and sum(labels.values()) == 13320 and labels[36] == 128


def test_ucf101_split1_resolves_the_case_quirk_on_disk(tmp_path):
    bench = load_benchmark("ucf101", tmp_path, annotations=need(ANNOTATIONS / "ucf101"), require_media=False)
    listed = [e for s in ("train", "test") for e in bench.split(s)]
    # a copy of the videos whose file names were "fixed" to the folder's case, plus one ordinary class
    touch(tmp_path / "UCF-101", *(f"HandstandPushups/{e.id.replace('HandStand', 'Handstand')}.avi"
                                  for e in listed if e.label == 36))
    yoyo = [e for e in listed if e.label == 100]
    touch(tmp_path / "UCF-101", *(f"YoYo/{e.id}.avi" for e in yoyo))
    real = load_benchmark("ucf101", tmp_path, annotations=ANNOTATIONS / "ucf101")
    assert real.report.problems[CASE_FOUND] == 128
    assert real.report.problems[MISSING] == 13320 - 128 - len(yoyo)
    assert {e.label for s in ("train", "test") for e in real.split(s)} == {36, 100}


def test_esc50_folds():
    annotations = need(ANNOTATIONS / "esc50")
    seen = Counter()
    for fold in range(1, 6):
        bench = load_benchmark("esc50", "/nonexistent", split=fold, annotations=annotations, require_media=False)
        assert (len(bench.split("train")), len(bench.split("test"))) == (1600, 400)
        seen.update(e.label for e in bench.split("test"))
    assert len(bench.classes) == 50 and bench.classes[0] == "dog" and bench.classes[49] == "hand_saw"
    assert sum(seen.values()) == 2000 and set(seen.values()) == {40}


def test_audioset_classes_and_excerpts():
    bench = load_benchmark("audioset", "/nonexistent", annotations=need(ANNOTATIONS / "audioset"),
                           require_media=False)
    assert len(bench.classes) == 527 and bench.classes[:2] == ["Speech", "Male speech, man speaking"]
    assert (len(bench.split("train")), len(bench.split("test"))) == (200, 200)
    first = bench.split("test")[0]
    assert first.id == "--4gqARaEJE_0"
    assert [bench.classes[i] for i in first.labels] == ["Animal", "Domestic animals, pets", "Dog", "Squeak"]
    assert bench.report.problems == {}


def test_kinetics600_both_layouts():
    folder = need(ANNOTATIONS / "kinetics")
    old = load_benchmark("kinetics600", "/nonexistent", annotations=folder, require_media=False)
    new = load_benchmark("k600", "/nonexistent", annotations=folder / "kinetics600/validate.csv", require_media=False)
    assert len(old.split("test")) == 30000 and len(new.split("test")) == 28267
    assert old.classes == new.classes and len(old.classes) == 600
    assert {"backflip (human)", "massaging person's head"} <= set(old.classes)
    per_class_old = Counter(e.label for e in old.split("test"))
    per_class_new = Counter(e.label for e in new.split("test"))
    assert set(per_class_old.values()) == {50}
    assert (min(per_class_new.values()), max(per_class_new.values()), len(per_class_new)) == (36, 50, 600)
    assert old.protocol["train_csv"] is None


def test_msrvtt_1k_a():
    bench = load_benchmark("msrvtt", "/nonexistent", annotations=need(ANNOTATIONS / "msrvtt"), require_media=False)
    test = bench.split("test")
    assert len(test) == 1000 and len({e.id for e in test}) == 1000
    assert all(len(e.captions) == 1 for e in test)
    assert (test[0].id, test[0].captions) == ("video9770", ("a person is connecting something to system",))


def test_voc07_trainval_and_crlf_test_lists():
    bench = load_benchmark("voc07", "/nonexistent", annotations=need(ANNOTATIONS / "voc07"), require_media=False)
    train, test = bench.split("train"), bench.split("test")
    assert (len(train), len(test)) == (5011, 4952)
    assert not {e.id for e in train} & {e.id for e in test}
    assert {e.id for e in train} | {e.id for e in test} == {f"{i:06d}" for i in range(1, 9964)}
    positives = Counter(label for e in test for label in e.labels)
    assert positives[bench.classes.index("aeroplane")] == 204 and positives[bench.classes.index("person")] == 2007
    assert bench.protocol["test"]["positives"]["person"] == 2007
    ignored = Counter(label for e in test for label in e.ignore)
    assert ignored[bench.classes.index("aeroplane")] == 1 and ignored[bench.classes.index("person")] == 90
    first = test[0]
    assert first.id == "000001" and [bench.classes[i] for i in first.labels] == ["dog", "person"]


def test_fsdd_end_to_end():
    root = need(SHARED_DATA / "fsdd")
    bench = load_benchmark("fsdd", root)
    assert (len(bench.split("train")), len(bench.split("test"))) == (2700, 300)
    assert set(Counter(e.label for e in bench.split("test")).values()) == {30}
    assert bench.report.problems == {}
    held = load_benchmark("fsdd", root, split="speaker:george")
    assert (len(held.split("train")), len(held.split("test"))) == (2500, 500)
    assert all("_george_" in e.id for e in held.split("test"))
    assert not any("_george_" in e.id for e in held.split("train"))
    assert held.protocol["speakers"] == ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    with open(bench.split("test")[0].path, "rb") as f:
        assert f.read(4) == b"RIFF"


def test_cifar10_from_the_zip_end_to_end():
    bench = load_benchmark("cifar10", need(SHARED_DATA / "cifar10/cifar10_20k.zip"))
    assert bench.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    train, test = bench.split("train"), bench.split("test")
    assert (len(train), len(test)) == (10000, 10000)
    assert set(Counter(e.label for e in train).values()) == {1000} == set(Counter(e.label for e in test).values())
    assert bench.report.problems == {}
    for example in test[::20]:  # 500 members through one open archive
        assert read_media(example)[:2] == b"\xff\xd8"
