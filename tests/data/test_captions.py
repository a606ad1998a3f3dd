"""Narrations: real HowTo100M caption CSVs, caption.json, SubRip/WebVTT (examples and round-trip properties),
sidecar look-up, and choosing the narrations around a clip."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmv.data.captions import (
    Narration,
    find_subtitles,
    load_howto100m_captions,
    narration_at,
    nearest_narrations,
    parse_srt,
    parse_vtt,
    read_caption_csv,
    read_subtitles,
)
from mmv.errors import DataError

CSV_DIR = Path(__file__).resolve().parents[2].parent / "shared/data/annotations/howto100m/howto100m_captions"
needs_real = pytest.mark.skipif(not CSV_DIR.is_dir(), reason=f"no HowTo100M captions in {CSV_DIR}")
N = Narration


@needs_real
def test_real_per_video_csvs():
    captions = load_howto100m_captions(CSV_DIR)
    lines = {"-tCQ4tCQdWE": 21, "2Mn5sVpFDTg": 50, "2_MmPmFxGCo": 85, "3lL8XUUWg_Q": 103, "3ll-KzJSYjE": 152}
    assert {k: len(v) + 1 for k, v in captions.items()} == lines  # + header
    first = captions["-tCQ4tCQdWE"]
    assert first[0] == N(0.41, 3.91, "check pic tonight pick")
    assert first[-2] == N(74.32, 75.96000000000002, "grow strawberries garden chop ground")
    assert first[-1] == N(75.97, 85.38, "garden chop ground water")
    assert captions["2Mn5sVpFDTg"][:2] == [N(0.19, 6.08, "monica's art hall monica"),
                                            N(3.38, 8.76, "making christmas angels")]  # overlapping ASR windows
    assert captions["3ll-KzJSYjE"][-1] == N(488.99, 490.07, "picture end watching")
    for narrations in captions.values():
        assert [n.start for n in narrations] == sorted(n.start for n in narrations)
    assert read_caption_csv(CSV_DIR / "3lL8XUUWg_Q.csv")[2] == N(3.62, 20.49, "eyes images")
    assert list(load_howto100m_captions(CSV_DIR, video_ids={"2_MmPmFxGCo"})) == ["2_MmPmFxGCo"]


@needs_real
def test_real_narrations_around_a_clip():
    narrations = load_howto100m_captions(CSV_DIR)["2Mn5sVpFDTg"]
    # [5, 7) overlaps three narrations; the two whose centres are nearest 6.0 win, returned in time order
    assert nearest_narrations(narrations, 5.0, 7.0, 2) == [N(3.38, 8.76, "making christmas angels"),
                                                           N(6.08, 11.55, "christmas angels")]
    assert narration_at(narrations, 5.0, 7.0) == N(3.38, 8.76, "making christmas angels")  # 2 s of overlap


def test_caption_json(tmp_path):
    data = {"vid_b": {"start": [5, 1.5], "end": [6.0, 2.5], "text": ["later", "earlier"]},
            "vid_a": {"text": [], "start": [], "end": []}}
    path = tmp_path / "caption.json"
    path.write_text(json.dumps(data))
    assert load_howto100m_captions(path) == {"vid_b": [N(1.5, 2.5, "earlier"), N(5.0, 6.0, "later")], "vid_a": []}
    assert load_howto100m_captions(path, video_ids=["vid_a"]) == {"vid_a": []}


@pytest.mark.parametrize("entry, reason", [
    ({"start": [1, 2], "end": [2], "text": ["a", "b"]}, "entry 'bad': unequal lengths of start/end/text: 2/1/2"),
    ({"start": [1], "end": [2]}, "entry 'bad': expected lists 'start', 'end' and 'text'"),
    ([1, 2], "entry 'bad': expected lists"),
    ({"start": [1, "2"], "end": [2, 3], "text": ["a", "b"]}, "entry 'bad', cue 1: time is not a finite number: '2', 3"),
    ({"start": [1, 4], "end": [2, 3], "text": ["a", "b"]}, "entry 'bad', cue 1: end 3.0 before start 4.0"),
    ({"start": [1, 2], "end": [2, 3], "text": ["a", None]}, "entry 'bad', cue 1: text is not a string: None"),
    ({"start": [1, True], "end": [2, 3], "text": ["a", "b"]}, "entry 'bad', cue 1: time is not a finite number"),
])
def test_caption_json_bad_entries(tmp_path, entry, reason):
    path = tmp_path / "caption.json"
    path.write_text(json.dumps({"good": {"start": [0], "end": [1], "text": ["ok"]}, "bad": entry}))
    with pytest.raises(DataError) as info:
        load_howto100m_captions(path)
    assert info.value.path == str(path) and info.value.reason.startswith(reason)
    skipped: list[DataError] = []
    loaded = load_howto100m_captions(path, skipped=skipped)
    assert loaded["good"] == [N(0.0, 1.0, "ok")] and len(skipped) == 1
    assert loaded.get("bad", [N(1.0, 2.0, "a")]) == [N(1.0, 2.0, "a")]  # whole entry skipped, or only cue 1


def test_caption_files_that_cannot_be_used(tmp_path):
    (tmp_path / "caption.json").write_text('{"a": {"start": [1],\n "end": [2] "text": []}}')
    with pytest.raises(DataError, match="line 2: not JSON"):
        load_howto100m_captions(tmp_path / "caption.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="expected an object"):
        load_howto100m_captions(tmp_path / "list.json")
    (tmp_path / "v.csv").write_text("begin,finish,words\n1,2,a\n")
    with pytest.raises(DataError, match="line 1: header .* lacks start, end and text"):
        read_caption_csv(tmp_path / "v.csv")
    (tmp_path / "w.csv").write_text("start,end,text\n1,2,a\n3,x,b\n5,4,c\n6,7\n8,9,\n")
    with pytest.raises(DataError, match="line 3: time is not a finite number: '3', 'x'"):
        read_caption_csv(tmp_path / "w.csv")
    skipped: list[DataError] = []
    assert read_caption_csv(tmp_path / "w.csv", skipped=skipped) == [N(1.0, 2.0, "a"), N(8.0, 9.0, "")]
    assert [e.reason for e in skipped] == ["line 3: time is not a finite number: '3', 'x'",
                                           "line 4: end 4.0 before start 5.0", "line 5: 2 fields, the header has 3"]


def test_srt_example():
    text = ("\ufeff1\r\n00:00:01,600 --> 00:00:04,200\r\n<i>Hello</i> {\\an8}there,\r\n"
            "<font color=\"red\">friend</font>\r\n\r\n\r\n00:00:05,000 --> 00:00:06,5 X1:10 X2:20\r\nno index\r\n"
            "\r\n   \r\n3\r\n1:00:07.250 --> 1:00:08,000\r\nline one\r\n\r\nafter a blank line\r\n")
    assert parse_srt(text) == [N(1.6, 4.2, "Hello there, friend"), N(5.0, 6.5, "no index"),
                               N(3607.25, 3608.0, "line one after a blank line")]


@pytest.mark.parametrize("text, reason", [
    ("1\n00:00:01,000 --> 00:00:00,500\nx\n", "line 2: end before start in '00:00:01,000 --> 00:00:00,500'"),
    ("1\n00:00:61,000 --> 00:01:02,000\nx\n", "line 2: minutes or seconds out of range"),
    ("1\n00:00:01,000 --> soon\nx\n\n2\n00:00:03,000 --> 00:00:04,000\ny\n",
     "line 2: bad timing line '00:00:01,000 --> soon'"),
    ("hello\n\n1\n00:00:01,000 --> 00:00:02,000\nx\n", "line 1: text outside any cue: 'hello'"),
    ("just text", "line 1: text outside any cue"),
])
def test_srt_problems(text, reason):
    with pytest.raises(DataError) as info:
        parse_srt(text, "clip.srt")
    assert info.value.path == "clip.srt" and info.value.reason.startswith(reason)
    skipped: list[DataError] = []
    narrations = parse_srt(text, "clip.srt", skipped=skipped)
    assert len(skipped) == 1 and skipped[0].reason == info.value.reason
    assert all(n.text in ("x", "y") for n in narrations)


VTT = """WEBVTT - with everything
Kind: captions

