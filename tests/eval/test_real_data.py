"""Linear probes of a randomly initialised network through the real loaders on the real shared sets.

Skipped where ``../shared/data`` is absent. Subsets keep the default suite fast; the full-set numbers are
measured with ``mmv eval linear`` and quoted in docs/evaluation.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmv.eval.datasets import load_benchmark
from mmv.eval.datasets.registry import benchmark_info
from mmv.eval.run import feature_spec, run_linear
from mmv.models import create_model

pytestmark = pytest.mark.usefixtures("one_thread")

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def _subset(bench, per_class: dict[str, int]):
    for split, n in per_class.items():
        seen: dict[int, int] = {}
        kept = []
        for ex in bench.split(split):
            if seen.get(ex.label, 0) < n:
                seen[ex.label] = seen.get(ex.label, 0) + 1
                kept.append(ex)
        bench.splits[split] = kept
    return bench



@pytest.mark.skipif(not (SHARED / "fsdd" / "recordings").is_dir(), reason="../shared/data/fsdd is absent")
def test_fsdd_probe_of_a_random_audio_tower_is_far_above_chance():
    bench = _subset(load_benchmark("fsdd", SHARED / "fsdd"), {"train": 20, "test": 10})
    assert len(bench.split("train")) == 200 and len(bench.split("test")) == 100
    model = create_model("mmv_tiny_tsm", word_vectors=torch.zeros(4, 50))
    spec = feature_spec(benchmark_info("fsdd"), protocol="model", windows=1, passes=1)
    record = run_linear(model, bench, probe="logistic", spec=spec, weight_decay=0.01)
    # Random conv features of log-mels still separate spoken digits (the shared README's log-mel baseline
    # reaches 95 % with all 2,700 training clips; chance is 10 %).
    assert record["metrics"]["top1"] > 0.3
    assert record["benchmark_protocol"]["split"] == "official" and record["features"]["test"]["skipped"] == 0


@pytest.mark.skipif(not (SHARED / "cifar10" / "cifar10_20k.zip").is_file(), reason="../shared/data/cifar10 absent")
def test_cifar10_probe_of_a_random_video_tower_on_static_videos_is_above_chance():
    bench = _subset(load_benchmark("cifar10", SHARED / "cifar10" / "cifar10_20k.zip"), {"train": 20, "test": 10})
    model = create_model("mmv_tiny_tsm", word_vectors=torch.zeros(4, 50))
    spec = feature_spec(benchmark_info("cifar10"), protocol="model", windows=1, passes=1, num_frames=2)
    record = run_linear(model, bench, probe="logistic", spec=spec, weight_decay=0.01)
    assert record["metrics"]["top1"] > 0.15  # chance 10 %; raw pixels with all 10,000 training images: 36 %
    assert record["features"]["test"]["spec"]["input"] == "video" and record["params"]["n_test"] == 100
