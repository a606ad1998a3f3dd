"""Any network as feature extraction sees it: a callable from one input tensor to a ``[B, D]`` feature.

MMV models are wrapped by layer name (an output key such as ``video_repr`` / ``audio_va``, or a backbone
endpoint such as ``video:Mixed_4f``); anything else (a deflated image network from ``mmv.deflate``, a
supervised baseline) is wrapped as it is, so feature extraction never hard-codes MMV.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Optional, Union

import torch
from torch import nn

from mmv.models.config import InputProtocol

INPUTS = ("video", "audio", "image")
Output = Union[torch.Tensor, Mapping[str, torch.Tensor]]


@dataclass
class Encoder:
    """A feature extractor.

    Attributes:
      fn: maps a batch (``video [B,3,T,H,W]``, ``image [B,3,H,W]`` or ``audio [B,1,frames,mel]``) to a tensor
        or a dict of tensors; maps bigger than ``[B, D]`` are averaged over every axis after the channels.
      input: which of those batches ``fn`` takes.
      output: the key to read when ``fn`` returns a dict.
      protocol: frames, fps, crops and audio front end the network expects.
      module: moved to the device, put in eval mode and hashed for the cache key.
      identity: a stable name for the weights (else the hash of ``module``'s state_dict).
      description: what the cache key and the results record say the network is.
    """

    fn: Callable[[torch.Tensor], Output]
    input: str
    output: Optional[str] = None
    protocol: Optional[InputProtocol] = None
    module: Optional[nn.Module] = None
    identity: Optional[str] = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.input not in INPUTS:
            raise ValueError(f"encoder input must be one of {INPUTS}, got {self.input!r}")

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.fn(batch)
        if isinstance(out, Mapping):
            if self.output is None or self.output not in out:
                raise ValueError(f"the network returned {sorted(out)}; choose one as the layer "
                                 f"(asked for {self.output!r})")
            out = out[self.output]
        if not isinstance(out, torch.Tensor) or out.dim() < 2 or out.shape[0] != batch.shape[0]:
            raise ValueError(f"the network must return [B, D] features (or a bigger map), got "
                             f"{getattr(out, 'shape', type(out).__name__)} for a batch of {batch.shape[0]}")
        if out.dim() > 2:
            out = out.flatten(2).mean(dim=2)  # global average over time / space
        return out


def is_mmv(model: Any) -> bool:
    """Duck-typed: a model with the MMV towers and an input protocol."""
    return all(hasattr(model, a) for a in ("embed_video", "embed_audio", "protocol", "video", "audio"))


def layer_tower(layer: Optional[str]) -> Optional[str]:
    """``video`` / ``audio`` / ``text`` for ``video_repr``, ``audio:last_conv`` ...; None for other names."""
    if not layer:
        return None
    head = layer.split(":", 1)[0] if ":" in layer else layer.split("_", 1)[0]
    return head if head in ("video", "audio", "text") else None


def mmv_encoder(model: nn.Module, layer: str, input_kind: str) -> Encoder:
    """An MMV model read at ``layer``: an output key of ``model(...)`` or ``<tower>:<endpoint>``.

    Endpoints: ``video:<S3D endpoint>`` (``Mixed_4f``, ...), ``video:last_conv`` (TSM, after the final
    BN + ReLU) and ``audio:last_conv`` (before it, as the release's audio endpoint); maps are averaged.
    """
    tower = layer_tower(layer)
    if tower not in ("video", "audio"):
        raise ValueError(f"layer {layer!r} is not a video or audio layer (e.g. video_repr, audio_va, "
                         f"video:Mixed_4f)")
    if input_kind == "image" or (input_kind == "audio") != (tower == "audio"):
        raise ValueError(f"layer {layer!r} belongs to the {tower} tower, which cannot take {input_kind} input")
    if ":" in layer:
        endpoint = layer.split(":", 1)[1]
        net = model.video if tower == "video" else model.audio
        if endpoint == "last_conv" and hasattr(net, "last_conv"):
            fn = net.last_conv
            if tower == "video":  # [B, T, C, h, w]: channels second for the generic pooling
                fn = lambda x, _f=net.last_conv: _f(x).transpose(1, 2)  # noqa: E731
        elif hasattr(net, "forward_features") and endpoint in getattr(net, "ENDPOINTS", ()):
            fn = lambda x, _n=net, _e=endpoint: _n.forward_features(x, _e)  # noqa: E731
        else:
            raise ValueError(f"{type(net).__name__} has no endpoint {endpoint!r}")
        output = None
    else:
        fn = (lambda x: model(video=x)) if tower == "video" else (lambda x: model(audio=x))
        output = layer
    return Encoder(fn, input=tower, output=output, protocol=model.protocol, module=model,
                   description=f"{type(model).__name__}[{getattr(model, 'preset', None)}]:{layer}")


def as_encoder(model: Any, layer: Optional[str], input_kind: str,
               protocol: Optional[InputProtocol] = None) -> Encoder:
    """Wrap ``model`` (an ``Encoder``, an MMV model, or any callable / ``nn.Module``) for ``input_kind``."""
    if isinstance(model, Encoder):
        if model.input != input_kind:
            raise ValueError(f"this encoder takes {model.input} input, the spec asks for {input_kind}")
        return model
    if is_mmv(model):
        return mmv_encoder(model, layer or f"{'audio' if input_kind == 'audio' else 'video'}_repr", input_kind)
    if not callable(model):
        raise TypeError(f"cannot extract features with a {type(model).__name__}: give a callable or an Encoder")
    return Encoder(model, input=input_kind, output=layer, module=model if isinstance(model, nn.Module) else None,
                   protocol=protocol if protocol is not None else getattr(model, "protocol", None),
                   description=f"{type(model).__name__}:{layer}")


def weights_hash(module: nn.Module) -> str:
    """SHA-256 of a module's state_dict (names, dtypes, shapes, bytes): the identity of a set of weights,
    whether it was converted, trained or loaded from any folder."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def encoder_identity(encoder: Encoder) -> str:
    """``identity`` when given, else the weights hash of ``module``; None-like callables are refused."""
    if encoder.identity:
        return encoder.identity
    if encoder.module is not None:
        return "sha256:" + weights_hash(encoder.module)
    raise ValueError("cannot cache features of a plain callable: give Encoder(identity=...) or model_id=")
