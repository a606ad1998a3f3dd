"""Killed, preempted and resumed runs end exactly where an uninterrupted run ends; a diverging run stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mmv.train import list_checkpoints, load_checkpoint, train
from mmv.train.config import save_config
from mmv.train.logging import read_metrics
from mmv.train.loop import SIGNAL_ENV
from tests.train.fixtures import build_dataset, tiny_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    return build_dataset(tmp_path_factory.mktemp("data"), n=4)


@pytest.fixture(scope="module")
def uninterrupted(spec, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    result = train(tiny_config(spec, out))
    assert result.status == "done" and result.step == 6
    return result


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "model.safetensors"))


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def _run_cli(config_path: Path, env_extra: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **env_extra}
    return subprocess.run([sys.executable, "-m", "mmv.cli", "train", "--config", str(config_path)], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_sigkill_between_checkpoints_then_resume_matches(spec, uninterrupted, tmp_path):
    out = tmp_path / "killed"
    config = tiny_config(spec, out, num_workers=1)  # a worker process in the killed run; data do not depend on it
    save_config(config, tmp_path / "config.json")
    proc = _run_cli(tmp_path / "config.json", {SIGNAL_ENV: "3:KILL"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert [s for s, _ in list_checkpoints(out / "checkpoints")] == [2]  # killed after step 3, before 4
    assert not (out / "model").exists()
    # no temporary file left under a checkpoint name
    assert all(not p.name.endswith(".pt") or p.name.startswith("step-") for p in (out / "checkpoints").iterdir())

    result = train(tiny_config(spec, out), resume="latest")
    assert result.status == "done" and result.step == 6
    _assert_same_weights(uninterrupted.run_dir, out)
    steps = [r["step"] for r in read_metrics(out) if "loss" in r and "event" not in r]
    assert steps == [1, 2, 3, 3, 4, 5, 6]  # step 3 ran twice: once before the kill, once after the resume
    resumed = [r["loss"] for r in read_metrics(out)][-3:]
    assert resumed == pytest.approx([r["loss"] for r in uninterrupted.history][-3:], abs=0)


def test_sigterm_checkpoints_exits_zero_and_resumes_exactly(spec, uninterrupted, tmp_path):
    out = tmp_path / "preempted"
    save_config(tiny_config(spec, out), tmp_path / "config.json")
    proc = _run_cli(tmp_path / "config.json", {SIGNAL_ENV: "2:TERM"})
    assert proc.returncode == 0, proc.stderr
    assert "stopped by SIGTERM" in proc.stderr
    # the signal came during step 2; the run finished step 3, checkpointed it and left
    assert [s for s, _ in list_checkpoints(out / "checkpoints")] == [2, 3]
    assert load_checkpoint(out / "checkpoints" / "step-00000003.pt")["data"]["epoch"] == 3
    result = train(tiny_config(spec, out), resume="latest")
    assert result.status == "done"
    _assert_same_weights(uninterrupted.run_dir, out)


def test_sigterm_to_the_whole_job_saves_a_checkpoint_and_exits_zero(spec, tmp_path):
    # as a scheduler preempts: SIGTERM to every process of the job, DataLoader workers included
    out = tmp_path / "long"
    save_config(tiny_config(spec, out, steps=100000, checkpoint_every=1000, num_workers=2), tmp_path / "config.json")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "mmv.cli", "train", "--config", str(tmp_path / "config.json")],
                            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and len(read_metrics(out)) < 2:
            time.sleep(0.2)
        assert len(read_metrics(out)) >= 2, "the run did not start training in time"
        os.killpg(proc.pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    saved = list_checkpoints(out / "checkpoints")
    assert len(saved) == 1 and 2 <= saved[0][0] < 1000
    state = load_checkpoint(saved[0][1])
    assert state["step"] == saved[0][0] and state["data"]["epoch"] == saved[0][0]  # 1 batch per epoch here


def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(spec, tmp_path):
    out = tmp_path / "diverged"
    config = tiny_config(spec, out, lr=1e30, warmup_steps=0, checkpoint_every=1, steps=20)
    result = train(config)
    assert result.status == "nonfinite" and result.exit_code == 3 and not result.ok
    assert 1 <= result.step < 20
    assert "last good checkpoint" in result.message and str(result.checkpoint) in result.message
    saved = list_checkpoints(out / "checkpoints")
    assert saved[-1][0] == result.step  # nothing written for the failed step
    state = load_checkpoint(saved[-1][1])
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (out / "model").exists()
    events = [r for r in read_metrics(out) if r.get("event") == "nonfinite"]
    assert len(events) == 1 and events[0]["step"] == result.step + 1


def test_resume_refuses_a_changed_recipe(spec, uninterrupted, tmp_path):
    from mmv.errors import CheckpointError

    config = tiny_config(spec, uninterrupted.run_dir, batch_size=2)
    with pytest.raises(CheckpointError, match="batch_size"):
        train(config, resume="latest")


def test_final_weights_load_with_the_vocabulary(uninterrupted):
    import mmv

    model = mmv.load_model(uninterrupted.run_dir / "model")
    assert model.vocab[:2] == ["<pad>", "<unk>"] and "red" in model.vocab and "stripes" in model.vocab
    assert model.config.text.vocab_size == len(model.vocab)
    assert model.protocol.num_frames == 4 and model.protocol.crop_size == 32
    saved = json.loads((uninterrupted.run_dir / "model" / "config.json").read_text())
    assert saved["preset"] == "mmv_tiny_tsm" and saved["training"]["steps"] == 6
    run_config = json.loads((uninterrupted.run_dir / "config.json").read_text())
    assert run_config["batch_size"] == 4 and run_config["_run"]["world_size"] == 1
