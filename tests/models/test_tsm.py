import pytest
import torch

from mmv.models.tsm import TSMResNet, temporal_shift

TINY = dict(blocks=(1, 1, 1, 1), channels=(32, 64, 128, 256), stem_channels=16)


def encoded(batch: int, frames: int, channels: int) -> torch.Tensor:
    """Value = 1000 * (b + 1) + 100 * (t + 1) + c, folded batch-major to [B*T, C, 1, 1]."""
    b = torch.arange(batch)[:, None, None]
    t = torch.arange(frames)[None, :, None]
    c = torch.arange(channels)[None, None, :]
    return (1000 * (b + 1) + 100 * (t + 1) + c).float().reshape(batch * frames, channels, 1, 1)


def test_shift_permutes_channels_as_released():
    x = encoded(2, 3, 16)  # n = int(16 * 0.125) = 2
    out = temporal_shift(x, 3).reshape(2, 3, 16)
    v = x.reshape(2, 3, 16)
    for b in range(2):
        for t in range(3):
            # first n channels: the LAST n channels of frame t+1 (zero after the last frame)
            expected_first = v[b, t + 1, 14:] if t < 2 else torch.zeros(2)
            # last n channels: the FIRST n channels of frame t-1 (zero before the first frame)
            expected_last = v[b, t - 1, :2] if t > 0 else torch.zeros(2)
            assert torch.equal(out[b, t, :2], expected_first)
            assert torch.equal(out[b, t, 2:14], v[b, t, 2:14])
            assert torch.equal(out[b, t, 14:], expected_last)


def test_shift_never_mixes_clips_of_a_batch():
    x = encoded(3, 4, 8)
    out = temporal_shift(x, 4).reshape(3, 4, 8)
    nonzero = out[out != 0]
    clip_of_value = (nonzero // 1000).unique()
    assert clip_of_value.tolist() == [1, 2, 3]
    for b in range(3):
        values = out[b][out[b] != 0]
        assert ((values // 1000) == b + 1).all()


def test_shift_edge_cases():
    x = torch.randn(6, 4, 2, 2)
    assert torch.equal(temporal_shift(x, 3, fraction=0.0), x)
    assert torch.equal(temporal_shift(x, 3), x)  # int(4 * 0.125) == 0 channels move
    single = temporal_shift(torch.ones(2, 16, 1, 1), 1)  # one frame: what moves in is zero
    assert single[:, :2].abs().sum() == 0 and single[:, 14:].abs().sum() == 0
    assert (single[:, 2:14] == 1).all()
    with pytest.raises(ValueError, match="multiple of num_frames"):
        temporal_shift(torch.ones(5, 16, 1, 1), 2)


def test_tsm_mixes_time_and_unshifted_tsm_is_per_frame():
    torch.manual_seed(0)
    video = torch.rand(1, 3, 4, 32, 32)
    reversed_time = video.flip(2)
    shifted = TSMResNet(shift_fraction=0.125, **TINY).eval()
    plain = TSMResNet(shift_fraction=0.0, **TINY).eval()
    plain.load_state_dict(shifted.state_dict())
    with torch.no_grad():
        # Without the shift, frames are independent: the temporal mean ignores their order.
        a, b = plain(video), plain(reversed_time)
        assert (a - b).abs().max() < 1e-5 * a.abs().max()
        # With the shift, order matters.
        a, b = shifted(video), shifted(reversed_time)
        assert (a - b).abs().max() > 1e-3 * a.abs().max()
        # The last_conv endpoint keeps time: [B, T, C, h, w], averaged into forward's output.
        feats = shifted.last_conv(video)
        assert feats.shape == (1, 4, 256, 1, 1)
        assert torch.allclose(feats.mean(dim=(1, 3, 4)), shifted(video), atol=1e-6)


def test_tsm_depth_validation():
    with pytest.raises(ValueError, match="depth"):
        TSMResNet(depth=18)
    with pytest.raises(ValueError, match="shift_fraction"):
        TSMResNet(shift_fraction=0.7, **TINY)
