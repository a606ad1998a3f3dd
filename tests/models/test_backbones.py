"""Backbone structure: parameter counts of the official code (MMV_SPEC.md A), blocks, endpoints."""

import pytest
import torch
import torch.nn.functional as F

from mmv.models.resnet import AudioResNet, BasicV2, BottleneckV2
from mmv.models.s3d import S3D
from mmv.models.tsm import TSMResNet


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("make,expected", [
    (lambda: S3D(), 9_146_000),
    (lambda: TSMResNet(depth=50, width_mult=1), 23_500_352),
    (lambda: TSMResNet(depth=50, width_mult=2), 93_891_712),
    (lambda: AudioResNet(depth=50), 23_494_080),
])
def test_parameter_counts_match_the_release(make, expected):
    assert n_params(make()) == expected


def test_resnet_depths_and_block_types():
    r18 = AudioResNet(depth=18)
    assert [len(g) for g in r18.groups] == [2, 2, 2, 2]
    assert all(isinstance(b, BasicV2) for g in r18.groups for b in g)
    # The release's basic block starts with a 1x1 conv, and projects only when channels change.
    assert r18.groups[0][0].conv0.kernel == (1, 1) and r18.groups[0][0].shortcut is None
    assert r18.groups[1][0].shortcut is not None and r18.groups[1][0].conv1.stride == (2, 2)
    r101 = AudioResNet(depth=101)
    assert [len(g) for g in r101.groups] == [3, 4, 23, 3] and r101.out_dim == 2048
    assert isinstance(r101.groups[2][22], BottleneckV2)
    with pytest.raises(ValueError, match="depth"):
        AudioResNet(depth=42)


def test_stride_sits_on_the_3x3_conv_and_projection():
    block = AudioResNet(depth=50).groups[1][0]
    assert block.conv0.stride == (1, 1) and block.conv1.stride == (2, 2)
    assert block.conv2.stride == (1, 1) and block.shortcut.stride == (2, 2)


def test_tsm_projects_in_every_first_block_audio_only_when_channels_change():
    tsm = TSMResNet(blocks=(1, 1, 1, 1), channels=(16, 32, 64, 128), stem_channels=16)
    audio = AudioResNet(blocks=(1, 1, 1, 1), channels=(16, 32, 64, 128), stem_channels=16)
    assert tsm.groups[0][0].shortcut is not None  # 16 -> 16 channels, projected anyway
    assert audio.groups[0][0].shortcut is None


def test_audio_last_conv_is_before_the_final_bn():
    torch.manual_seed(0)
    net = AudioResNet(blocks=(1, 1, 1, 1), channels=(16, 32, 64, 128), stem_channels=8).eval()
    spec = torch.randn(2, 1, 40, 80)
    with torch.no_grad():
        last = net.last_conv(spec)
        assert last.shape == (2, 128, 2, 3)
        pooled = F.relu(net.final_bn(last)).mean(dim=(2, 3))
        assert torch.allclose(pooled, net(spec), atol=1e-6)
        assert not torch.allclose(last.mean(dim=(2, 3)), net(spec), atol=1e-3)


@pytest.mark.parametrize("frames,size", [(16, 64), (8, 48), (4, 34)])
def test_s3d_any_even_input_size(frames, size):
    net = S3D(width_mult=0.125).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, frames, size, size + 2))
    assert out.shape == (1, net.out_dim) and torch.isfinite(out).all()


def test_s3d_endpoints_and_shapes():
    net = S3D(width_mult=0.25).eval()
    video = torch.rand(1, 3, 32, 224, 224)
    with torch.no_grad():
        # MMV_SPEC A.2 table (channels scaled by 1/4): 32x224x224 clip
        assert net.forward_features(video, "Conv2d_1a_7x7").shape == (1, 16, 16, 112, 112)
        assert net.forward_features(video, "MaxPool_4a_3x3").shape == (1, 120, 8, 14, 14)
        assert net.forward_features(video, "Mixed_5c").shape == (1, 256, 4, 7, 7)
    with pytest.raises(ValueError, match="unknown S3D endpoint"):
        net.forward_features(video, "Mixed_9z")


def test_s3d_gating_only_from_conv2d_2c():
    net = S3D()
    assert net.layers["Conv2d_1a_7x7"].gating is None and net.layers["Conv2d_2b_1x1"].gating is None
    assert net.layers["Conv2d_2c_3x3"].gating is not None
    units = net.layers["Mixed_3b"].units
    assert units["Branch_1_Conv2d_0a_1x1"].gating is None and units["Branch_2_Conv2d_0a_1x1"].gating is None
    assert all(units[n].gating is not None for n in ("Branch_0_Conv2d_0a_1x1", "Branch_1_Conv2d_0b_3x3",
                                                    "Branch_2_Conv2d_0b_3x3", "Branch_3_Conv2d_0b_1x1"))
    sep = units["Branch_1_Conv2d_0b_3x3"]
    assert sep.conv.kernel == (1, 3, 3) and sep.conv2.kernel == (3, 1, 1) and sep.bn2 is not None
