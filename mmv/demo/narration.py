"""Narrations of the demo videos: short sentences like a person commenting on what is on screen.

Most name the digit ("here the number seven moves to the left", "look at this 7"), as a narrator would; some do
not ("watch this"), so the text only sometimes says what is shown, as in HowTo100M. Directions come from the
digit's real motion during the sentence. Every word is an everyday English word present in GloVe, and the digit
is written as a word or as a numeral ("seven", "7"), both of which the tokenizer keeps.
"""

from __future__ import annotations

import numpy as np

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
MENTION_PROBABILITY = 0.75
NUMERAL_PROBABILITY = 0.3

MENTIONS = (
    "here the number {w} moves {dir}",
    "look at this {w}",
    "a handwritten {w}",
    "this is the digit {w}",
    "you can see a {w} here",
    "the number {w}",
    "now the {w} moves {dir}",
    "{w}",
    "watch the {w} go {dir}",
    "someone wrote a {w}",
)
GENERIC = (
    "watch this",
    "it moves around",
    "look at it go",
    "now it moves {dir}",
    "keep watching",
    "what do you think this is",
    "something drawn by hand",
    "pay attention to the screen",
    "see how it slides {dir}",
)


def direction(a: np.ndarray, b: np.ndarray, size: int) -> str:
    """How the digit moved from track row ``a`` to ``b`` (``[cx, cy, side]``, y down): "to the left", "up" ...;
    "around" when it barely moved."""
    dx, dy = float(b[0] - a[0]), float(b[1] - a[1])
    if max(abs(dx), abs(dy)) < 0.06 * size:
        return "around"
    if abs(dx) >= abs(dy):
        return "to the right" if dx > 0 else "to the left"
    return "down" if dy > 0 else "up"


def narrate(rng: np.random.Generator, digit: int, moves: str) -> tuple[str, bool]:
    """One sentence about a video of ``digit`` moving ``moves``; and whether it names the digit."""
    mentions = bool(rng.random() < MENTION_PROBABILITY)
    templates = MENTIONS if mentions else GENERIC
    word = str(digit) if rng.random() < NUMERAL_PROBABILITY else DIGIT_WORDS[digit]
    text = templates[int(rng.integers(len(templates)))].format(w=word, dir=moves)
    return text, mentions
