"""Shared fixtures: the official parity vectors in ../shared/reference/golden (skipped when absent)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(os.environ.get("MMV_GOLDEN", REPO.parent / "shared" / "reference" / "golden"))
CHECKPOINTS = ("s3d", "tsm_resnet_x1", "tsm_resnet_x2")
PRESET_OF = {"s3d": "mmv_s3d", "tsm_resnet_x1": "mmv_tsm_resnet50", "tsm_resnet_x2": "mmv_tsm_resnet50x2"}


@pytest.fixture
def one_thread():
    """One intra-op thread for tiny-model tests: on a busy 2-core machine two spinning OpenMP threads made
    them up to ~100x slower. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def golden_available() -> bool:
    return (GOLDEN / "recipe.py").is_file()


def load_recipe():
    spec = importlib.util.spec_from_file_location("golden_recipe", GOLDEN / "recipe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Golden:
    """One released configuration: its rebuilt .pkl, its converted weights folder, its vectors."""

    def __init__(self, name: str, tmp: Path):
        self.name = name
        self.pkl = tmp / f"mmv_{name}.pkl"
        load_recipe().write_checkpoint(str(GOLDEN / f"tree_{name}.json"), "public", str(self.pkl))
        self.vectors = dict(np.load(GOLDEN / f"public_{name}.npz"))
        self.weights = tmp / f"{name}_converted"

    def inputs(self) -> dict[str, torch.Tensor]:
        """The golden inputs in this project's layout (channels first)."""
        v = self.vectors
        return {"video": torch.from_numpy(v["video"]).permute(0, 4, 1, 2, 3).contiguous(),
                "audio": torch.from_numpy(v["audio"]).permute(0, 3, 1, 2).contiguous(),
                "text": torch.from_numpy(v["words"]).long()}


@pytest.fixture(scope="session")
def golden_factory(tmp_path_factory):
    if not golden_available():
        pytest.skip(f"parity vectors not found in {GOLDEN}")
    cache: dict[str, Golden] = {}

    def get(name: str) -> Golden:
        if name not in cache:
            cache[name] = Golden(name, tmp_path_factory.mktemp(name))
        return cache[name]

    return get


@pytest.fixture(scope="session")
def converted(golden_factory):
    """name -> (Golden, model loaded from the folder that ``mmv convert`` wrote)."""
    from mmv.cli import main
    from mmv.weights import load_model

    cache: dict[str, tuple[Golden, torch.nn.Module]] = {}

    def get(name: str):
        if name not in cache:
            g = golden_factory(name)
            assert main(["convert", str(g.pkl), str(g.weights)]) == 0
            cache[name] = (g, load_model(g.weights))
        return cache[name]

    return get


@pytest.fixture(scope="session")
def train_sensitivity(converted):
    """name -> rounding sensitivity of each train-mode output of the correctly converted model."""
    from tests.convert.golden_compare import activation_sensitivity

    cache: dict[str, dict] = {}

    def get(name: str):
        if name not in cache:
            golden, model = converted(name)
            cache[name] = activation_sensitivity(model, golden.inputs())
        return cache[name]

    return get
