"""Narrations of the demo videos: short sentences like a person commenting on what is on screen.

Most name the digit ("look at this seven", "a handwritten seven"), as a narrator would; some do not ("watch
this"), so the text only sometimes says what is shown, as in HowTo100M. Every word is an everyday English word
present in GloVe. The sentences say nothing about where the digit goes: words that the frames' motion alone
can match ("moves to the left") give the text-video loss a shortcut that needs no digit at all, and in the
first demo runs the network learnt motion instead of digits (docs/demo.md, "How the data was made learnable").
"""

from __future__ import annotations

import numpy as np

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
MENTION_PROBABILITY = 0.75

MENTIONS = (
    "here is the number {w}",
    "look at this {w}",
    "a handwritten {w}",
    "this is the digit {w}",
    "you can see a {w} here",
    "the number {w}",
    "now we have a {w}",
    "{w}",
    "watch the {w}",
    "someone wrote a {w}",
    "this one is a {w}",
    "that is a {w} on the screen",
)
GENERIC = (
    "watch this",
    "it moves around",
    "look at it go",
    "keep watching",
    "what do you think this is",
    "something drawn by hand",
    "pay attention to the screen",
    "see how it slides",
)


def narrate(rng: np.random.Generator, digit: int) -> tuple[str, bool]:
    """One sentence about a video of ``digit``; and whether it names the digit."""
    mentions = bool(rng.random() < MENTION_PROBABILITY)
    templates = MENTIONS if mentions else GENERIC
    text = templates[int(rng.integers(len(templates)))].format(w=DIGIT_WORDS[digit])
    return text, mentions
