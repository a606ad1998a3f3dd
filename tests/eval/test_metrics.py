"""Metrics against values computed by hand (and AP against scikit-learn)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from mmv.eval.metrics import (
    average_precision,
    label_ranks,
    mean_average_precision,
    multi_hot,
    rank_metrics,
    retrieval_ranks,
    topk_accuracy,
)

# Rows: queries; columns: targets. The correct target of query i is target i.
SIM = np.array([
    [0.9, 0.1, 0.9, 0.3],  # ties with a wrong target at 0.9: pessimistic rank 2
    [0.5, 0.2, 0.1, 0.4],  # 0.5 and 0.4 beat 0.2: rank 3
    [0.0, 0.0, 0.0, 0.0],  # everything ties: rank 4
    [0.1, 0.2, 0.3, 0.8],  # best: rank 1
])


def test_retrieval_ranks_with_ties_by_hand():
    ranks = retrieval_ranks(SIM, [0, 1, 2, 3])
    assert ranks.tolist() == [2, 3, 4, 1]
    m = rank_metrics(ranks, ks=(1, 2, 3, 5, 10))
    assert m == {"R@1": 0.25, "R@2": 0.5, "R@3": 0.75, "R@5": 1.0, "R@10": 1.0, "MedR": 2.5, "MeanR": 2.5}


def test_retrieval_ranks_permuted_and_multiple_positives():
    # gt permuted: q0->t2 (0.9 ties t0: 2), q1->t0 (best: 1), q2->t3 (all tie: 4), q3->t1 (0.3, 0.8 above: 3)
    assert retrieval_ranks(SIM, [2, 0, 3, 1]).tolist() == [2, 1, 4, 3]
    # several correct targets: the best-ranked one counts, and correct targets never count against each other
    assert retrieval_ranks(SIM, [[0, 2], [1, 3], [0, 1, 2, 3], [3]]).tolist() == [1, 2, 1, 1]


def test_retrieval_rejects_bad_ground_truth():
    with pytest.raises(ValueError, match="no correct target"):
        retrieval_ranks(SIM, [0, [], 2, 3])
    with pytest.raises(ValueError, match="outside"):
        retrieval_ranks(SIM, [0, 1, 2, 4])
    with pytest.raises(ValueError, match="entries"):
        retrieval_ranks(SIM, [0, 1])


def test_topk_by_hand_with_a_tie():
    scores = np.array([
        [0.1, 0.5, 0.2, 0.2],  # label 1: rank 1
        [0.3, 0.3, 0.1, 0.0],  # label 0 ties class 1: rank 2 (pessimistic)
        [0.4, 0.3, 0.2, 0.1],  # label 3: rank 4
    ])
    labels = [1, 0, 3]
    assert label_ranks(scores, labels).tolist() == [1, 2, 4]
    assert topk_accuracy(scores, labels, ks=(1, 2, 3, 4)) == pytest.approx(
        {"top1": 1 / 3, "top2": 2 / 3, "top3": 2 / 3, "top4": 1.0})


def test_average_precision_by_hand():
    # positives at ranks 1, 3, 5: (1/1 + 2/3 + 3/5) / 3 = 34/45
    s, p = np.array([0.9, 0.8, 0.7, 0.6, 0.5]), np.array([1, 0, 1, 0, 1])
    assert average_precision(s, p) == pytest.approx(34 / 45)
    assert average_precision(s, p) == pytest.approx(average_precision_score(p, s))
    # a tie at 0.8 between a positive and a negative is one threshold: P = 1/3 there, then 2/4: AP = 5/12
    s, p = np.array([0.9, 0.8, 0.8, 0.5]), np.array([0, 1, 0, 1])
    assert average_precision(s, p) == pytest.approx(5 / 12)
    assert average_precision(s, p) == pytest.approx(average_precision_score(p, s))
    with pytest.raises(ValueError, match="without positives"):
        average_precision(s, np.zeros(4))


def test_map_skips_and_counts_classes_without_positives():
    scores = np.array([[0.9, 0.1, 0.5], [0.8, 0.4, 0.5], [0.7, 0.3, 0.5], [0.6, 0.2, 0.5], [0.5, 0.0, 0.5]])
    targets = np.array([[1, 0, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0]])
    m = mean_average_precision(scores, targets)
    # class 0: 34/45; class 1: its positive (0.2) ranks third -> 1/3; class 2: no positive, skipped
    assert m["mAP"] == pytest.approx((34 / 45 + 1 / 3) / 2) == pytest.approx(49 / 90)
    assert m["classes_scored"] == 2 and m["classes_skipped"] == 1
    assert np.isnan(m["per_class_ap"][2])


def test_map_matches_sklearn_on_random_scores_with_ties():
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=(60, 7)), 1)  # rounding makes many ties
    targets = rng.random((60, 7)) < 0.3
    m = mean_average_precision(scores, targets)
    ref = [average_precision_score(targets[:, c], scores[:, c]) for c in range(7)]
    np.testing.assert_allclose(m["per_class_ap"], ref, rtol=1e-12)
    assert m["mAP"] == pytest.approx(np.mean(ref))


def test_multi_hot():
    assert multi_hot([(0, 2), (), (1,)], 3).tolist() == [[1, 0, 1], [0, 0, 0], [0, 1, 0]]
    with pytest.raises(ValueError):
        multi_hot([(3,)], 3)
