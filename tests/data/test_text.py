"""Tokeniser and vocabulary: fixed sentences with known answers, and properties on arbitrary text."""

from __future__ import annotations

import unicodedata

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmv.data.text import PAD, STOP_WORDS, UNK, Tokenizer, Vocabulary, tokenize
from mmv.errors import DataError
from mmv.weights import read_vocab

# Text that exercises the interesting paths: apostrophes, punctuation, symbols, spaces, case, marks.
tricky = st.text(alphabet=st.one_of(
    st.sampled_from(list("aAbZ'’ʼ-_.,!?\"$+\t\n éÉİßﬁ\u0301\u200b\u00a0〇一")),
    st.characters(codec="utf-8")), max_size=60)


def _punct_or_space(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch)[0] in "PSCZ"


def test_fixed_sentences():
    assert tokenize("The quick, brown fox -- JUMPS over the lazy dog!") == ["quick", "brown", "fox", "jumps", "lazy",
                                                                             "dog"]
    assert tokenize("Don't stop: it's O'Neill's well-known “café”.") == ["stop", "oneills", "well", "known", "café"]
    assert tokenize("'quoted' rock'n'roll ’90s") == ["quoted", "rocknroll", "90s"]
    assert tokenize("cost $5.00 + tax=20%") == ["cost", "5", "00", "tax", "20"]
    assert tokenize("snake_case and\ttabs\nnewlines") == ["snake", "case", "tabs", "newlines"]
    assert tokenize("") == [] and tokenize("  ...!!  ") == [] and tokenize("the a an of") == []


def test_options():
    text = "The Cat's HAT, isn't it?"
    assert tokenize(text, stop_words=None) == ["the", "cats", "hat", "isnt", "it"]
    assert tokenize(text, lowercase=False) == ["Cats", "HAT"]  # stop words matched case-insensitively
    assert tokenize(text, strip_punctuation=False, stop_words=None) == ["the", "cat's", "hat,", "isn't", "it?"]
    assert tokenize(text, stop_words={"cats"}) == ["the", "hat", "isnt", "it"]


def test_stop_words_are_in_tokenised_form():
    assert {"the", "a", "and", "dont", "isnt", "its", "youre"} <= STOP_WORDS
    assert not {"well", "shell", "ill", "shed", "cat", "dog"} & STOP_WORDS
    for w in STOP_WORDS:
        assert tokenize(w, stop_words=None) == [w]


def test_vocabulary_build_orders_by_frequency_then_alphabet():
    texts = ["dog cat dog", "bird cat dog", "zebra apple"]
    v = Vocabulary.build(texts)
    assert v.words == [PAD, UNK, "dog", "cat", "apple", "bird", "zebra"]
    assert (v.pad_id, v.unk_id) == (0, 1)
    assert Vocabulary.build(texts, min_count=2).words == [PAD, UNK, "dog", "cat"]
    assert Vocabulary.build(texts, max_size=4).words == [PAD, UNK, "dog", "cat"]
    assert Vocabulary.build(reversed(texts)) == v  # deterministic whatever the input order
    assert Vocabulary.build(["The DOG"], lowercase=False, stop_words=None).words == [PAD, UNK, "DOG", "The"]
    assert Vocabulary.build(["<unk> <pad> x"], strip_punctuation=False).words == [PAD, UNK, "x"]
    with pytest.raises(ValueError):
        Vocabulary.build(texts, min_count=0)
    with pytest.raises(ValueError):
        Vocabulary.build(texts, max_size=1)


def test_vocabulary_lookup_and_from_words():
    v = Vocabulary.from_words(["cat", "dog"])
    assert v.words == [PAD, UNK, "cat", "dog"] and len(v) == 4
    assert v.id("dog") == 3 and v.id("cow") == v.unk_id == 1 and v.word(2) == "cat"
    assert "cat" in v and "cow" not in v
    assert Vocabulary.from_words([PAD, UNK, "x"]).words == [PAD, UNK, "x"]
    assert Vocabulary.from_words([UNK, "x"]).words == [PAD, UNK, "x"]
    with pytest.raises(IndexError):
        v.word(4)
    with pytest.raises(ValueError, match="twice"):
        Vocabulary.from_words(["a", "b", "a"])
    with pytest.raises(ValueError, match="must start"):
        Vocabulary.from_words(["a", PAD])
    for bad in ["two words", "line\nbreak", "", "tab\t"]:
        with pytest.raises(ValueError):
            Vocabulary.from_words(["ok", bad])


