"""Sources: which videos each layout yields, and what it reports it could not use."""

import json

import pytest

from mmv.data.captions import Narration
from mmv.data.sources.audioset import audioset_items
from mmv.data.sources.folder import folder_items
from mmv.data.sources.howto100m import howto100m_items
from mmv.data.sources.spec import load_items, read_spec, spec_for_folder
from mmv.data.sources.subtitles import subtitle_items
from tests.data.fixtures import write_video


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    for name in ("vid_a", "vid_b", "-dash"):
        write_video(root / f"{name}.mp4", num_frames=20, fps=10)
    (root / "notes.txt").write_text("not a video")
    (root / ".hidden.mp4").write_bytes(b"")
    return root


def test_howto100m_json_layout(videos, tmp_path):
    captions = tmp_path / "caption.json"
    captions.write_text(json.dumps({
        "vid_a": {"start": [0.0, 1.0], "end": [1.0, 2.0], "text": ["add the flour", "stir"]},
        "-dash": {"start": [0.5], "end": [1.5], "text": ["whisk eggs"]},
        "elsewhere": {"start": [0], "end": [1], "text": ["not downloaded"]},
    }))
    items, report = howto100m_items(videos, captions)
    assert [i.video_id for i in items] == ["-dash", "vid_a"]
    assert items[1].narrations == (Narration(0.0, 1.0, "add the flour"), Narration(1.0, 2.0, "stir"))
    assert report.items == 2
    assert report.problems == {"videos without narrations (skipped)": 1, "narrated videos not found on disk": 1}
    assert report.examples["narrated videos not found on disk"] == ["elsewhere"]
    assert "2 usable videos" in report.summary()


def test_howto100m_bad_entries_are_counted_not_fatal(videos, tmp_path):
    captions = tmp_path / "caption.json"
    captions.write_text(json.dumps({
        "vid_a": {"start": [0.0, "x"], "end": [1.0, 2.0], "text": ["ok", "bad time"]},
        "vid_b": {"start": [0.0], "end": [1.0, 2.0], "text": ["unequal"]},
    }))
    items, report = howto100m_items(videos, captions)
    assert [i.video_id for i in items] == ["vid_a"] and len(items[0].narrations) == 1
    assert report.problems["malformed narrations (skipped)"] == 2


def test_subtitle_folder(videos, tmp_path):
    (videos / "vid_a.srt").write_text("1\n00:00:00,500 --> 00:00:01,500\nHello <i>there</i>\n")
    (videos / "vid_b.en.vtt").write_text("WEBVTT\n\n00:01.000 --> 00:01.800\nsecond video\n")
    try:
        items, report = subtitle_items(videos)
        by_id = {i.video_id: i for i in items}
        assert by_id["vid_a"].narrations == (Narration(0.5, 1.5, "Hello there"),)
        assert by_id["vid_b"].narrations == (Narration(1.0, 1.8, "second video"),)
        assert by_id["-dash"].narrations == ()
        assert report.problems == {"videos without subtitles (no text)": 1}
        strict, strict_report = subtitle_items(videos, require_text=True)
        assert len(strict) == 2 and strict_report.problems == {"videos without subtitles (skipped)": 1}
        assert spec_for_folder(videos).type == "subtitles"
    finally:
        (videos / "vid_a.srt").unlink()
        (videos / "vid_b.en.vtt").unlink()


def test_audioset_segments(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    write_video(clips / "abc_30000_40000.mp4", num_frames=10, fps=10)
    write_video(clips / "Yfull.mp4", num_frames=10, fps=10)
    csv = tmp_path / "segments.csv"
    csv.write_text("# Segments csv created Sun Mar  5 10:54:31 2017\n# num_ytid=3, num_segs=3\n"
                   "# YTID, start_seconds, end_seconds, positive_labels\n"
                   'abc, 30.000, 40.000, "/m/09x0r,/m/04rlf"\n'
                   'full, 5.000, 15.000, "/m/07q6cd_"\n'
                   'gone, 0.000, 10.000, "/m/09x0r"\n')
    items, report = audioset_items(clips, csv)
    assert [(i.video_id, i.span, i.labels) for i in items] == [
        ("abc", None, ("/m/09x0r", "/m/04rlf")),      # a trimmed clip: the whole file is the segment
        ("full", (5.0, 15.0), ("/m/07q6cd_",)),        # a full video: the window stays in the segment
    ]
    assert report.problems == {"segments without a local clip": 1}


def test_folder_and_spec(videos, tmp_path):
    items, report = folder_items(videos)
    assert [i.video_id for i in items] == ["-dash", "vid_a", "vid_b"] and report.items == 3
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"sources": [
        {"type": "folder", "videos": str(videos), "weight": 2, "name": "plain"},
        {"type": "shards", "urls": "shards/x-{000..001}.tar"},
    ]}))
    plain, shards = read_spec(spec)
    assert (plain.type, plain.name, plain.weight) == ("folder", "plain", 2.0)
    assert shards.is_shards and shards.paths["urls"] == str(tmp_path / "shards/x-{000..001}.tar")
    assert len(load_items(plain)[0]) == 3
    for bad, message in [({"sources": []}, "non-empty"), ({"sources": [{"type": "ftp"}]}, "needs a"),
                         ({"sources": [{"type": "howto100m", "videos": "v"}]}, "missing")]:
        with pytest.raises(ValueError, match=message):
            read_spec(bad)
    with pytest.raises(ValueError, match="no such source spec"):
        read_spec(tmp_path / "absent.json")
