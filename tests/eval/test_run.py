"""The evaluation runner and the ``mmv eval`` / ``mmv deflate`` commands, end to end on tiny files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mmv.cli import main
from mmv.eval.datasets.registry import benchmark_info
from mmv.eval.run import default_c, feature_spec, masked_map
from mmv.models import create_model
from mmv.weights import save_model
from tests.eval.helpers import write_image, write_wav

pytestmark = pytest.mark.usefixtures("one_thread")



def test_feature_spec_follows_the_documented_ucf101_protocol_or_the_models():
    spec = feature_spec(benchmark_info("ucf101"))
    # 32 frames at stride 2 of 25 fps, first 20 s, 224 crops, 10 passes / 10 windows (MMV_SPEC C.4)
    assert (spec.num_frames, spec.fps, spec.crop, spec.max_seconds) == (32, 12.5, 224, 20.0)
    assert (spec.num_windows, spec.num_passes, spec.modality) == (10, 10, "video")
    hmdb = feature_spec(benchmark_info("hmdb51"))
    assert (hmdb.num_frames, hmdb.fps, hmdb.crop, hmdb.resize_short_side) == (32, 10.0, 200, 224)
    own = feature_spec(benchmark_info("ucf101"), protocol="model", windows=3)
    assert own.num_frames is None and own.fps is None and own.num_windows == 3
    assert feature_spec(benchmark_info("esc50")).modality == "audio"
    with pytest.raises(ValueError, match="protocol"):
        feature_spec(benchmark_info("ucf101"), protocol="paper")


def test_default_c_per_benchmark_and_released_model():
    tsm = create_model("mmv_tiny_tsm")
    assert default_c(benchmark_info("ucf101"), tsm) == (0.001, "ucf101 protocol")
    tsm.preset = "mmv_tsm_resnet50"
    assert default_c(benchmark_info("hmdb51"), tsm)[0] == 0.0001
    tsm.preset = "mmv_s3d"
    assert default_c(benchmark_info("hmdb51"), tsm)[0] == 0.0003
    tsm.preset = "mmv_tiny_tsm"
    c, why = default_c(benchmark_info("hmdb51"), tsm)
    assert c == 0.001 and "no C" in why


def test_masked_map_leaves_out_ignored_pairs():
    scores = np.array([[0.9, 0.1], [0.8, 0.7], [0.2, 0.9], [0.1, 0.3]])
    labels = [(0,), (1,), (1,), ()]
    # class 0: ranking 0 (pos), 1, 2, 3 -> AP 1. class 1: ranking 2 (pos), 1 (pos), 3, 0 -> AP 1.
    full = masked_map(scores, labels, [(), (), (), ()], 2)
    assert full["mAP"] == pytest.approx(1.0)
    # Example 3 is 'difficult' for class 1 and outranks... nothing; make example 0 difficult for class 1 and
    # example 3 score higher than the positives of class 1: ignoring it restores AP 1.
    scores2 = scores.copy()
    scores2[3, 1] = 0.95
    assert masked_map(scores2, labels, [(), (), (), ()], 2)["per_class_ap"][1] == pytest.approx((1 / 2 + 2 / 3) / 2)
    ignored = masked_map(scores2, labels, [(), (), (), (1,)], 2)
    assert ignored["per_class_ap"][1] == pytest.approx(1.0) and ignored["ignored_pairs"] == 1
    assert masked_map(scores, [(0,), (0,), (0,), ()], [()] * 4, 2)["classes_skipped"] == 1


def _tone_fsdd(folder, takes: int = 6) -> None:
    """FSDD layout with three 'digits' that are pure tones of different pitch, two speakers."""
    folder.mkdir(parents=True)
    t = np.arange(4000) / 8000.0
    for digit, freq in enumerate((300.0, 900.0, 2400.0)):
        for speaker in ("anna", "bert"):
            for take in range(takes):
                amp = 0.3 + 0.05 * take
                write_wav(folder / f"{digit}_{speaker}_{take}.wav", amp * np.sin(2 * np.pi * freq * t))


def test_mmv_eval_linear_on_an_fsdd_layout_writes_a_complete_record(tmp_path, capsys):
    weights = save_model(create_model("mmv_tiny_tsm", word_vectors=torch.randn(20, 50)), tmp_path / "w")
    _tone_fsdd(tmp_path / "fsdd" / "recordings")
    out = tmp_path / "fsdd.json"
    code = main(["eval", "linear", str(weights), "fsdd", str(tmp_path / "fsdd"), "--protocol", "model",
                 "--windows", "2", "--passes", "2", "--probe", "logistic", "--weight-decay", "0.001",
                 "--out", str(out), "--cache", str(tmp_path / "cache")])
    assert code == 0
    record = json.loads(out.read_text())
    assert record["benchmark"] == "fsdd" and record["task"] == "linear/logistic" and record["split"] == "official"
    # Takes 0-4 test (3 digits x 2 speakers x 5), take 5 train; pure tones are easy even for random features.
    assert record["params"]["n_train"] == 6 and record["params"]["n_test"] == 30
    assert record["metrics"]["top1"] == pytest.approx(1.0)
    spec = record["features"]["test"]["spec"]
    assert spec["num_windows"] == 2 and spec["layer"] == "audio_repr" and spec["clip_seconds"] == 1.0
    assert "fsdd" in capsys.readouterr().out
    # Held-out speaker protocol through --split, and a second call served from the feature cache.
    code = main(["eval", "linear", str(weights), "fsdd", str(tmp_path / "fsdd"), "--split", "speaker:bert",
                 "--protocol", "model", "--windows", "2", "--passes", "2", "--out", str(out),
                 "--cache", str(tmp_path / "cache")])
    record = json.loads(out.read_text())
    assert code == 0 and record["split"] == "speaker:bert" and record["params"]["C"] == 0.001
    assert record["params"]["n_test"] == 18 and record["params"]["C_source"].startswith("default")


def test_mmv_deflate_then_image_probe_with_the_deflated_network(tmp_path, capsys):
    weights = save_model(create_model("mmv_tiny_tsm", word_vectors=torch.randn(20, 50)), tmp_path / "w")
    rng = np.random.default_rng(0)
    colours = {"red": (220, 30, 30), "blue": (30, 30, 220)}
    for role, n in (("train", 4), ("test", 3)):
        for name, rgb in colours.items():
            (tmp_path / "img" / role / name).mkdir(parents=True)
            for i in range(n):
                pic = np.clip(np.array(rgb) + rng.integers(-20, 20, (40, 40, 3)), 0, 255).astype(np.uint8)
                write_image(tmp_path / "img" / role / name / f"{i}.png", pic)
    out = tmp_path / "deflated"
    assert main(["deflate", str(weights), str(tmp_path / "img" / "train"), str(out), "--steps", "3",
                 "--holdout", "2", "--batch-size", "2", "--image-size", "32"]) == 0
    report = json.loads((out / "deflation.json").read_text())
    assert report["images"]["train"] == 6 and report["images"]["heldout"] == 2
    assert report["before"]["mean_l1"] > 0 and "before tuning" in capsys.readouterr().out
    result = tmp_path / "cifar.json"
    assert main(["eval", "linear", str(out), "cifar10", str(tmp_path / "img"), "--passes", "1", "--probe",
                 "logistic", "--weight-decay", "0.01", "--out", str(result)]) == 0
    record = json.loads(result.read_text())
    assert record["model"]["class"] == "ImageNetwork" and record["features"]["test"]["spec"]["input"] == "image"
    assert record["params"]["n_test"] == 6 and record["metrics"]["top1"] == pytest.approx(1.0)


def test_mmv_eval_reports_unknown_benchmarks_and_splits_clearly(tmp_path, capsys):
    weights = save_model(create_model("mmv_tiny_tsm", word_vectors=torch.randn(20, 50)), tmp_path / "w")
    assert main(["eval", "linear", str(weights), "ucf102", str(tmp_path)]) == 2
    assert "no benchmark 'ucf102'" in capsys.readouterr().err
    assert main(["eval", "linear", str(weights), "msrvtt", str(tmp_path), "--all-splits"]) == 2
    assert "no splits or folds to average" in capsys.readouterr().err
