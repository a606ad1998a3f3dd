"""Plain-data descriptions of an MMV network and of the input it expects.

``MMVConfig`` says what to build; ``InputProtocol`` says how inputs must be prepared for the weights
(frames, fps, crop, value range, audio front end, words per narration). Both round-trip through JSON
(``config.json`` beside ``model.safetensors``), so a checkpoint always carries its own preprocessing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

GRAPHS = ("shared", "disjoint", "fac", "fac_relu", "fac_bnrelu")

# The six heads of the release, by their Haiku names: (source modality, target space).
HEAD_NAMES = ("vid2audio_embd", "vis_embd", "audio_embd", "audio2txt_embd", "txt_embd", "txt2audio_embd")


@dataclass
class BackboneConfig:
    """One tower. ``arch``: ``s3d`` | ``tsm_resnet`` (video) or ``resnet`` (audio).

    ``blocks`` / ``channels`` / ``stem_channels`` override the depth's standard layout (small models).
    ``width_mult`` may be fractional for S3D only.
    """

    arch: str
    depth: int = 50
    width_mult: float = 1
    shift_fraction: float = 0.125
    blocks: Optional[tuple[int, ...]] = None
    channels: Optional[tuple[int, ...]] = None
    stem_channels: Optional[int] = None


@dataclass
class TextConfig:
    vocab_size: int = 65536
    word_dim: int = 300
    sentence_dim: int = 2048


@dataclass
class HeadConfig:
    mode: str = "linear"
    bn_out: bool = False


def _released_heads() -> dict[str, HeadConfig]:
    return {
        "vid2audio_embd": HeadConfig("mlp@512", True),
        "vis_embd": HeadConfig("linear", True),
        "audio_embd": HeadConfig("linear", False),
        "audio2txt_embd": HeadConfig("linear", False),
        "txt_embd": HeadConfig("linear", False),
        "txt2audio_embd": HeadConfig("linear", False),
    }


@dataclass
class MMVConfig:
    """The whole network. Defaults are the released FAC model (``fac_relu``, 512-d S_va, 256-d S_vat).

    ``at_dim`` is the width of the audio<->text heads (``audio2txt_embd`` / ``txt2audio_embd``),
    which form their own space only in the ``disjoint`` graph.
    ``use_audio_text``: in FAC, route audio to S_vat through ``vis_embd`` in training too (the
    release did not, to keep audio out of that head's BN statistics).
    """

    video: BackboneConfig = field(default_factory=lambda: BackboneConfig("s3d"))
    audio: BackboneConfig = field(default_factory=lambda: BackboneConfig("resnet", depth=50))
    text: TextConfig = field(default_factory=TextConfig)
    graph: str = "fac_relu"
    va_dim: int = 512
    vat_dim: int = 256
    at_dim: int = 512
    heads: dict[str, HeadConfig] = field(default_factory=_released_heads)
    use_audio_text: bool = False

    def __post_init__(self) -> None:
        if self.graph not in GRAPHS:
            raise ValueError(f"unknown embedding graph {self.graph!r}; choose one of {', '.join(GRAPHS)}")
        missing = [n for n in HEAD_NAMES if n not in self.heads]
        unknown = [n for n in self.heads if n not in HEAD_NAMES]
        if missing or unknown:
            raise ValueError(f"heads must name exactly {HEAD_NAMES}; missing {missing}, unknown {unknown}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MMVConfig:
        data = dict(data)
        _reject_unknown(cls, data, "model config")
        for key, sub in (("video", BackboneConfig), ("audio", BackboneConfig), ("text", TextConfig)):
            if key in data:
                _reject_unknown(sub, data[key], f"model config '{key}'")
                data[key] = sub(**_tuples(data[key]))
        if "heads" in data:
            heads = {}
            for name, head in data["heads"].items():
                _reject_unknown(HeadConfig, head, f"head '{name}'")
                heads[name] = HeadConfig(**head)
            data["heads"] = heads
        return cls(**data)


@dataclass
class AudioFrontEnd:
    """Log-mel front end of the release (DMVR's ``compute_audio_spectrogram`` defaults, MMV_SPEC C.2)."""

    sample_rate: int = 48000
    frame_length: int = 2048
    frame_step: int = 1024
    num_mel_bins: int = 80
    lower_edge_hz: float = 80.0
    upper_edge_hz: float = 7600.0
    log_offset: float = 1e-6


@dataclass
class InputProtocol:
    """How to prepare inputs for a set of weights.

    Video: ``num_frames`` frames sampled at ``fps``, short side resized to ``resize_short_side``, then
    ``crop_size`` crops for training and ``eval_crop_size`` centre crops for evaluation, RGB floats in
    ``value_range`` with no mean/std normalisation. Audio: the same time span as the frames through
    ``audio``. Text: at most ``max_words`` word ids per narration.
    """

    num_frames: int = 32
    fps: float = 10.0
    resize_short_side: int = 224
    crop_size: int = 200
    eval_crop_size: int = 224
    value_range: tuple[float, float] = (0.0, 1.0)
    audio: AudioFrontEnd = field(default_factory=AudioFrontEnd)
    max_words: int = 16

    @property
    def clip_seconds(self) -> float:
        return self.num_frames / self.fps

    @property
    def audio_samples(self) -> int:
        return int(round(self.clip_seconds * self.audio.sample_rate))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputProtocol:
        data = dict(data)
        _reject_unknown(cls, data, "input protocol")
        if "audio" in data:
            _reject_unknown(AudioFrontEnd, data["audio"], "input protocol 'audio'")
            data["audio"] = AudioFrontEnd(**data["audio"])
        if "value_range" in data:
            data["value_range"] = tuple(data["value_range"])
        return cls(**data)


def _reject_unknown(cls: type, data: Any, what: str) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{what}: unknown field(s) {unknown}; known: {sorted(known)}")


def _tuples(data: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
