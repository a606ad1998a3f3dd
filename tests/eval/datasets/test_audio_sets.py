"""ESC-50 (meta/esc50.csv, 5 folds) and AudioSet (segment CSVs + class_labels_indices.csv) as published."""

from __future__ import annotations

import pytest

from mmv.errors import DataError
from mmv.eval.datasets._common import MISSING
from mmv.eval.datasets.audioset import UNKNOWN_MID, load_audioset
from mmv.eval.datasets.esc50 import load_esc50
from tests.eval.datasets.layouts import touch, write

ESC_HEADER = "filename,fold,target,category,esc10,src_file,take"


def esc_layout(root):
    rows = []
    for fold in range(1, 6):
        rows.append(f"{fold}-1000{fold}-A-0.wav,{fold},0,dog,True,1000{fold},A")
        rows.append(f"{fold}-2000{fold}-B-1.wav,{fold},1,rooster,True,2000{fold},B")
    write(root / "meta/esc50.csv", [ESC_HEADER, *rows])
    touch(root / "audio", *(r.split(",")[0] for r in rows if not r.startswith("4-2")))  # fold 4's rooster missing


@pytest.mark.parametrize("fold", [1, 3, 4])
def test_esc50_fold_k_tests_on_k_and_trains_on_the_rest(tmp_path, fold):
    esc_layout(tmp_path)
    bench = load_esc50(tmp_path, split=fold)
    assert bench.classes == ["dog", "rooster"] and bench.modality == "audio"
    test_ids = [e.id for e in bench.split("test")]
    train_ids = [e.id for e in bench.split("train")]
    expected_test = [f"{fold}-1000{fold}-A-0", f"{fold}-2000{fold}-B-1"]
    assert test_ids == [i for i in expected_test if i != "4-20004-B-1"]
    assert len(train_ids) == (8 if fold == 4 else 7) and not set(train_ids) & set(test_ids)
    assert [e.label for e in bench.split("test")] == [0, 1][: len(test_ids)]
    assert bench.report.problems == {MISSING: 1}
    assert bench.report.examples[MISSING] == ["4-20004-B-1.wav"]
    assert bench.protocol["train_folds"] == [k for k in range(1, 6) if k != fold]


def test_esc50_rejects_malformed_csv(tmp_path):
    esc_layout(tmp_path)
    csv_path = tmp_path / "meta/esc50.csv"
    lines = csv_path.read_text().splitlines()
    write(csv_path, [lines[0], lines[1], "1-30001-A-0.wav,1,0,cat,False,30001,A"])
    with pytest.raises(DataError, match="esc50.csv: line 3: target 0 is 'cat' here but 'dog' before"):
        load_esc50(tmp_path)
    write(csv_path, [lines[0], "2-30001-A-0.wav,1,0,dog,False,30001,A"])
    with pytest.raises(DataError, match="line 2: file name '2-30001-A-0.wav' does not read '1-<source>-<take>-0.wav'"):
        load_esc50(tmp_path)
    write(csv_path, [lines[0], "6-30001-A-0.wav,6,0,dog,False,30001,A"])
    with pytest.raises(DataError, match="line 2: fold 6 is not one of"):
        load_esc50(tmp_path)
    write(csv_path, ["filename,fold,target,category", "1-30001-A-0.wav,1,0,dog"])
    with pytest.raises(DataError, match="line 1: header"):
        load_esc50(tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        load_esc50(tmp_path, split=0)


def audioset_layout(root):
    write(root / "class_labels_indices.csv", ["index,mid,display_name", '0,/m/09x0r,"Speech"',
                                              '1,/m/05zppz,"Male speech, man speaking"', '2,/m/0jbk,"Animal"'])
    comments = ["# Segments csv created Sun Mar  5 10:54:25 2017",
                "# num_ytids=2, num_segs=2, num_unique_labels=3, num_positive_labels=4",
                "# YTID, start_seconds, end_seconds, positive_labels"]
    write(root / "balanced_train_segments.csv", [*comments, '--4gqARaEJE, 0.000, 10.000, "/m/0jbk,/m/09x0r"',
                                                 '-0RWZT-miFs, 420.000, 430.000, "/m/05zppz"'])
    write(root / "eval_segments.csv", [*comments, 'YZVyjv1PVBE, 30.000, 40.000, "/m/09x0r,/m/zzzzz"',
                                       '_0AaBbCcDdE, 5.000, 15.000, "/m/0jbk"',
                                       'nothere0000, 0.000, 10.000, "/m/0jbk"'])
    touch(root / "clips", "balanced/--4gqARaEJE_0.wav", "balanced/-0RWZT-miFs_420000_430000.wav",
          "eval/YZVyjv1PVBE.mp4", "eval/Y_0AaBbCcDdE_5.000_15.000.wav")


def test_audioset_segments_and_classes(tmp_path):
    audioset_layout(tmp_path)
    bench = load_audioset(tmp_path, media=tmp_path / "clips")
    assert bench.classes == ["Speech", "Male speech, man speaking", "Animal"]
    assert bench.multilabel and bench.modality == "audio"
    train, test = bench.split("train"), bench.split("test")
    assert [(e.id, e.labels, e.start, e.end) for e in train] == [("--4gqARaEJE_0", (0, 2), 0.0, None),
                                                                 ("-0RWZT-miFs_420", (1,), 0.0, None)]
    # a bare-id file is the full video: cut at the segment (the training source's rule)
    assert [(e.id, e.labels, e.start, e.end) for e in test] == [("YZVyjv1PVBE_30", (0,), 30.0, 40.0),
                                                                ("_0AaBbCcDdE_5", (2,), 0.0, None)]
    assert bench.report.problems == {UNKNOWN_MID: 1, MISSING: 1}
    assert bench.report.examples == {UNKNOWN_MID: ["YZVyjv1PVBE_30: /m/zzzzz"], MISSING: ["nothere0000_0"]}
    cut = load_audioset(tmp_path, media=tmp_path / "clips", full_videos=False).split("test")
    assert (cut[0].start, cut[0].end) == (0.0, None)


def test_audioset_listing_and_errors(tmp_path):
    audioset_layout(tmp_path / "meta")
    bench = load_audioset(tmp_path / "none", annotations=tmp_path / "meta", require_media=False)
    assert [e.path for e in bench.split("train")] == [str(tmp_path / "none/--4gqARaEJE_0.wav"),
                                                      str(tmp_path / "none/-0RWZT-miFs_420.wav")]
    with pytest.raises(FileNotFoundError, match="unbalanced_train_segments.csv"):
        load_audioset(tmp_path, annotations=tmp_path / "meta", split="unbalanced", require_media=False)
    with open(tmp_path / "meta/eval_segments.csv", "a") as f:
        f.write("#NAME?, 0.000, 10.000, \"/m/0jbk\"\n")
    with pytest.raises(DataError, match="eval_segments.csv: line 7: not a YouTube id"):
        load_audioset(tmp_path, annotations=tmp_path / "meta", require_media=False)
