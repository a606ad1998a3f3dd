"""Presets, config files and --set overrides: typed, checked, with clear errors; the schedule's values."""

from __future__ import annotations

import json
import math

import pytest

from mmv.cli import main
from mmv.train.config import (
    TRAIN_PRESETS,
    TrainConfig,
    apply_overrides,
    describe_settings,
    parse_assignments,
    resolve_config,
    save_config,
    train_preset,
)
from mmv.train.schedule import WarmupCosine, lr_at


def test_paper_presets_follow_the_paper():
    for name in ("mmv_s3d", "mmv_tsm_resnet50", "mmv_tsm_resnet50x2"):
        c = train_preset(name)
        assert (c.model, c.batch_size, c.lr, c.warmup_steps, c.optimizer) == (name, 4096, 0.002, 5000, "adam")
        assert (c.lambda_va, c.lambda_vt, c.temperature) == (1.0, 1.0, 0.07)
        assert c.vocab_size == 65534 and not c.vocab_from_captions  # 65536 rows with <pad> and <unk>
    from mmv.train.step import protocol_for

    p = protocol_for(train_preset("mmv_s3d"))
    assert (p.num_frames, p.fps, p.crop_size, p.audio.sample_rate, p.max_words) == (32, 10.0, 200, 48000, 16)
    assert p.audio_samples == 153600  # 3.2 s


def test_cpu_presets_use_the_tiny_models_and_glove():
    for name in ("mmv_tiny_tsm", "mmv_tiny_s3d"):
        c = train_preset(name).validate(require_data=False)
        assert c.model == name and c.word_vectors == "glove" and c.vocab_from_captions
    assert set(TRAIN_PRESETS) == {"mmv_s3d", "mmv_tsm_resnet50", "mmv_tsm_resnet50x2", "mmv_tiny_tsm", "mmv_tiny_s3d"}


def test_overrides_are_typed():
    c = apply_overrides(TrainConfig(), parse_assignments(
        ["lr=0.001", "steps=10", "tensorboard=true", "betas=[0.8, 0.99]", "out_dir=123",
         "model_overrides.graph=disjoint", "protocol_overrides.num_frames=16"]))
    assert c.lr == 0.001 and c.steps == 10 and c.tensorboard is True and c.betas == (0.8, 0.99)
    assert c.out_dir == "123"  # a string setting keeps the text as given
    assert c.model_overrides == {"graph": "disjoint"} and c.protocol_overrides == {"num_frames": 16}
    assert apply_overrides(c, {"steps": 1e3}).steps == 1000


@pytest.mark.parametrize("assignment, message", [
    ("learning_rate=0.1", r"unknown setting 'learning_rate'"),
    ("stpes=3", r"did you mean 'steps'"),
    ("steps=ten", r"steps: expected an integer, got 'ten'"),
    ("steps=1.5", r"steps: expected an integer"),
    ("lr=true", r"lr: expected a number"),
    ("tensorboard=maybe", r"tensorboard: expected true or false"),
    ("betas=[0.9]", r"betas: expected a list of 2 numbers"),
    ("lr.x=1", r"lr is not a group of settings"),
])
def test_bad_overrides_are_named(assignment, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(TrainConfig(), parse_assignments([assignment]))


def test_validation_names_the_setting():
    with pytest.raises(ValueError, match="model_overrides.grpah: not a MMVConfig field.*did you mean 'graph'"):
        TrainConfig(model_overrides={"grpah": "fac"}, word_vectors="glove").validate(require_data=False)
    with pytest.raises(ValueError, match="no training data"):
        train_preset("mmv_tiny_tsm").validate()
    with pytest.raises(ValueError, match="word_vectors: the text tower needs"):
        train_preset("mmv_s3d").validate(require_data=False)
    with pytest.raises(ValueError, match=r"warmup_steps must lie in \[0, steps\]"):
        apply_overrides(train_preset("mmv_tiny_tsm"), {"warmup_steps": 5000}).validate(require_data=False)
    with pytest.raises(ValueError, match="precision must be one of"):
        apply_overrides(train_preset("mmv_tiny_tsm"), {"precision": "fp8"}).validate(require_data=False)
    with pytest.raises(ValueError, match="unknown model"):
        TrainConfig(model="mmv_huge", word_vectors="glove").validate(require_data=False)


def test_file_then_overrides_and_the_saved_config_round_trips(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"preset": "mmv_tiny_s3d", "lr": 0.01, "steps": 50}))
    c = resolve_config(None, path, {"steps": "70"})
    assert (c.preset, c.model, c.lr, c.steps, c.batch_size) == ("mmv_tiny_s3d", "mmv_tiny_s3d", 0.01, 70, 16)
    save_config(c, tmp_path / "config.json", extra={"world_size": 2})
    again = resolve_config(None, tmp_path / "config.json")  # a run's config.json is a config file
    assert again == c
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"lr": 0.01, "batchsize": 3}))
    with pytest.raises(ValueError, match=r"bad.json: unknown setting 'batchsize'.*did you mean 'batch_size'"):
        resolve_config(None, bad)
    (tmp_path / "broken.json").write_text("{lr: 1")
    with pytest.raises(ValueError, match="not a JSON config"):
        resolve_config(None, tmp_path / "broken.json")


def test_cli_prints_the_resolved_config_and_reports_bad_keys(capsys):
    assert main(["train", "--preset", "mmv_tiny_tsm", "--steps", "7", "--set", "lr=0.5", "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["steps"] == 7 and printed["lr"] == 0.5 and printed["model"] == "mmv_tiny_tsm"
    assert main(["train", "--preset", "mmv_tiny_tsm", "--set", "lr=fast"]) == 2
    assert "lr: expected a number, got 'fast'" in capsys.readouterr().err
    assert main(["train", "--preset", "mmv_tiny_tsm"]) == 2
    assert "no training data given" in capsys.readouterr().err
    assert main(["train", "--help-config"]) == 0
    assert "grad_clip" in capsys.readouterr().out and "grad_clip" in describe_settings()


def test_schedule_warmup_then_half_cosine():
    base, warm, total = 0.002, 5000, 500_000
    assert lr_at(1, base, warm, total) == pytest.approx(base * 0.5 * (1 - math.cos(math.pi / warm)))
    assert lr_at(warm // 2, base, warm, total) == pytest.approx(base / 2)  # half-cosine: half way at half time
    assert lr_at(warm, base, warm, total) == pytest.approx(base)
    assert lr_at(warm + (total - warm) // 2, base, warm, total) == pytest.approx(base / 2)
    assert lr_at(total, base, warm, total) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(total, base, warm, total, final_ratio=0.1) == pytest.approx(base * 0.1)
    values = [lr_at(s, base, warm, total) for s in range(1, total + 1, 997)]
    peak = max(range(len(values)), key=values.__getitem__)
    assert all(a <= b for a, b in zip(values[:peak], values[1:peak + 1]))  # rises, then falls
    assert all(a >= b for a, b in zip(values[peak:], values[peak + 1:]))
    assert lr_at(3, base, 0, 10) == pytest.approx(base * 0.5 * (1 + math.cos(math.pi * 0.3)))
    assert WarmupCosine(base, warm, total)(warm) == pytest.approx(base)
    with pytest.raises(ValueError):
        lr_at(0, base, warm, total)
