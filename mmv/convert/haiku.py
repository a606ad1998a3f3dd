"""Convert a released MMV Haiku checkpoint into an ``MMV`` (and a weights folder).

The architecture is read off the tree (video backbone and width, audio depth, word table, head modes
and widths, graph); every array is then moved to its PyTorch tensor with its layout change, and
every key and shape is checked: a missing, unexpected or mis-shaped array is an error that names it.
BN running statistics come from the zero-debiased EMA ``average``, never from ``hidden``
(MMV_SPEC.md F.4).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from mmv.convert.names import (
    AS_IS,
    CONV1D_AS_LINEAR,
    CONV2D,
    CONV3D,
    COUNTER,
    LINEAR,
    ROOT,
    VECTOR,
    haiku_entries,
)
from mmv.convert.unpickle import load_haiku_checkpoint
from mmv.errors import CheckpointError
from mmv.models.config import HEAD_NAMES, BackboneConfig, HeadConfig, InputProtocol, MMVConfig, TextConfig
from mmv.models.mmv import MMV
from mmv.models.resnet import RESNET_BLOCKS

Tree = dict[str, dict[str, dict[str, np.ndarray]]]

# The statistic a BN's running value is loaded from; ``hidden`` is Haiku's un-debiased EMA.
BN_STATISTIC = "average"
# The leaves of a Haiku EMA; ``hidden`` (and var_ema's counter) carry nothing a PyTorch BN keeps.
_STATE_LEAVES = {"average", "counter", "hidden"}

_HEADS = f"{ROOT}/~_get_pair_embedding_heads/"
_S3D = f"{ROOT}/visual_module/~/S3D/"
_TSM = f"{ROOT}/visual_module/~/TSMResNetV2/"
_AUDIO = f"{ROOT}/audio_module/~/res_net_v2/"


def to_torch(array: np.ndarray, layout: str) -> torch.Tensor:
    """A Haiku array in the layout of its PyTorch tensor."""
    if layout == CONV2D:
        array = array.transpose(3, 2, 0, 1)
    elif layout == CONV3D:
        array = array.transpose(4, 3, 0, 1, 2)
    elif layout == LINEAR:
        array = array.T
    elif layout == CONV1D_AS_LINEAR:
        array = array[0].T
    elif layout == VECTOR:
        if array.ndim == 0 or any(d != 1 for d in array.shape[:-1]):
            raise ValueError(f"expected a [1, ..., C] vector, got shape {array.shape}")
        array = array.reshape(-1)
    elif layout == COUNTER:
        return torch.tensor(int(np.asarray(array).reshape(-1)[0]) if array.size else 0, dtype=torch.int64)
    elif layout != AS_IS:
        raise ValueError(f"unknown layout {layout!r}")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def infer_config(tree: Tree, graph: Optional[str] = None) -> MMVConfig:
    """The ``MMVConfig`` whose parameters have the names and shapes of ``tree``."""
    params = tree["params"]

    def shape(module: str, name: str = "w") -> tuple[int, ...]:
        try:
            return tuple(params[module][name].shape)
        except KeyError:
            raise CheckpointError(f"checkpoint has no array {module} :: {name}") from None

    if any(m.startswith(_S3D) for m in params):
        video = BackboneConfig("s3d", width_mult=shape(_S3D + "Conv2d_1a_7x7/~/conv3_d")[-1] / 64)
    elif any(m.startswith(_TSM) for m in params):
        video = BackboneConfig("tsm_resnet", **_resnet_layout(
            params, _TSM, "tsm_resnet_stem", "tsm_resnet_unit_{}", "/", "TSM"))
    else:
        raise CheckpointError(f"no S3D or TSMResNetV2 visual module under {ROOT}/visual_module/~/")
    audio = BackboneConfig("resnet", **_resnet_layout(
        params, _AUDIO, "~/initial_conv", "~/block_group_{}", "/~/", "audio ResNet"))

    vocab, word_dim = shape(f"{ROOT}/text_module/~/embed", "embeddings")
    text = TextConfig(vocab_size=vocab, word_dim=word_dim,
                      sentence_dim=shape(f"{ROOT}/text_module/~/text_conv1")[-1])

    # Unknown heads are left in the tree, to be reported as unexpected arrays.
    present = {m[len(_HEADS):].split("/")[0] for m in params if m.startswith(_HEADS)} & set(HEAD_NAMES)
    heads = {name: _head_config(params, _HEADS + name) for name in present}
    if graph is None:
        if "vid2audio_embd" not in present:
            graph = "shared"
        elif any(m.startswith(f"{ROOT}/~_activate_interaction/") for m in params):
            graph = "fac_bnrelu"
        elif shape(_HEADS + "vis_embd/final_projection")[0] == shape(_HEADS + "vid2audio_embd/final_projection")[-1]:
            # A ReLU has no parameters: fac and fac_relu look alike; the release is fac_relu.
            graph = "fac_relu"
        else:
            graph = "disjoint"
    if graph == "shared":
        for kept, alias in (("vis_embd", "vid2audio_embd"), ("audio_embd", "audio2txt_embd"),
                            ("txt_embd", "txt2audio_embd")):
            heads.setdefault(alias, heads.get(kept, HeadConfig()))
    missing = [n for n in HEAD_NAMES if n not in heads]
    if missing:
        raise CheckpointError(f"checkpoint lacks the projection head(s) {missing} under {_HEADS}")

    def out_dim(name: str) -> int:
        return shape(_HEADS + name + "/final_projection")[-1]

    vat = out_dim("vis_embd")
    if graph == "shared":  # one space: every head has the same width
        return MMVConfig(video=video, audio=audio, text=text, graph=graph, va_dim=vat, vat_dim=vat,
                         at_dim=vat, heads=heads)
    return MMVConfig(video=video, audio=audio, text=text, graph=graph, va_dim=out_dim("vid2audio_embd"),
                     vat_dim=vat, at_dim=out_dim("audio2txt_embd"), heads=heads)


def _resnet_layout(params: dict[str, dict[str, np.ndarray]], root: str, stem: str, group: str,
                   leaf_sep: str, what: str) -> dict:
    """``depth`` and ``width_mult`` for a standard ResNet, else the explicit blocks and channels."""
    found: dict[int, set[int]] = {}
    pattern = re.escape(group).replace(r"\{\}", r"(\d+)") + r"/block_(\d+)/"
    for module in params:
        m = re.match(pattern, module[len(root):]) if module.startswith(root) else None
        if m:
            found.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    if sorted(found) != [0, 1, 2, 3]:
        raise CheckpointError(f"{what}: expected block groups 0-3 under {root}, found {sorted(found)}")
    blocks = tuple(len(found[g]) for g in range(4))
    bottleneck = f"{root}{group.format(0)}/block_0{leaf_sep}conv_2" in params
    last = "conv_2" if bottleneck else "conv_1"
    try:
        stem_channels = params[root + stem]["w"].shape[-1]
        channels = tuple(params[f"{root}{group.format(g)}/block_0{leaf_sep}{last}"]["w"].shape[-1]
                         for g in range(4))
    except KeyError as err:
        raise CheckpointError(f"{what}: missing stem or block conv ({err})") from None
    standard = (256, 512, 1024, 2048) if bottleneck else (64, 128, 256, 512)
    width = stem_channels // 64
    for depth, layout in RESNET_BLOCKS.items():
        if (layout == blocks and (depth >= 50) == bottleneck and stem_channels == 64 * width
                and channels == tuple(c * width for c in standard)):
            return {"depth": depth, "width_mult": width}
    return {"depth": 50 if bottleneck else 18, "blocks": blocks, "channels": channels,
            "stem_channels": stem_channels}


def _head_config(params: dict[str, dict[str, np.ndarray]], scope: str) -> HeadConfig:
    inner = []
    while True:
        module = f"{scope}/final_projection_inner" + (f"_{len(inner)}" if inner else "")
        if module not in params:
            break
        inner.append(params[module]["w"].shape[-1])
    n_bn = sum(1 for i in range(len(inner) + 1)
               if f"{scope}/__cross_replica_batch_norm" + (f"_{i}" if i else "") in params)
    if not inner:
        return HeadConfig("linear", bn_out=n_bn == 1)
    # An MLP's final projection has a bias exactly when no BN follows it.
    bn_out = "b" not in params.get(f"{scope}/final_projection", {})
    kind = "mlp" if n_bn - bn_out == len(inner) else "mlp_nobn"
    return HeadConfig(kind + "".join(f"@{d}" for d in inner), bn_out)


def state_dict_from_tree(model: MMV, tree: Tree, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Every tensor of ``model.state_dict()`` from ``tree``; errors name each missing, unexpected or
    mis-shaped array."""
    expected = model.state_dict()
    entries = haiku_entries(model)
    unmapped = sorted(set(expected) - {e.torch_key for e in entries})
    if unmapped:  # a model/name-map mismatch is a bug of ours, not of the user's file
        raise RuntimeError(f"no Haiku name for model tensors {unmapped[:5]}")
    problems: list[str] = []
    used: set[tuple[str, str, str]] = set()
    out: dict[str, torch.Tensor] = {}
    for entry in entries:
        name = BN_STATISTIC if (entry.collection == "state" and entry.name == "average") else entry.name
        try:
            array = tree[entry.collection][entry.module][name]
        except KeyError:
            problems.append(f"missing {entry.collection} {entry.module} :: {name}")
            continue
        used.add((entry.collection, entry.module, name))
        target = expected[entry.torch_key]
        try:
            tensor = to_torch(array, entry.layout)
        except ValueError as err:
            problems.append(f"{entry.module} :: {name}: {err}")
            continue
        if tensor.shape != target.shape:
            problems.append(f"{entry.module} :: {name} has shape {tuple(array.shape)}, which does not "
                            f"fit {entry.torch_key} {tuple(target.shape)}")
            continue
        out[entry.torch_key] = tensor.to(target.dtype)
    state_modules = {e.module for e in entries if e.collection == "state"}
    for collection, modules in tree.items():
        for module, leaves in modules.items():
            for name in leaves:
                known_state = collection == "state" and module in state_modules and name in _STATE_LEAVES
                if (collection, module, name) not in used and not known_state:
                    problems.append(f"unexpected {collection} {module} :: {name}")
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise CheckpointError(f"{source}: {len(problems)} array(s) do not match the "
                              f"{model.config.video.arch} model:\n  {shown}{more}")
    return out


