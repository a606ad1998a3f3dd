"""Conversion of Haiku trees: every graph round-trips, and every mismatch is named."""

import copy
import pickle

import numpy as np
import pytest
import torch

from mmv.cli import main
from mmv.convert import convert_checkpoint, infer_config, model_from_tree
from mmv.errors import CheckpointError
from mmv.models import MMVConfig, create_model
from mmv.models.config import HeadConfig
from mmv.weights import load_model
from tests.convert.haiku_tree import tree_from_model

INPUTS = dict(video=torch.rand(2, 3, 8, 64, 64), audio=torch.randn(2, 1, 40, 80),
              text=torch.randint(0, 10000, (2, 16)))


def randomised(model):
    """Non-trivial BN statistics so that a wrong mapping of them shows."""
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    return model.eval()


def shared_heads():
    return {name: HeadConfig("mlp@32", True) for name in MMVConfig().heads}


@pytest.mark.parametrize("preset,overrides", [
    ("mmv_tiny_tsm", {}),
    ("mmv_tiny_s3d", {}),
    ("mmv_tiny_tsm", {"graph": "disjoint"}),
    ("mmv_tiny_tsm", {"graph": "fac_bnrelu"}),
    ("mmv_tiny_s3d", {"graph": "shared", "va_dim": 48, "vat_dim": 48, "at_dim": 48, "heads": shared_heads()}),
])
def test_tree_round_trip_reproduces_the_model(preset, overrides):
    torch.manual_seed(0)
    model = randomised(create_model(preset, **overrides))
    tree = tree_from_model(model)
    config = infer_config(tree)
    assert config == model.config
    back = model_from_tree(tree)
    with torch.no_grad():
        a, b = model(**INPUTS), back(**INPUTS)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_graph_can_be_forced():
    tree = tree_from_model(create_model("mmv_tiny_tsm"))
    assert infer_config(tree).graph == "fac_relu"
    assert infer_config(tree, graph="fac").graph == "fac"
    with pytest.raises(CheckpointError, match="one head per modality"):
        model_from_tree(tree, graph="shared")
    with pytest.raises(CheckpointError, match="vis_embd/final_projection :: w has shape"):
        model_from_tree(tree, graph="disjoint")


@pytest.fixture(scope="module")
def tiny_tree():
    torch.manual_seed(0)
    return tree_from_model(randomised(create_model("mmv_tiny_tsm")))


def test_missing_array_is_named(tiny_tree):
    tree = copy.deepcopy(tiny_tree)
    module = "text_audio_video/visual_module/~/TSMResNetV2/tsm_resnet_unit_1/block_0/conv_1"
    del tree["params"][module]
    with pytest.raises(CheckpointError, match=f"missing params {module} :: w"):
        model_from_tree(tree)


def test_unexpected_array_is_named(tiny_tree):
    tree = copy.deepcopy(tiny_tree)
    tree["params"]["text_audio_video/~_get_pair_embedding_heads/extra_embd/final_projection"] = {
        "w": np.zeros((2, 2), np.float32)}
    with pytest.raises(CheckpointError, match="lacks|unexpected"):
        model_from_tree(tree)
    tree = copy.deepcopy(tiny_tree)
    tree["state"]["text_audio_video/audio_module/~/res_net_v2/__cross_replica_batch_norm/~/mean_ema"][
        "surprise"] = np.zeros(1, np.float32)
    with pytest.raises(CheckpointError, match="unexpected state .*mean_ema :: surprise"):
        model_from_tree(tree)


def test_misshaped_array_is_named(tiny_tree):
    tree = copy.deepcopy(tiny_tree)
    module = "text_audio_video/audio_module/~/res_net_v2/~/block_group_0/block_0/~/conv_1"
    w = tree["params"][module]["w"]
    tree["params"][module]["w"] = w[:, :, :, :-1]
    with pytest.raises(CheckpointError, match=f"{module} :: w has shape"):
        model_from_tree(tree)
    tree = copy.deepcopy(tiny_tree)
    bn = "text_audio_video/visual_module/~/TSMResNetV2/__cross_replica_batch_norm"
    tree["params"][bn]["scale"] = np.ones((2, 128), np.float32)
    with pytest.raises(CheckpointError, match=r"expected a \[1, ..., C\] vector"):
        model_from_tree(tree)


def test_hidden_statistics_are_never_loaded(tiny_tree):
    model = model_from_tree(tiny_tree)
    assert not any((m.running_var == 7.0).any() for m in model.modules()
                   if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))


def test_convert_command_with_vocabulary(tiny_tree, tmp_path, capsys):
    pkl = tmp_path / "tiny.pkl"
    pkl.write_bytes(pickle.dumps(tiny_tree, protocol=4))
    vocab = tmp_path / "words.txt"
    vocab.write_text("".join(f"word{i}\n" for i in range(10000)), encoding="utf-8")
    assert main(["convert", str(pkl), str(tmp_path / "out"), "--vocab", str(vocab)]) == 0
    assert "vocabulary attached" in capsys.readouterr().out
    model = load_model(tmp_path / "out")
    assert model.vocab[:2] == ["word0", "word1"] and len(model.vocab) == 10000
    assert model.preset is None  # not one of the released configurations
    short = tmp_path / "short.txt"
    short.write_text("a\nb\n")
    with pytest.raises(CheckpointError, match="2 words for a word table of 10000 rows"):
        convert_checkpoint(pkl, tmp_path / "out2", vocab=short)


def test_convert_command_reports_bad_files(tmp_path, capsys):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"\x80\x04\x95")
    assert main(["convert", str(bad), str(tmp_path / "out")]) == 2
    assert "truncated or corrupt" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
