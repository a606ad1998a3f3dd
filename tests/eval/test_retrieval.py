"""Zero-shot retrieval: planted embeddings, hand-computed ranks, both window aggregations, the spaces each
modality pair uses, and the end-to-end path through a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmv.eval.datasets.base import Example
from mmv.eval.features import FeatureSpec
from mmv.eval.retrieval import pooled, retrieval_eval, retrieve, similarity, space_layers, tokenizer_for
from mmv.models import create_model
from tests.data.fixtures import write_video


def test_planted_embeddings_give_perfect_recall():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(50, 4, 32))
    query = target.mean(axis=1) + 0.05 * rng.normal(size=(50, 32))
    for aggregate in ("mean_embedding", "mean_similarity"):
        r = retrieve(query, target, list(range(50)), aggregate)
        assert r["metrics"] == {"R@1": 1.0, "R@5": 1.0, "R@10": 1.0, "MedR": 1.0, "MeanR": 1.0}
        assert r["params"]["aggregate"] == aggregate and r["params"]["target_windows"] == 4


def test_hand_computed_ranks_through_embeddings():
    # Targets are the basis vectors, so cos(query i, target j) is row i normalised: ranks follow the rows.
    rows = np.array([[0.9, 0.1, 0.9, 0.3], [0.5, 0.2, 0.1, 0.4], [0.5, 0.5, 0.5, 0.5], [0.1, 0.2, 0.3, 0.8]])
    targets = np.eye(4)
    r = retrieve(rows, targets, [0, 1, 2, 3])
    assert r["ranks"].tolist() == [2, 3, 4, 1]  # ties pessimistic
    assert r["metrics"] == {"R@1": 0.25, "R@5": 1.0, "R@10": 1.0, "MedR": 2.5, "MeanR": 2.5}
    permuted = retrieve(rows, targets, [2, 0, 3, 1])
    assert permuted["ranks"].tolist() == [2, 1, 4, 3]
    assert permuted["metrics"]["R@1"] == 0.25 and permuted["metrics"]["MedR"] == 2.5


def test_the_two_aggregations_differ_as_computed_by_hand():
    # Query e0. Target A: both windows at 55 deg (cos 0.574). Target B: windows at 0 and 90 deg.
    # mean_embedding renormalises B's mean (0.5, 0.5) to 45 deg: cos 0.707 > 0.574, so A ranks 2nd;
    # mean_similarity averages the cosines of B's windows, (1 + 0) / 2 = 0.5 < 0.574, so A ranks 1st.
    a = np.deg2rad(55)
    target = np.array([[[np.cos(a), np.sin(a)]] * 2, [[1.0, 0.0], [0.0, 1.0]]])
    query = np.array([[1.0, 0.0]])
    np.testing.assert_allclose(similarity(query, target, "mean_embedding"), [[np.cos(a), np.sqrt(0.5)]])
    np.testing.assert_allclose(similarity(query, target, "mean_similarity"), [[np.cos(a), 0.5]])
    assert retrieve(query, target, [0], "mean_embedding")["ranks"].tolist() == [2]
    assert retrieve(query, target, [0], "mean_similarity")["ranks"].tolist() == [1]


def test_mean_similarity_is_the_mean_over_all_window_pairs():
    rng = np.random.default_rng(1)
    q, t = rng.normal(size=(5, 3, 8)), rng.normal(size=(7, 2, 8))
    qn, tn = (x / np.linalg.norm(x, axis=-1, keepdims=True) for x in (q, t))
    brute = np.einsum("qwd,tvd->qtwv", qn, tn).mean(axis=(2, 3))
    np.testing.assert_allclose(similarity(q, t, "mean_similarity"), brute, rtol=1e-12)
    assert np.allclose(np.linalg.norm(pooled(q, "mean_embedding"), axis=1), 1.0)


def test_several_captions_per_video():
    # video -> text with unit captions, so cosines are the coordinates. Video i owns captions gt[i]; the
    # better-ranked one counts. Video 1: its captions score 0.5 and 0.6, caption 2 (not its own) 0.7 -> rank 2.
    videos = np.eye(3)
    captions = np.array([[1, 0, 0], [0, 0.5, np.sqrt(0.75)], [np.sqrt(0.51), 0.7, 0], [0.6, 0, 0.8], [0, 0, 1],
                         [0.8, 0.6, 0]])
    gt = [[0, 3], [1, 5], [2, 4]]
    assert retrieve(videos, captions, gt)["ranks"].tolist() == [1, 2, 1]


def test_spaces():
    fac = create_model("mmv_tiny_tsm")
    assert space_layers(fac, "text", "video") == ("text_vat", "video_vat")
    assert space_layers(fac, "video", "text") == ("video_vat", "text_vat")
    assert space_layers(fac, "text", "audio") == ("text_vat", "audio_vat")
    assert space_layers(fac, "audio", "video") == ("audio_va", "video_va")
    assert space_layers(create_model("mmv_tiny_tsm", graph="disjoint"), "audio", "text") == ("audio_at", "text_at")
    with pytest.raises(ValueError):
        space_layers(fac, "video", "video")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = create_model("mmv_tiny_tsm").eval()
    m.vocab = ["<pad>", "<unk>"] + [f"w{i}" for i in range(m.config.text.vocab_size - 2)]
    return m


def test_end_to_end_text_video_audio(model, tmp_path):
    exs = [Example(f"v{i}", str(write_video(tmp_path / f"v{i}.mp4", num_frames=25 + 10 * i, fps=25.0)),
                   captions=(f"w{3 * i} w{3 * i + 1}", f"w{3 * i + 2}")) for i in range(3)]
    exs.append(Example("gone", str(tmp_path / "missing.mp4"), captions=("w40",)))
    spec = FeatureSpec(num_windows=2, num_frames=4, fps=8.0, resize_short_side=36, crop=32)
    r = retrieval_eval(model, exs, "text", "video", spec=spec)
    p = r["params"]
    assert (p["query_layer"], p["target_layer"], p["n_queries"], p["n_targets"]) == ("text_vat", "video_vat", 6, 3)
    assert p["queries_dropped"] == 1 and [s["id"] for s in r["skipped"]] == ["gone"]
    assert p["target_spec"]["num_windows"] == 2 and p["target_windows"] == 2
    assert r["metrics"]["R@10"] == 1.0 and 1.0 <= r["metrics"]["MedR"] <= 3.0
    assert r["predictions"]["query_ids"] == ["v0#0", "v0#1", "v1#0", "v1#1", "v2#0", "v2#1"]
    v2t = retrieval_eval(model, exs, "video", "text", spec=spec, aggregate="mean_similarity")
    assert v2t["params"]["n_queries"] == 3 and v2t["params"]["n_targets"] == 7  # the lost video's caption stays
    a2v = retrieval_eval(model, exs[:3], "audio", "video", spec=spec)
    assert (a2v["params"]["query_layer"], a2v["params"]["target_layer"]) == ("audio_va", "video_va")
    t2a = retrieval_eval(model, exs[:3], "text", "audio", spec=spec)
    assert t2a["params"]["target_layer"] == "audio_vat" and t2a["params"]["n_queries"] == 6


def test_text_needs_a_vocabulary():
    with pytest.raises(ValueError, match="no vocabulary"):
        tokenizer_for(create_model("mmv_tiny_tsm"))
    m = create_model("mmv_tiny_tsm")
    m.vocab = ["the", "cat"]
    with pytest.raises(ValueError, match="vocabulary cannot be used"):
        tokenizer_for(m)
