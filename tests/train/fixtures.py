"""A small HowTo100M-format dataset in which what is seen, heard and said go together.

Video ``i`` shows one colour in one pattern (stripes across or down, a checkerboard, a plain field),
its sound is a steady tone of its own pitch, and its narrations name the colour and the pattern with
common English words (all in GloVe). A model that learns anything from it can retrieve each video
from its narration; chance is ``1 / len(videos)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from mmv.train.config import TrainConfig, train_preset

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 60, 230), "yellow": (235, 220, 40),
           "purple": (140, 40, 180), "white": (240, 240, 240), "orange": (245, 140, 20), "black": (15, 15, 15)}
PATTERNS = ("stripes", "columns", "squares", "plain")
PATTERN_WORDS = {"stripes": "horizontal stripes", "columns": "vertical bars", "squares": "checkered squares",
                 "plain": "plain solid"}


@dataclass(frozen=True)
class Look:
    colour: str
    pattern: str
    tone_hz: float

    @property
    def caption(self) -> str:
        return f"{self.colour} {PATTERN_WORDS[self.pattern]}"


def looks(n: int) -> list[Look]:
    names = list(COLOURS)
    return [Look(names[i % len(names)], PATTERNS[i % len(PATTERNS)], 400.0 * (i + 1)) for i in range(n)]


def frame_for(look: Look, index: int, width: int, height: int) -> np.ndarray:
    """The look's pattern on a dark background, drifting one pixel per frame."""
    y, x = np.mgrid[0:height, 0:width]
    period = 8
    if look.pattern == "stripes":
        on = ((y + index) // (period // 2)) % 2 == 0
    elif look.pattern == "columns":
        on = ((x + index) // (period // 2)) % 2 == 0
    elif look.pattern == "squares":
        on = (((x + index) // period) + (y // period)) % 2 == 0
    else:
        on = np.ones((height, width), bool)
    frame = np.full((height, width, 3), 70, np.uint8)
    frame[on] = COLOURS[look.colour]
    return frame


def write_look_video(path: Path, look: Look, seconds: float = 4.0, fps: int = 8, width: int = 48, height: int = 40,
                     sample_rate: int = 48000) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "12", "preset": "ultrafast", "keyint": str(fps)}
        audio = out.add_stream("aac", rate=sample_rate, layout="mono")
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(frame_for(look, i, width, height), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        t = np.arange(int(seconds * sample_rate)) / sample_rate
        wave = (0.5 * np.sin(2 * np.pi * look.tone_hz * t)).astype(np.float32)
        for s in range(0, len(wave), 4096):
            frame = av.AudioFrame.from_ndarray(wave[None, s:s + 4096], format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = sample_rate, s, Fraction(1, sample_rate)
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)
    return path


def build_dataset(root: Path, n: int = 4, seconds: float = 4.0) -> Path:
    """``root/videos/vid{i}.mp4`` + ``root/caption.json`` + ``root/spec.json``; returns the spec's path."""
    videos = root / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    captions = {}
    for i, look in enumerate(looks(n)):
        write_look_video(videos / f"vid{i}.mp4", look, seconds=seconds)
        # narrations every second, all naming what is on screen
        phrases = [look.caption, f"the {look.caption}", f"look at the {look.caption}", f"{look.colour} again"]
        starts = [float(k) for k in range(int(seconds))]
        captions[f"vid{i}"] = {"start": starts, "end": [s + 1.0 for s in starts],
                               "text": [phrases[k % len(phrases)] for k in range(len(starts))]}
    (root / "caption.json").write_text(json.dumps(captions), encoding="utf-8")
    spec = root / "spec.json"
    spec.write_text(json.dumps({"sources": [{"type": "howto100m", "videos": "videos", "captions": "caption.json"}]}),
                    encoding="utf-8")
    return spec


def tiny_config(spec: Path, out_dir: Path, **changes) -> TrainConfig:
    """A run that takes well under a second per step on one CPU thread."""
    config = train_preset("mmv_tiny_tsm")
    config.data, config.out_dir = str(spec), str(out_dir)
    config.protocol_overrides = {"num_frames": 4, "fps": 4.0, "resize_short_side": 36, "crop_size": 32,
                                 "eval_crop_size": 32}
    config.vocab_size, config.batch_size, config.steps, config.warmup_steps = 50, 4, 6, 2
    config.checkpoint_every, config.log_every, config.num_workers = 2, 1, 0
    config.threads, config.progress, config.num_candidates = 1, "off", 3
    for key, value in changes.items():
        setattr(config, key, value)
    return config
