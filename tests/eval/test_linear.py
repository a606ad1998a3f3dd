"""Linear probes: the paper's SVM protocol and the L-BFGS solver agree, windows are averaged, C is never
chosen on the test set, multi-label sets give mAP."""

from __future__ import annotations

import numpy as np
import pytest

from mmv.eval.features import Features
from mmv.eval.linear import (
    DEFAULT_WEIGHT_DECAYS,
    logistic_probe,
    svm_equivalent_weight_decay,
    svm_probe,
    validation_split,
)

K, D = 6, 24


def blobs(n: int, windows: int, seed: int, spread: float = 1.0) -> Features:
    centres = np.random.default_rng(123).normal(size=(K, D)) * 3  # the same classes for every split
    rng = np.random.default_rng(seed)
    y = np.arange(n) % K
    return Features.from_arrays(centres[y][:, None] + spread * rng.normal(size=(n, windows, D)), y)


def test_svm_and_lbfgs_agree_on_separable_blobs():
    train, test = blobs(240, 3, seed=1), blobs(120, 4, seed=2)
    svm, lr = svm_probe(train, test), logistic_probe(train, test)
    assert svm["metrics"]["top1"] == 1.0 and lr["metrics"]["top1"] == 1.0
    assert svm["metrics"]["top5"] == 1.0 and lr["metrics"]["top5"] == 1.0
    agree = svm["predictions"]["scores"].argmax(1) == lr["predictions"]["scores"].argmax(1)
    assert agree.all()
    # every protocol parameter is recorded
    p = svm["params"]
    assert (p["C"], p["C_grid"], p["selection"], p["classifier"]) == (0.001, [0.001], "fixed", "sklearn.svm.LinearSVC")
    assert (p["n_train"], p["train_passes"], p["n_train_rows"], p["n_test"], p["test_windows"]) == (240, 3, 720, 120, 4)
    assert p["classes"] == K and p["converged"] and "StandardScaler" in p["scaler"]
    q = lr["params"]
    assert q["weight_decay_grid"] == list(DEFAULT_WEIGHT_DECAYS) and q["weight_decay"] in DEFAULT_WEIGHT_DECAYS
    assert q["selection"].startswith("validation") and q["val_examples"] == 48  # 20 % of the 240 train examples
    assert svm_equivalent_weight_decay(0.001, 720) == pytest.approx(1 / 0.72)
    assert q["line_search"] == "strong_wolfe" and q["converged"] and q["n_iter"] > 0 and q["device"] == "cpu"


def two_class_windows(n: int, first_wrong: bool) -> Features:
    """Class c sits at x = -1 (c=0) or +1 (c=1). Each test example's first window lies on the wrong side
    (x = -+0.5) and the other two far on the right side, so the window mean is right and window 0 is not."""
    y = np.arange(n) % 2
    sign = np.where(y == 0, -1.0, 1.0)
    w = np.zeros((n, 3, 2))
    w[:, 0, 0] = -0.5 * sign if first_wrong else sign
    w[:, 1:, 0] = 2.0 * sign[:, None]
    w[:, :, 1] = np.random.default_rng(0).normal(size=(n, 3)) * 0.1
    return Features.from_arrays(w, y)


@pytest.mark.parametrize("probe", [svm_probe, logistic_probe])
def test_averaging_scores_over_windows_matters(probe):
    rng = np.random.default_rng(3)
    y = np.arange(100) % 2
    train = Features.from_arrays(np.stack([np.where(y == 0, -1.0, 1.0) + 0.3 * rng.normal(size=100),
                                           0.1 * rng.normal(size=100)], 1), y)
    test = two_class_windows(40, first_wrong=True)
    averaged = probe(train, test)
    assert averaged["metrics"]["top1"] == 1.0 and averaged["params"]["test_windows"] == 3
    one_window = probe(train, Features(test.array[:, :1], test.ids, test.labels))
    assert one_window["metrics"]["top1"] == 0.0


def test_c_grid_is_chosen_on_training_examples_never_on_test():
    train, test = blobs(120, 2, seed=4, spread=4.0), blobs(60, 2, seed=5, spread=4.0)
    r = svm_probe(train, test, Cs=(1e-5, 1e-3, 1e-1))
    p = r["params"]
    assert p["selection"].startswith("validation") and p["val_examples"] == 24 and p["C"] in (1e-5, 1e-3, 1e-1)
    assert set(p["val_scores"]) == {"1e-05", "0.001", "0.1"}
    assert p["C"] == max((1e-5, 1e-3, 1e-1), key=lambda c: p["val_scores"][repr(c)])
    # scrambling the test labels cannot change the chosen C
    scrambled = Features(test.array, test.ids, [((lab[0] + 1) % K,) for lab in test.labels])
    assert svm_probe(train, scrambled, Cs=(1e-5, 1e-3, 1e-1))["params"]["C"] == p["C"]
    lr = logistic_probe(train, test, weight_decay=(1e-3, 1.0))
    assert lr["params"]["selection"].startswith("validation") and lr["params"]["weight_decay"] in (1e-3, 1.0)


def test_validation_split_keeps_examples_whole_and_stratified():
    feats = blobs(60, 5, seed=6)
    y = np.array([lab[0] for lab in feats.labels])
    tr, va = validation_split(feats, y, 0.2, seed=0)
    assert not set(tr) & set(va) and len(tr) + len(va) == 60
    assert np.bincount(y[va], minlength=K).tolist() == [2] * K  # 20 % of each class's 10 examples


def multilabel_set(n: int, seed: int) -> Features:
    """Label c is present when feature c > 0 (features 0..2); label 3 never occurs."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2, 5)) + np.sign(rng.normal(size=(n, 1, 5))) * 2
    labels = [tuple(int(c) for c in np.flatnonzero(row[0, :3] > 0)) for row in x]
    return Features.from_arrays(x, labels)


@pytest.mark.parametrize("probe", [svm_probe, logistic_probe])
def test_multilabel_gives_map_and_counts_classes_without_positives(probe):
    train, test = multilabel_set(200, 7), multilabel_set(80, 8)
    r = probe(train, test, multilabel=True, num_classes=4)
    assert r["metrics"]["mAP"] > 0.99
    assert r["metrics"]["classes_scored"] == 3 and r["metrics"]["classes_skipped"] == 1
    if probe is svm_probe:
        assert r["params"]["classes_untrainable"] == [3]


def test_single_label_probe_refuses_multilabel_examples():
    train, test = multilabel_set(50, 9), multilabel_set(20, 10)
    with pytest.raises(ValueError, match="exactly one label"):
        svm_probe(train, test)