def model_from_tree(tree: Tree, graph: Optional[str] = None, source: str = "checkpoint") -> MMV:
    """An ``MMV`` in eval mode holding exactly the arrays of ``tree``."""
    config = infer_config(tree, graph)
    try:
        model = MMV(config, InputProtocol())
    except ValueError as err:  # e.g. --graph shared forced onto a tree with distinct heads
        raise CheckpointError(f"{source}: the arrays do not describe a valid model ({err})") from None
    model.load_state_dict(state_dict_from_tree(model, tree, source))
    return model.eval()


def load_haiku_model(path: str | Path, graph: Optional[str] = None) -> MMV:
    """Read a released ``.pkl`` (restricted unpickler) and return the converted model."""
    return model_from_tree(load_haiku_checkpoint(path), graph, source=str(path))


def convert_checkpoint(checkpoint: str | Path, out_dir: str | Path, vocab: Optional[str | Path] = None,
                       graph: Optional[str] = None) -> Path:
    """``CHECKPOINT.pkl`` -> ``out_dir/{model.safetensors, config.json[, vocab.txt]}``.

    The released word list is not public: the word table is kept, and ``vocab`` (one word per line,
    line i naming row i) attaches a word list when the user has one.
    """
    from mmv.weights import read_vocab, save_model  # weights imports models only; keep convert optional

    model = load_haiku_model(checkpoint, graph)
    words = read_vocab(vocab, model.config.text.vocab_size) if vocab is not None else None
    preset = _released_preset(model.config)
    return save_model(model, out_dir, preset=preset, vocab=words,
                      extra={"source": {"converted_from": Path(checkpoint).name, "format": "haiku-pkl"}})


def _released_preset(config: MMVConfig) -> Optional[str]:
    from mmv.models.presets import get_preset, list_models

    for name in list_models():
        preset = get_preset(name)
        if preset.released and preset.config() == config:
            return name
    return None