STYLE
::cue { color: yellow }

NOTE a comment that spans
two lines

intro
00:01.000 --> 00:04.000 align:start position:10%
<v Roger Bingham>We are in <i>New York</i> &amp; <c.loud>it's</c> loud
&lt;3

00:00:04.000 --> 00:00:05.500
second

REGION
id:fred

01:00:00.000 --> 01:00:01.000 line:0
third
"""


def test_vtt_example():
    assert parse_vtt(VTT) == [N(1.0, 4.0, "We are in New York & it's loud <3"), N(4.0, 5.5, "second"),
                              N(3600.0, 3601.0, "third")]


YOUTUBE = """WEBVTT
Kind: captions
Language: en

00:00:00.030 --> 00:00:03.500 align:start position:0%
·
hi<00:00:00.450><c> everyone</c><00:00:00.900><c> welcome</c>

00:00:03.500 --> 00:00:03.510 align:start position:0%
hi everyone welcome
·

00:00:03.510 --> 00:00:06.289 align:start position:0%
hi everyone welcome
to<00:00:03.990><c> my</c><00:00:04.290><c> channel</c>

00:00:06.289 --> 00:00:06.299 align:start position:0%
to my channel
·

00:00:06.299 --> 00:00:08.000 align:start position:0%
to my channel
today we bake

