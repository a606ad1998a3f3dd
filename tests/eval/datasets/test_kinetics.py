"""Kinetics-600 in its 2018 (``val``) and 2020 (``validate``) CSV layouts, and as class folders."""

from __future__ import annotations

import pytest

from mmv.errors import DataError
from mmv.eval.datasets._common import MISSING
from mmv.eval.datasets.kinetics import AMBIGUOUS, load_kinetics600
from tests.eval.datasets.layouts import touch, write

HEADER = "label,youtube_id,time_start,time_end,split"


def layout_2018(root):
    write(root / "kinetics-600_train.csv", [HEADER, "abseiling,yq_M1PMw2hY,38,48,train",
                                            "backflip (human),-3B32lodo2M,59,69,train"])
    write(root / "kinetics-600_val.csv", [HEADER, "massaging person's head,--07WQ2iBlw,1,11,val",
                                          "abseiling,7pRfb0t34uo,158,168,val",
                                          "sewing,CYGlFBgKZV0,102,112,val",
                                          "threading needle,CYGlFBgKZV0,145,155,val",
                                          "backflip (human),zzzzzzzzzzz,0,10,val"])
    touch(root / "videos", "train/abseiling/yq_M1PMw2hY_000038_000048.mp4",
          "train/backflip (human)/-3B32lodo2M_000059_000069.mp4",
          "val/--07WQ2iBlw.mp4",  # a bare-id file: the trimmed clip
          "val/7pRfb0t34uo_158_168.mkv",  # unpadded times, another container
          "val/CYGlFBgKZV0.mp4")  # one file for two annotated clips


def test_kinetics_2018_layout(tmp_path):
    layout_2018(tmp_path)
    bench = load_kinetics600(tmp_path, media=tmp_path / "videos")
    assert bench.classes == ["abseiling", "backflip (human)", "massaging person's head", "sewing", "threading needle"]
    train, test = bench.split("train"), bench.split("test")
    assert [(e.id, e.label) for e in train] == [("yq_M1PMw2hY_000038_000048", 0), ("-3B32lodo2M_000059_000069", 1)]
    assert [(e.id, e.label, e.start, e.end) for e in test] == [("--07WQ2iBlw_000001_000011", 2, 0.0, None),
                                                               ("7pRfb0t34uo_000158_000168", 0, 0.0, None)]
    assert test[1].path.endswith("7pRfb0t34uo_158_168.mkv")
    assert bench.report.problems == {AMBIGUOUS: 2, MISSING: 1}
    assert bench.report.examples[MISSING] == ["zzzzzzzzzzz_000000_000010"]
    assert bench.protocol["test_csv"].endswith("kinetics-600_val.csv")
    assert bench.protocol["train_csv"].endswith("kinetics-600_train.csv")


def test_kinetics_full_videos_cut_at_the_csv_times(tmp_path):
    layout_2018(tmp_path)
    test = load_kinetics600(tmp_path, media=tmp_path / "videos", full_videos=True).split("test")
    assert [(e.id, e.start, e.end) for e in test] == [("--07WQ2iBlw_000001_000011", 1.0, 11.0),
                                                      ("7pRfb0t34uo_000158_000168", 0.0, None),
                                                      ("CYGlFBgKZV0_000102_000112", 102.0, 112.0),
                                                      ("CYGlFBgKZV0_000145_000155", 145.0, 155.0)]


def test_kinetics_2020_layout_and_choosing_a_layout(tmp_path):
    layout_2018(tmp_path)
    write(tmp_path / "kinetics600/validate.csv", [HEADER, "javelin throw,--07WQ2iBlw,1,11,validate",
                                                  "flipping pancake,--33Lscn6sk,4,14,validate"])
    bench = load_kinetics600(tmp_path, layout="2020", require_media=False)
    assert bench.classes == ["flipping pancake", "javelin throw"]
    assert list(bench.splits) == ["test"]
    assert [(e.id, e.label, e.path) for e in bench.split("test")] == [
        ("--07WQ2iBlw_000001_000011", 1, str(tmp_path / "--07WQ2iBlw_000001_000011.mp4")),
        ("--33Lscn6sk_000004_000014", 0, str(tmp_path / "--33Lscn6sk_000004_000014.mp4"))]
    direct = load_kinetics600(tmp_path, annotations=tmp_path / "kinetics600/validate.csv", require_media=False)
    assert [e.id for e in direct.split("test")] == [e.id for e in bench.split("test")]
    assert load_kinetics600(tmp_path, require_media=False).protocol["test_csv"].endswith("kinetics-600_val.csv")
    with pytest.raises(ValueError, match="layout must be one of"):
        load_kinetics600(tmp_path, layout="2019")


def test_kinetics_class_folder_layout(tmp_path):
    touch(tmp_path, "train/abseiling/a.mp4", "train/playing cello/b.mp4", "val/playing cello/c.webm",
          "val/playing cello/notes.txt")
    bench = load_kinetics600(tmp_path)
    assert bench.classes == ["abseiling", "playing cello"]
    assert [(e.id, e.label) for e in bench.split("train")] == [("abseiling/a", 0), ("playing cello/b", 1)]
    assert [(e.id, e.label) for e in bench.split("test")] == [("playing cello/c", 1)]
    assert bench.report.problems == {"files of another type in a class folder (ignored)": 1}
    touch(tmp_path, "val/unknown class/d.mp4")
    with pytest.raises(DataError, match="unknown class: class folder not among"):
        load_kinetics600(tmp_path)


def test_kinetics_rejects_malformed_csvs(tmp_path):
    write(tmp_path / "kinetics-600_val.csv", [HEADER, "abseiling,yq_M1PMw2hY,38,48,val", "abseiling,x,start,48,val"])
    with pytest.raises(DataError, match="kinetics-600_val.csv: line 3: times 'start', '48' are not numbers"):
        load_kinetics600(tmp_path, require_media=False)
    write(tmp_path / "kinetics-600_val.csv", ["label;youtube_id;time_start;time_end;split", "a;b;1;2;val"])
    with pytest.raises(DataError, match=r"line 1: header .* lacks .*separated by ';'"):
        load_kinetics600(tmp_path, require_media=False)
    write(tmp_path / "kinetics-600_val.csv", [HEADER, "abseiling,yq_M1PMw2hY,38,48,valid"])
    with pytest.raises(DataError, match="line 2: split 'valid' is not one of"):
        load_kinetics600(tmp_path, require_media=False)
    write(tmp_path / "kinetics-600_val.csv", [HEADER, "abseiling,yq_M1PMw2hY,38,48"])
    with pytest.raises(DataError, match="line 2: 4 fields, expected 5"):
        load_kinetics600(tmp_path, require_media=False)
