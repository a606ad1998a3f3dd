"""Linear probes on frozen features: the paper's protocol and a fast GPU-capable solver.

``svm_probe`` is MMV_SPEC C.4: ``StandardScaler`` fit on the training rows (every augmented pass is a row),
``LinearSVC`` (one-vs-rest, squared hinge), and each test example scored by the **mean of the decision
function over its windows**. C is fixed (0.001, the official UCF101 script's value; DMVR's HMDB51 uses
3e-4 / 1e-4 per model) unless a grid is given, and a grid is searched on a validation split carved from
the *training examples* (all passes of an example on one side), never on the test set.

``logistic_probe`` is multinomial logistic regression (sigmoid + BCE for multi-label sets) solved by full
batch L-BFGS with a strong-Wolfe line search in torch, on CPU or CUDA, for sets where LinearSVC is slow.

Both return ``{"probe", "metrics", "params", "timings", "predictions"}``: top-1/top-5 (single-label) or
mAP (multi-label), every parameter used, and the aggregated test scores.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Optional

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from mmv.eval.features import Features
from mmv.eval.metrics import mean_average_precision, multi_hot, topk_accuracy

DEFAULT_C = 0.001  # eval_ucf101.py (MMV_SPEC C.4)
# No published value exists for the logistic probe, so by default its L2 strength is chosen on a validation
# split of the training examples from this grid (one fit per value, then a refit: cheap on a GPU).
DEFAULT_WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2, 1e-1)
TOPK = (1, 5)


def _grid(values: float | Sequence[float]) -> list[float]:
    grid = [float(values)] if isinstance(values, (int, float)) else [float(v) for v in values]
    if not grid or any(not v >= 0 for v in grid):
        raise ValueError(f"need one or more non-negative values, got {values}")
    return grid


def _num_classes(train: Features, test: Features, num_classes: Optional[int]) -> int:
    seen = [c for f in (train, test) for lab in f.labels for c in lab]
    top = max(seen) + 1 if seen else 0
    if num_classes is None:
        return top
    if top > num_classes:
        raise ValueError(f"label {top - 1} does not fit num_classes={num_classes}")
    return num_classes


def _targets(feats: Features, multilabel: bool, num_classes: int) -> np.ndarray:
    """Single-label: ``[N]`` class ids; multi-label: ``[N, C]`` 0/1."""
    if multilabel:
        return multi_hot(feats.labels, num_classes)
    bad = [i for i, lab in zip(feats.ids, feats.labels) if len(lab) != 1]
    if bad:
        raise ValueError(f"{len(bad)} examples do not have exactly one label (e.g. {bad[0]}); "
                         f"use multilabel=True for multi-label sets")
    return np.array([lab[0] for lab in feats.labels], np.int64)


def _rows(feats: Features, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every window / pass is one row, with its example's target."""
    n, w, d = feats.array.shape
    return feats.array.reshape(n * w, d), np.repeat(y, w, axis=0)


def _score(scores: np.ndarray, y: np.ndarray, multilabel: bool) -> dict[str, Any]:
    if multilabel:
        m = mean_average_precision(scores, y)
        return {"mAP": m["mAP"], "classes_scored": m["classes_scored"], "classes_skipped": m["classes_skipped"]}
    return topk_accuracy(scores, y, TOPK)


def _main(metrics: dict[str, Any]) -> float:
    return metrics["mAP"] if "mAP" in metrics else metrics["top1"]


