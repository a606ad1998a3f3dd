"""From a video (file or shard bytes) to one training sample: window, frames, audio, narrations.

The way of one clip (DESIGN.md): pick a window -> decode its frames and audio -> augment the frames ->
log-mel the audio -> tokenize the K narrations nearest in time. Training windows of narrated videos
are drawn around a random narration (so that a clip has text, as HowTo100M training does); other
windows are uniform over the video (or over an AudioSet segment's span).
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from typing import Any, Optional

import torch
from torch.utils.data import Dataset

from mmv.data.audio import log_mel
from mmv.data.captions import Narration, narration_at, nearest_narrations
from mmv.data.samples import Skipped
from mmv.data.sources.base import ClipItem
from mmv.data.text import Tokenizer
from mmv.data.transforms import EvalTransform, TrainTransform
from mmv.data.video import VideoInfo, decode_clip, probe_video
from mmv.errors import DataError
from mmv.models.config import InputProtocol

DEFAULT_CANDIDATES = 5  # narrations per clip for MIL-NCE (MMV_SPEC D: the 5 nearest, VATT's setting)


def _probe_file(path: str) -> VideoInfo:
    """``probe_video`` once per file version (every epoch draws a new window from the same file)."""
    try:
        stat = os.stat(path)
    except OSError:
        return probe_video(path)  # gives the DataError
    return _probe_cached(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=65536)
def _probe_cached(path: str, mtime_ns: int, size: int) -> VideoInfo:
    return probe_video(path)


def stable_seed(*parts: Any) -> int:
    """A 63-bit seed from ``parts`` (seed, epoch, index...), the same in every process (unlike ``hash``)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def seeded_generator(*parts: Any) -> torch.Generator:
    """A generator whose seed is a stable function of ``parts`` (seed, epoch, index...): any worker,
    any resume, the same sample gets the same randomness."""
    return torch.Generator().manual_seed(stable_seed(*parts))


class ClipBuilder:
    """Makes the sample dict of ``mmv.data.samples`` for one window of one video.

    Args:
      protocol: frames, fps, crops and audio front end of the model being trained.
      tokenizer: turns narrations into word ids (``protocol.max_words`` per narration).
      num_candidates: K, narrations per clip (rows of ``text``; missing rows are masked).
      train: random window and augmentation; otherwise the first eval window and a centre crop.
    """

    def __init__(self, protocol: InputProtocol, tokenizer: Optional[Tokenizer],
                 num_candidates: int = DEFAULT_CANDIDATES, train: bool = True):
        if tokenizer is not None and tokenizer.max_words != protocol.max_words:
            raise ValueError(f"tokenizer gives {tokenizer.max_words} words, the protocol wants {protocol.max_words}")
        self.protocol, self.tokenizer, self.k, self.train = protocol, tokenizer, num_candidates, train
        self.transform = TrainTransform(protocol) if train else EvalTransform(protocol)

    @property
    def clip_seconds(self) -> float:
        return self.protocol.num_frames / self.protocol.fps

    def window(self, duration: float, narrations: Sequence[Narration], span: Optional[tuple[float, float]],
               generator: torch.Generator) -> float:
        """Start time (s) of the clip window inside ``span`` (default: the whole video)."""
        lo, hi = span if span is not None else (0.0, duration)
        hi = min(hi, duration) if duration > 0 else hi
        latest = max(lo, hi - self.clip_seconds)
        if not self.train:
            return lo
        inside = [n for n in narrations if n.end > lo and n.start < hi]
        if inside:
            pick = inside[int(torch.randint(len(inside), (), generator=generator))]
            # windows overlapping the narration: start in (n.start - clip, n.end), within the span
            a, b = max(lo, pick.start - self.clip_seconds), min(latest, pick.end)
            if b > a:
                return a + float(torch.rand((), generator=generator, dtype=torch.float64)) * (b - a)
        return lo + float(torch.rand((), generator=generator, dtype=torch.float64)) * (latest - lo)

    def __call__(self, media: str | bytes, narrations: Sequence[Narration] = (), span=None, *,
                 generator: torch.Generator, meta: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """The sample of one window of ``media`` (a path, or the bytes of a shard's mp4)."""
        info = probe_video(media) if isinstance(media, bytes) else _probe_file(str(media))
        start = self.window(info.duration, narrations, span, generator)
        p = self.protocol
        clip = decode_clip(media, start, p.num_frames, p.fps, sample_rate=p.audio.sample_rate, info=info)
        video = self.transform(clip.frames, generator)  # the eval transform ignores the generator
        audio = log_mel(clip.audio, p.audio.sample_rate, front_end=p.audio).unsqueeze(0)
        text, text_mask = self.encode_narrations(narrations, start)
        return {"video": video, "audio": audio, "audio_mask": torch.tensor(clip.has_audio),
                "text": text, "text_mask": text_mask,
                "meta": {**(meta or {}), "start": start, "duration": info.duration}}

    def encode_narrations(self, narrations: Sequence[Narration], start: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``[K, N]`` word ids of the K narrations nearest to the window, nearest first, and their mask."""
        pad = self.tokenizer.vocab.pad_id if self.tokenizer is not None else 0
        text = torch.full((self.k, self.protocol.max_words), pad, dtype=torch.int64)
        mask = torch.zeros(self.k, dtype=torch.bool)
        if self.tokenizer is None or not narrations:
            return text, mask
        end = start + self.clip_seconds
        nearest = nearest_narrations(narrations, start, end, self.k)
        # Row 0 is the narration at the clip's time (most overlap), then the others by closeness.
        first = narration_at(nearest, start, end)
        middle = (start + end) / 2
        nearest.sort(key=lambda n: (n is not first, max(n.start - end, start - n.end, 0.0),
                                    abs((n.start + n.end) / 2 - middle)))
        text[: len(nearest)] = self.tokenizer.encode_batch([n.text for n in nearest])
        mask[: len(nearest)] = True
        return text, mask


class ClipDataset(Dataset):
    """Map-style dataset over clip items: item i gives one random window of video i per epoch.

    A file that cannot be decoded gives a ``Skipped`` record (counted and reported by the trainer).
    """

    def __init__(self, items: Sequence[ClipItem], builder: ClipBuilder, seed: int = 0):
        if not items:
            raise ValueError("no usable videos in this source")
        self.items, self.builder, self.seed, self.epoch = list(items), builder, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any] | Skipped:
        item = self.items[index]
        generator = seeded_generator(self.seed, self.epoch, index)
        try:
            return self.builder(item.path, item.narrations, item.span, generator=generator,
                                meta={"path": item.path, "source": item.source, "labels": list(item.labels)})
        except DataError as err:
            return Skipped(err.path, err.reason)
