"""UCF101 and HMDB51 split files in their published layouts (CRLF, unlabelled test lists, the case quirk)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmv.errors import DataError
from mmv.eval.datasets._common import CASE_FOUND, MISSING
from mmv.eval.datasets.hmdb51 import UNUSED, load_hmdb51
from mmv.eval.datasets.ucf101 import UCF_QUIRK, load_ucf101
from tests.eval.datasets.layouts import touch, write

CRLF = "\r\n"


def ucf_layout(root: Path) -> Path:
    lists = root / "ucfTrainTestlist"
    write(lists / "classInd.txt", ["1 ApplyEyeMakeup", "2 HandstandPushups", "3 YoYo"], eol=CRLF)
    write(lists / "trainlist01.txt", ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1",
                                      "HandstandPushups/v_HandStandPushups_g08_c01.avi 2",
                                      "YoYo/v_YoYo_g08_c01.avi 3"], eol=CRLF)
    write(lists / "testlist01.txt", ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
                                     "HandstandPushups/v_HandStandPushups_g01_c01.avi",
                                     "YoYo/v_YoYo_g01_c01.avi"], eol=CRLF)
    touch(root / "UCF-101", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
          "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "HandstandPushups/v_HandStandPushups_g08_c01.avi",
          "HandstandPushups/v_HandstandPushups_g01_c01.avi",  # a copy whose case was "fixed"
          "YoYo/v_YoYo_g08_c01.avi")  # YoYo's test video is missing
    return lists


def test_ucf101_official_layout_with_quirks(tmp_path):
    ucf_layout(tmp_path)
    bench = load_ucf101(tmp_path)
    assert bench.classes == ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]
    train, test = bench.split("train"), bench.split("test")
    assert [(e.id, e.label) for e in train] == [("v_ApplyEyeMakeup_g08_c01", 0), ("v_HandStandPushups_g08_c01", 1),
                                                ("v_YoYo_g08_c01", 2)]
    assert [(e.id, e.label) for e in test] == [("v_ApplyEyeMakeup_g01_c01", 0), ("v_HandStandPushups_g01_c01", 1)]
    assert test[1].path == str(tmp_path / "UCF-101/HandstandPushups/v_HandstandPushups_g01_c01.avi")
    assert train[0].path == str(tmp_path / "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi")
    report = bench.report
    assert report.problems == {UCF_QUIRK: 2, CASE_FOUND: 1, MISSING: 1}
    assert report.examples[MISSING] == ["YoYo/v_YoYo_g01_c01.avi"]
    assert report.items == 5
    assert bench.protocol["split"] == 1 and bench.modality == "video" and not bench.multilabel


def test_ucf101_listing_without_media(tmp_path):
    lists = ucf_layout(tmp_path / "ann")
    bench = load_ucf101(tmp_path / "nowhere", annotations=lists, require_media=False)
    assert [len(bench.split(s)) for s in ("train", "test")] == [3, 3]
    assert bench.split("test")[2].path == str(tmp_path / "nowhere/YoYo/v_YoYo_g01_c01.avi")
    assert bench.report.problems == {UCF_QUIRK: 2}
    assert bench.protocol["media_checked"] is False
    with pytest.raises(FileNotFoundError, match="require_media=False"):
        load_ucf101(tmp_path / "nowhere", annotations=tmp_path / "ann")


def test_ucf101_rejects_malformed_lists(tmp_path):
    lists = ucf_layout(tmp_path)
    write(lists / "trainlist02.txt", ["YoYo/v_YoYo_g08_c01.avi 3", "YoYo/v_YoYo_g09_c01.avi 1"], eol=CRLF)
    with pytest.raises(FileNotFoundError, match="testlist02.txt"):
        load_ucf101(tmp_path, split=2)
    write(lists / "testlist02.txt", ["YoYo/v_YoYo_g01_c01.avi"], eol=CRLF)
    with pytest.raises(DataError, match=r"trainlist02.txt: line 2: label 1 \(ApplyEyeMakeup\) disagrees"):
        load_ucf101(tmp_path, split=2)
    write(lists / "trainlist03.txt", ["Juggling/v_Juggling_g01_c01.avi 1"])
    write(lists / "testlist03.txt", [])
    with pytest.raises(DataError, match="trainlist03.txt: line 1: folder 'Juggling' is not a class"):
        load_ucf101(tmp_path, split=3)
    write(lists / "testlist03.txt", ["YoYo/v_YoYo_g01_c01.avi 3"])
    write(lists / "trainlist03.txt", [])
    with pytest.raises(DataError, match=r"testlist03.txt: line 1: expected '<Class>/<video>.avi' \(no label\)"):
        load_ucf101(tmp_path, split=3)
    write(lists / "classInd.txt", ["1 ApplyEyeMakeup", "3 YoYo"], eol=CRLF)
    with pytest.raises(DataError, match="classInd.txt: line 2: class number 3, expected 2"):
        load_ucf101(tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        load_ucf101(tmp_path, split=4)


def hmdb_layout(root: Path) -> None:
    splits = root / "testTrainMulti_7030_splits"
    write(splits / "clap_test_split1.txt", ["#20_Rhythm_clap_u_nm_np1_fr_goo_0.avi 1 ",
                                           "Clap_Along_clap_f_cm_np1_fr_med_1.avi 2 ",
                                           "Clap_Along_clap_f_cm_np1_fr_med_2.avi 0 "])
    write(splits / "brush_hair_test_split1.txt", ["April_09_brush_hair_u_nm_np1_ba_goo_0.avi 2 ",
                                                 "Brushing_Hair_brush_hair_h_cm_np2_le_goo_1.avi 1 "])
    write(splits / "clap_test_split2.txt", ["#20_Rhythm_clap_u_nm_np1_fr_goo_0.avi 2 "])
    write(splits / "brush_hair_test_split2.txt", ["April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 "])
    touch(root / "hmdb51_org", "clap/#20_Rhythm_clap_u_nm_np1_fr_goo_0.avi",
          "clap/Clap_Along_clap_f_cm_np1_fr_med_1.avi", "clap/Clap_Along_clap_f_cm_np1_fr_med_2.avi",
          "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi")


def test_hmdb51_split_files(tmp_path):
    hmdb_layout(tmp_path)
    bench = load_hmdb51(tmp_path)
    assert bench.classes == ["brush_hair", "clap"]
    assert [(e.id, e.label) for e in bench.split("train")] == [("#20_Rhythm_clap_u_nm_np1_fr_goo_0", 1)]
    assert [(e.id, e.label) for e in bench.split("test")] == [("April_09_brush_hair_u_nm_np1_ba_goo_0", 0),
                                                              ("Clap_Along_clap_f_cm_np1_fr_med_1", 1)]
    assert bench.report.problems == {UNUSED: 1, MISSING: 1}
    assert bench.report.examples[MISSING] == ["brush_hair/Brushing_Hair_brush_hair_h_cm_np2_le_goo_1.avi"]
    assert bench.protocol["unused"] == 1
    two = load_hmdb51(tmp_path, split=2)
    assert [e.label for e in two.split("train")] == [0] and [e.label for e in two.split("test")] == [1]


def test_hmdb51_rejects_malformed_split_files(tmp_path):
    hmdb_layout(tmp_path)
    splits = tmp_path / "testTrainMulti_7030_splits"
    write(splits / "clap_test_split2.txt", ["#20_Rhythm_clap_u_nm_np1_fr_goo_0.avi 3"])
    with pytest.raises(DataError, match=r"clap_test_split2.txt: line 1: expected '<video>.avi 0\|1\|2'"):
        load_hmdb51(tmp_path, split=2, require_media=False)
    write(splits / "clap_test_split2.txt", ["April_09_brush_hair_u_nm_np1_ba_goo_0.avi 2"])
    with pytest.raises(DataError, match="listed again"):
        load_hmdb51(tmp_path, split=2, require_media=False)
    with pytest.raises(FileNotFoundError, match="_test_split3.txt"):
        load_hmdb51(tmp_path, split=3)
