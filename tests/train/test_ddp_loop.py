"""``mmv train`` under torchrun: 2 gloo ranks with half the batch each train like 1 process with all of it
(data split, cross-replica BN and gathered negatives together). The loss and gradient identity itself is
proved in test_multirank.py; this checks the loop wires them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mmv.train import train
from mmv.train.config import save_config
from mmv.train.logging import read_metrics
from tests.train.fixtures import build_dataset, tiny_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_gloo_ranks_match_one_process(tmp_path):
    spec = build_dataset(tmp_path / "data", n=4)
    single = train(tiny_config(spec, tmp_path / "one", steps=3, warmup_steps=0, lr=1e-4))
    config = tiny_config(spec, tmp_path / "two", steps=3, warmup_steps=0, lr=1e-4)
    save_config(config, tmp_path / "config.json")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "mmv.cli", "train", "--config", str(tmp_path / "config.json")],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = read_metrics(tmp_path / "two")
    assert [r["step"] for r in two] == [1, 2, 3]
    for a, b in zip(single.history, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
        assert b["nce_va"] == pytest.approx(a["nce_va"], rel=1e-4)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-3)
    w1 = load_file(str(tmp_path / "one" / "model" / "model.safetensors"))
    w2 = load_file(str(tmp_path / "two" / "model" / "model.safetensors"))
    assert w1.keys() == w2.keys()
    # Adam turns gradients that are rounding noise in both runs (a bias before a BN has gradient 0 in exact
    # arithmetic) into steps of about lr: such elements may differ by up to one step per update.
    bound = 2 * 3 * 1e-4
    worst = max((w1[k].float() - w2[k].float()).abs().max().item() for k in w1)
    assert worst <= bound
    close = sum(int(torch.isclose(w1[k], w2[k], rtol=1e-4, atol=1e-6).sum()) for k in w1)
    assert close / sum(v.numel() for v in w1.values()) > 0.995
    saved = (tmp_path / "two" / "config.json").read_text()
    assert '"world_size": 2' in saved
