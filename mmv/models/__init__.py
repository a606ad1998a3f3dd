"""The networks of MMV: backbones, heads and the embedding graphs. Tensors in, tensors out."""

from mmv.models.config import AudioFrontEnd, BackboneConfig, HeadConfig, InputProtocol, MMVConfig, TextConfig
from mmv.models.mmv import MMV, build_backbone
from mmv.models.presets import Preset, create_model, get_preset, list_models, register_preset

__all__ = ["MMV", "MMVConfig", "BackboneConfig", "TextConfig", "HeadConfig", "InputProtocol",
           "AudioFrontEnd", "build_backbone", "create_model", "get_preset", "list_models",
           "register_preset", "Preset"]
