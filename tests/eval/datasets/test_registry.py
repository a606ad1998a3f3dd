"""The registry: names, aliases, metadata and protocol defaults, and loading through it."""

from __future__ import annotations

import pytest

from mmv.eval.datasets import benchmark_info, list_benchmarks, load_benchmark
from tests.eval.datasets.layouts import touch, write


def test_every_benchmark_is_registered_with_its_metadata():
    infos = {i.name: i for i in list_benchmarks()}
    assert list(infos) == ["ucf101", "hmdb51", "kinetics600", "esc50", "audioset", "msrvtt", "youcook2", "voc07",
                           "imagenet", "fsdd", "cifar10"]
    assert {n for n, i in infos.items() if not i.in_paper} == {"fsdd", "cifar10"}
    assert {n for n, i in infos.items() if i.multilabel} == {"audioset", "voc07"}
    assert {n for n, i in infos.items() if i.task == "retrieval"} == {"msrvtt", "youcook2"}
    assert {i.metric for i in infos.values()} == {"top1", "mAP", "retrieval"}
    assert {n: i.modality for n, i in infos.items()} == {
        "ucf101": "video", "hmdb51": "video", "kinetics600": "video", "esc50": "audio", "audioset": "audio",
        "msrvtt": "video", "youcook2": "video", "voc07": "image", "imagenet": "image", "fsdd": "audio",
        "cifar10": "image"}


def test_protocol_defaults_follow_the_spec():
    ucf = benchmark_info("ucf101")
    assert (ucf.protocol["C"], ucf.protocol["train_passes"], ucf.protocol["test_windows"]) == (0.001, 10, 10)
    assert (ucf.protocol["frames"], ucf.protocol["frame_stride"], ucf.protocol["fps"]) == (32, 2, 25)
    assert ucf.splits == (1, 2, 3) and ucf.default_split == 1 and ucf.reference["tsm-resnet50x2"] == 91.8
    hmdb = benchmark_info("hmdb51")
    assert dict(hmdb.protocol["C"]) == {"s3d": 0.0003, "tsm-resnet50": 0.0001, "tsm-resnet50x2": 0.0003}
    assert (hmdb.protocol["crop"], hmdb.protocol["frame_stride"], hmdb.protocol["fps"]) == (200, 1, 10)
    assert hmdb.average_over == (1, 2, 3)
    assert benchmark_info("esc50").average_over == (1, 2, 3, 4, 5)
    assert benchmark_info("audioset").metric == "mAP"
    with pytest.raises(TypeError):
        ucf.protocol["C"] = 1.0  # read-only: a runner cannot change the defaults for everyone


@pytest.mark.parametrize("alias,name", [("ESC-50", "esc50"), ("K600", "kinetics600"), ("Kinetics-600", "kinetics600"),
                                        ("voc2007", "voc07"), ("YouCookII", "youcook2"), ("MSRVTT-1kA", "msrvtt")])
def test_aliases(alias, name):
    assert benchmark_info(alias).name == name


def test_load_benchmark_passes_split_and_options(tmp_path):
    rows = [f"{k}-1{k}-A-0.wav,{k},0,dog,True,1{k},A" for k in range(1, 6)]
    write(tmp_path / "ann/esc50.csv", ["filename,fold,target,category,esc10,src_file,take", *rows])
    bench = load_benchmark("ESC-50", tmp_path, split=2, annotations=tmp_path / "ann/esc50.csv", require_media=False)
    assert [e.id for e in bench.split("test")] == ["2-12-A-0"] and len(bench.split("train")) == 4
    touch(tmp_path / "fsdd", "3_theo_1.wav")
    assert load_benchmark("fsdd", tmp_path / "fsdd").split("test")[0].label == 3
    with pytest.raises(KeyError, match="no benchmark 'ucf102'"):
        load_benchmark("ucf102", tmp_path)
    with pytest.raises(TypeError):
        load_benchmark("fsdd", tmp_path, frames=32)
    with pytest.raises(KeyError, match="has no split 'val'"):
        bench.split("val")
