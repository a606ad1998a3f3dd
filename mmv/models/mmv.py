"""The MMV network: three towers and the projection heads wired by an embedding graph.

Spaces and outputs (MMV_SPEC.md A.6):

=============  ===========================================================================
``*_repr``     backbone outputs: ``video_repr`` (1024 S3D / 2048 TSM / 4096 TSMx2),
               ``audio_repr`` (2048), ``text_repr`` (2048)
``video_va``   video in the fine space S_va (``vid2audio_embd``)
``audio_va``   audio in S_va (``audio_embd``)
``video_vat``  video in the coarse space S_vat (``vis_embd``; in FAC applied to act(``video_va``))
``audio_vat``  audio in S_vat: FAC at eval (or with ``use_audio_text``) reuses ``vis_embd`` on
               act(``audio_va``); in ``shared`` it is ``audio_va``
``audio_at``   the ``audio2txt_embd`` head, where audio does not reach S_vat (``disjoint``;
               FAC in training, as released, so audio never enters ``vis_embd``'s BN statistics)
``text_vat``   text in S_vat (``txt_embd``)
``text_at``    the ``txt2audio_embd`` head (the audio-text space of ``disjoint``)
=============  ===========================================================================

The embeddings are not L2-normalised here; losses and retrieval normalise them.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from mmv.models.config import BackboneConfig, InputProtocol, MMVConfig
from mmv.models.heads import ProjectionHead
from mmv.models.layers import batch_norm
from mmv.models.resnet import AudioResNet
from mmv.models.s3d import S3D
from mmv.models.text import TextTower
from mmv.models.tsm import TSMResNet

# In the shared graph each modality has one head, serving both of its pairs.
_SHARED_ALIASES = {"vid2audio_embd": "vis_embd", "audio2txt_embd": "audio_embd", "txt2audio_embd": "txt_embd"}
# The two heads of each modality: their configs must agree in the shared graph.
_PAIRS = (("vis_embd", "vid2audio_embd"), ("audio_embd", "audio2txt_embd"), ("txt_embd", "txt2audio_embd"))


def build_backbone(cfg: BackboneConfig) -> nn.Module:
    """A tower from its config; every tower has ``out_dim``."""
    if cfg.arch == "s3d":
        return S3D(width_mult=float(cfg.width_mult))
    if cfg.width_mult != int(cfg.width_mult):
        raise ValueError(f"{cfg.arch}: width_mult must be an integer, got {cfg.width_mult}")
    layout = dict(blocks=cfg.blocks, channels=cfg.channels, stem_channels=cfg.stem_channels)
    if cfg.arch == "tsm_resnet":
        return TSMResNet(depth=cfg.depth, width_mult=int(cfg.width_mult),
                         shift_fraction=cfg.shift_fraction, **layout)
    if cfg.arch == "resnet":
        return AudioResNet(depth=cfg.depth, width_mult=int(cfg.width_mult), **layout)
    raise ValueError(f"unknown backbone arch {cfg.arch!r}: use 's3d', 'tsm_resnet' or 'resnet'")


class MMV(nn.Module):
    """Video, audio and text towers with their heads; call with any subset of modalities.

    Args:
      config: what to build (see ``MMVConfig``).
      protocol: how inputs must be prepared; kept with the weights and checked on every call.
      check_inputs: refuse inputs that break the protocol (e.g. 0-255 or mean/std-normalised frames).
    """

    def __init__(self, config: MMVConfig, protocol: Optional[InputProtocol] = None,
                 check_inputs: bool = True):
        super().__init__()
        self.config = config
        self.protocol = protocol or InputProtocol()
        self.check_inputs = check_inputs
        self.preset: Optional[str] = None  # the registry name this model was built from, if any
        self.vocab: Optional[list[str]] = None  # word i names row i of the text tower's table
        self.video = build_backbone(config.video)
        self.audio = build_backbone(config.audio)
        self.text = TextTower(config.text.vocab_size, config.text.word_dim, config.text.sentence_dim)
        self.heads = nn.ModuleDict(self._build_heads(config))
        self.fine_bn: Optional[nn.ModuleDict] = None
        if config.graph == "fac_bnrelu":
            # The release's normalize_fn makes a fresh BN at each call site: one per modality.
            self.fine_bn = nn.ModuleDict({"video": batch_norm(config.va_dim, 1),
                                          "audio": batch_norm(config.va_dim, 1)})

    @property
    def is_fac(self) -> bool:
        return self.config.graph.startswith("fac")

    def _build_heads(self, config: MMVConfig) -> dict[str, ProjectionHead]:
        d_v, d_a, d_t = self.video.out_dim, self.audio.out_dim, self.text.out_dim
        fac = config.graph.startswith("fac")
        spec = {  # name: (input dim, output dim)
            "vid2audio_embd": (d_v, config.va_dim),
            "vis_embd": (config.va_dim if fac else d_v, config.vat_dim),
            "audio_embd": (d_a, config.va_dim),
            "audio2txt_embd": (d_a, config.at_dim),
            "txt_embd": (d_t, config.vat_dim),
            "txt2audio_embd": (d_t, config.at_dim),
        }
        if config.graph == "shared":
            for kept, alias in _PAIRS:
                if spec[kept][1] != spec[alias][1] or config.heads[kept] != config.heads[alias]:
                    raise ValueError(
                        f"the shared graph uses one head per modality: '{kept}' and '{alias}' need the "
                        f"same output dim and head config (va_dim == vat_dim == at_dim)")
            spec = {name: dims for name, dims in spec.items() if name not in _SHARED_ALIASES}
        return {name: ProjectionHead(i, o, config.heads[name].mode, config.heads[name].bn_out)
                for name, (i, o) in spec.items()}

    def head(self, name: str) -> ProjectionHead:
        """The head playing the release's role ``name`` (shared graphs alias one head per modality)."""
        if self.config.graph == "shared":
            name = _SHARED_ALIASES.get(name, name)
        return self.heads[name]

    def _fine_activation(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        graph = self.config.graph
        if graph == "fac":
            return x
        if graph == "fac_bnrelu":
            x = self.fine_bn[modality](x)
        return F.relu(x)

    def forward(self, video: Optional[torch.Tensor] = None, audio: Optional[torch.Tensor] = None,
                text: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """Embed any subset of ``video [B,3,T,H,W]``, ``audio [B,1,frames,mel]``, ``text [B,(K,)N]``."""
        if video is None and audio is None and text is None:
            raise ValueError("give at least one of video, audio or text")
        out: dict[str, torch.Tensor] = {}
        if video is not None:
            out.update(self.embed_video(video))
        if audio is not None:
            out.update(self.embed_audio(audio))
        if text is not None:
            out.update(self.embed_text(text))
        return out

    def embed_video(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.check_inputs:
            self._check_video(video)
        return self.video_heads(self.video(video))

    def video_heads(self, rep: torch.Tensor) -> dict[str, torch.Tensor]:
        """The video embeddings from a backbone representation ``rep``: what ``embed_video`` adds after the
        backbone. Also reached by other backbones' features (a deflated image network's, for tuning)."""
        va = self.head("vid2audio_embd")(rep)
        if self.is_fac:
            vat = self.heads["vis_embd"](self._fine_activation(va, "video"))
        elif self.config.graph == "shared":
            vat = va
        else:
            vat = self.heads["vis_embd"](rep)
        return {"video_repr": rep, "video_va": va, "video_vat": vat}

    def embed_audio(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        audio = self._prepare_audio(audio)
        rep = self.audio(audio)
        va = self.heads["audio_embd"](rep)
        out = {"audio_repr": rep, "audio_va": va}
        if self.is_fac and (self.config.use_audio_text or not self.training):
            out["audio_vat"] = self.heads["vis_embd"](self._fine_activation(va, "audio"))
        elif self.config.graph == "shared":
            out["audio_vat"] = va
        else:
            out["audio_at"] = self.heads["audio2txt_embd"](rep)
        return out

    def embed_text(self, word_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.check_inputs and word_ids.dim() not in (2, 3):
            raise ValueError(f"word ids must be [B, N] or [B, K, N], got shape {tuple(word_ids.shape)}")
        rep = self.text(word_ids, check=self.check_inputs)
        vat = self.heads["txt_embd"](rep)
        out = {"text_repr": rep, "text_vat": vat}
        if self.config.graph != "shared":
            out["text_at"] = self.heads["txt2audio_embd"](rep)
        return out

    def _check_video(self, video: torch.Tensor) -> None:
        if video.dim() != 5 or video.shape[1] != 3:
            raise ValueError(f"video must be [B, 3, T, H, W] (RGB, channels first), got shape "
                             f"{tuple(video.shape)}")
        if not video.is_floating_point():
            raise TypeError(f"video must be float in {self.protocol.value_range}, got {video.dtype}; "
                            f"divide uint8 frames by 255")
        low, high = self.protocol.value_range
        vmin, vmax = float(video.min()), float(video.max())
        tol = 1e-3 * (high - low)
        if vmin < low - tol or vmax > high + tol:
            raise ValueError(
                f"video values span [{vmin:.3g}, {vmax:.3g}] but these weights expect "
                f"{list(self.protocol.value_range)} with no mean/std normalisation (MMV_SPEC C.1); "
                f"construct the model with check_inputs=False to override")

    def _prepare_audio(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.dim() == 3:
            audio = audio.unsqueeze(1)
        if self.check_inputs:
            mels = self.protocol.audio.num_mel_bins
            if audio.dim() != 4 or audio.shape[1] != 1 or audio.shape[3] != mels:
                raise ValueError(f"audio must be a log-mel spectrogram [B, 1, frames, {mels}], got shape "
                                 f"{tuple(audio.shape)} (the front end is the model's protocol.audio)")
        return audio
