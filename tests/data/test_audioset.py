"""AudioSet readers against the real excerpts (when present) and hand-written edge cases."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from mmv.data.audioset import ClipIndex, Segment, read_class_labels, read_segments, segment_file
from mmv.errors import DataError

AUDIOSET = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "annotations" / "audioset"
needs_real = pytest.mark.skipif(not (AUDIOSET / "eval_segments.csv").is_file(), reason=f"no AudioSet in {AUDIOSET}")


@needs_real
@pytest.mark.parametrize("name, first, last, n_labels, label_counts", [
    ("eval_segments.csv",
     Segment("--4gqARaEJE", 0.0, 10.0, ("/m/068hy", "/m/07q6cd_", "/m/0bt9lr", "/m/0jbk")),
     Segment("-WKYdeVL3_k", 30.0, 40.0, ("/m/04rlf", "/m/08j51y", "/m/09x0r")),
     484, {1: 50, 2: 76, 3: 46, 4: 13, 5: 7, 6: 2, 7: 4, 8: 1, 9: 1}),
    ("balanced_train_segments.csv",
     Segment("--PJHxphWEs", 30.0, 40.0, ("/m/09x0r", "/t/dd00088")),
     Segment("-PIuJAAplqI", 210.0, 220.0, ("/m/016cjb", "/m/04rlf")),
     455, {1: 54, 2: 81, 3: 40, 4: 17, 5: 3, 6: 1, 7: 3, 9: 1}),
])
def test_real_segment_excerpts(name, first, last, n_labels, label_counts):
    segments = read_segments(AUDIOSET / name)
    assert len(segments) == 200
    assert segments[0] == first and segments[-1] == last
    assert sum(len(s.labels) for s in segments) == n_labels
    assert Counter(len(s.labels) for s in segments) == label_counts
    assert all(s.ytid.startswith("-") and len(s.ytid) == 11 for s in segments)  # the excerpts are the sorted head
    assert Counter(s.labels.count("/m/04rlf") for s in segments)[1] in (59, 62)  # "Music"
    assert all(s.end - s.start <= 10.0 for s in segments)


@needs_real
def test_real_class_labels_cover_the_segments():
    classes = read_class_labels(AUDIOSET / "class_labels_indices.csv")
    assert len(classes) == 527
    assert classes[:3] == [(0, "/m/09x0r", "Speech"), (1, "/m/05zppz", "Male speech, man speaking"),
                           (2, "/m/02zsn", "Female speech, woman speaking")]
    assert classes[-1] == (526, "/m/07hvw1", "Field recording")
    assert [c[0] for c in classes] == list(range(527))
    mids = {mid for _, mid, _ in classes}
    for name in ("eval_segments.csv", "balanced_train_segments.csv"):
        assert {label for s in read_segments(AUDIOSET / name) for label in s.labels} <= mids


def write(tmp_path: Path, text: str, name: str = "segments.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_segments_format_variants(tmp_path):
    text = ("\ufeff# created today\r\n# num_ytids=3\r\n# YTID, start_seconds, end_seconds, positive_labels\r\n"
            '-abc_DEF-12, 0.000, 10.000, "/m/09x0r,/t/dd00088"\r\n\r\n'
            "zzzzzzzzzzz,5.5,9,/m/04rlf\r\n"
            'yyyyyyyyyyy,   1,  2,  " /m/a , /m/b "\r\n')
    assert read_segments(write(tmp_path, text)) == [
        Segment("-abc_DEF-12", 0.0, 10.0, ("/m/09x0r", "/t/dd00088")),
        Segment("zzzzzzzzzzz", 5.5, 9.0, ("/m/04rlf",)),
        Segment("yyyyyyyyyyy", 1.0, 2.0, ("/m/a", "/m/b")),
    ]


@pytest.mark.parametrize("row, reason", [
    ('#NAME?, 30.000, 40.000, "/m/09x0r"', "line 2: not a YouTube id: '#NAME?' (mangled by a spreadsheet?)"),
    ("abc, 30.000, 40.000", "line 2: 3 fields, expected 4"),
    ('abc, thirty, 40.000, "/m/a"', "line 2: time is not a number: 'thirty', '40.000'"),
    ('abc, 40.000, 30.000, "/m/a"', "line 2: end 30.0 not after start 40.0"),
    ('abc, nan, 30.000, "/m/a"', "line 2: time out of range: 'nan', '30.000'"),
    ('abc, 0.000, 10.000, "/m/a,,/m/b"', "line 2: empty label in '/m/a,,/m/b'"),
    ('a/b, 0.000, 10.000, "/m/a"', "line 2: not a YouTube id: 'a/b'"),
])
def test_bad_rows_name_file_and_line(tmp_path, row, reason):
    path = write(tmp_path, f"# YTID, start_seconds, end_seconds, positive_labels\n{row}\nok_id, 0, 10, /m/x\n")
    with pytest.raises(DataError) as info:
        read_segments(path)
    assert info.value.path == str(path) and info.value.reason.startswith(reason)
    skipped: list[DataError] = []
    assert read_segments(path, skipped=skipped) == [Segment("ok_id", 0.0, 10.0, ("/m/x",))]
    assert [e.reason for e in skipped] == [info.value.reason]


def test_unreadable_segments_file(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        read_segments(tmp_path / "absent.csv")
    with pytest.raises(DataError, match="cannot read"):
        read_segments(write(tmp_path, "abc, 0, 1, /m/caf\u00e9\n", encoding="latin-1"))


@pytest.mark.parametrize("text, reason", [
    ("0,/m/a,Speech\n", "line 1: expected header index,mid,display_name"),
    ('index,mid,display_name\n0,/m/a,"Speech"\n2,/m/b,"Music"\n', "line 3: index '2', expected 1"),
    ('index,mid,display_name\n0,/m/a,"Speech"\n1,/m/a,"Music"\n', "line 3: mid '/m/a' is empty or repeats line 2"),
    ("index,mid,display_name\n0,/m/a,Male speech, man speaking\n", "line 2: 4 fields, expected 3"),
])
def test_class_label_errors(tmp_path, text, reason):
    with pytest.raises(DataError) as info:
        read_class_labels(write(tmp_path, text, "labels.csv"))
    assert info.value.reason.startswith(reason)


def test_class_labels_quoted_names_crlf(tmp_path):
    path = write(tmp_path, 'index,mid,display_name\r\n0,/m/a,"Speech"\r\n1,/m/b,"Male speech, man speaking"\r\n',
                 "labels.csv")
    assert read_class_labels(path) == [(0, "/m/a", "Speech"), (1, "/m/b", "Male speech, man speaking")]


SEG = Segment("-abc_DEF-12", 30.0, 40.0, ("/m/a",))


@pytest.mark.parametrize("name", ["-abc_DEF-12_30000_40000.mp4", "-abc_DEF-12_30.000_40.000.mkv",
                                  "-abc_DEF-12_30_40.webm", "-abc_DEF-12_000030_000040.mp4", "-abc_DEF-12_30.mp4",
                                  "Y-abc_DEF-12_30.000_40.000.wav", "Y-abc_DEF-12.wav", "-abc_DEF-12.MP4"])
def test_segment_file_layouts(tmp_path, name):
    (tmp_path / "part1").mkdir()
    (tmp_path / "part1" / name).touch()
    (tmp_path / "-abc_DEF-12_31000_41000.mp4").touch()  # another segment of the same video
    (tmp_path / "-abc_def-12.mp4").touch()  # ids are case-sensitive
    assert segment_file(tmp_path, SEG) == tmp_path / "part1" / name
    bare = name.split(".")[0] in ("Y-abc_DEF-12", "-abc_DEF-12")  # taken as the cut segment, whatever its times
    other = segment_file(tmp_path, Segment("-abc_DEF-12", 31.5, 41.5, ()))
    assert other == (tmp_path / "part1" / name if bare else None)


def test_segment_file_preferences_and_cache(tmp_path):
    for name in ("-abc_DEF-12.mp4", "-abc_DEF-12_30.mp4", "-abc_DEF-12_30000_40000.wav",
                 "-abc_DEF-12_30000_40000.mkv", "notes.txt"):
        (tmp_path / name).touch()
    assert segment_file(tmp_path, SEG) == tmp_path / "-abc_DEF-12_30000_40000.mkv"  # both times, then video first
    assert segment_file(tmp_path, SEG, extensions=(".wav", ".mkv")) == tmp_path / "-abc_DEF-12_30000_40000.wav"
    assert segment_file(tmp_path, SEG, extensions=(".mp4",)) == tmp_path / "-abc_DEF-12_30.mp4"
    assert len(ClipIndex(tmp_path)) == 3  # one entry per name: .mkv beats .wav
    other = Segment("zzzzzzzzzzz", 0.0, 10.0, ())
    assert segment_file(tmp_path, other) is None
    (tmp_path / "zzzzzzzzzzz_0_10.mp4").touch()
    stat = os.stat(tmp_path)
    os.utime(tmp_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # as a coarse clock would
    assert segment_file(tmp_path, other) == tmp_path / "zzzzzzzzzzz_0_10.mp4"
    with pytest.raises(DataError, match="cannot list"):
        segment_file(tmp_path / "absent", SEG)
