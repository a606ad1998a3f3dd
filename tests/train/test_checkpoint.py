"""Checkpoints: atomic, verified, pruned; a damaged one is named, and ``latest`` falls back past it."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from mmv.errors import CheckpointError
from mmv.train.checkpoint import find_resume_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from mmv.train.rng import capture_rng, restore_rng


def _state(step: int) -> dict:
    return {"model": {"w": torch.full((64, 64), float(step))}, "optimizer": {"state": {}, "param_groups": []},
            "data": {"epoch": 0, "batch": step, "streams": {}}, "vocab": ["<pad>", "<unk>", "a"],
            "config": "{}", "rng": [capture_rng()], "scaler": None}


def test_save_load_prune(tmp_path):
    for step in (10, 20, 30, 40):
        path = save_checkpoint(tmp_path, step, _state(step), keep=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [30, 40]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000030.json", "step-00000030.pt",
                                                          "step-00000040.json", "step-00000040.pt"]
    state = load_checkpoint(path)
    assert state["step"] == 40 and torch.equal(state["model"]["w"], torch.full((64, 64), 40.0))
    assert state["vocab"] == ["<pad>", "<unk>", "a"] and state["scaler"] is None


@pytest.mark.parametrize("sidecar", [True, False])
def test_truncated_checkpoint_is_a_clear_error(tmp_path, sidecar):
    path = save_checkpoint(tmp_path, 5, _state(5))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    if not sidecar:  # then torch.load itself meets the damage
        path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match=r"step-00000005\.pt: .*(truncated|corrupt)"):
        load_checkpoint(path)


def test_flipped_byte_is_caught_by_the_hash(tmp_path):
    path = save_checkpoint(tmp_path, 5, _state(5))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256 differs"):
        load_checkpoint(path)


def test_latest_falls_back_to_the_newest_valid_one(tmp_path):
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, _state(step), keep=5)
    newest = tmp_path / "step-00000003.pt"
    newest.write_bytes(newest.read_bytes()[:100])
    reports = []
    path, state = find_resume_checkpoint(tmp_path, "latest", report=reports.append)
    assert path.name == "step-00000002.pt" and state["step"] == 2
    assert len(reports) == 1 and "step-00000003.pt" in reports[0]
    assert find_resume_checkpoint(tmp_path / "empty", "latest") is None  # no run yet: start fresh
    with pytest.raises(CheckpointError, match="step-00000003.pt"):
        find_resume_checkpoint(tmp_path, str(newest))  # an explicit file must load
    for p in tmp_path.glob("*.pt"):
        p.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="no valid checkpoint"):
        find_resume_checkpoint(tmp_path, "latest")


def test_not_a_training_checkpoint(tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "step-00000001.pt")
    with pytest.raises(CheckpointError, match="not an mmv training checkpoint"):
        load_checkpoint(tmp_path / "step-00000001.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_unsafe_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    torch.save({"format": "mmv-train", "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="evil.pt: unreadable checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")


def test_rng_states_round_trip_through_a_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    save_checkpoint(tmp_path, 1, {**_state(1), "rng": [capture_rng()]})
    expected = (random.random(), np.random.rand(), torch.rand(3))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    restore_rng(load_checkpoint(tmp_path / "step-00000001.pt")["rng"], rank=0)
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])
