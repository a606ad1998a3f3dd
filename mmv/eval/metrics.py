"""Evaluation metrics: top-k accuracy, average precision / mAP, retrieval ranks and recalls.

NumPy in, Python floats out. **Ties are counted pessimistically** everywhere a rank is computed: a wrong
class or target that scores exactly as high as the right one is ranked before it. A constant (collapsed)
model therefore scores chance or worse instead of a perfect 100 %, and results never depend on the order
of the classes or of the gallery. Average precision follows the usual definition (as
``sklearn.metrics.average_precision_score``): tied scores form one threshold.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Union

import numpy as np

GroundTruth = Sequence[Union[int, Iterable[int]]]


def _scores_2d(scores: np.ndarray, name: str = "scores") -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"{name} must be [N, C], got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError(f"{name} contain NaN")
    return scores


def label_ranks(scores: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """1-based rank of the true class of each row: 1 + number of other classes scoring >= it."""
    scores = _scores_2d(scores)
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (scores.shape[0],):
        raise ValueError(f"need one label per row: {scores.shape[0]} rows, labels of shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ValueError(f"labels must be in [0, {scores.shape[1]}), got {labels.min()}..{labels.max()}")
    true = scores[np.arange(len(labels)), labels][:, None]
    return (scores >= true).sum(axis=1)  # the true class itself is one of the >=, so this is the rank


def topk_accuracy(scores: np.ndarray, labels: Sequence[int], ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """``{"top1": ..., "top5": ...}``: fraction of rows whose true class ranks within k (ties pessimistic).
    A k at or above the number of classes is reported as given (it is then 1.0)."""
    ranks = label_ranks(scores, labels)
    if ranks.size == 0:
        raise ValueError("no examples to score")
    return {f"top{k}": float((ranks <= k).mean()) for k in ks}


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """AP of one class: sum over the distinct score thresholds (high to low) of precision x recall gained.

    Tied scores enter together, as in ``sklearn.metrics.average_precision_score``. Needs >= 1 positive.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positive = np.asarray(positive).astype(bool).ravel()
    if scores.shape != positive.shape:
        raise ValueError(f"scores {scores.shape} and positives {positive.shape} differ in shape")
    n_pos = int(positive.sum())
    if n_pos == 0:
        raise ValueError("average precision is undefined without positives")
    order = np.argsort(-scores, kind="stable")
    s, p = scores[order], positive[order]
    last_of_tie = np.r_[s[1:] != s[:-1], True]  # the end of each group of equal scores
    tp = np.cumsum(p)[last_of_tie]
    seen = (np.flatnonzero(last_of_tie) + 1).astype(np.float64)
    precision = tp / seen
    recall_gain = np.diff(np.r_[0, tp]) / n_pos
    return float((precision * recall_gain).sum())


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> dict[str, object]:
    """Multi-label mAP over ``targets [N, C]`` (0/1): the mean AP of the classes with >= 1 positive.

    Returns ``{"mAP", "per_class_ap" (NaN for skipped classes), "classes_scored", "classes_skipped"}``:
    a class without positives in the evaluated set has no AP and is skipped, and the count says so.
    """
    scores = _scores_2d(scores)
    targets = np.asarray(targets).astype(bool)
    if targets.shape != scores.shape:
        raise ValueError(f"targets {targets.shape} must match scores {scores.shape}")
    per_class = np.full(scores.shape[1], np.nan)
    for c in range(scores.shape[1]):
        if targets[:, c].any():
            per_class[c] = average_precision(scores[:, c], targets[:, c])
    scored = ~np.isnan(per_class)
    if not scored.any():
        raise ValueError("no class has a positive example: mAP is undefined")
    return {"mAP": float(per_class[scored].mean()), "per_class_ap": per_class,
            "classes_scored": int(scored.sum()), "classes_skipped": int((~scored).sum())}


def multi_hot(labels: Sequence[Sequence[int]], num_classes: int) -> np.ndarray:
    """``[N, num_classes]`` 0/1 matrix of label tuples."""
    out = np.zeros((len(labels), num_classes), np.int8)
    for i, row in enumerate(labels):
        for c in row:
            if not 0 <= c < num_classes:
                raise ValueError(f"label {c} of row {i} is outside [0, {num_classes})")
            out[i, c] = 1
    return out


def _positives(gt: GroundTruth, n_queries: int, n_targets: int) -> list[np.ndarray]:
    if len(gt) != n_queries:
        raise ValueError(f"ground truth has {len(gt)} entries for {n_queries} queries")
    out = []
    for i, g in enumerate(gt):
        idx = np.atleast_1d(np.asarray(list(g) if not isinstance(g, (int, np.integer)) else g, dtype=np.int64))
        if idx.size == 0:
            raise ValueError(f"query {i} has no correct target")
        if idx.min() < 0 or idx.max() >= n_targets:
            raise ValueError(f"query {i}: target index outside [0, {n_targets})")
        out.append(np.unique(idx))
    return out


def retrieval_ranks(similarity: np.ndarray, gt: GroundTruth) -> np.ndarray:
    """1-based rank of the best-ranked correct target of each query in ``similarity [Nq, Nt]``.

    ``gt[i]`` is the index (or indices, e.g. the 20 captions of a video) of query i's correct targets.
    Rank = 1 + the number of *wrong* targets scoring >= the best correct one (ties pessimistic).
    """
    sim = _scores_2d(similarity, "similarity")
    positives = _positives(gt, sim.shape[0], sim.shape[1])
    ranks = np.empty(sim.shape[0], np.int64)
    for i, pos in enumerate(positives):
        row = sim[i]
        best = row[pos].max()
        wrong = np.ones(row.shape[0], bool)
        wrong[pos] = False
        ranks[i] = 1 + int((row[wrong] >= best).sum())
    return ranks


def rank_metrics(ranks: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """``R@k`` (fraction of queries with rank <= k), ``MedR`` and ``MeanR`` of 1-based ranks."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.size == 0:
        raise ValueError("no queries")
    out = {f"R@{k}": float((ranks <= k).mean()) for k in ks}
    out["MedR"] = float(np.median(ranks))
    out["MeanR"] = float(ranks.mean())
    return out
