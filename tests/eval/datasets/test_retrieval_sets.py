"""MSR-VTT 1k-A (JSFusion test CSV) and YouCook2 (annotation JSON, validation steps) as published."""

from __future__ import annotations

import json

import pytest

from mmv.errors import DataError
from mmv.eval.datasets._common import MISSING
from mmv.eval.datasets.msrvtt import load_msrvtt
from mmv.eval.datasets.youcook2 import load_youcook2
from tests.eval.datasets.layouts import touch, write


def test_msrvtt_1k_a(tmp_path):
    write(tmp_path / "msrvtt_data/MSRVTT_JSFUSION_test.csv", [
        "key,vid_key,video_id,sentence", "ret0,msr9770,video9770,a person is connecting something to system",
        "ret1,msr9771,video9771,a little girl does gymnastics", "ret2,msr7020,video7020,a man sings",
        "ret3,msr9770,video9770,someone plugs in a cable"])
    touch(tmp_path / "videos/all", "video9770.mp4", "video7020.webm")
    bench = load_msrvtt(tmp_path)
    assert bench.classes == [] and list(bench.splits) == ["test"]
    assert [(e.id, e.captions, e.labels) for e in bench.split("test")] == [
        ("video9770", ("a person is connecting something to system", "someone plugs in a cable"), ()),
        ("video7020", ("a man sings",), ())]
    assert bench.split("test")[1].path == str(tmp_path / "videos/all/video7020.webm")
    assert bench.report.problems == {MISSING: 1} and bench.report.examples[MISSING] == ["video9771"]
    assert bench.protocol["captions"] == 4


def test_msrvtt_rejects_a_semicolon_resave(tmp_path):
    path = write(tmp_path / "MSRVTT_JSFUSION_test.csv", ["key;vid_key;video_id;sentence", "ret0;msr1;video1;a cat"],
                 eol="\r\n")
    with pytest.raises(DataError, match=r"MSRVTT_JSFUSION_test.csv: line 1: header .*separated by ';'"):
        load_msrvtt(tmp_path, annotations=path, require_media=False)


def youcook_json(path, database):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"database": database}))


DATABASE = {
    "GLd3aX16zBg": {"duration": 241.62, "subset": "training", "recipe_type": "113", "annotations": [
        {"segment": [90, 102], "id": 0, "sentence": "spread margarine on two slices of white bread"}]},
    "xHr8X2Wpmno": {"duration": 200.0, "subset": "validation", "recipe_type": "101", "annotations": [
        {"segment": [22, 38], "id": 0, "sentence": "cut the tofu into cubes"},
        {"segment": [41.5, 60], "id": 1, "sentence": "fry the tofu"}]},
    "V53XmPeyjIU": {"duration": 300.0, "subset": "validation", "recipe_type": "226", "annotations": [
        {"segment": [10, 20], "id": 0, "sentence": "boil the noodles"}]},
    "gonemissing": {"duration": 50.0, "subset": "validation", "recipe_type": "101", "annotations": [
        {"segment": [1, 5], "id": 0, "sentence": "add salt"}]},
}


def test_youcook2_validation_steps(tmp_path):
    youcook_json(tmp_path / "annotations/youcookii_annotations_trainval.json", DATABASE)
    touch(tmp_path / "raw_videos", "validation/101/xHr8X2Wpmno.mp4", "validation/226/V53XmPeyjIU.mkv",
          "training/113/GLd3aX16zBg.mp4")
    bench = load_youcook2(tmp_path)
    assert [(e.id, e.start, e.end, e.captions) for e in bench.split("test")] == [
        ("xHr8X2Wpmno_0", 22.0, 38.0, ("cut the tofu into cubes",)), ("xHr8X2Wpmno_1", 41.5, 60.0, ("fry the tofu",)),
        ("V53XmPeyjIU_0", 10.0, 20.0, ("boil the noodles",))]
    assert bench.split("test")[2].path == str(tmp_path / "raw_videos/validation/226/V53XmPeyjIU.mkv")
    assert bench.report.problems == {MISSING: 1} and bench.report.examples[MISSING] == ["gonemissing_0"]
    assert (bench.protocol["steps"], bench.protocol["videos"]) == (4, 3)
    listed = load_youcook2(tmp_path / "elsewhere", annotations=tmp_path / "annotations", require_media=False)
    assert listed.split("test")[3].path == str(tmp_path / "elsewhere/validation/101/gonemissing.mp4")


def test_youcook2_rejects_malformed_json(tmp_path):
    path = tmp_path / "youcookii_annotations_trainval.json"
    bad = {"v1": {"subset": "validation", "annotations": [{"segment": [5, 3], "sentence": "x"}]}}
    youcook_json(path, bad)
    with pytest.raises(DataError, match="database/v1/annotations/0: segment"):
        load_youcook2(tmp_path, require_media=False)
    youcook_json(path, {"v1": {"subset": "validation", "annotations": [{"segment": [1, 3]}]}})
    with pytest.raises(DataError, match="'sentence' is missing"):
        load_youcook2(tmp_path, require_media=False)
    path.write_text('{"database": {\n "v1": }')
    with pytest.raises(DataError, match="line 2: not JSON"):
        load_youcook2(tmp_path, require_media=False)
    path.write_text('{"results": {}}')
    with pytest.raises(DataError, match="no 'database' object"):
        load_youcook2(tmp_path, require_media=False)
