"""NCE / MIL-NCE against hand-computed values and an independent float64 numpy reference; MMVLoss wiring."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmv.losses import DIRECTIONS, MMVLoss, mil_nce, modules_unused_by_loss, nce
from mmv.models import InputProtocol, create_model
from mmv.models.config import HeadConfig, MMVConfig

SMALL = InputProtocol(num_frames=4, fps=4.0, resize_short_side=40, crop_size=32, eval_crop_size=32)


def _lse(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def reference(video: np.ndarray, text: np.ndarray, mask: np.ndarray, tau: float, directions: str) -> float:
    """The documented definition, one clip at a time, in float64 (no shared code with mmv.losses)."""
    v = video / np.linalg.norm(video, axis=-1, keepdims=True)
    t = text / np.linalg.norm(text, axis=-1, keepdims=True)
    b, k = mask.shape
    clips = [i for i in range(b) if mask[i].any()]
    losses = []
    for i in clips:
        pos = [float(v[i] @ t[i, c]) / tau for c in range(k) if mask[i, c]]
        to_text = [float(v[i] @ t[j, c]) / tau for j in range(b) for c in range(k) if mask[j, c]]
        to_video = [float(v[j] @ t[i, c]) / tau for j in clips if j != i for c in range(k) if mask[i, c]]
        if directions == "joint":
            losses.append(_lse(to_text + to_video) - _lse(pos))
        elif directions == "concat":
            losses.append(_lse(to_text + to_video + pos) - _lse(pos))
        else:
            losses.append(0.5 * (_lse(to_text) - _lse(pos)) + 0.5 * (_lse(to_video + pos) - _lse(pos)))
    return float(np.mean(losses)) if losses else 0.0


def milnce_reference_code(video: np.ndarray, text: np.ndarray, tau: float) -> float:
    """The MIL-NCE reference code's formula (x and x^T in one logsumexp), unmasked, in numpy."""
    v = video / np.linalg.norm(video, axis=-1, keepdims=True)
    t = text / np.linalg.norm(text, axis=-1, keepdims=True)
    b, k, d = t.shape
    x = (v @ t.reshape(b * k, d).T / tau).reshape(b, b, k)
    nominator = np.array([np.log(np.exp(x[i, i]).sum()) for i in range(b)])
    both = np.concatenate([x, x.transpose(1, 0, 2)], axis=1).reshape(b, -1)
    denominator = np.log(np.exp(both).sum(1))
    return float((denominator - nominator).mean())


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


# ---- hand-computed values ----------------------------------------------------------------------------

@pytest.mark.parametrize("directions,expected", [
    ("joint", math.log(math.e + 2) - 1),  # e^1 / (e^1 + e^0 + e^0): one negative from each direction
    ("mean", math.log(math.e + 1) - 1),  # each direction alone: e^1 / (e^1 + e^0)
    ("concat", math.log(2 * math.e + 2) - 1),  # the positive counted twice
])
def test_two_by_two_identity_by_hand(directions, expected):
    eye = torch.eye(2, dtype=torch.float64)
    assert nce(eye, eye, temperature=1.0, directions=directions).item() == pytest.approx(expected, abs=1e-14)


def test_two_by_two_rotated_by_hand():
    a, b, tau = 0.3, 1.9, 0.5
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([[math.cos(a), math.sin(a)], [math.cos(b), math.sin(b)]], dtype=torch.float64) * 3.0
    s11, s12 = math.cos(a) / tau, math.cos(b) / tau  # x1 . y1, x1 . y2
    s21, s22 = math.sin(a) / tau, math.sin(b) / tau
    e = math.exp
    clip1 = -s11 + math.log(e(s11) + e(s12) + e(s21))  # row 1, plus column 1 without the positive
    clip2 = -s22 + math.log(e(s21) + e(s22) + e(s12))
    assert nce(x, y, temperature=tau).item() == pytest.approx((clip1 + clip2) / 2, abs=1e-14)


