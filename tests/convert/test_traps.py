"""Each trap of MMV_SPEC.md section F, injected on its own, makes a parity comparison fail.

If one of these passed, the parity tests would not be able to tell that trap from the right
computation. A mismatch above 1e-3 is a real difference (golden/README.md).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mmv.convert.haiku as haiku
import mmv.models.layers as layers
import mmv.models.s3d as s3d
import mmv.models.tsm as tsm
from mmv.convert import load_haiku_checkpoint, model_from_tree
from tests.convert.golden_compare import eval_errors, rel_err, train_mismatches, train_outputs

REAL_DIFFERENCE = 1e-3


def assert_detected(errors: dict[str, float], keys):
    worst = max(errors[k] for k in keys)
    assert worst > REAL_DIFFERENCE, f"trap not detected: {errors}"


def assert_detected_in_training(model, golden, sensitivity, keys):
    """For S3D's video tower: in eval mode the parity weights make it blind to its input."""
    problems = train_mismatches(train_outputs(model, golden.inputs()), golden, sensitivity, keys)
    assert problems, f"trap not detected in train mode for {keys}"


def pytorch_symmetric_padding(size, kernel, stride):
    """What ``padding=k//2`` does: the same pad on both sides (even kernels: extra pad before)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total - total // 2, total // 2


def plain_tsm_shift(x, num_frames, fraction=tsm.SHIFT_FRACTION):
    """The usual TSM: shifted channels keep their positions."""
    c = x.shape[1]
    n = int(c * fraction)
    v = x.reshape(-1, num_frames, *x.shape[1:])
    out = v.clone()
    out[:, :-1, :n] = v[:, 1:, :n]
    out[:, -1, :n] = 0
    out[:, 1:, c - n:] = v[:, :-1, c - n:]
    out[:, 0, c - n:] = 0
    return out.reshape(x.shape)


def colour_major_space_to_depth(video):
    b, c, t, h, w = video.shape
    x = video.reshape(b, c, t // 2, 2, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 7, 2, 4, 6)
    return x.reshape(b, 8 * c, t // 2, h // 2, w // 2)


def test_symmetric_padding_is_detected_in_tsm_and_audio(converted, monkeypatch):
    golden, model = converted("tsm_resnet_x1")
    monkeypatch.setattr(layers, "same_padding", pytorch_symmetric_padding)
    errors = eval_errors(model, golden)
    assert_detected(errors, ["video_repr"])
    assert_detected(errors, ["audio_repr"])


def test_symmetric_padding_is_detected_in_s3d(converted, train_sensitivity, monkeypatch):
    golden, model = converted("s3d")
    sensitivity = train_sensitivity("s3d")
    monkeypatch.setattr(layers, "same_padding", pytorch_symmetric_padding)
    assert_detected_in_training(model, golden, sensitivity, ["video_repr"])


def test_plain_tsm_shift_is_detected(converted, monkeypatch):
    golden, model = converted("tsm_resnet_x1")
    monkeypatch.setattr(tsm, "temporal_shift", plain_tsm_shift)
    assert_detected(eval_errors(model, golden), ["video_repr"])


def test_shift_on_the_block_input_instead_of_the_residual_is_detected(converted, monkeypatch):
    golden, model = converted("tsm_resnet_x1")
    shift = model.video.groups[0][0].shift
    for group in model.video.groups:
        for block in group:
            monkeypatch.setattr(block, "shift", None)
            original = block.forward
            monkeypatch.setattr(block, "forward", lambda x, t=1, f=original: f(shift(x, t), t))
    assert_detected(eval_errors(model, golden), ["video_repr"])


def test_bn_hidden_statistics_are_detected(converted, monkeypatch):
    golden, _ = converted("tsm_resnet_x1")
    monkeypatch.setattr(haiku, "BN_STATISTIC", "hidden")
    model = model_from_tree(load_haiku_checkpoint(golden.pkl))
    assert_detected(eval_errors(model, golden), ["video_repr", "audio_repr", "video_va"])


def test_unbiased_batch_variance_in_training_is_detected(converted, train_sensitivity, monkeypatch):
    golden, model = converted("tsm_resnet_x1")
    inputs = golden.inputs()
    sens = train_sensitivity("tsm_resnet_x1")
    real_batch_norm = F.batch_norm

    def unbiased(x, mean, var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
        if training:
            n = x.numel() // x.shape[1]
            eps = eps * (n - 1) / n  # (x - m) / sqrt(var * n/(n-1) + eps) written with PyTorch's biased var
            weight = None if weight is None else weight * ((n - 1) / n) ** 0.5
        return real_batch_norm(x, mean, var, weight, bias, training, momentum, eps)

    monkeypatch.setattr(F, "batch_norm", unbiased)
    assert train_mismatches(train_outputs(model, inputs), golden, sens)


def test_conv_kernel_layout_is_detected(converted, monkeypatch):
    golden, _ = converted("tsm_resnet_x1")
    real = haiku.to_torch

    def swapped_hw(array, layout):
        if layout == haiku.CONV2D:
            return torch.from_numpy(np.ascontiguousarray(array.transpose(3, 2, 1, 0)))
        return real(array, layout)

    monkeypatch.setattr(haiku, "to_torch", swapped_hw)
    model = model_from_tree(load_haiku_checkpoint(golden.pkl))
    assert_detected(eval_errors(model, golden), ["video_repr", "audio_repr"])


def test_space_to_depth_channel_order_is_detected(converted, train_sensitivity, monkeypatch):
    golden, model = converted("s3d")
    sensitivity = train_sensitivity("s3d")
    monkeypatch.setattr(s3d, "space_to_depth", colour_major_space_to_depth)
    assert_detected_in_training(model, golden, sensitivity, ["video_repr"])


def test_missing_self_gating_is_detected(converted, train_sensitivity, monkeypatch):
    golden, model = converted("s3d")
    sensitivity = train_sensitivity("s3d")
    monkeypatch.setattr(s3d.SelfGating, "forward", lambda self, x: x)
    assert_detected_in_training(model, golden, sensitivity, ["video_repr"])


def test_single_bn_in_separable_units_is_detected(converted, train_sensitivity, monkeypatch):
    golden, model = converted("s3d")
    sensitivity = train_sensitivity("s3d")

    def one_bn(self, x):  # spatial conv -> temporal conv -> BN -> ReLU, as a naive port might do
        if self.conv2 is None:
            x = F.relu(self.bn(self.conv(x)))
        else:
            x = F.relu(self.bn2(self.conv2(self.conv(x))))
        return x if self.gating is None else self.gating(x)

    monkeypatch.setattr(s3d.SUnit3D, "forward", one_bn)
    assert_detected_in_training(model, golden, sensitivity, ["video_repr"])


def test_fac_without_relu_is_detected(converted, monkeypatch):
    golden, model = converted("tsm_resnet_x1")
    monkeypatch.setattr(model.config, "graph", "fac")
    assert_detected(eval_errors(model, golden), ["video_vat", "audio_vat"])


def test_audio_to_vat_through_audio2txt_at_eval_is_detected(converted):
    golden, model = converted("tsm_resnet_x1")
    model.eval()
    with torch.no_grad():
        rep = model(audio=golden.inputs()["audio"])["audio_repr"]
        wrong = model.heads["audio2txt_embd"](rep)
    # 512-d, not even the shape of S_vat (256-d)
    assert wrong.shape[-1] != golden.vectors["eval/aud_embd/totxt"].shape[-1]


def test_text_padding_mask_is_detected(converted):
    golden, model = converted("tsm_resnet_x1")
    words = golden.inputs()["text"]
    assert (words[0, 10:] == 0).all(), "the golden's first sentence is padded with id 0 from position 10"
    with torch.no_grad():
        per_word = F.relu(model.text.proj(model.text.embed(words)))
        masked = per_word.masked_fill((words == 0)[..., None], float("-inf")).amax(dim=1)
        vat = model.heads["txt_embd"](masked)
    assert rel_err(vat[:1], golden.vectors["eval/txt_embd/tovid"][:1]) > REAL_DIFFERENCE


def test_imagenet_normalised_video_is_refused_and_would_not_match(converted):
    golden, model = converted("tsm_resnet_x1")
    video = golden.inputs()["video"]
    mean = torch.tensor([0.485, 0.456, 0.406])[None, :, None, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[None, :, None, None, None]
    normalised = (video - mean) / std
    with pytest.raises(ValueError, match="no mean/std normalisation"):
        model(video=normalised)
    model.check_inputs = False
    try:
        with torch.no_grad():
            out = model.eval()(video=normalised)
    finally:
        model.check_inputs = True
    assert rel_err(out["video_repr"], golden.vectors["eval/vid_repr"]) > REAL_DIFFERENCE
