"""Deflation proofs: exact conversion where boundaries do not matter, a naive gap, and BN tuning closing it."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmv import create_model, save_model
from mmv.data.image import decode_image
from mmv.deflate import (
    ImageEntry,
    ImageFiles,
    ImageS3D,
    bn_affine_parameters,
    boundary_free_copy,
    collate_images,
    deflate_model,
    deflate_video_backbone,
    list_images,
    load_image,
    load_image_network,
    measure_gap,
    prepare_image,
    run_deflation,
    save_image_network,
    space_to_depth_image,
    static_video,
    tune_deflated,
)
from mmv.deflate.convert import shift_permutation
from mmv.errors import CheckpointError, DataError
from mmv.models.config import InputProtocol
from mmv.models.layers import space_to_depth

pytestmark = pytest.mark.usefixtures("one_thread")

CIFAR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cifar10" / "cifar10_20k.zip"



def textures(n: int, size: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    """Smooth random colour fields in [0, 1]: image-like low-frequency content without any data file."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, size // 8, size // 8, generator=g)
    fine = 0.15 * torch.rand(n, 3, size, size, generator=g)
    x = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False) * 0.85 + fine
    return x.clamp(0, 1).to(dtype)


def cifar_or_textures(n: int, size: int) -> torch.Tensor:
    """``n`` CIFAR-10 training images (every class) when the shared data is there, textures otherwise."""
    if not CIFAR.is_file():
        return textures(n, size, seed=1)
    protocol = InputProtocol(resize_short_side=size, crop_size=size, eval_crop_size=size)
    with zipfile.ZipFile(CIFAR) as archive:
        names = sorted(m for m in archive.namelist() if m.endswith(".jpg") and "/train/" in m)
        picked = names[:: max(1, len(names) // n)][:n]
        return torch.stack([prepare_image(torch.from_numpy(decode_image(archive.read(m))), protocol)
                            for m in picked])


def calibrated_video(preset: str, size: int, frames: int, dtype=torch.float32) -> torch.nn.Module:
    """The tiny preset's video backbone with BN running stats measured on static videos (random weights
    with the default stats 0/1 give activations that explode or vanish: not a fair test subject)."""
    torch.manual_seed(0)
    video = create_model(preset).video.to(dtype)
    for m in video.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # cumulative average over the calibration batches
    video.train()
    with torch.no_grad():
        for seed in range(2):
            video(static_video(textures(24, size, seed=10 + seed, dtype=dtype), frames))
    return video.eval()


# ------------------------------------------------------------------------------- exact conversion


def test_image_space_to_depth_is_the_dt_free_half_of_the_video_layout():
    img = torch.rand(2, 3, 6, 8)
    video_s2d = space_to_depth(static_video(img, 4))  # [2, 24, 2, 3, 4]
    image_s2d = space_to_depth_image(img)  # [2, 12, 3, 4]
    for t in range(2):
        assert torch.equal(video_s2d[:, :12, t], image_s2d)  # dt = 0
        assert torch.equal(video_s2d[:, 12:, t], image_s2d)  # dt = 1


@pytest.mark.parametrize("frames,size", [(8, 32), (2, 32), (6, 36)])
def test_s3d_with_centre_taps_deflates_exactly(frames, size):
    # 36 px: space-to-depth 18 -> 9 -> 5 -> 3 -> 2 gives odd sizes and asymmetric SAME pads on the way.
    video = calibrated_video("mmv_tiny_s3d", 32, 8, torch.float64)
    exact = boundary_free_copy(video)
    image = deflate_video_backbone(exact)
    assert isinstance(image, ImageS3D) and image.out_dim == video.out_dim and not image.training
    stem = image.layers["Conv2d_1a_7x7"].conv
    assert stem.weight.shape[1:] == (12, 4, 4) and stem.kernel == (4, 4) and stem.weight.dtype == torch.float64
    img = textures(3, size, seed=5, dtype=torch.float64)
    with torch.no_grad():
        expected = exact(static_video(img, frames))
        got = image(img)
        for endpoint in ("Conv2d_2c_3x3", "MaxPool_4a_3x3", "Mixed_5c"):  # every frame equals the image
            fv, fi = exact.forward_features(static_video(img, frames), endpoint), image.forward_features(img, endpoint)
            assert torch.allclose(fv, fi.unsqueeze(2).expand_as(fv), rtol=1e-10, atol=1e-10)
    assert got.shape == expected.shape == (3, video.out_dim)
    assert torch.allclose(got, expected, rtol=1e-10, atol=1e-10), (got - expected).abs().max()


def test_tsm_with_a_wrapping_shift_deflates_exactly():
    video = calibrated_video("mmv_tiny_tsm", 32, 8, torch.float64)
    exact = boundary_free_copy(video)
    image = deflate_video_backbone(exact)
    img = textures(3, 32, seed=6, dtype=torch.float64)
    with torch.no_grad():
        expected, got = exact(static_video(img, 8)), image(img)
    assert got.shape == (3, video.out_dim)
    assert torch.allclose(got, expected, rtol=1e-10, atol=1e-10), (got - expected).abs().max()


def test_tsm_fold_is_exact_on_interior_frames_and_shift_off_is_not():
    """The release's shift permutes channels on a static video; "fold" keeps that, "off" loses it."""
    assert shift_permutation(8, 0.25).tolist() == [6, 7, 2, 3, 4, 5, 0, 1]
    video = calibrated_video("mmv_tiny_tsm", 32, 8, torch.float64)
    img = textures(2, 32, seed=7, dtype=torch.float64)
    frames = 12  # 4 blocks: zeros reach at most 4 frames in from each end
    with torch.no_grad():
        per_frame = video.last_conv(static_video(img, frames)).mean(dim=(3, 4))
        fold, off = deflate_video_backbone(video, "fold")(img), deflate_video_backbone(video, "off")(img)
    for t in range(4, 8):
        assert torch.allclose(per_frame[:, t], fold, rtol=1e-10, atol=1e-10)
        assert (per_frame[:, t] - off).abs().max() > 1e-2
    assert (per_frame[:, 0] - fold).abs().max() > 1e-3  # the boundary frame differs: the naive gap


def test_deflation_refuses_other_networks_and_leaves_the_video_network_alone():
    model = create_model("mmv_tiny_s3d")
    before = {k: v.clone() for k, v in model.video.state_dict().items()}
    deflate_video_backbone(model.video)
    assert all(torch.equal(before[k], v) for k, v in model.video.state_dict().items())
    with pytest.raises(TypeError, match="cannot deflate"):
        deflate_video_backbone(model.audio)
    with pytest.raises(ValueError, match="tsm_shift"):
        deflate_video_backbone(create_model("mmv_tiny_tsm").video, "sideways")


# ------------------------------------------------------------------------------- gap and tuning


@pytest.mark.parametrize("preset,steps,lr", [("mmv_tiny_s3d", 24, 1e-2), ("mmv_tiny_tsm", 40, 1e-2)])
def test_naive_gap_exists_and_bn_tuning_shrinks_it_touching_only_bn_affine(preset, steps, lr):
    frames, size = 8, 32
    video = calibrated_video(preset, size, frames)
    images = cifar_or_textures(160, size)
    train, held = list(images[:128].split(16)), [images[128:]]
    image = deflate_video_backbone(video)
    video_state = {k: v.clone() for k, v in video.state_dict().items()}
    start = {k: v.clone() for k, v in image.state_dict().items()}

    naive = measure_gap(image, video, held, frames)
    assert naive.relative_l1 > 0.02 and naive.num_images == 32  # boundaries matter: not exact
    image, result = tune_deflated(image, video, train, held, steps=steps, lr=lr, num_frames=frames)
    assert result.before == naive
    assert result.after.mean_l1 < 0.9 * result.before.mean_l1, result
    assert result.after.relative_l1 < result.before.relative_l1
    assert len(result.losses) == steps and result.num_frames == frames

    affine = {k for k in bn_affine_parameters(image)}
    assert affine and set(result.trained_parameters) == affine
    changed = {k for k, v in image.state_dict().items() if not torch.equal(v, start[k])}
    assert changed and changed <= affine  # conv weights, gating, running stats untouched
    assert all(torch.equal(video_state[k], v) for k, v in video.state_dict().items())
    assert all(p.requires_grad for p in image.parameters()) and all(p.requires_grad for p in video.parameters())


def test_head_outputs_can_be_matched_through_the_video_heads():
    model = create_model("mmv_tiny_tsm").eval()
    net = deflate_model(model)
    imgs = textures(4, 32, seed=3)
    with torch.no_grad():  # MMV.video_heads is what embed_video does after the backbone
        video = static_video(imgs, 4)
        mirrored, real = model.video_heads(model.video(video)), model.embed_video(video)
    assert all(torch.equal(mirrored[k], real[k]) for k in real)
    gap = measure_gap(net, model, [imgs], num_frames=4, output="video_va")
    assert gap.num_images == 4 and gap.mean_l1 > 0
    _, result = tune_deflated(net, model, [imgs[:2]], [imgs[2:]], steps=2, lr=1e-3, output="video_vat",
                              num_frames=4)
    assert result.output == "video_vat" and result.num_frames == 4
    with pytest.raises(ValueError, match="MMV model"):
        measure_gap(net, model.video, [imgs], num_frames=4, output="video_va")


# ------------------------------------------------------------------------------- files and entry point


def write_png(path: Path, rgb: np.ndarray) -> None:
    h, w = rgb.shape[:2]
    with av.open(str(path), "w", format="image2") as out:
        stream = out.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = w, h, "rgb24"
        for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_images_from_folder_and_zip_decode_and_bad_files_are_skipped(tmp_path):
    rgb = (textures(1, 40, seed=2)[0].permute(1, 2, 0) * 255).round().byte().numpy()
    (tmp_path / "a" / "b").mkdir(parents=True)
    write_png(tmp_path / "a" / "b" / "x.png", rgb)
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "a" / "bad.jpg").write_bytes(b"not an image at all")
    entries = list_images(tmp_path / "a")
    assert [Path(e.path).name for e in entries] == ["x.png", "bad.jpg"]  # sorted by path: a/b/x.png first
    decoded = load_image(entries[0])
    assert decoded.shape == (40, 40, 3) and decoded.dtype == torch.uint8
    assert np.abs(decoded.numpy().astype(int) - rgb).max() <= 2  # PNG: lossless
    with pytest.raises(DataError, match="bad.jpg"):
        load_image(entries[1])
    with zipfile.ZipFile(tmp_path / "imgs.zip", "w") as archive:
        archive.write(tmp_path / "a" / "b" / "x.png", "imgs/x.png")
    zipped = list_images(tmp_path / "imgs.zip")
    assert zipped == [ImageEntry(str(tmp_path / "imgs.zip"), "imgs/x.png")]
    assert torch.equal(load_image(zipped[0]), decoded)

    protocol = InputProtocol(resize_short_side=36, crop_size=32, eval_crop_size=32)
    batch = collate_images([ImageFiles(entries, protocol)[i] for i in range(2)])
    assert batch["image"].shape == (1, 3, 32, 32) and len(batch["skipped"]) == 1
    assert "bad.jpg" in batch["skipped"][0]
    prepared = batch["image"][0]  # centre crop of the 36x36 resize
    assert 0.0 <= float(prepared.min()) and float(prepared.max()) <= 1.0


def test_save_load_round_trip_and_run_deflation(tmp_path):
    model = create_model("mmv_tiny_s3d")
    weights = save_model(model, tmp_path / "weights")
    folder = tmp_path / "images"
    folder.mkdir()
    for i, img in enumerate(textures(10, 48, seed=4)):
        write_png(folder / f"{i}.png", (img.permute(1, 2, 0) * 255).round().byte().numpy())

    report = run_deflation(weights, folder, tmp_path / "out", steps=3, lr=1e-3, batch_size=4, holdout=3,
                           num_frames=4, image_size=32)
    assert report["images"] == {"source": str(folder), "train": 7, "heldout": 3}
    assert report["settings"]["steps"] == 3 and report["settings"]["num_frames"] == 4
    assert report["settings"]["output"] == "video_repr" and report["preset"] == "mmv_tiny_s3d"
    assert set(report["before"]) == {"mean_l1", "relative_l1", "num_images"} and report["after"]["num_images"] == 3
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["deflated"] and config["deflated_from"]["preset"] == "mmv_tiny_s3d"
    assert config["deflation"]["after"] == report["after"]

    net = load_image_network(tmp_path / "out")
    assert net.preset == "mmv_tiny_s3d" and net.out_dim == model.video.out_dim and not net.training
    # The saved network is the tuned one; deflating afresh and saving round-trips exactly too.
    fresh = deflate_model(model)
    save_image_network(fresh, tmp_path / "fresh")
    x = textures(2, 32, seed=8)
    with torch.no_grad():
        assert torch.equal(load_image_network(tmp_path / "fresh")(x), fresh(x))
        assert not torch.equal(net(x), fresh(x))  # BN affine tuned
    with pytest.raises(CheckpointError, match="not an mmv config"):
        from mmv.weights import load_model
        load_model(tmp_path / "out")
    with pytest.raises(CheckpointError, match="not a deflated image network"):
        load_image_network(weights)


def test_static_video_shape_checks():
    x = torch.rand(2, 3, 4, 6)
    v = static_video(x, 5)
    assert v.shape == (2, 3, 5, 4, 6) and all(torch.equal(v[:, :, t], x) for t in range(5))
    with pytest.raises(ValueError):
        static_video(x[0], 5)