def test_three_clips_against_the_loop_reference_and_the_reference_code():
    rng = np.random.default_rng(0)
    video, text = rng.normal(size=(3, 4)), rng.normal(size=(3, 2, 4))
    mask = np.ones((3, 2), dtype=bool)
    for directions in DIRECTIONS:
        got = mil_nce(_t(video), _t(text), _t(mask), 0.07, directions).item()
        assert got == pytest.approx(reference(video, text, mask, 0.07, directions), rel=1e-12)
    concat = mil_nce(_t(video), _t(text), temperature=0.07, directions="concat").item()
    assert concat == pytest.approx(milnce_reference_code(video, text, 0.07), rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 5), k=st.integers(1, 3), d=st.integers(2, 5), seed=st.integers(0, 2**31),
       directions=st.sampled_from(DIRECTIONS), tau=st.floats(0.02, 2.0))
def test_matches_the_reference_with_random_masks(b, k, d, seed, directions, tau):
    rng = np.random.default_rng(seed)
    video, text = rng.normal(size=(b, d)), rng.normal(size=(b, k, d))
    mask = rng.random((b, k)) < 0.6
    got = mil_nce(_t(video), _t(text), _t(mask), tau, directions).item()
    assert got == pytest.approx(reference(video, text, mask, tau, directions), rel=1e-10, abs=1e-12)


# ---- properties ----------------------------------------------------------------------------------------

def test_masked_rows_change_nothing_else():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 8, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(5, 8, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([True, False, True, True, False])
    for directions in DIRECTIONS:
        loss = nce(x, y, mask, directions=directions)
        assert loss.item() == pytest.approx(nce(x[mask], y[mask], directions=directions).item(), rel=1e-14)
        moved = nce(torch.where(mask[:, None], x, 100 * x), torch.where(mask[:, None], y, -y), mask,
                    directions=directions)
        assert moved.item() == pytest.approx(loss.item(), rel=1e-14)
        gx, gy = torch.autograd.grad(loss, (x, y))
        assert gx[~mask].abs().max() == 0 and gy[~mask].abs().max() == 0
        assert gx[mask].abs().min() > 0
    # A masked candidate is no positive and no negative: its values do not matter.
    text = torch.randn(5, 3, 8, generator=g, dtype=torch.float64)
    tmask = torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0], [1, 0, 0]]).bool()
    other = torch.where(tmask[..., None], text, torch.randn_like(text))
    assert mil_nce(x, other, tmask).item() == pytest.approx(mil_nce(x, text, tmask).item(), rel=1e-14)
    keep = tmask.any(1)  # a clip without narration is dropped entirely
    assert mil_nce(x, text, tmask).item() == pytest.approx(mil_nce(x[keep], text[keep], tmask[keep]).item(),
                                                          rel=1e-14)


@pytest.mark.parametrize("directions,minimum", [("joint", 0.0), ("mean", 0.0), ("concat", math.log(2))])
def test_perfect_alignment_reaches_the_minimum(directions, minimum):
    basis = torch.eye(8, dtype=torch.float64)[:4]
    assert nce(basis, 2 * basis, directions=directions).item() == pytest.approx(minimum, abs=1e-5)
    shuffled = nce(basis, basis.roll(1, 0), directions=directions).item()
    assert shuffled > minimum + 10  # the positive is now orthogonal, a negative is identical


@pytest.mark.parametrize("directions", DIRECTIONS)
def test_mil_nce_with_one_candidate_is_nce(directions):
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    mask = torch.tensor([True, True, False, True, True, True])
    expected = nce(x, y, mask, directions=directions)
    torch.testing.assert_close(mil_nce(x, y[:, None], mask[:, None], directions=directions), expected)
    torch.testing.assert_close(mil_nce(x, y, mask, directions=directions), expected)  # [B, D] text: K = 1


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31), directions=st.sampled_from(DIRECTIONS))
def test_permuting_clips_or_candidates_changes_nothing(seed, directions):
    g = torch.Generator().manual_seed(seed)
    video, text = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randn(5, 3, 4, generator=g,
                                                                                  dtype=torch.float64)
    mask = torch.rand(5, 3, generator=g) < 0.7
    loss = mil_nce(video, text, mask, directions=directions).item()
    clips, cands = torch.randperm(5, generator=g), torch.randperm(3, generator=g)
    assert mil_nce(video[clips], text[clips], mask[clips], directions=directions).item() == pytest.approx(loss)
    assert mil_nce(video, text[:, cands], mask[:, cands], directions=directions).item() == pytest.approx(loss)


