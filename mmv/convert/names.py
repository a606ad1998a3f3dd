"""Where each PyTorch tensor of an ``MMV`` lives in the release's Haiku parameter and state trees.

The Haiku name grammar (MMV_SPEC.md B): modules built in a parent's ``__init__`` are joined with
``/~/``, modules built in ``__call__`` with ``/``, modules built in another method with ``/~method/``;
batch norms are numbered per scope in call order (``__cross_replica_batch_norm``, ``_1``, ``_2``).
Layouts: conv ``[k..., in, out]``, linear ``[in, out]``, BN vectors ``[1, ..., C]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from mmv.models.heads import ProjectionHead
from mmv.models.mmv import MMV
from mmv.models.resnet import BottleneckV2, ResNetV2
from mmv.models.s3d import S3D, InceptionBlock3D, SUnit3D
from mmv.models.tsm import TSMResNet

ROOT = "text_audio_video"

# How a Haiku array becomes the PyTorch tensor (see ``layouts.to_torch``).
CONV2D, CONV3D, LINEAR, CONV1D_AS_LINEAR, VECTOR, AS_IS, COUNTER = (
    "conv2d", "conv3d", "linear", "conv1d_as_linear", "vector", "as_is", "counter")


@dataclass(frozen=True)
class Entry:
    torch_key: str
    collection: str  # "params" or "state"
    module: str
    name: str
    layout: str


def bn_name(index: int) -> str:
    return "__cross_replica_batch_norm" + (f"_{index}" if index else "")


def haiku_entries(model: MMV) -> list[Entry]:
    """One entry per tensor of ``model.state_dict()``, in state-dict order of the towers."""
    out: list[Entry] = []
    video = model.video
    if isinstance(video, S3D):
        _s3d(out, "video", video, f"{ROOT}/visual_module/~/S3D")
    elif isinstance(video, TSMResNet):
        _resnet(out, "video", video, f"{ROOT}/visual_module/~/TSMResNetV2", stem="tsm_resnet_stem",
                group="tsm_resnet_unit_{}", leaf_sep="/")
    else:
        raise TypeError(f"no Haiku names for video backbone {type(video).__name__}")
    _resnet(out, "audio", model.audio, f"{ROOT}/audio_module/~/res_net_v2", stem="~/initial_conv",
            group="~/block_group_{}", leaf_sep="/~/")
    text = f"{ROOT}/text_module/~/"
    out += [Entry("text.embed.weight", "params", text + "embed", "embeddings", AS_IS),
            Entry("text.proj.weight", "params", text + "text_conv1", "w", CONV1D_AS_LINEAR),
            Entry("text.proj.bias", "params", text + "text_conv1", "b", AS_IS)]
    for name, head in model.heads.items():
        _head(out, f"heads.{name}", head, f"{ROOT}/~_get_pair_embedding_heads/{name}")
    if model.fine_bn is not None:
        # Inferred from the release's code (never seen in a released tree): one BN per call.
        for i, modality in enumerate(("video", "audio")):
            _bn(out, f"fine_bn.{modality}", f"{ROOT}/~_activate_interaction/{bn_name(i)}")
    return out


def _bn(out: list[Entry], key: str, module: str) -> None:
    out += [Entry(f"{key}.weight", "params", module, "scale", VECTOR),
            Entry(f"{key}.bias", "params", module, "offset", VECTOR),
            Entry(f"{key}.running_mean", "state", f"{module}/~/mean_ema", "average", VECTOR),
            Entry(f"{key}.running_var", "state", f"{module}/~/var_ema", "average", VECTOR),
            Entry(f"{key}.num_batches_tracked", "state", f"{module}/~/mean_ema", "counter", COUNTER)]


def _linear(out: list[Entry], key: str, module: str, bias: bool) -> None:
    out.append(Entry(f"{key}.weight", "params", module, "w", LINEAR))
    if bias:
        out.append(Entry(f"{key}.bias", "params", module, "b", AS_IS))


def _resnet(out: list[Entry], key: str, net: ResNetV2, root: str, stem: str, group: str,
            leaf_sep: str) -> None:
    out.append(Entry(f"{key}.stem.weight", "params", f"{root}/{stem}", "w", CONV2D))
    for g, blocks in enumerate(net.groups):
        for b, block in enumerate(blocks):
            scope = f"{root}/{group.format(g)}/block_{b}"
            tkey = f"{key}.groups.{g}.{b}"
            convs = ["conv0", "conv1"] + (["conv2"] if isinstance(block, BottleneckV2) else [])
            for i, conv in enumerate(convs):
                out.append(Entry(f"{tkey}.{conv}.weight", "params", f"{scope}{leaf_sep}conv_{i}", "w", CONV2D))
            if block.shortcut is not None:
                out.append(Entry(f"{tkey}.shortcut.weight", "params", f"{scope}{leaf_sep}shortcut_conv",
                                 "w", CONV2D))
            for i in range(len(convs)):
                _bn(out, f"{tkey}.bn{i}", f"{scope}/{bn_name(i)}")
    _bn(out, f"{key}.final_bn", f"{root}/{bn_name(0)}")


def _sunit(out: list[Entry], key: str, unit: SUnit3D, scope: str) -> None:
    out.append(Entry(f"{key}.conv.weight", "params", f"{scope}/~/conv3_d", "w", CONV3D))
    _bn(out, f"{key}.bn", f"{scope}/{bn_name(0)}")
    if unit.conv2 is not None:
        out.append(Entry(f"{key}.conv2.weight", "params", f"{scope}/~/conv3_d_1", "w", CONV3D))
        _bn(out, f"{key}.bn2", f"{scope}/{bn_name(1)}")
    if unit.gating is not None:
        _linear(out, f"{key}.gating.fc", f"{scope}/self_gating", bias=True)


def _s3d(out: list[Entry], key: str, net: S3D, root: str) -> None:
    for name, layer in net.layers.items():
        if isinstance(layer, SUnit3D):
            _sunit(out, f"{key}.layers.{name}", layer, f"{root}/{name}")
        elif isinstance(layer, InceptionBlock3D):
            for unit_name, unit in layer.units.items():
                _sunit(out, f"{key}.layers.{name}.units.{unit_name}", unit, f"{root}/{name}/{unit_name}")


def _head(out: list[Entry], key: str, head: ProjectionHead, scope: str) -> None:
    for i in range(len(head.inner)):
        inner = "final_projection_inner" + (f"_{i}" if i else "")
        _linear(out, f"{key}.inner.{i}", f"{scope}/{inner}", bias=True)
    for i in range(len(head.inner_bn)):
        _bn(out, f"{key}.inner_bn.{i}", f"{scope}/{bn_name(i)}")
    _linear(out, f"{key}.proj", f"{scope}/final_projection", bias=head.proj.bias is not None)
    if head.out_bn is not None:
        _bn(out, f"{key}.out_bn", f"{scope}/{bn_name(len(head.inner_bn))}")
