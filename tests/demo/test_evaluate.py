"""What the demo's evaluation chooses before the evaluation tools run: the probe's training videos."""

from __future__ import annotations

from mmv.demo.evaluate import balanced
from mmv.eval.datasets.base import Example


def _examples(digits: list[int]) -> list[Example]:
    return [Example(id=f"v{i:03d}", path=f"v{i:03d}.mp4", labels=(d,)) for i, d in enumerate(digits)]


def test_balanced_takes_the_digits_in_turn():
    examples = _examples([0] * 5 + [1] * 2 + [2] * 4)
    picked = balanced(examples, 7)
    counts = {d: sum(ex.labels[0] == d for ex in picked) for d in (0, 1, 2)}
    assert counts == {0: 3, 1: 2, 2: 2}  # rounds 0, 0 of each digit, then 0 and 2 once more (1 has run out)
    assert [ex.id for ex in picked] == sorted(ex.id for ex in picked)  # in id order, as the features are
    assert {ex.id for ex in picked} == {"v000", "v001", "v002", "v005", "v006", "v007", "v008"}


def test_balanced_gives_everything_when_asked_for_more():
    examples = _examples([3, 1, 3, 2])
    assert balanced(examples, 10) == sorted(examples, key=lambda ex: ex.id)
    assert balanced(examples, 0) == []