00:00:20.000 --> 00:00:21.000 align:start position:0%
today we bake
""".replace("·", " ")


def test_youtube_rolling_captions_are_deduplicated():
    assert parse_vtt(YOUTUBE) == [N(0.03, 3.51, "hi everyone welcome"), N(3.51, 6.299, "to my channel"),
                                  N(6.299, 8.0, "today we bake"), N(20.0, 21.0, "today we bake")]  # said again later
    raw = parse_vtt(YOUTUBE, dedupe=False)
    assert len(raw) == 6 and raw[2] == N(3.51, 6.289, "hi everyone welcome to my channel")


@pytest.mark.parametrize("text, reason", [
    ("00:01.000 --> 00:02.000\nx\n", "line 1: missing 'WEBVTT' header"),
    ("WEBVTTX\n", "line 1: missing 'WEBVTT' header"),
    ("WEBVTT\n\n00:01.000 --> 00:00.500\nx\n\n00:03.000 --> 00:04.000\ny\n", "line 3: end before start"),
    ("WEBVTT\n\nstray words\nmore\n\n00:03.000 --> 00:04.000\ny\n", "line 3: block without a timing line"),
    ("WEBVTT\n\n00:03.000 --> 00:04.000\ny\n\n00:60.000 --> 01:04.000\nx\n", "line 6: minutes or seconds out of"),
])
def test_vtt_problems(text, reason):
    with pytest.raises(DataError) as info:
        parse_vtt(text, "clip.vtt")
    assert info.value.reason.startswith(reason)
    if "header" not in reason:  # a missing header is fatal: it is not a WebVTT file
        skipped: list[DataError] = []
        assert parse_vtt(text, "clip.vtt", skipped=skipped) == [N(3.0, 4.0, "y")] and len(skipped) == 1


@pytest.mark.parametrize("encoding, bom", [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("utf-16-le", b"\xff\xfe"),
                                           ("utf-16-be", b"\xfe\xff"), ("cp1252", b""), ("latin-1", b"")])
def test_read_subtitles_encodings(tmp_path, encoding, bom):
    text = "1\r\n00:00:01,000 --> 00:00:02,000\r\nCaf\u00e9 cr\u00e8me\r\n"
    path = tmp_path / "v.SRT"
    path.write_bytes(bom + text.encode(encoding))
    assert read_subtitles(path) == [N(1.0, 2.0, "Caf\u00e9 cr\u00e8me")]


def test_read_subtitles_fallbacks_and_errors(tmp_path):
    def read(name: str, data: bytes) -> list[Narration]:
        (tmp_path / name).write_bytes(data)
        return read_subtitles(tmp_path / name)

    cue = b"1\n00:00:01,000 --> 00:00:02,000\n"
    assert read("q.srt", cue + b"\x93quoted\x94 \x81\n")[0].text == "\x93quoted\x94 \x81"  # 0x81: not cp1252
    assert read("w.srt", cue + b"\x93quoted\x94\n")[0].text == "\u201cquoted\u201d"
    assert read("empty.srt", b"") == []
    with pytest.raises(DataError, match="not a subtitle file: extension '.ass'"):
        read("v.ass", b"[Script Info]\n")
    with pytest.raises(DataError, match="not utf-16-le despite its byte-order mark"):
        read("e.vtt", b"\xff\xfeW\x00\x00\xd8")
    with pytest.raises(DataError, match="cannot read"):
        read_subtitles(tmp_path / "absent.vtt")


def test_find_subtitles_order(tmp_path):
    video = tmp_path / "clip.mp4"
    video.touch()
    order = ["clip.srt", "clip.vtt", "clip.EN.SRT", "clip.en.vtt", "clip.en-GB.vtt", "clip.en-US.srt"]
    for name in order + ["clip.fr.srt", "clip2.srt", "clip.mp4.srt", "clip.en.txt"]:
        (tmp_path / name).touch()
    for name in order:
        assert find_subtitles(video) == tmp_path / name
        (tmp_path / name).unlink()
    assert find_subtitles(video) is None
    assert find_subtitles(video, languages=("de", "FR")) == tmp_path / "clip.fr.srt"
    assert find_subtitles(tmp_path / "missing" / "x.mp4") is None


def test_find_subtitles_reuses_a_listing_until_the_folder_changes(tmp_path):
    (tmp_path / "a.mp4").touch()
    old = os.stat(tmp_path).st_mtime_ns - 10**10  # 10 s ago: old enough to cache
    os.utime(tmp_path, ns=(old, old))
    assert find_subtitles(tmp_path / "a.mp4") is None
    (tmp_path / "a.srt").touch()
    os.utime(tmp_path, ns=(old, old))  # a change hidden by an unchanged timestamp is not seen...
    assert find_subtitles(tmp_path / "a.mp4") is None
    os.utime(tmp_path, ns=(old, old + 1))  # ...one that moves it is
    assert find_subtitles(tmp_path / "a.mp4") == tmp_path / "a.srt"


def test_nearest_and_at_examples():
    narrations = [N(0, 1, "a"), N(2, 3, "b"), N(10, 12, "c"), N(4, 5, "d"), N(4, 5, "e")]
    assert nearest_narrations(narrations, 3.5, 3.5, 2) == [N(2, 3, "b"), N(4, 5, "d")]  # 0.5 each; d before e
    assert nearest_narrations(narrations, 3.5, 3.5, 3) == [N(2, 3, "b"), N(4, 5, "d"), N(4, 5, "e")]
    assert nearest_narrations(narrations, 6, 8, 1) == [N(4, 5, "d")]  # 1 s away; c is 2 s away
    assert nearest_narrations(narrations, 6, 8, 0) == [] and nearest_narrations([], 0, 1, 3) == []
    assert narration_at(narrations, 2.5, 4.8) == N(4, 5, "d")  # 0.8 s of overlap beats b's 0.5 s
    assert narration_at(narrations, 7, 8) == N(4, 5, "d") and narration_at([], 0, 1) is None
    with pytest.raises(ValueError, match="k must be >= 0"):
        nearest_narrations(narrations, 0, 1, -1)
    with pytest.raises(ValueError, match="window ends before it starts"):
        narration_at(narrations, 2, 1)


@given(st.lists(st.tuples(st.integers(0, 60_000), st.integers(0, 20_000)), max_size=12),
       st.integers(0, 80_000), st.integers(0, 30_000), st.integers(0, 15))
def test_nearest_narrations_property(spans, start_ms, length_ms, k):
    narrations = [N(s / 1000, (s + d) / 1000, f"n{i}") for i, (s, d) in enumerate(spans)]  # ms: many exact ties
    start, end = start_ms / 1000, (start_ms + length_ms) / 1000

    def distance(n: Narration) -> float:
        return max(0.0, n.start - end, start - n.end)

    chosen = nearest_narrations(narrations, start, end, k)
    assert len(chosen) == min(k, len(narrations))
    assert [(n.start, n.end) for n in chosen] == sorted((n.start, n.end) for n in chosen)
    all_distances = sorted(distance(n) for n in narrations)  # returned ones are the k smallest (ties: any)
    assert sorted(distance(n) for n in chosen) == all_distances[: len(chosen)]
    at = narration_at(narrations, start, end)
    assert (at is None) == (not narrations) and (at is None or distance(at) == all_distances[0])


WORD = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), blacklist_characters="<>{}&-\\"),
               min_size=1, max_size=6) | st.just("&")


def clock(ms: int, sep: str, hours: bool = True) -> str:
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return (f"{h:02d}:" if hours or h else "") + f"{m:02d}:{s:02d}{sep}{ms:03d}"


@st.composite
def cues(draw, unique_words: bool = False) -> list[tuple[int, int, list[str]]]:
    out = []
    for i in range(draw(st.integers(0, 8))):
        start, duration = draw(st.integers(0, 100 * 3_600_000)), draw(st.integers(0, 60_000))
        words = draw(st.lists(WORD, min_size=1, max_size=6))
        out.append((start, start + duration, [f"{w}#{i}.{j}" for j, w in enumerate(words)] if unique_words else words))
    return out


def render_text(draw, words: list[str], vtt: bool) -> list[str]:
    """Words spread over lines, some wrapped in tags that the parser must strip."""
    tags = ["<i>{}</i>", "<b>{}</b>"] + (["<c.colorE5E5E5>{}</c>", "<00:00:01.000>{}", "<v Speaker Name>{}"] if vtt
                                         else ['<font color="#ff0000">{}</font>', "{{\\an8}}{}"])
    lines, line = [], []
    for word in words:
        word = word.replace("&", "&amp;") if vtt else word
        line.append(draw(st.sampled_from(tags + ["{}"] * 4)).format(word))
        if draw(st.integers(0, 3)) == 0:
            lines.append(" ".join(line))
            line = []
    return lines + ([" ".join(line)] if line else [])


def render(draw, items, vtt: bool) -> str:
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    blank = st.sampled_from([""]) if vtt else st.sampled_from(["", " ", "\t"])
    parts = [draw(st.sampled_from(["WEBVTT", "WEBVTT - title", "WEBVTT\nKind: captions\nLanguage: en"]))] if vtt else []
    for i, (start, end, words) in enumerate(items):
        parts += [draw(blank) for _ in range(draw(st.integers(1 if parts else 0, 3)))]
        if vtt and draw(st.booleans()):
            parts += ["NOTE a comment" if draw(st.booleans()) else "NOTE\nacross lines", ""]
        if draw(st.booleans()):
            parts.append(str(i + 1) if not vtt else f"cue-{i}")
        if vtt:
            settings_ = draw(st.sampled_from(["", " align:start position:0%", "\tline:90%"]))
            hours = draw(st.booleans())
            parts.append(f"{clock(start, '.', hours)} --> {clock(end, '.', hours)}{settings_}")
        else:
            parts.append(f"{clock(start, ',')} --> {clock(end, ',')}" + draw(st.sampled_from(["", " X1:1 X2:2"])))
        parts += render_text(draw, words, vtt)
    text = "\n".join(parts).replace("\n", newline) + (newline if draw(st.booleans()) else "")
    return draw(st.sampled_from(["", "\ufeff"])) + text


def assert_same(parsed: list[Narration], items) -> None:
    want = sorted((N(s / 1000, e / 1000, " ".join(w)) for s, e, w in items), key=lambda n: (n.start, n.end))
    assert len(parsed) == len(want)
    for got, exp in zip(parsed, want):
        assert abs(got.start - exp.start) <= 0.001 and abs(got.end - exp.end) <= 0.001
        assert got.text == exp.text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), vtt=st.booleans())
def test_round_trip_through_files(tmp_path, data, vtt):
    items = data.draw(cues())
    text = render(data.draw, items, vtt)
    encoding = data.draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-be"]))
    path = tmp_path / ("subs.vtt" if vtt else "subs.srt")
    path.write_bytes((b"\xfe\xff" if encoding == "utf-16-be" else b"") + text.lstrip("\ufeff").encode(encoding))
    assert_same(read_subtitles(path, dedupe=False), items)
    assert_same((parse_vtt if vtt else parse_srt)(text, dedupe=False), items)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), vtt=st.booleans())
def test_round_trip_with_dedupe_when_no_line_repeats(data, vtt):
    items = data.draw(cues(unique_words=True))
    assert_same((parse_vtt if vtt else parse_srt)(render(data.draw, items, vtt)), items)


FRAGMENTS = st.sampled_from(["1", "00:00:01,000 --> 00:00:02,000", "00:01.000 --> 00:00.500", "-->", "WEBVTT",
                             "NOTE", "STYLE", "", " ", "text", "<i>", "{\\an8}", "99:99:99,999 --> 1:2:3", "\ufeff",
                             "00:00.000 --> 00:00.000 align:start", "&amp;", "\r", "cue-1"])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.lists(FRAGMENTS, max_size=30).map("\n".join),
                 st.lists(FRAGMENTS, max_size=30).map(lambda parts: "WEBVTT\n\n" + "\n".join(parts))))
def test_parsers_never_crash(text):
    for parse in (parse_srt, parse_vtt):
        for skipped in (None, []):
            try:
                narrations = parse(text, skipped=skipped)
            except DataError as e:
                assert skipped is None or (parse is parse_vtt and "WEBVTT" in e.reason)
                continue
            assert all(n.start <= n.end and n.text and n.text == n.text.strip() for n in narrations)
            assert [n.start for n in narrations] == sorted(n.start for n in narrations)
