import pytest
import torch
import torch.nn.functional as F

from mmv.models.layers import SameConv, SameMaxPool, same_padding, space_to_depth


@pytest.mark.parametrize("size,kernel,stride,expected", [
    (224, 7, 2, (2, 3)),   # TSM / audio stem: PyTorch's padding=3 would give (3, 3)
    (112, 3, 2, (0, 1)),   # stride-2 3x3 conv and max-pool on even input
    (16, 2, 1, (0, 1)),    # S3D space-to-depth conv, time
    (112, 4, 1, (1, 2)),   # S3D space-to-depth conv, height / width
    (28, 3, 2, (0, 1)),    # MaxPool_4a at 224
    (25, 3, 2, (1, 1)),    # MaxPool_4a at the 200x200 training crop
    (14, 2, 2, (0, 0)),    # MaxPool_5a
    (50, 3, 2, (0, 1)), (25, 3, 2, (1, 1)), (13, 3, 2, (1, 1)),  # TSM conv_1 at 200
    (56, 3, 1, (1, 1)), (56, 1, 1, (0, 0)), (5, 1, 2, (0, 0)),
])
def test_same_padding_matches_tensorflow(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected


def test_same_conv_stride_2_pads_only_after():
    conv = SameConv(2, 1, 1, 3, 2)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    out = conv(torch.ones(1, 1, 4, 4))
    # Output (0, 0) sees the full 3x3 window at the top-left; (1, 1) sees rows/cols 2-3 and padding.
    assert out[0, 0].tolist() == [[9.0, 6.0], [6.0, 4.0]]


def test_same_conv_odd_input_pads_both_sides():
    conv = SameConv(2, 1, 1, 3, 2)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    out = conv(torch.ones(1, 1, 5, 5))  # total pad 2: (1, 1)
    assert out[0, 0].tolist() == [[4.0, 6.0, 4.0], [6.0, 9.0, 6.0], [4.0, 6.0, 4.0]]


def test_same_max_pool_padding_never_wins():
    x = -torch.arange(1.0, 17.0).reshape(1, 1, 4, 4)  # all negative: a zero pad would win
    out = SameMaxPool(2, 3, 2)(x)
    assert out[0, 0].tolist() == [[-1.0, -3.0], [-9.0, -11.0]]


def test_same_max_pool_3d_stride_1_keeps_size():
    x = torch.randn(2, 3, 4, 5, 6)
    out = SameMaxPool(3, 3, 1)(x)
    assert out.shape == x.shape
    assert torch.equal(out, F.max_pool3d(x, 3, 1, 1))


def test_space_to_depth_channel_order():
    b, c, t, h, w = 1, 3, 4, 6, 8
    video = torch.arange(b * c * t * h * w, dtype=torch.float32).reshape(b, c, t, h, w)
    out = space_to_depth(video)
    assert out.shape == (1, 24, 2, 3, 4)
    for dt in range(2):
        for dh in range(2):
            for dw in range(2):
                for colour in range(3):
                    channel = ((dt * 2 + dh) * 2 + dw) * 3 + colour
                    assert torch.equal(out[0, channel], video[0, colour, dt::2, dh::2, dw::2])


def test_space_to_depth_conv_equals_a_strided_conv_on_raw_frames():
    """MMV_SPEC A.2: the (2,4,4) s2d conv is a (4,8,8) stride-2 conv on the raw clip, padded T (0,2),
    H and W (2,4), with K[2kt+dt, 2kh+dh, 2kw+dw, c] = w[kt, kh, kw, ((dt*2+dh)*2+dw)*3+c]."""
    torch.manual_seed(0)
    conv = SameConv(3, 24, 5, (2, 4, 4), 1)
    video = torch.rand(2, 3, 8, 16, 12)
    ours = conv(space_to_depth(video))
    w = conv.weight.detach()  # [out, 24, 2, 4, 4]
    big = torch.zeros(5, 3, 4, 8, 8)
    for dt in range(2):
        for dh in range(2):
            for dw in range(2):
                for colour in range(3):
                    big[:, colour, dt::2, dh::2, dw::2] = w[:, ((dt * 2 + dh) * 2 + dw) * 3 + colour]
    reference = F.conv3d(F.pad(video, (2, 4, 2, 4, 0, 2)), big, stride=2)
    assert torch.allclose(ours, reference, atol=1e-5)


def test_space_to_depth_needs_even_sizes():
    with pytest.raises(ValueError, match="even number of frames"):
        space_to_depth(torch.zeros(1, 3, 5, 8, 8))