def test_temperature_and_scale():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(4, 6, generator=g, dtype=torch.float64), torch.randn(4, 6, generator=g, dtype=torch.float64)
    # The embeddings are L2-normalised: their scale does not matter, the temperature does.
    assert nce(3 * x, 0.5 * y).item() == pytest.approx(nce(x, y).item(), rel=1e-14)
    for tau in (0.01, 0.07, 1.0, 10.0):
        assert nce(x, y, temperature=tau).item() == pytest.approx(
            reference(x.numpy(), y.numpy()[:, None], np.ones((4, 1), bool), tau, "joint"), rel=1e-12)
    # With aligned pairs a lower temperature separates the positive more sharply.
    aligned = x + 0.1 * y
    values = [nce(x, aligned, temperature=tau).item() for tau in (1.0, 0.3, 0.07)]
    assert values[0] > values[1] > values[2]
    # At a very high temperature every score is alike: log(2B - 1) for the joint form.
    assert nce(x, y, temperature=1e6).item() == pytest.approx(math.log(7), rel=1e-5)


def test_autocast_does_not_lower_the_precision_of_the_scores():
    g = torch.Generator().manual_seed(6)
    x, y = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = nce(x, y)
        half = nce(x.bfloat16(), y.bfloat16())
    assert inside.dtype == torch.float32 and inside.item() == nce(x, y).item()
    expected = nce(x.bfloat16().float(), y.bfloat16().float())
    assert half.dtype == torch.float32 and half.item() == pytest.approx(expected.item())


def test_no_anchor_gives_zero_with_a_finite_gradient():
    video = torch.randn(3, 4, requires_grad=True)
    text = torch.randn(3, 2, 4, requires_grad=True)
    for directions in DIRECTIONS:
        loss = mil_nce(video, text, torch.zeros(3, 2, dtype=torch.bool), directions=directions)
        assert loss.item() == 0 and loss.requires_grad
        gv, gt = torch.autograd.grad(loss, (video, text))
        assert torch.count_nonzero(gv) == 0 and torch.count_nonzero(gt) == 0
    # A tiny temperature in float32, with masked rows: still finite.
    loss = nce(video, text[:, 0], torch.tensor([True, False, False]), temperature=1e-4)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(video.grad).all()


@pytest.mark.parametrize("directions", DIRECTIONS)
def test_gradients_pass_gradcheck(directions):
    g = torch.Generator().manual_seed(5)
    video = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    text = torch.randn(3, 2, 4, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 0], [0, 0], [1, 1]]).bool()
    assert torch.autograd.gradcheck(lambda v, t: mil_nce(v, t, mask, 0.5, directions), (video, text))


