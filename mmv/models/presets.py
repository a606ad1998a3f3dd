"""Named configurations (a registry in the manner of timm), each with the input protocol of its weights.

The three released models (``mmv_s3d``, ``mmv_tsm_resnet50``, ``mmv_tsm_resnet50x2``) use the paper's
protocol: 32 frames at 10 fps, short side 224, 200x200 training crops (224 centre crops at
evaluation), RGB in [0, 1], 3.2 s of 48 kHz audio as an 80-bin log-mel, 16 words per narration.
The ``tiny`` / ``small`` presets keep the same structure at a size that trains on a CPU.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import torch

from mmv.errors import UnknownNameError
from mmv.models.config import BackboneConfig, HeadConfig, InputProtocol, MMVConfig, TextConfig
from mmv.models.init import init_like_release
from mmv.models.mmv import MMV


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    config: Callable[[], MMVConfig]
    protocol: Callable[[], InputProtocol]
    released: bool = False


_REGISTRY: dict[str, Preset] = {}


def register_preset(preset: Preset) -> Preset:
    if preset.name in _REGISTRY:
        raise ValueError(f"preset {preset.name!r} is already registered")
    _REGISTRY[preset.name] = preset
    return preset


def list_models() -> list[str]:
    """Names of all registered presets."""
    return sorted(_REGISTRY)


def get_preset(name: str) -> Preset:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError(f"unknown model {name!r}; available: {', '.join(list_models())}") from None


def create_model(name: str, *, word_vectors: Optional[torch.Tensor] = None, init: str = "release",
                 protocol: Optional[InputProtocol] = None, **overrides: Any) -> MMV:
    """Build a fresh (untrained) model from a preset.

    Args:
      name: a preset from ``list_models()``.
      word_vectors: ``[vocab, dim]`` table for the text tower; sets the vocabulary size and word dim.
      init: ``"release"`` (Haiku's initialisers, as the release trained with) or ``"torch"``.
      protocol: replace the preset's input protocol.
      overrides: top-level ``MMVConfig`` fields (``graph="disjoint"``, ``va_dim=256`` ...).
    """
    preset = get_preset(name)
    config = dataclasses.replace(preset.config(), **overrides)
    if word_vectors is not None:
        vocab, dim = word_vectors.shape
        config.text = dataclasses.replace(config.text, vocab_size=int(vocab), word_dim=int(dim))
    model = MMV(config, protocol or preset.protocol())
    model.preset = name
    if init == "release":
        init_like_release(model)
    elif init != "torch":
        raise ValueError(f"init must be 'release' or 'torch', got {init!r}")
    if word_vectors is not None:
        model.text.set_word_vectors(word_vectors.float())
    return model


def _released(video: BackboneConfig) -> Callable[[], MMVConfig]:
    return lambda: MMVConfig(video=video, audio=BackboneConfig("resnet", depth=50))


def _tiny_heads(inner: int) -> dict[str, HeadConfig]:
    return {
        "vid2audio_embd": HeadConfig(f"mlp@{inner}", True),
        "vis_embd": HeadConfig("linear", True),
        "audio_embd": HeadConfig("linear", False),
        "audio2txt_embd": HeadConfig("linear", False),
        "txt_embd": HeadConfig("linear", False),
        "txt2audio_embd": HeadConfig("linear", False),
    }


_TINY_RESNET = dict(blocks=(1, 1, 1, 1), channels=(32, 64, 128, 256), stem_channels=16)


def _tiny(video: BackboneConfig) -> Callable[[], MMVConfig]:
    return lambda: MMVConfig(
        video=video,
        audio=BackboneConfig("resnet", **_TINY_RESNET),
        text=TextConfig(vocab_size=10000, word_dim=50, sentence_dim=256),
        va_dim=128, vat_dim=64, at_dim=128, heads=_tiny_heads(128))


def _tiny_protocol() -> InputProtocol:
    # 8 frames at 8 fps = 1 s of video and audio; 64x64 crops.
    return InputProtocol(num_frames=8, fps=8.0, resize_short_side=72, crop_size=64, eval_crop_size=64)


register_preset(Preset(
    "mmv_s3d", "Released MMV FAC, S3D-G video (1024-d), audio ResNet50, word2vec text",
    _released(BackboneConfig("s3d")), InputProtocol, released=True))
register_preset(Preset(
    "mmv_tsm_resnet50", "Released MMV FAC, TSM-ResNet50 video (2048-d), audio ResNet50, word2vec text",
    _released(BackboneConfig("tsm_resnet", depth=50, width_mult=1)), InputProtocol, released=True))
register_preset(Preset(
    "mmv_tsm_resnet50x2", "Released MMV FAC, TSM-ResNet50x2 video (4096-d), audio ResNet50, word2vec text",
    _released(BackboneConfig("tsm_resnet", depth=50, width_mult=2)), InputProtocol, released=True))
register_preset(Preset(
    "mmv_tiny_tsm", "CPU-sized FAC: one-block-per-group TSM-ResNet and audio ResNet, 50-d words",
    _tiny(BackboneConfig("tsm_resnet", **_TINY_RESNET)), _tiny_protocol))
register_preset(Preset(
    "mmv_tiny_s3d", "CPU-sized FAC: S3D-G at 1/8 width, one-block-per-group audio ResNet, 50-d words",
    _tiny(BackboneConfig("s3d", width_mult=0.125)), _tiny_protocol))
register_preset(Preset(
    "mmv_small_s3d", "Laptop-GPU-sized FAC: S3D-G at 1/2 width, audio ResNet18, 300-d words, 16 frames",
    lambda: MMVConfig(video=BackboneConfig("s3d", width_mult=0.5), audio=BackboneConfig("resnet", depth=18),
                      text=TextConfig(vocab_size=65536, word_dim=300, sentence_dim=1024)),
    lambda: InputProtocol(num_frames=16, fps=10.0, resize_short_side=128, crop_size=112,
                          eval_crop_size=128)))