def validation_split(feats: Features, y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (sub-train, validation) of *examples*, stratified by class for single-label sets, so that
    no augmented pass of a validation example is trained on."""
    if not 0 < fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    n = len(feats.ids)
    groups = [np.arange(n)] if y.ndim == 2 else [np.flatnonzero(y == c) for c in np.unique(y)]
    val = []
    for g in groups:
        g = rng.permutation(g)
        k = int(round(fraction * len(g)))
        val.extend(g[:min(k, len(g) - 1)] if len(g) > 1 else [])
    val_mask = np.zeros(n, bool)
    val_mask[np.array(val, np.int64)] = True
    if not val_mask.any() or val_mask.all():
        raise ValueError(f"too few training examples ({n}) to carve a validation split")
    return np.flatnonzero(~val_mask), np.flatnonzero(val_mask)


def _subset(feats: Features, idx: np.ndarray) -> Features:
    return Features(feats.array[idx], [feats.ids[i] for i in idx], [feats.labels[i] for i in idx])


def _select(grid: list[float], train: Features, y: np.ndarray, val_fraction: float, seed: int,
            fit_predict: Callable[[Features, np.ndarray, Features, float], np.ndarray],
            multilabel: bool) -> tuple[float, dict[str, Any]]:
    """The grid value with the best validation score (first best in grid order)."""
    if len(grid) == 1:
        return grid[0], {"selection": "fixed"}
    tr, va = validation_split(train, y, val_fraction, seed)
    scores = {}
    for value in grid:
        s = fit_predict(_subset(train, tr), y[tr], _subset(train, va), value)
        scores[value] = _main(_score(s, y[va], multilabel))
    best = max(grid, key=lambda v: scores[v])
    return best, {"selection": "validation split of the training examples", "val_fraction": val_fraction,
                  "val_examples": int(len(va)), "val_scores": {repr(k): v for k, v in scores.items()},
                  "val_metric": "mAP" if multilabel else "top1", "split_seed": seed}


# ---------------------------------------------------------------------------------------------- SVM


def _svm_scores(train: Features, y: np.ndarray, test: Features, C: float, *, num_classes: int, multilabel: bool,
                max_iter: int, tol: float, seed: int, info: Optional[dict] = None) -> np.ndarray:
    """Window-averaged decision scores ``[N_test, num_classes]`` of a LinearSVC fit on standardised rows."""
    x, t = _rows(train, y)
    scaler = StandardScaler().fit(x)
    x = scaler.transform(x)
    n, w, d = test.array.shape
    xt = scaler.transform(test.array.reshape(n * w, d))
    scores = np.full((n * w, num_classes), -np.inf if not multilabel else 0.0)
    iters, warned, untrainable = [], False, []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        if multilabel:
            for c in range(num_classes):
                if t[:, c].min() == t[:, c].max():
                    untrainable.append(c)  # all positive or all negative in training: constant score
                    continue
                svm = LinearSVC(C=C, dual="auto", max_iter=max_iter, tol=tol, random_state=seed).fit(x, t[:, c])
                scores[:, c] = svm.decision_function(xt)
                iters.append(int(np.max(svm.n_iter_)))
        else:
            svm = LinearSVC(C=C, dual="auto", max_iter=max_iter, tol=tol, random_state=seed).fit(x, t)
            dec = svm.decision_function(xt)
            if dec.ndim == 1:  # two classes: sklearn gives the score of classes_[1] only
                dec = np.stack([-dec, dec], axis=1)
            scores[:, svm.classes_] = dec
            iters.append(int(np.max(svm.n_iter_)))
        warned = any(issubclass(wc.category, ConvergenceWarning) for wc in caught)
    if info is not None:
        info.update(n_iter=max(iters) if iters else 0, converged=not warned, classes_untrainable=untrainable,
                    dual=bool(x.shape[0] < x.shape[1]))  # what dual="auto" picks for squared hinge + L2
    return scores.reshape(n, w, num_classes).mean(axis=1)


def svm_probe(train: Features, test: Features, Cs: float | Sequence[float] = DEFAULT_C, *,
              multilabel: bool = False, num_classes: Optional[int] = None, val_fraction: float = 0.2,
              max_iter: int = 1000, tol: float = 1e-4, seed: int = 0) -> dict[str, Any]:
    """The paper's linear protocol (MMV_SPEC C.4). One C: used as is; several: chosen on a validation split
    of the training examples, then refit on all of them."""
    t0 = time.perf_counter()
    grid = _grid(Cs)
    k = _num_classes(train, test, num_classes)
    y, yt = _targets(train, multilabel, k), _targets(test, multilabel, k)

    def fit_predict(tr: Features, ytr: np.ndarray, ev: Features, C: float) -> np.ndarray:
        return _svm_scores(tr, ytr, ev, C, num_classes=k, multilabel=multilabel, max_iter=max_iter, tol=tol,
                           seed=seed)

    C, selection = _select(grid, train, y, val_fraction, seed, fit_predict, multilabel)
    t1 = time.perf_counter()
    info: dict[str, Any] = {}
    scores = _svm_scores(train, y, test, C, num_classes=k, multilabel=multilabel, max_iter=max_iter, tol=tol,
                         seed=seed, info=info)
    t2 = time.perf_counter()
    params = {"classifier": "sklearn.svm.LinearSVC", "C": C, "C_grid": grid, **selection,
              "loss": "squared_hinge", "penalty": "l2", "multi_class": "one-vs-rest", "dual_rule": "auto",
              "max_iter": max_iter, "tol": tol, "random_state": seed, **info,
              "scaler": "StandardScaler fit on the training rows",
              "window_aggregation": "mean of decision_function over the test windows",
              **_shape_params(train, test, k, multilabel)}
    return {"probe": "svm", "metrics": _score(scores, yt, multilabel), "params": params,
            "timings": {"select_s": t1 - t0, "fit_predict_s": t2 - t1, "total_s": t2 - t0},
            "predictions": {"ids": list(test.ids), "scores": scores}}


def _shape_params(train: Features, test: Features, k: int, multilabel: bool) -> dict[str, Any]:
    return {"n_train": len(train.ids), "train_passes": train.windows, "n_train_rows": len(train.ids) * train.windows,
            "n_test": len(test.ids), "test_windows": test.windows, "feature_dim": int(train.array.shape[2]),
            "classes": k, "multilabel": multilabel, "topk": list(TOPK) if not multilabel else None}


# ---------------------------------------------------------------------------------------- L-BFGS


def svm_equivalent_weight_decay(C: float, n_rows: int) -> float:
    """The L2 strength ``lam`` (loss = mean data loss + lam/2 ||W||^2) of LinearSVC's ``1/2 ||w||^2 + C sum``,
    divided by ``C n``: ``1 / (C n)``. Only a starting point: with cross-entropy instead of the squared hinge
    the best match was about 10x weaker on FSDD features (C=0.001, n=5400: 0.185 -> 0.02 agreed best)."""
    return 1.0 / (C * n_rows)


def _lbfgs_scores(train: Features, y: np.ndarray, test: Features, wd: float, *, num_classes: int,
                  multilabel: bool, device: torch.device, max_iter: int, history_size: int,
                  info: Optional[dict] = None) -> np.ndarray:
    x, t = _rows(train, y)
    x = torch.as_tensor(x, dtype=torch.float32, device=device)
    mean = x.mean(dim=0)
    std = x.std(dim=0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))  # constant features: as StandardScaler
    x = (x - mean) / std
    target = torch.as_tensor(t, device=device, dtype=torch.float32 if multilabel else torch.int64)
    weight = torch.zeros(x.shape[1], num_classes, device=device, requires_grad=True)
    bias = torch.zeros(num_classes, device=device, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, history_size=history_size,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-7, tolerance_change=1e-12)
    data_loss = torch.nn.functional.binary_cross_entropy_with_logits if multilabel else \
        torch.nn.functional.cross_entropy

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = data_loss(x @ weight + bias, target) + 0.5 * wd * (weight * weight).sum()
        loss.backward()
        return loss

    opt.step(closure)  # runs up to max_iter iterations; returns the *first* loss, so re-evaluate below
    n, w, d = test.array.shape
    with torch.no_grad():
        loss = data_loss(x @ weight + bias, target) + 0.5 * wd * (weight * weight).sum()
        xt = (torch.as_tensor(test.array.reshape(n * w, d), dtype=torch.float32, device=device) - mean) / std
        logits = (xt @ weight + bias).reshape(n, w, num_classes).mean(dim=1)
    if info is not None:
        state = opt.state[opt.param_groups[0]["params"][0]]
        n_iter = int(state.get("n_iter", 0))
        info.update(n_iter=n_iter, func_evals=int(state.get("func_evals", 0)), final_loss=float(loss),
                    converged=n_iter < max_iter)
    return logits.double().cpu().numpy()


def logistic_probe(train: Features, test: Features,
                   weight_decay: float | Sequence[float] = DEFAULT_WEIGHT_DECAYS, *,
                   device: str | torch.device = "cpu", max_iter: int = 500, history_size: int = 20,
                   multilabel: bool = False, num_classes: Optional[int] = None, val_fraction: float = 0.2,
                   seed: int = 0) -> dict[str, Any]:
    """Softmax (or sigmoid, multi-label) regression on standardised features by full-batch L-BFGS.

    Loss: mean cross-entropy (BCE) + ``weight_decay / 2 * ||W||^2`` (bias not decayed). One value is used
    as is; a grid (the default) is searched on a validation split of the training examples as in
    ``svm_probe``. Test scores are the logits averaged over the windows.
    """
    t0 = time.perf_counter()
    device = torch.device(device)
    k = _num_classes(train, test, num_classes)
    y, yt = _targets(train, multilabel, k), _targets(test, multilabel, k)
    grid = _grid(weight_decay)
    opts = dict(num_classes=k, multilabel=multilabel, device=device, max_iter=max_iter, history_size=history_size)

    def fit_predict(tr: Features, ytr: np.ndarray, ev: Features, wd: float) -> np.ndarray:
        return _lbfgs_scores(tr, ytr, ev, wd, **opts)

    wd, selection = _select(grid, train, y, val_fraction, seed, fit_predict, multilabel)
    t1 = time.perf_counter()
    info: dict[str, Any] = {}
    scores = _lbfgs_scores(train, y, test, wd, info=info, **opts)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t2 = time.perf_counter()
    params = {"classifier": "multinomial logistic regression" if not multilabel else "per-class logistic (BCE)",
              "solver": "torch.optim.LBFGS (full batch)", "line_search": "strong_wolfe", "weight_decay": wd,
              "weight_decay_grid": grid, **selection, "max_iter": max_iter,
              "history_size": history_size, **info, "device": str(device), "dtype": "float32",
              "scaler": "train mean/std (as StandardScaler)", "window_aggregation": "mean of logits over the windows",
              **_shape_params(train, test, k, multilabel)}
    return {"probe": "logistic_lbfgs", "metrics": _score(scores, yt, multilabel), "params": params,
            "timings": {"select_s": t1 - t0, "fit_predict_s": t2 - t1, "total_s": t2 - t0},
            "predictions": {"ids": list(test.ids), "scores": scores}}
