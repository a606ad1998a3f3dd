"""Weights folders: exact round trip, and a clear error for every way a folder can be broken."""

import json

import pytest
import torch

from mmv import CheckpointError, create_model, load_model, save_model

INPUTS = dict(video=torch.rand(1, 3, 8, 64, 64), audio=torch.randn(1, 1, 40, 80),
              text=torch.randint(0, 10000, (1, 16)))


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    model = create_model("mmv_tiny_s3d").eval()
    save_model(model, tmp_path / "w", vocab=[f"w{i}" for i in range(10000)])
    return model, tmp_path / "w"


def test_round_trip_is_exact(saved):
    model, folder = saved
    loaded = load_model(folder)
    assert not loaded.training and loaded.preset == "mmv_tiny_s3d"
    assert loaded.protocol == model.protocol and loaded.config == model.config
    assert loaded.vocab[9999] == "w9999"
    with torch.no_grad():
        a, b = model(**INPUTS), loaded(**INPUTS)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "vocab.txt"]


def test_truncated_weights(saved):
    _, folder = saved
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="unreadable weights, truncated or corrupt"):
        load_model(folder)


def test_missing_files_and_bad_json(saved, tmp_path):
    _, folder = saved
    with pytest.raises(CheckpointError, match="not a weights folder"):
        load_model(tmp_path / "nowhere")
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(folder)
    (folder / "config.json").unlink()
    with pytest.raises(CheckpointError, match="missing config.json"):
        load_model(folder)


def test_config_that_does_not_fit_the_weights(saved):
    _, folder = saved
    config = json.loads((folder / "config.json").read_text())
    config["model"]["va_dim"] = 96
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"heads.vid2audio_embd.proj.weight has shape \(128, 128\), "
                                              r"expected \(96, 128\)"):
        load_model(folder)
    config["model"]["va_dim"] = 128
    config["model"]["dropout"] = 0.5
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="unknown field"):
        load_model(folder)
    config["model"].pop("dropout")
    config["format_version"] = 99
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="newer than this mmv"):
        load_model(folder)


def test_vocabulary_must_fit(saved):
    model, folder = saved
    (folder / "vocab.txt").write_text("only\nthree\nwords\n")
    with pytest.raises(CheckpointError, match="3 words for a word table of 10000 rows"):
        load_model(folder)
    with pytest.raises(CheckpointError, match="2 words"):
        save_model(model, folder, vocab=["a", "b"])


def test_overwrite_leaves_no_temporary_files(saved):
    model, folder = saved
    save_model(model, folder)
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