def test_shape_and_option_errors():
    x = torch.randn(4, 8)
    with pytest.raises(ValueError, match=r"x \(4, 8\) and y \(3, 8\) must have the same batch size"):
        nce(x, torch.randn(3, 8))
    with pytest.raises(ValueError, match="must be \\[B, D\\]"):
        nce(x, torch.randn(4, 2, 8))
    with pytest.raises(ValueError, match=r"x \(4, 8\) and y \(4, 7\)"):
        nce(x, torch.randn(4, 7))
    with pytest.raises(ValueError, match=r"mask must have shape \[4\], got \(4, 1\)"):
        nce(x, x, torch.ones(4, 1, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"video must be \[B, D\] and text \[B, K, D\]"):
        mil_nce(x[None], torch.randn(4, 2, 8))
    with pytest.raises(ValueError, match="same batch size and dim"):
        mil_nce(x, torch.randn(5, 2, 8))
    with pytest.raises(ValueError, match="same batch size and dim"):
        mil_nce(x, torch.randn(4, 2, 6))
    with pytest.raises(ValueError, match=r"text_mask must have shape \[4, 2\]"):
        mil_nce(x, torch.randn(4, 2, 8), torch.ones(4, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="temperature must be positive"):
        nce(x, x, temperature=0)
    with pytest.raises(ValueError, match="directions must be one of"):
        MMVLoss(directions="both")


# ---- MMVLoss -------------------------------------------------------------------------------------------

def _outputs(b: int = 4, k: int = 3, seed: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"video_va": torch.randn(b, 6, generator=g), "audio_va": torch.randn(b, 6, generator=g),
            "video_vat": torch.randn(b, 5, generator=g), "text_vat": torch.randn(b, k, 5, generator=g),
            "audio_vat": torch.randn(b, 5, generator=g)}


def test_mmv_loss_combines_the_two_terms_with_their_masks():
    out = _outputs()
    batch = {"audio_mask": torch.tensor([True, False, True, True]),
             "text_mask": torch.tensor([[1, 0, 0], [0, 0, 0], [1, 1, 1], [0, 0, 1]]).bool()}
    result = MMVLoss(lambda_va=0.1, lambda_vt=1.0, temperature=0.1, directions="mean")(out, batch)
    assert set(result) == {"loss", "nce_va", "mil_nce_vt", "va_anchors", "vt_anchors"}
    va = nce(out["video_va"], out["audio_va"], batch["audio_mask"], 0.1, "mean")
    vt = mil_nce(out["video_vat"], out["text_vat"], batch["text_mask"], 0.1, "mean")
    torch.testing.assert_close(result["nce_va"], va)
    torch.testing.assert_close(result["mil_nce_vt"], vt)
    torch.testing.assert_close(result["loss"], 0.1 * va + vt)
    assert int(result["va_anchors"]) == 3 and int(result["vt_anchors"]) == 3
    # Without masks in the batch every clip takes part.
    assert int(MMVLoss()(out, {})["vt_anchors"]) == 4


def test_mmv_loss_with_one_modality_missing():
    out = _outputs()
    no_text = {k: v for k, v in out.items() if k != "text_vat"}
    result = MMVLoss()(no_text, {"audio_mask": torch.ones(4, dtype=torch.bool)})
    torch.testing.assert_close(result["loss"], nce(out["video_va"], out["audio_va"]))
    assert result["mil_nce_vt"].item() == 0 and int(result["vt_anchors"]) == 0
    no_audio = {k: v for k, v in out.items() if k != "audio_va"}
    result = MMVLoss(lambda_vt=10.0)(no_audio, {})
    torch.testing.assert_close(result["loss"], 10 * mil_nce(out["video_vat"], out["text_vat"]))
    assert result["nce_va"].item() == 0 and int(result["va_anchors"]) == 0
    with pytest.raises(ValueError, match="needs video_va \\+ audio_va and/or video_vat \\+ text_vat"):
        MMVLoss()({"video_va": out["video_va"]}, {})
    with pytest.raises(ValueError, match=r"audio_mask must have shape \[4\]"):
        MMVLoss()(out, {"audio_mask": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"video_vat \(4, 5\) and text_vat \(3, 3, 5\)"):
        MMVLoss()({"video_vat": out["video_vat"], "text_vat": out["text_vat"][:3]}, {})


def _graph_model(graph: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if graph == "shared":
        heads = {name: HeadConfig("linear", False) for name in MMVConfig().heads}
        return create_model("mmv_tiny_tsm", protocol=SMALL, graph="shared", va_dim=32, vat_dim=32, at_dim=32,
                            heads=heads)
    return create_model("mmv_tiny_tsm", protocol=SMALL, graph=graph)


@pytest.mark.parametrize("graph", ["fac_relu", "fac_bnrelu", "disjoint", "shared"])
def test_every_graph_trains_every_parameter_but_the_unused_heads(graph):
    model = _graph_model(graph).train()
    g = torch.Generator().manual_seed(0)
    batch = {"video": torch.rand(3, 3, 4, 32, 32, generator=g), "audio": torch.randn(3, 1, 16, 80, generator=g),
             "text": torch.randint(0, 10000, (3, 2, 16), generator=g),
             "audio_mask": torch.tensor([True, True, False]),
             "text_mask": torch.tensor([[1, 0], [0, 0], [1, 1]]).bool()}
    result = MMVLoss()(model(video=batch["video"], audio=batch["audio"], text=batch["text"]), batch)
    result["loss"].backward()
    assert torch.isfinite(result["loss"]) and int(result["va_anchors"]) == 2 and int(result["vt_anchors"]) == 2
    unused = modules_unused_by_loss(model)
    without_grad = {n for n, p in model.named_parameters() if p.requires_grad and p.grad is None}
    assert without_grad == {n for n, _ in model.named_parameters() if any(n.startswith(m + ".") for m in unused)}
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
