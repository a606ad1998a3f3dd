"""Feature extraction: shapes, determinism, seeded training passes, the disk cache, skipped files, and the
audio, image and custom-encoder paths. Tiny model, tiny clips (4 frames, 32 px) to stay fast on a CPU."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch
from torch import nn

import mmv.eval.features as features_mod
from mmv.data.image import decode_image
from mmv.data.transforms import EvalTransform
from mmv.eval.datasets.base import Example
from mmv.eval.encoders import Encoder, weights_hash
from mmv.eval.features import FeatureSpec, extract_features, load_features
from mmv.models import create_model
from tests.data.fixtures import burst_track, write_text_as_video, write_video
from tests.eval.helpers import make_picture, write_image, write_wav

SMALL = dict(num_frames=4, fps=8.0, resize_short_side=36, crop=32)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("mmv_tiny_tsm").eval()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    good = [Example(f"v{i}", str(write_video(root / f"v{i}.mp4", num_frames=30 + 15 * i, fps=25.0)), (i,))
            for i in range(3)]
    bad = [Example("text", str(write_text_as_video(root / "notes.mp4")), (0,)),
           Example("gone", str(root / "missing.mp4"), (1,))]
    return good, bad


def test_test_features_shapes_skips_and_determinism(model, videos):
    good, bad = videos
    spec = FeatureSpec(num_windows=3, **SMALL)
    f = extract_features(model, [good[0], bad[0], good[1], bad[1], good[2]], spec, train=False, batch_size=4)
    assert f.array.shape == (3, 3, 16 * 16) and f.array.dtype == np.float32  # tiny TSM: 256-d video_repr
    assert f.ids == ["v0", "v1", "v2"] and f.labels == [(0,), (1,), (2,)]
    assert [(s.id, s.reason) for s in f.skipped] == [("text", f.skipped[0].reason), ("gone", "file not found")]
    assert "not a media file" in f.skipped[0].reason and f.meta["n_skipped"] == 2
    assert f.skipped_counts() == {f.skipped[0].reason: 1, "file not found": 1}
    # the recorded spec is complete: every default resolved from the protocol
    assert (f.spec["layer"], f.spec["num_frames"], f.spec["crop"], f.spec["clip_seconds"]) == ("video_repr", 4, 32, 0.5)
    assert f.spec["train"] is False and f.spec["protocol"]["num_frames"] == 8
    again = extract_features(model, good, spec, train=False, batch_size=1)
    np.testing.assert_allclose(again.array, f.array, rtol=1e-5, atol=1e-6)  # batching does not matter
    # linearly spaced windows differ (v2 lasts 2.4 s: starts 0, 0.95, 1.9 s)
    assert not np.allclose(f.array[2, 0], f.array[2, 2])


def test_training_passes_are_seeded(model, videos):
    good, _ = videos
    spec = FeatureSpec(num_passes=2, **SMALL)
    a = extract_features(model, good[:2], spec, train=True, seed=0)
    b = extract_features(model, good[:2], spec, train=True, seed=0)
    c = extract_features(model, good[:2], spec, train=True, seed=1)
    assert a.array.shape == (2, 2, 256)
    np.testing.assert_array_equal(a.array, b.array)
    assert not np.allclose(a.array, c.array)
    assert not np.allclose(a.array[:, 0], a.array[:, 1])  # the passes are different augmentations
    # an example's passes depend on its id and the seed, not on its position in the list
    d = extract_features(model, good[1::-1], spec, train=True, seed=0)
    np.testing.assert_allclose(d.array[::-1], a.array, rtol=1e-5, atol=1e-6)


def test_cache_hit_does_not_decode(model, videos, tmp_path, monkeypatch):
    good, bad = videos
    spec = FeatureSpec(num_windows=2, **SMALL)
    first = extract_features(model, good + bad[:1], spec, train=False, cache_dir=tmp_path)
    assert first.meta["cache"]["hit"] is False
    assert [p.name for p in tmp_path.iterdir()] == [first.meta["cache"]["path"].split("/")[-1]]  # no temp left

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded on a cache hit")

    monkeypatch.setattr(features_mod, "decode_clip", no_decoding)
    monkeypatch.setattr(features_mod, "probe_video", no_decoding)
    second = extract_features(model, good + bad[:1], spec, train=False, cache_dir=tmp_path)
    assert second.meta["cache"]["hit"] is True
    np.testing.assert_array_equal(second.array, first.array)
    assert (second.ids, second.labels, second.skipped, second.spec) == (first.ids, first.labels, first.skipped,
                                                                        first.spec)
    # anything that changes the features misses the cache: the spec, the train flag, the weights
    for kwargs in (dict(spec=FeatureSpec(num_windows=3, **SMALL), train=False), dict(spec=spec, train=True)):
        with pytest.raises(AssertionError, match="decoded on a cache hit"):
            extract_features(model, good, cache_dir=tmp_path, **kwargs)
    other = create_model("mmv_tiny_tsm").eval()
    assert weights_hash(other) != weights_hash(model)
    with pytest.raises(AssertionError, match="decoded on a cache hit"):
        extract_features(other, good + bad[:1], spec, train=False, cache_dir=tmp_path)
    assert load_features(first.meta["cache"]["path"]).array.shape == (3, 2, 256)


def test_other_layers_and_endpoints(model, videos):
    good, _ = videos
    base = extract_features(model, good[:2], FeatureSpec(num_windows=1, **SMALL), train=False)
    vat = extract_features(model, good[:2], FeatureSpec(layer="video_vat", num_windows=1, **SMALL), train=False)
    end = extract_features(model, good[:2], FeatureSpec(layer="video:last_conv", num_windows=1, **SMALL),
                           train=False)
    assert vat.array.shape == (2, 1, 64)
    np.testing.assert_allclose(end.array, base.array, rtol=1e-5, atol=1e-6)  # repr = pooled last_conv
    s3d = create_model("mmv_tiny_s3d").eval()
    mixed_5c = extract_features(s3d, good[:1], FeatureSpec(layer="video:Mixed_5c", num_windows=1, **SMALL), train=False)
    mixed_4f = extract_features(s3d, good[:1], FeatureSpec(layer="video:Mixed_4f", num_windows=1, **SMALL), train=False)
    s3d_repr = extract_features(s3d, good[:1], FeatureSpec(num_windows=1, **SMALL), train=False)
    np.testing.assert_allclose(mixed_5c.array, s3d_repr.array, rtol=1e-5, atol=1e-7)  # repr = pooled Mixed_5c
    assert mixed_4f.array.shape == (1, 1, 104)  # the 1/8-width S3D's Mixed_4f channels
    with pytest.raises(ValueError, match="no endpoint"):
        extract_features(s3d, good[:1], FeatureSpec(layer="video:nope", num_windows=1, **SMALL), train=False)
    # the audio tower on the sound of the videos, at the protocol's 1 s audio window by default
    aud = extract_features(model, good[:2], FeatureSpec(layer="audio_va", num_windows=2), train=False)
    assert aud.array.shape == (2, 2, 128) and aud.spec["input"] == "audio" and aud.spec["clip_seconds"] == 1.0


def test_audio_only_files(model, tmp_path):
    long = write_wav(tmp_path / "long.wav", burst_track(20000, 8000, [0.3, 1.1, 2.2], freq=700.0))  # 2.5 s
    short = write_wav(tmp_path / "short.wav", burst_track(4000, 8000, [0.1], freq=700.0))  # 0.5 s: loops
    text = write_text_as_video(tmp_path / "notes.wav")
    exs = [Example("long", str(long), (0,)), Example("short", str(short), (1,)), Example("bad", str(text), (0,))]
    f = extract_features(model, exs, FeatureSpec(modality="audio", num_windows=3), train=False)
    assert f.array.shape == (2, 3, 256) and f.spec["layer"] == "audio_repr" and f.spec["audio_pad"] == "loop"
    assert [s.id for s in f.skipped] == ["bad"]
    assert not np.allclose(f.array[0, 0], f.array[0, 2])  # windows at 0, 0.75, 1.5 s of the long file
    np.testing.assert_allclose(f.array[1, 0], f.array[1, 2], rtol=1e-5, atol=1e-6)  # short: every window at 0
    t = extract_features(model, exs[:2], FeatureSpec(modality="audio", num_passes=2), train=True)
    assert t.array.shape == (2, 2, 256) and not np.allclose(t.array[0, 0], t.array[0, 1])


def test_images_as_static_videos_and_through_a_custom_encoder(model, tmp_path):
    pic = make_picture()
    png, jpg = write_image(tmp_path / "a.png", pic), write_image(tmp_path / "b.jpg", pic[::-1].copy())
    with zipfile.ZipFile(tmp_path / "imgs.zip", "w") as z:
        z.write(png, "x/a.png")
    exs = [Example("png", str(png), (0,)), Example("jpg", str(jpg), (1,)),
           Example("zip", str(tmp_path / "imgs.zip"), (0,), member="x/a.png"),
           Example("nozip", str(tmp_path / "imgs.zip"), (0,), member="x/none.png")]
    spec = FeatureSpec(modality="image", num_windows=1, **SMALL)
    f = extract_features(model, exs, spec, train=False)
    assert f.array.shape == (3, 1, 256) and [s.id for s in f.skipped] == ["nozip"]
    np.testing.assert_allclose(f.array[2], f.array[0], rtol=1e-6)  # the zip member is the same picture
    # input inflation by hand: the centre crop repeated over num_frames, through the video tower
    frames = EvalTransform(model.protocol.__class__(resize_short_side=36, eval_crop_size=32))(
        torch.from_numpy(decode_image(png))[None])
    with torch.no_grad():
        ref = model(video=frames.expand(-1, 4, -1, -1)[None])["video_repr"][0].numpy()
    np.testing.assert_allclose(f.array[0, 0], ref, rtol=1e-4, atol=1e-5)

    class ImageNet(nn.Module):  # stands in for a deflated image network: [B, 3, H, W] -> feature map
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 5, 3)

        def forward(self, x):
            assert x.dim() == 4
            return {"image_repr": self.conv(x)}

    net = ImageNet()
    g = extract_features(net, exs[:2], FeatureSpec(modality="image", layer="image_repr", image_input="image",
                                                   num_passes=2, **SMALL), train=True, cache_dir=tmp_path / "c")
    assert g.array.shape == (2, 2, 5) and g.spec["input"] == "image"
    plain = Encoder(lambda x: x.mean(dim=(2, 3)), input="image", identity="channel-means")
    h = extract_features(plain, exs[:1], FeatureSpec(modality="image", image_input="image", num_windows=1, **SMALL),
                         train=False, cache_dir=tmp_path / "c")
    assert h.array.shape == (1, 1, 3) and h.meta["cache"]["hit"] is False
