"""Fine-tuning on a tiny synthetic set: two visually distinct classes are learnt, the recipe is recorded."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from mmv import create_model
from mmv.eval.datasets.base import Example
from mmv.eval.finetune import FinetuneRecipe, finetune

pytestmark = pytest.mark.usefixtures("one_thread")

COLOURS = {0: (230, 30, 30), 1: (30, 30, 230)}  # class 0: red square, class 1: blue square



def write_square_video(path: Path, label: int, seed: int, frames: int = 16, fps: int = 8, size: int = 48) -> Path:
    """A grey background with a coloured square moving along a random straight line."""
    rng = np.random.default_rng(seed)
    side = 24
    x0, y0 = rng.integers(0, size - side, 2)
    dx, dy = rng.choice([-1, 1], 2)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12", "preset": "ultrafast"}
        for t in range(frames):
            img = np.full((size, size, 3), 120 + int(rng.integers(-20, 20)), np.uint8)
            x = int(np.clip(x0 + dx * t, 0, size - side))
            y = int(np.clip(y0 + dy * t, 0, size - side))
            img[y:y + side, x:x + side] = COLOURS[label]
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def square_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("squares")
    train, test = [], []
    for i in range(16):
        label = i % 2
        path = write_square_video(root / f"v{i}.mp4", label, seed=i)
        (train if i < 12 else test).append(Example(id=f"v{i}", path=str(path), labels=(label,)))
    return train, test


def recipe(**kw) -> FinetuneRecipe:
    base = dict(epochs=4, batch_size=4, optimizer="adam", lr=3e-3, weight_decay=0.0, warmup_epochs=0.5,
                dropout=0.2, bn_mode="frozen_stats", test_windows=2, num_frames=4, fps=8.0,
                resize_short_side=36, crop_size=32, eval_crop_size=32, seed=0)
    base.update(kw)
    return FinetuneRecipe(**base)


def test_finetune_learns_two_colours_and_records_the_recipe(square_videos):
    train, test = square_videos
    torch.manual_seed(0)
    model = create_model("mmv_tiny_tsm").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = recipe(bn_mode="train", precise_bn_batches=3, label_smoothing=0.1)
    result = finetune(model, train, test, "video", 2, r, evaluate_train=True)
    assert result.train_eval_top1 >= 0.9, result.to_dict()
    assert result.test_top1 > 0.5, result.to_dict()
    assert result.epoch_losses[-1] < 0.8 * result.epoch_losses[0]
    assert result.steps == 4 * 3 and result.num_train == 12 and result.num_test == 4 and not result.skipped
    assert result.recipe == r.to_dict() and result.recipe["label_smoothing"] == 0.1
    assert result.protocol["num_frames"] == 4 and result.protocol["eval_crop_size"] == 32
    assert result.test_top5 is None  # two classes: top-5 is meaningless
    # The model passed in is untouched: a copy of its video tower was fine-tuned.
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    tuned = result.model.backbone.state_dict()
    changed = {k for k, v in model.video.state_dict().items() if not torch.equal(v, tuned[k])}
    assert "stem.weight" in changed and "groups.0.0.bn0.running_mean" in changed  # trained; precise BN


def test_s3d_with_frozen_statistics_keeps_running_stats(square_videos):
    train, test = square_videos
    model = create_model("mmv_tiny_s3d").eval()
    result = finetune(model, train[:4], test[:2], "video", 2, recipe(epochs=2, bn_mode="frozen_stats"))
    tuned = result.model.backbone.state_dict()
    for k, v in model.video.state_dict().items():
        if "running" in k or "num_batches" in k:
            assert torch.equal(v, tuned[k]), k
    assert not torch.equal(model.video.state_dict()["layers.Conv2d_1a_7x7.bn.weight"],
                           tuned["layers.Conv2d_1a_7x7.bn.weight"])  # BN affine still trains
    assert result.steps == 2 and 0.0 <= result.test_top1 <= 1.0  # step 1 moves only the zero-initialised head


def test_head_only_trains_only_the_head_and_bad_files_are_reported(square_videos, tmp_path):
    train, test = square_videos
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 100)
    model = create_model("mmv_tiny_tsm").eval()
    r = recipe(train_backbone=False, bn_mode="frozen", optimizer="sgd", lr=0.5, epochs=2, flip=False,
               scale_jitter=False)
    result = finetune(model.video, train + [Example(id="broken", path=str(broken), labels=(0,))], test, "video",
                      2, r)
    backbone = result.model.backbone.state_dict()
    assert all(torch.equal(v, backbone[k]) for k, v in model.video.state_dict().items())
    assert result.model.head.weight.abs().sum() > 0
    head_params = sum(p.numel() for p in result.model.head.parameters())
    assert result.trainable_parameters == head_params
    assert result.frozen_parameters == sum(p.numel() for p in model.video.parameters())
    assert [s[0] for s in result.skipped] == ["broken", "broken"]  # once per epoch, with the reason
    assert result.recipe["train_backbone"] is False and 0.0 <= result.test_top1 <= 1.0


def test_images_through_a_deflated_network_and_audio_through_the_audio_tower(tmp_path):
    from mmv.deflate import deflate_model
    from tests.eval.helpers import write_image, write_wav

    images, sounds = [], []
    for i in range(8):
        label = i % 2
        pic = np.full((40, 40, 3), 110, np.uint8)
        pic[8:32, 8:32] = COLOURS[label]
        path = write_image(tmp_path / f"p{i}.png", pic)
        images.append(Example(id=f"p{i}", path=str(path), labels=(label,)))
        t = np.arange(16000) / 8000
        wav = write_wav(tmp_path / f"s{i}.wav", 0.5 * np.sin(2 * np.pi * (300 if label else 1200) * t), 8000)
        sounds.append(Example(id=f"s{i}", path=str(wav), labels=(label,)))
    torch.manual_seed(0)
    model = create_model("mmv_tiny_tsm").eval()
    net = deflate_model(model)
    r = recipe(bn_mode="train", precise_bn_batches=2, epochs=4, test_windows=1)
    result = finetune(net, images[:6], images[6:], "image", 2, r, evaluate_train=True)
    assert result.modality == "image" and result.train_eval_top1 >= 0.8 and not result.skipped
    # Audio: 1 s windows of log-mel (the protocol's 48 kHz front end; decode_audio resamples).
    result = finetune(model, sounds[:6], sounds[6:], "audio", 2, recipe(epochs=1, test_windows=2))
    assert result.modality == "audio" and result.steps == 2 and not result.skipped
    assert result.trainable_parameters == sum(p.numel() for p in model.audio.parameters()) + 2 * 256 + 2


def test_recipe_validation_and_labels():
    with pytest.raises(ValueError, match="bn_mode"):
        FinetuneRecipe(bn_mode="sometimes")
    with pytest.raises(ValueError, match="optimizer"):
        FinetuneRecipe(optimizer="lion")
    model = create_model("mmv_tiny_tsm")
    ex = [Example(id="a", path="x.mp4", labels=(0, 1))]
    with pytest.raises(ValueError, match="one label"):
        finetune(model, ex, ex, "video", 2, recipe())
