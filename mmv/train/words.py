"""The frozen word table of a run, and the vocabulary that names its rows.

The paper's way (``vocab_from_captions=False``): the vocabulary is the first ``vocab_size`` words of the
pretrained table (word2vec, 65534 + ``<pad>`` + ``<unk>`` = 65536 rows). For small models the table
can be cut down to the words of the training narrations plus the ``vocab_size`` most frequent words,
which keeps a 400k-word GloVe table out of a model that will never see most of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from mmv.data.text import Vocabulary
from mmv.data.wordvec import load_glove, load_word2vec, vocabulary_from_vectors, word_table


def _looks_word2vec(path: Path) -> bool:
    """word2vec files start with a ``COUNT DIM`` header line; GloVe files start with a word."""
    with open(path, "rb") as f:
        first = f.readline(256).split()
    return len(first) == 2 and all(x.isdigit() for x in first)


def load_word_vectors(spec: str, limit: int | None = None) -> tuple[list[str], np.ndarray]:
    """``"glove"`` (the installed GloVe 6B 50-d) or a word2vec (binary/text) or GloVe text file."""
    if spec == "glove":
        return load_glove(limit=limit)
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"word_vectors: {path} is not a file (give a word2vec or GloVe file, or \"glove\")")
    if _looks_word2vec(path):
        return load_word2vec(path, limit=limit)
    return load_glove(path, limit=limit)


def build_vocabulary(words: list[str], vocab_size: int, from_captions: Optional[Vocabulary] = None) -> Vocabulary:
    """``<pad>``, ``<unk>``, the words of the captions' vocabulary (``Vocabulary.build``: most frequent first),
    then the first ``vocab_size`` words of the table not already there."""
    from_captions = from_captions if from_captions is not None else Vocabulary.from_words([])
    top = vocabulary_from_vectors(words, limit=vocab_size, tokenizable_only=True) if vocab_size else None
    merged = list(from_captions.words)
    seen = set(merged)
    for w in (top.words[2:] if top is not None else []):
        if w not in seen:
            seen.add(w)
            merged.append(w)
    return Vocabulary(merged)


def caption_texts(items: Iterable) -> list[str]:
    """Every narration text of clip items (raw sources; shards are not read for this)."""
    return [n.text for item in items for n in item.narrations]


def word_setup(spec: str, vocab_size: int, captions: Iterable[str] = (),
               say=print) -> tuple[Vocabulary, torch.Tensor]:
    """Vocabulary and its ``[len(vocab), D]`` table, reporting how many words the table covers."""
    captions = list(captions)
    # Without caption words only the head of the table is needed: word2vec files are read that far only.
    limit = None if captions else max(vocab_size * 2, vocab_size + 1000)
    words, vectors = load_word_vectors(spec, limit=limit if spec != "glove" else None)
    from_captions = Vocabulary.build(captions) if captions else None
    vocab = build_vocabulary(words, vocab_size, from_captions)
    table, stats = word_table(vocab, words, vectors)
    if from_captions is not None:
        known = set(words)
        caption_words = from_captions.words[2:]  # every caption word once, without <pad> and <unk>
        missing = sorted(w for w in caption_words if w not in known)
        say(f"vocabulary: {len(vocab)} words ({len(caption_words)} from the narrations, {len(missing)} of them "
            f"without a vector in {spec}{': ' + ', '.join(missing[:10]) if missing else ''}"
            f"{' ...' if len(missing) > 10 else ''}), word dim {table.shape[1]}")
    else:
        say(f"vocabulary: the first {len(vocab) - 2} words of {spec} (+ <pad>, <unk>), word dim {table.shape[1]}, "
            f"coverage {stats['coverage']:.1%}")
    return vocab, table
