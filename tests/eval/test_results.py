"""Result records: the whole linear-probe call sequence on a small benchmark, written atomically as JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import torch

from mmv import __version__
from mmv.eval.datasets.base import Benchmark, Example
from mmv.eval.features import Features, FeatureSpec, extract_features
from mmv.eval.linear import logistic_probe, svm_probe
from mmv.eval.results import format_table, make_record, model_info, read_result, write_result
from mmv.models import create_model
from tests.data.fixtures import write_video


def test_linear_probe_call_sequence_and_record(tmp_path):
    torch.manual_seed(0)
    model = create_model("mmv_tiny_tsm").eval()
    vids = [str(write_video(tmp_path / f"v{i}.mp4", num_frames=20, fps=25.0)) for i in range(2)]
    bench = Benchmark("toy", "video", ["a", "b"], {
        "train": [Example("t0", vids[0], (0,)), Example("t1", vids[1], (1,))],
        "test": [Example("s0", vids[0], (0,)), Example("s1", vids[1], (1,)), Example("bad", "nope.mp4", (1,))]},
        protocol={"split": 1})
    spec = FeatureSpec(modality=bench.modality, num_windows=2, num_passes=2, num_frames=4, fps=8.0,
                       resize_short_side=36, crop=32)
    train = extract_features(model, bench.split("train"), spec, train=True, cache_dir=tmp_path / "cache")
    test = extract_features(model, bench.split("test"), spec, train=False, cache_dir=tmp_path / "cache")
    result = svm_probe(train, test, num_classes=len(bench.classes))
    record = make_record(model=model_info(model, "weights/toy"), benchmark=bench.name, split=bench.protocol["split"],
                         task="linear", result=result, features=[train, test], benchmark_protocol=bench.protocol)
    path = write_result(tmp_path / "out" / "toy.json", record)
    assert sorted(p.name for p in path.parent.iterdir()) == ["toy.json"]  # no temporary file left
    back = read_result(path)
    assert back["mmv_version"] == __version__ and back["benchmark"] == "toy" and back["split"] == 1
    assert back["benchmark_protocol"] == {"split": 1}
    assert back["model"]["preset"] == "mmv_tiny_tsm" and len(back["model"]["weights_sha256"]) == 64
    assert back["params"]["C"] == 0.001 and back["params"]["n_test"] == 2 and back["params"]["classes"] == 2
    assert back["features"]["train"]["spec"]["num_passes"] == 2 and back["features"]["test"]["skipped"] == 1
    assert back["features"]["test"]["skipped_examples"][0]["reason"] == "file not found"
    assert set(back["metrics"]) == {"top1", "top5"} and "predictions" not in back
    table = format_table([back])
    assert "toy" in table and "svm C=0.001" in table and "mmv_tiny_tsm" in table
    assert table.splitlines()[0].split()[:5] == ["benchmark", "split", "task", "model", "method"]


def test_records_are_plain_json():
    feats = Features.from_arrays(np.eye(4), [0, 1, 0, 1])
    result = logistic_probe(feats, feats, weight_decay=0.1)
    result["metrics"]["odd"] = math.nan
    record = make_record(model={"path": None, "preset": "x"}, benchmark="b", split=None, task="linear",
                         result=result)
    text = json.dumps(record, allow_nan=False)  # no NaN, no numpy types
    assert json.loads(text)["metrics"]["odd"] is None
    rows = format_table([record, {"benchmark": "msrvtt", "task": "retrieval", "model": {"preset": "y"},
                                  "metrics": {"R@1": 0.093, "R@10": 0.311, "MedR": 38.0},
                                  "params": {"aggregate": "mean_embedding", "query": "text", "target": "video"}}])
    assert "9.3" in rows and "31.1" in rows and "38.0" in rows and "text->video mean_embedding" in rows
