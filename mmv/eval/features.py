"""Frozen features of a dataset for linear probes and retrieval (MMV_SPEC C.4), cached on disk.

Training features are ``num_passes`` augmented passes over each example (a random window, a random
horizontal flip and a random crop: the official UCF101 script's 10 epochs of augmented features); test
features are ``num_windows`` linearly spaced windows (``eval_window_starts``) with a centre crop. Both come
from one layer, the backbone output (``video_repr``) by default, with the model in eval mode.

Media: video examples are decoded with ``decode_clip``; audio (audio-only files, or the sound of videos)
with ``load_audio`` and windowed in memory, then ``log_mel``; images are decoded once and either repeated
into a static video (input inflation, for video networks) or given as ``[B, 3, H, W]`` images (deflated
networks). A file that cannot be used is skipped and listed with its reason in ``Features.skipped``.

The cache key is a hash of the weights (or a given identity), the resolved spec, the example list (ids,
paths, segments, labels, file sizes and modification times), the train flag and the seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import av
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mmv.atomic import atomic_write
from mmv.data.audio import log_mel
from mmv.data.audiofile import load_audio, take_window
from mmv.data.clips import seeded_generator
from mmv.data.image import decode_image
from mmv.data.transforms import EvalTransform, TrainTransform
from mmv.data.video import decode_clip, eval_window_starts, probe_video, train_window_start
from mmv.errors import DataError
from mmv.eval.datasets.base import Example, read_media
from mmv.eval.encoders import Encoder, as_encoder, encoder_identity, is_mmv, layer_tower
from mmv.models.config import InputProtocol

FEATURE_VERSION = 1  # bump when preprocessing changes: old cache entries then miss
MEDIA = ("video", "audio", "image")


@dataclass(frozen=True)
class FeatureSpec:
    """How features are made; ``None`` fields come from the model's protocol (``resolve``).

    Attributes:
      modality: the examples' media: ``video`` | ``audio`` | ``image``.
      layer: an output key (``video_repr``, ``video_va``, ``video_vat``, ``audio_repr`` ...) or an endpoint
        (``video:Mixed_4f``, ``audio:last_conv``); default ``<tower>_repr``. For non-MMV networks: the key of
        a dict output, or None for a tensor output.
      num_windows: test windows per example; num_passes: augmented training passes per example.
      num_frames, fps: video clip; resize_short_side, crop: short side, then crop side (random for training,
        centre for test; default the protocol's eval crop, 224, as the official script).
      clip_seconds: audio window (default ``num_frames / fps``, the span the audio tower was trained on).
      max_seconds: only the first ``max_seconds`` of each example hold windows (the official UCF101 data keeps
        the first 20 s); None: all of it.
      audio_pad: ``loop`` or ``zeros`` for audio shorter than the window.
      flip, scale_jitter, color: training augmentations (the official linear protocol flips and crops only).
      image_input: ``static_video`` (the image repeated ``num_frames`` times) or ``image`` ([B, 3, H, W]).
    """

    modality: str = "video"
    layer: Optional[str] = None
    num_windows: int = 10
    num_passes: int = 10
    num_frames: Optional[int] = None
    fps: Optional[float] = None
    resize_short_side: Optional[int] = None
    crop: Optional[int] = None
    clip_seconds: Optional[float] = None
    max_seconds: Optional[float] = None
    audio_pad: str = "loop"
    flip: bool = True
    scale_jitter: bool = False
    color: bool = False
    image_input: str = "static_video"

    def __post_init__(self) -> None:
        if self.modality not in MEDIA:
            raise ValueError(f"modality must be one of {MEDIA}, got {self.modality!r}")
        if self.num_windows < 1 or self.num_passes < 1:
            raise ValueError(f"need num_windows, num_passes >= 1, got {self.num_windows}, {self.num_passes}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0, got {self.max_seconds}")
        if self.audio_pad not in ("loop", "zeros"):
            raise ValueError(f"audio_pad must be 'loop' or 'zeros', got {self.audio_pad!r}")
        if self.image_input not in ("static_video", "image"):
            raise ValueError(f"image_input must be 'static_video' or 'image', got {self.image_input!r}")

    @property
    def input(self) -> str:
        """What the network takes: ``video``, ``audio`` or ``image``."""
        tower = layer_tower(self.layer)
        if self.modality == "image":
            if tower == "audio":
                raise ValueError("image examples cannot feed the audio tower")
            return "image" if self.image_input == "image" else "video"
        if tower == "audio" or (tower is None and self.modality == "audio"):
            return "audio"
        if self.modality == "audio":
            raise ValueError(f"audio examples cannot feed layer {self.layer!r}")
        return "video"

    def resolve(self, protocol: Optional[InputProtocol]) -> FeatureSpec:
        """Every ``None`` filled from ``protocol``: the spec that is recorded and hashed."""
        missing = [f for f in ("num_frames", "fps", "resize_short_side", "crop") if getattr(self, f) is None]
        if missing and protocol is None:
            raise ValueError(f"the network has no input protocol: set {missing} in the FeatureSpec")
        p = protocol or InputProtocol()
        num_frames = self.num_frames if self.num_frames is not None else p.num_frames
        fps = float(self.fps if self.fps is not None else p.fps)
        return dataclasses.replace(
            self, num_frames=num_frames, fps=fps,
            resize_short_side=self.resize_short_side if self.resize_short_side is not None else p.resize_short_side,
            crop=self.crop if self.crop is not None else p.eval_crop_size,
            clip_seconds=float(self.clip_seconds if self.clip_seconds is not None else num_frames / fps))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Skipped:
    """An example that gave no features, and why."""

    id: str
    path: str
    reason: str


@dataclass
class Features:
    """``array [N, W, D]`` float32 (W windows or passes) of the examples that decoded, in input order."""

    array: np.ndarray
    ids: list[str]
    labels: list[tuple[int, ...]]
    skipped: list[Skipped] = field(default_factory=list)
    spec: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.array.ndim != 3 or len(self.ids) != self.array.shape[0] or len(self.labels) != len(self.ids):
            raise ValueError(f"features [N, W, D] with N ids and labels; got {self.array.shape}, "
                             f"{len(self.ids)} ids, {len(self.labels)} labels")

    @classmethod
    def from_arrays(cls, array: np.ndarray, labels: Sequence[int | Sequence[int]],
                    ids: Optional[Sequence[str]] = None) -> Features:
        """Features from plain arrays (``[N, D]`` is one window); labels are ints or label tuples."""
        array = np.asarray(array, dtype=np.float32)
        if array.ndim == 2:
            array = array[:, None]
        labs = [tuple(int(x) for x in lab) if isinstance(lab, (list, tuple, np.ndarray)) else (int(lab),)
                for lab in labels]
        return cls(array, list(ids) if ids is not None else [str(i) for i in range(len(labs))], labs)

    @property
    def windows(self) -> int:
        return self.array.shape[1]

    def skipped_counts(self) -> dict[str, int]:
        """Skipped examples by reason."""
        counts: dict[str, int] = {}
        for s in self.skipped:
            counts[s.reason] = counts.get(s.reason, 0) + 1
        return counts


# Decoding failures that skip an example; anything else is a bug and propagates.
_MEDIA_ERRORS = (DataError, av.error.FFmpegError, OSError)


def _read(ex: Example) -> str | bytes:
    try:
        return read_media(ex)
    except (OSError, zipfile.BadZipFile, KeyError) as e:  # KeyError: no such member in the archive
        raise DataError(ex.path, f"cannot read {ex.member or 'the file'} ({type(e).__name__}: {e})") from e


class _Inputs(Dataset):
    """Item i: ``(i, tensor [W, ...] of network inputs, None)`` or ``(i, None, reason)``."""

    def __init__(self, examples: Sequence[Example], spec: FeatureSpec, protocol: InputProtocol, train: bool,
                 seed: int):
        self.examples, self.spec, self.train, self.seed = list(examples), spec, train, seed
        self.protocol = dataclasses.replace(protocol, num_frames=spec.num_frames, fps=spec.fps,
                                            resize_short_side=spec.resize_short_side, crop_size=spec.crop,
                                            eval_crop_size=spec.crop)
        self.train_tf = TrainTransform(self.protocol, flip_p=0.5 if spec.flip else 0.0, jitter=spec.scale_jitter,
                                       color=spec.color)
        self.eval_tf = EvalTransform(self.protocol)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int):
        ex = self.examples[i]
        try:
            return i, self._windows(ex), None
        except _MEDIA_ERRORS as e:
            reason = e.reason if isinstance(e, DataError) else f"{type(e).__name__}: {e}"
            return i, None, reason

    def _generator(self, ex: Example, k: int) -> Optional[torch.Generator]:
        return seeded_generator("features", self.seed, ex.id, k) if self.train else None

    def _starts(self, duration: float, clip: float, gens: list) -> list[float]:
        if self.train:
            return [train_window_start(duration, clip, g) for g in gens]
        return eval_window_starts(duration, clip, self.spec.num_windows)

    def _windows(self, ex: Example) -> torch.Tensor:
        media = _read(ex)
        gens = [self._generator(ex, k) for k in range(_count(self.spec, self.train))]
        kind = self.spec.input
        if self.spec.modality == "image":
            picture = torch.from_numpy(decode_image(media))[None]  # [1, H, W, 3]
            clips = [self._frames(picture, g) for g in gens]
            if kind == "video":
                clips = [c.expand(-1, self.spec.num_frames, -1, -1).contiguous() for c in clips]
            else:
                clips = [c[:, 0] for c in clips]
            return torch.stack(clips)
        if kind == "audio":
            return self._audio(ex, media, gens)
        info = probe_video(media)
        end = info.duration if ex.end is None else min(ex.end, info.duration)
        duration = self._limit(max(0.0, end - ex.start))
        clips = []
        for start, g in zip(self._starts(duration, self.spec.num_frames / self.spec.fps, gens), gens):
            clip = decode_clip(media, ex.start + start, self.spec.num_frames, self.spec.fps, with_audio=False,
                               info=info)
            clips.append(self._frames(clip.frames, g))
        return torch.stack(clips)

    def _limit(self, duration: float) -> float:
        return duration if self.spec.max_seconds is None else min(duration, self.spec.max_seconds)

    def _frames(self, frames: torch.Tensor, g: Optional[torch.Generator]) -> torch.Tensor:
        return self.train_tf(frames, g) if self.train else self.eval_tf(frames)

    def _audio(self, ex: Example, media, gens: list) -> torch.Tensor:
        fe = self.protocol.audio
        sr = fe.sample_rate
        end = ex.end if self.spec.max_seconds is None else ex.start + self.spec.max_seconds
        end = end if ex.end is None else min(end, ex.end)
        signal = load_audio(media, sr, ex.start, end)
        if len(signal) == 0:
            raise DataError(ex.path, "no audio samples" + (f" after {ex.start:.2f} s" if ex.start else ""))
        n = int(round(self.spec.clip_seconds * sr))
        waves = [take_window(signal, int(round(start * sr)), n, loop=self.spec.audio_pad == "loop", where=ex.path)
                 for start in self._starts(len(signal) / sr, self.spec.clip_seconds, gens)]
        return log_mel(torch.from_numpy(np.stack(waves)), sr, fe).unsqueeze(1)  # [W, 1, frames, mel]


def extract_features(model: Any, examples: Sequence[Example], spec: FeatureSpec, *, train: bool,
                     device: str | torch.device = "cpu", batch_size: int = 16,
                     cache_dir: Optional[str | os.PathLike] = None,
                     progress: Optional[Callable[[int, int], None]] = None, seed: int = 0, num_workers: int = 0,
                     model_id: Optional[str] = None) -> Features:
    """Features of ``examples`` from ``model`` (MMV, ``Encoder`` or any callable) at ``spec.layer``.

    ``train``: ``num_passes`` augmented passes (seeded per example id and pass by ``seed``: reproducible,
    independent of order, batching and workers); else ``num_windows`` centre-cropped windows.
    ``batch_size`` counts clips (windows) per forward pass; ``num_workers`` decode in DataLoader workers.
    ``progress(done, total)`` is called after each example. The model is moved to ``device`` and run in
    eval mode (its previous mode is restored). With ``cache_dir`` a second identical call loads the result.
    """
    if spec.layer is None and is_mmv(model):
        spec = dataclasses.replace(spec, layer=f"{'audio' if spec.input == 'audio' else 'video'}_repr")
    encoder = as_encoder(model, spec.layer, spec.input)
    if encoder.protocol is None and any(getattr(spec, f) is None for f in ("num_frames", "fps", "crop")):
        raise ValueError("the network has no input protocol: give Encoder(protocol=...) or a complete spec")
    protocol = encoder.protocol or InputProtocol()
    spec = spec.resolve(protocol)
    record = {**spec.to_dict(), "input": spec.input, "train": train, "seed": seed,
              "protocol": protocol.to_dict(), "encoder": encoder.description, "feature_version": FEATURE_VERSION}
    record = json.loads(json.dumps(record))  # plain JSON values, as a cache hit returns them
    path = None
    if cache_dir is not None:
        identity = model_id or encoder_identity(encoder)
        path = Path(cache_dir) / f"{_cache_key(identity, record, examples)}.npz"
        if path.is_file():
            feats = load_features(path)
            feats.meta["cache"] = {"hit": True, "path": str(path)}
            return feats
    feats = _compute(encoder, examples, spec, protocol, train, seed, device, batch_size, num_workers, progress)
    feats.spec = record
    if path is not None:
        feats.meta["cache"] = {"hit": False, "path": str(path)}
        save_features(path, feats)
    return feats


def _compute(encoder: Encoder, examples: Sequence[Example], spec: FeatureSpec, protocol: InputProtocol,
             train: bool, seed: int, device, batch_size: int, num_workers: int, progress) -> Features:
    device = torch.device(device)
    module = encoder.module
    was_training = module.training if module is not None else False
    if module is not None:
        module.to(device).eval()
    loader = DataLoader(_Inputs(examples, spec, protocol, train, seed), batch_size=None, shuffle=False,
                        num_workers=num_workers, pin_memory=device.type == "cuda")
    outputs: dict[int, list[np.ndarray]] = {}
    skipped: list[Skipped] = []
    pending: list[tuple[int, torch.Tensor]] = []  # (example index, one window)
    t_start, t_model, n_clips, done = time.perf_counter(), 0.0, 0, 0

    def flush(force: bool) -> None:
        nonlocal t_model, n_clips
        while pending and (force or len(pending) >= batch_size):
            chunk, pending[:] = pending[:batch_size], pending[batch_size:]
            batch = torch.stack([x for _, x in chunk]).to(device, non_blocking=True)
            t0 = time.perf_counter()
            with torch.no_grad():
                out = encoder(batch).float().cpu().numpy()
            t_model += time.perf_counter() - t0
            n_clips += len(chunk)
            for (i, _), row in zip(chunk, out):
                outputs.setdefault(i, []).append(row)

    try:
        for i, windows, reason in loader:
            if windows is None:
                ex = examples[i]
                skipped.append(Skipped(ex.id, ex.path if ex.member is None else f"{ex.path}:{ex.member}", reason))
            else:
                pending.extend((i, w) for w in windows)
                flush(force=False)
            done += 1
            if progress is not None:
                progress(done, len(examples))
        flush(force=True)
    finally:
        if module is not None and was_training:
            module.train()
    kept = [i for i in range(len(examples)) if i in outputs]
    dim = next(iter(outputs.values()))[0].shape[0] if outputs else 0
    array = np.stack([np.stack(outputs[i]) for i in kept]) if kept else np.zeros((0, _count(spec, train), dim),
                                                                                  np.float32)
    wall = time.perf_counter() - t_start
    meta = {"timings": {"wall_s": wall, "model_s": t_model, "clips": n_clips,
                        "clips_per_s": n_clips / wall if wall > 0 else 0.0},
            "device": str(device), "batch_size": batch_size, "num_workers": num_workers,
            "n_examples": len(examples), "n_skipped": len(skipped)}
    return Features(array.astype(np.float32, copy=False), [examples[i].id for i in kept],
                    [tuple(examples[i].labels) for i in kept], skipped, {}, meta)


def _count(spec: FeatureSpec, train: bool) -> int:
    return spec.num_passes if train else spec.num_windows


def _file_stamp(ex: Example) -> list:
    try:
        st = os.stat(ex.path)
        return [st.st_size, st.st_mtime_ns]
    except OSError:
        return [None, None]


def _cache_key(identity: str, record: dict[str, Any], examples: Sequence[Example]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"model": identity, "spec": record}, sort_keys=True).encode())
    for ex in examples:
        h.update(json.dumps([ex.id, ex.path, ex.member, ex.start, ex.end, list(ex.labels), *_file_stamp(ex)]).encode())
        h.update(b"\n")
    return h.hexdigest()[:40]


def save_features(path: str | os.PathLike, feats: Features) -> None:
    """Write ``feats`` as one ``.npz`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    offsets = np.cumsum([0] + [len(lab) for lab in feats.labels]).astype(np.int64)
    flat = np.array([c for lab in feats.labels for c in lab], np.int64)
    extra = {"skipped": [dataclasses.asdict(s) for s in feats.skipped], "spec": feats.spec, "meta": feats.meta}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez adds no ".npz" to the name
            np.savez(f, array=feats.array, ids=np.array(feats.ids, dtype=np.str_), label_offsets=offsets,
                     labels=flat, extra=np.array(json.dumps(extra, default=str)))

    atomic_write(path, write)


def load_features(path: str | os.PathLike) -> Features:
    """Read what ``save_features`` wrote."""
    with np.load(path, allow_pickle=False) as z:
        offsets, flat = z["label_offsets"], z["labels"]
        labels = [tuple(int(c) for c in flat[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]
        extra = json.loads(str(z["extra"]))
        return Features(z["array"], [str(x) for x in z["ids"]], labels,
                        [Skipped(**s) for s in extra["skipped"]], extra["spec"], extra["meta"])