def test_vocabulary_save_load_round_trip(tmp_path):
    v = Vocabulary.from_words(["café", "naïve", "日本", "it's"])
    path = tmp_path / "vocab.txt"
    v.save(path)
    assert path.read_bytes() == "<pad>\n<unk>\ncafé\nnaïve\n日本\nit's\n".encode()
    assert Vocabulary.load(path) == v
    assert read_vocab(path) == v.words  # the checkpoint format reads it row for row
    (tmp_path / "crlf.txt").write_bytes(b"<pad>\r\n<unk>\r\na\r\n")
    assert Vocabulary.load(tmp_path / "crlf.txt").words == [PAD, UNK, "a"]
    (tmp_path / "bad.txt").write_bytes(b"a\nb c\n")
    with pytest.raises(DataError, match="whitespace") as err:
        Vocabulary.load(tmp_path / "bad.txt")
    assert err.value.path == str(tmp_path / "bad.txt")
    (tmp_path / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    with pytest.raises(DataError, match="UTF-8"):
        Vocabulary.load(tmp_path / "latin1.txt")
    with pytest.raises(DataError, match="cannot read"):
        Vocabulary.load(tmp_path / "absent.txt")


def test_tokenizer_encode_values():
    v = Vocabulary.from_words(["quick", "brown", "fox", "lazy", "dog"])
    tok = Tokenizer(v, max_words=8)
    ids = tok.encode("The quick brown fox jumps over the lazy dog.")
    assert ids.dtype == torch.int64
    assert ids.tolist() == [2, 3, 4, 1, 5, 6, 0, 0]  # "jumps" is unknown; "the", "over" are stop words
    clipped = Tokenizer(v, max_words=3).encode("fox fox fox fox dog")
    assert clipped.tolist() == [4, 4, 4]
    batch = tok.encode_batch(["dog", "", "cat fox"])
    assert batch.tolist() == [[6] + [0] * 7, [0] * 8, [1, 4] + [0] * 6]
    assert tok.encode_batch([]).shape == (0, 8)
    assert Tokenizer(v).encode("x").shape == (16,)
    assert Tokenizer(v, stop_words=None).encode("the dog").tolist()[:2] == [1, 6]
    with pytest.raises(TypeError):
        tok.encode_batch("a single string")
    with pytest.raises(ValueError):
        Tokenizer(v, max_words=0)


@settings(max_examples=300, deadline=None)
@given(tricky)
def test_tokens_are_clean(text):
    for w in tokenize(text):
        assert w and not any(_punct_or_space(ch) for ch in w)
        assert w == w.lower() and w not in STOP_WORDS


@settings(max_examples=300, deadline=None)
@given(tricky)
def test_tokenize_is_idempotent_on_its_output(text):
    words = tokenize(text)
    assert tokenize(" ".join(words)) == words
    assert tokenize(" ".join(tokenize(text, stop_words=None)), stop_words=None) == tokenize(text, stop_words=None)


@settings(max_examples=200, deadline=None)
@given(tricky, tricky)
def test_words_never_merge_across_a_separator(a, b):
    # A space between two texts never glues their words together.
    assert tokenize(a + " " + b, stop_words=None) == tokenize(a, stop_words=None) + tokenize(b, stop_words=None)


@settings(max_examples=200, deadline=None)
@given(st.lists(tricky, max_size=6), tricky, st.integers(1, 20))
def test_encode_is_well_formed(corpus, text, max_words):
    vocab = Vocabulary.build(corpus)
    ids = Tokenizer(vocab, max_words=max_words).encode(text)
    assert ids.shape == (max_words,) and ids.dtype == torch.int64
    assert ((ids >= 0) & (ids < len(vocab))).all()
    real = (ids != vocab.pad_id).tolist()
    n = sum(real)
    assert real == [True] * n + [False] * (max_words - n)  # padding only at the end
    words = tokenize(text)
    assert n == min(len(words), max_words)
    assert [vocab.word(i) if i != vocab.unk_id else w for i, w in zip(ids.tolist(), words)] == words[:n]
    for i, w in zip(ids.tolist(), words):
        assert (i == vocab.unk_id) == (w not in vocab)


@settings(max_examples=100, deadline=None)
@given(st.lists(tricky, max_size=8))
def test_vocabulary_of_a_corpus_encodes_it_without_unknowns(corpus):
    vocab = Vocabulary.build(corpus)
    assert vocab.words[:2] == [PAD, UNK] and len(set(vocab.words)) == len(vocab)
    tok = Tokenizer(vocab, max_words=64)
    for text in corpus:
        assert vocab.unk_id not in tok.encode(text).tolist()
