"""The deflated image network of an MMV model, and its folder on disk.

The folder mirrors ``mmv.weights`` (``model.safetensors`` + ``config.json``, never pickles) with its own
``format`` (``"mmv-image"``), so ``mmv.load_model`` refuses it instead of misreading it. ``config.json``
records the video backbone it was deflated from (preset and ``BackboneConfig``), the TSM shift mode, the
input protocol and, after ``run_deflation``, the tuning report. Loading rebuilds the video backbone from
that config, deflates it (architecture only) and loads the saved image weights.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from mmv.deflate.convert import TSM_SHIFT_MODES, deflate_video_backbone
from mmv.errors import CheckpointError
from mmv.models.config import BackboneConfig, InputProtocol
from mmv.models.mmv import MMV, build_backbone
from mmv.weights import CONFIG_FILE, WEIGHTS_FILE, read_folder_config, write_weights_folder

FORMAT = "mmv-image"
FORMAT_VERSION = 1


class ImageNetwork(nn.Module):
    """A deflated video backbone: images ``[B, 3, H, W]`` in the protocol's value range -> ``[B, out_dim]``.

    Attributes: ``backbone`` (``ImageS3D`` or a ``ResNetV2``), ``video_config`` (the video backbone it came
    from), ``preset``, ``protocol`` (image size = ``eval_crop_size``), ``tsm_shift``.
    """

    def __init__(self, backbone: nn.Module, video_config: BackboneConfig, protocol: InputProtocol,
                 preset: Optional[str] = None, tsm_shift: str = "fold"):
        super().__init__()
        self.backbone = backbone
        self.video_config = video_config
        self.protocol = protocol
        self.preset = preset
        self.tsm_shift = tsm_shift
        self.out_dim = backbone.out_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B, 3, H, W] (RGB, channels first), got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise TypeError(f"images must be float in {self.protocol.value_range}, got {images.dtype}")
        return self.backbone(images)


def deflate_model(model: MMV, tsm_shift: str = "fold") -> ImageNetwork:
    """The image network of ``model``'s video backbone (``model`` itself is left unchanged), in eval mode."""
    backbone = deflate_video_backbone(model.video, tsm_shift)
    return ImageNetwork(backbone, dataclasses.replace(model.config.video), model.protocol, model.preset,
                        tsm_shift).eval()


def save_image_network(net: ImageNetwork, out_dir: str | os.PathLike,
                       extra: Optional[dict[str, Any]] = None) -> Path:
    """Write ``net`` to ``out_dir`` (created); ``extra`` goes into ``config.json`` (e.g. the tuning report)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "deflated": True,
        "deflated_from": {"preset": net.preset, "video": dataclasses.asdict(net.video_config)},
        "tsm_shift": net.tsm_shift,
        "protocol": net.protocol.to_dict(),
        "out_dim": net.out_dim,
        "input": "images [B, 3, H, W] in protocol.value_range, H and W even for S3D",
        **(extra or {}),
    }
    return write_weights_folder(out, net.backbone.state_dict(), config)


def read_image_config(path: str | os.PathLike) -> dict[str, Any]:
    """The ``config.json`` of an image-network folder, checked for format and version."""
    config_path = Path(path) / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(f"{path}: missing {CONFIG_FILE}")
    return read_folder_config(config_path, FORMAT, FORMAT_VERSION, "a deflated image network")


def load_image_network(path: str | os.PathLike, device: str | torch.device = "cpu") -> ImageNetwork:
    """The image network saved in folder ``path``, in eval mode."""
    meta = read_image_config(path)
    try:
        video = dict(meta["deflated_from"]["video"])
        for key in ("blocks", "channels"):
            if video.get(key) is not None:
                video[key] = tuple(video[key])
        video_config = BackboneConfig(**video)
        protocol = InputProtocol.from_dict(meta.get("protocol", {}))
        tsm_shift = meta.get("tsm_shift", "fold")
        if tsm_shift not in TSM_SHIFT_MODES:
            raise ValueError(f"unknown tsm_shift {tsm_shift!r}")
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: invalid image-network description ({err})") from None
    backbone = deflate_video_backbone(build_backbone(video_config), tsm_shift)
    weights = Path(path) / WEIGHTS_FILE
    try:
        tensors = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{weights}: unreadable weights ({err})") from None
    expected = backbone.state_dict()
    bad = sorted(set(expected) ^ set(tensors))
    bad += [k for k in expected if k in tensors and expected[k].shape != tensors[k].shape]
    if bad:
        raise CheckpointError(f"{weights}: {len(bad)} tensor(s) do not match config.json, e.g. {bad[:5]}")
    backbone.load_state_dict(tensors)
    net = ImageNetwork(backbone, video_config, protocol, meta["deflated_from"].get("preset"), tsm_shift)
    return net.to(device).eval()
