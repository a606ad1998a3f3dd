"""Narration text -> word ids, the MMV way (MMV_SPEC C.3).

The release does not publish its tokeniser, so this follows the stated recipe and DMVR's convention:
lower-case, strip punctuation, drop stop words, keep the first 16 words, pad with the ``<pad>`` id,
map unknown words to ``<unk>``. There is no padding mask: the pad row of the word table takes part in
the text tower's max-pool, so the pad id must always be the same row (0 here).

Punctuation: every character of Unicode category P* (punctuation) or S* (symbols: ``$ + < = > ^ ` | ~``
and the like, which POSIX ``[[:punct:]]`` also removes) or C* (control/format characters) separates
words. Apostrophes (``' ’ ʼ ＇``) *between two word characters* are deleted instead, joining the word:
``don't`` -> ``dont``, ``O'Neill`` -> ``oneill``. That keeps contractions and names one token (as DMVR's
delete-all-punctuation rule does) while ``well-known`` still splits into ``well known``. Quotes at a
word's edge (``'hello'``) are separators.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Optional

import torch

from mmv.errors import DataError

PAD, UNK = "<pad>", "<unk>"
APOSTROPHES = frozenset("'\u2019\u02bc\uff07")

_STOP_WORDS_TEXT = """
a about above after again against all am an and any are aren't as at be because been before being below
between both but by can couldn't did didn't do does doesn't doing don't down during each few for from further
had hadn't has hasn't have haven't having he her here hers herself him himself his how i i'm i've if in into is
isn't it it's its itself just me more most mustn't my myself needn't no nor not now of off on once only or
other our ours ourselves out over own same shan't she she's should should've shouldn't so some such than that
that'll that's the their theirs them themselves then there there's these they they're they've this those through
to too under until up very was wasn't we we're we've were weren't what what's when where which while who whom
why will with won't wouldn't you you'd you'll you're you've your yours yourself yourselves let's
"""


def _is_separator(ch: str) -> bool:
    return _category(ch)[0] in "PSCZ" or ch.isspace()


@lru_cache(maxsize=65536)
def _category(ch: str) -> str:
    return unicodedata.category(ch)


def _strip(text: str) -> str:
    """Punctuation/symbols -> spaces; apostrophes inside a word vanish (see the module docstring)."""
    out: list[str] = []
    n = len(text)
    for i, ch in enumerate(text):
        if ch in APOSTROPHES:
            inside = 0 < i < n - 1 and not _is_separator(text[i - 1]) and text[i - 1] not in APOSTROPHES \
                and not _is_separator(text[i + 1]) and text[i + 1] not in APOSTROPHES
            if not inside:
                out.append(" ")
        elif _is_separator(ch):
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def _normalise_stop_words(text: str) -> frozenset[str]:
    return frozenset(_strip(text.lower()).split())


STOP_WORDS: frozenset[str] = _normalise_stop_words(_STOP_WORDS_TEXT)
"""English stop words, in tokenised form (``don't`` is stored as ``dont``). Contractions whose joined
form is a common word (``we'll`` -> ``well``, ``she'd`` -> ``shed``, ``i'll`` -> ``ill``) are left out."""


def tokenize(text: str, *, lowercase: bool = True, strip_punctuation: bool = True,
             stop_words: Optional[Collection[str]] = STOP_WORDS) -> list[str]:
    """Words of ``text``: lower-cased, punctuation stripped, stop words removed (``None`` keeps them).

    Stop words are matched on the lower-cased word even with ``lowercase=False``, so that "The" goes too.
    """
    if not isinstance(text, str):
        raise TypeError(f"tokenize expects a str, got {type(text).__name__}")
    if lowercase:
        text = text.lower()
    if strip_punctuation:
        text = _strip(text)
    words = text.split()
    if stop_words:
        words = [w for w in words if (w if lowercase else w.lower()) not in stop_words]
    return words


def _check_word(word: object, where: str) -> str:
    if not isinstance(word, str):
        raise ValueError(f"{where}: vocabulary words must be str, got {type(word).__name__}")
    if not word:
        raise ValueError(f"{where}: empty word")
    if any(ch.isspace() for ch in word) or "\n" in word or "\r" in word:
        raise ValueError(f"{where}: word {word!r} contains whitespace (one word per line cannot hold it)")
    return word


class Vocabulary:
    """Words <-> ids. Id 0 is ``<pad>`` and id 1 is ``<unk>`` in every vocabulary made here.

    Row i of a word table belongs to ``words[i]``; ``save``/``load`` use the one-word-per-line format
    of ``mmv.weights.read_vocab``.
    """

    pad_id = 0
    unk_id = 1

    def __init__(self, words: Sequence[str]):
        words = list(words)
        if words[:2] != [PAD, UNK]:
            raise ValueError(f"a Vocabulary must start with {PAD!r}, {UNK!r}; got {words[:2]} "
                             f"(use Vocabulary.from_words to add them)")
        index: dict[str, int] = {}
        for i, w in enumerate(words):
            _check_word(w, f"word {i}")
            if w in index:
                raise ValueError(f"word {w!r} appears twice (ids {index[w]} and {i})")
            index[w] = i
        self.words = words
        self._index = index

    @classmethod
    def from_words(cls, words: Iterable[str]) -> Vocabulary:
        """``words`` in id order; ``<pad>`` / ``<unk>`` are prepended when absent (and must be ids 0, 1
        when present, so that a word list aligned with a table is never shifted silently)."""
        words = list(words)
        head = [t for t in (PAD, UNK) if t not in words]
        return cls(head + words)

    @classmethod
    def build(cls, texts: Iterable[str], *, min_count: int = 1, max_size: Optional[int] = None,
              lowercase: bool = True, strip_punctuation: bool = True,
              stop_words: Optional[Collection[str]] = STOP_WORDS) -> Vocabulary:
        """Vocabulary of a corpus: most frequent words first, ties in alphabetical order (deterministic).

        ``max_size`` counts ``<pad>`` and ``<unk>``, so it equals the number of word-table rows.
        """
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        if max_size is not None and max_size < 2:
            raise ValueError(f"max_size must be >= 2 (it includes {PAD} and {UNK}), got {max_size}")
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(tokenize(text, lowercase=lowercase, strip_punctuation=strip_punctuation,
                                   stop_words=stop_words))
        for special in (PAD, UNK):
            counts.pop(special, None)
        ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if max_size is not None:
            ranked = ranked[:max_size - 2]
        return cls([PAD, UNK] + ranked)

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read one word per line (UTF-8), as ``save`` and ``mmv.weights.read_vocab`` do."""
        path = Path(path)
        try:
            lines = path.read_text(encoding="utf-8").split("\n")
        except OSError as err:
            raise DataError(path, f"cannot read vocabulary ({err.strerror or err})") from None
        except UnicodeDecodeError as err:
            raise DataError(path, f"vocabulary is not UTF-8 text ({err})") from None
        if lines and lines[-1] == "":
            lines.pop()
        lines = [w[:-1] if w.endswith("\r") else w for w in lines]
        try:
            return cls.from_words(lines)
        except ValueError as err:
            raise DataError(path, f"unusable vocabulary: {err}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text("".join(w + "\n" for w in self.words), encoding="utf-8")

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self.words)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.words == other.words

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} words: {self.words[:6]}{'...' if len(self) > 6 else ''})"

    def id(self, word: str) -> int:
        """Id of ``word``; ``unk_id`` when it is not in the vocabulary."""
        return self._index.get(word, self.unk_id)

    def word(self, i: int) -> str:
        if not 0 <= i < len(self.words):
            raise IndexError(f"word id {i} is outside the vocabulary (0..{len(self.words) - 1})")
        return self.words[i]


class Tokenizer:
    """Text -> ``[max_words]`` int64 ids: the first ``max_words`` kept words, then ``<pad>``."""

    def __init__(self, vocab: Vocabulary, max_words: int = 16, stop_words: Optional[Collection[str]] = STOP_WORDS,
                 *, lowercase: bool = True, strip_punctuation: bool = True):
        if max_words < 1:
            raise ValueError(f"max_words must be >= 1, got {max_words}")
        self.vocab = vocab
        self.max_words = max_words
        self.stop_words = stop_words
        self.lowercase = lowercase
        self.strip_punctuation = strip_punctuation

    def words(self, text: str) -> list[str]:
        """The words that ``encode`` looks up (after clipping), for inspection."""
        return tokenize(text, lowercase=self.lowercase, strip_punctuation=self.strip_punctuation,
                        stop_words=self.stop_words)[:self.max_words]

    def _ids(self, text: str) -> list[int]:
        ids = [self.vocab.id(w) for w in self.words(text)]
        return ids + [self.vocab.pad_id] * (self.max_words - len(ids))

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor(self._ids(text), dtype=torch.int64)

    def encode_batch(self, texts: Sequence[str]) -> torch.Tensor:
        """``[len(texts), max_words]``; an empty batch gives ``[0, max_words]``."""
        if isinstance(texts, str):
            raise TypeError("encode_batch expects a sequence of strings, got a single str (use encode)")
        rows = [self._ids(t) for t in texts]
        return torch.tensor(rows, dtype=torch.int64).reshape(len(rows), self.max_words)
