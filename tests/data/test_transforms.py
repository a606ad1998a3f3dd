import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmv.data.transforms import (
    EvalTransform,
    TrainTransform,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    center_crop,
    color_augment,
    hflip,
    hsv_to_rgb,
    jitter_size,
    random_crop,
    resize,
    resize_short_side,
    rgb_to_hsv,
    scale_jitter,
    short_side_size,
    to_float,
)
from mmv.models.config import InputProtocol


def pixel(*rgb):
    return torch.tensor(rgb, dtype=torch.float32).view(3, 1, 1, 1)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def grid(t=2, h=7, w=9):
    return torch.arange(3 * t * h * w, dtype=torch.float32).view(3, t, h, w)


def test_to_float_layout_and_scale():
    frames = torch.randint(0, 256, (4, 5, 6, 3), dtype=torch.uint8, generator=gen())
    out = to_float(frames)
    assert out.shape == (3, 4, 5, 6) and out.dtype == torch.float32
    assert out[2, 1, 3, 4] == frames[1, 3, 4, 2].item() / 255
    assert torch.equal(out.permute(1, 2, 3, 0).mul(255).round().to(torch.uint8), frames)


@pytest.mark.parametrize("hw,size,expected", [
    ((240, 320), 224, (224, 298)), ((720, 1280), 224, (224, 398)), ((320, 240), 224, (298, 224)),
    ((256, 256), 224, (224, 224)), ((61, 97), 224, (224, 356)), ((224, 300), 224, (224, 300)),
])
def test_short_side_sizes_use_integer_division(hw, size, expected):
    assert short_side_size(*hw, size) == expected
    video = torch.rand(3, 1, *hw)
    assert resize_short_side(video, size).shape[-2:] == expected


def test_no_resize_when_the_short_side_already_matches():
    video = torch.rand(3, 2, 224, 300)
    assert resize_short_side(video, 224) is video


def test_bilinear_matches_tf_half_pixel_without_antialias():
    row = pixel(0.0, 0.0, 0.0).expand(3, 1, 1, 2).clone()
    row[..., 1] = 1.0
    up = resize(row, 1, 4)  # half-pixel centres: source x = (i + 0.5) / 2 - 0.5, clamped
    assert torch.allclose(up[0, 0, 0], torch.tensor([0.0, 0.25, 0.75, 1.0]))
    four = torch.tensor([0.0, 1.0, 2.0, 6.0]).view(1, 1, 1, 4).expand(3, 1, 1, 4).contiguous()
    down = resize(four, 1, 2)  # sources at 0.5 and 2.5: plain averages of neighbours, no antialias filter
    assert torch.allclose(down[0, 0, 0], torch.tensor([0.5, 4.0]))


def test_resize_of_uint8_equals_resize_of_float():
    frames = torch.randint(0, 256, (5, 30, 40, 3), dtype=torch.uint8, generator=gen())
    assert torch.allclose(resize(frames, 17, 23), resize(to_float(frames), 17, 23))
    assert torch.allclose(resize_short_side(frames, 20), resize_short_side(to_float(frames), 20))


def test_center_crop_offsets_and_padding():
    video = grid()
    crop = center_crop(video, 4)  # offsets (7 - 4) // 2 = 1 and (9 - 4) // 2 = 2
    assert torch.equal(crop, video[:, :, 1:5, 2:6])
    small = grid(1, 3, 5)
    out = center_crop(small, 4)  # height padded 0 before / 1 after, width cropped at offset 0
    assert out.shape == (3, 1, 4, 4)
    assert torch.equal(out[:, :, :3], small[:, :, :, 0:4])
    assert float(out[:, :, 3].abs().sum()) == 0.0
    assert torch.equal(center_crop(grid(1, 2, 2), 4)[:, :, 1:3, 1:3], grid(1, 2, 2))


def test_random_crop_is_a_window_and_seeded():
    video = grid(2, 10, 12)
    offsets = set()
    for seed in range(60):
        crop = random_crop(video, 4, gen(seed))
        top = int(crop[0, 0, 0, 0]) // 12
        left = int(crop[0, 0, 0, 0]) % 12
        assert torch.equal(crop, video[:, :, top:top + 4, left:left + 4])
        offsets.add((top, left))
        assert torch.equal(crop, random_crop(video, 4, gen(seed)))
    tops, lefts = {o[0] for o in offsets}, {o[1] for o in offsets}
    assert min(tops) == 0 and max(tops) == 6 and min(lefts) == 0 and max(lefts) == 8


def test_hflip():
    video = grid(1, 2, 3)
    assert torch.equal(hflip(video)[..., 0], video[..., 2]) and torch.equal(hflip(hflip(video)), video)


@pytest.mark.parametrize("rgb,hsv", [
    ((1.0, 0.0, 0.0), (0.0, 1.0, 1.0)), ((0.0, 1.0, 0.0), (1 / 3, 1.0, 1.0)), ((0.0, 0.0, 1.0), (2 / 3, 1.0, 1.0)),
    ((1.0, 1.0, 0.0), (1 / 6, 1.0, 1.0)), ((0.5, 0.25, 0.25), (0.0, 0.5, 0.5)), ((0.3, 0.3, 0.3), (0.0, 0.0, 0.3)),
    ((0.2, 0.4, 0.8), (11 / 18, 0.75, 0.8)), ((1.0, 0.0, 0.5), (11 / 12, 1.0, 1.0)),
])
def test_hsv_hand_computed(rgb, hsv):
    assert torch.allclose(rgb_to_hsv(pixel(*rgb)).flatten(), torch.tensor(hsv), atol=1e-6)
    assert torch.allclose(hsv_to_rgb(pixel(*hsv)).flatten(), torch.tensor(rgb), atol=1e-6)


def test_hue_shift_of_a_third_turns_red_green_and_green_blue():
    assert torch.allclose(adjust_hue(pixel(1.0, 0.0, 0.0), 1 / 3).flatten(), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    assert torch.allclose(adjust_hue(pixel(0.0, 1.0, 0.0), 1 / 3).flatten(), torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)
    assert torch.allclose(adjust_hue(pixel(1.0, 0.0, 0.0), -1 / 6).flatten(), torch.tensor([1.0, 0.0, 1.0]),
                          atol=1e-6)


def test_fused_hue_equals_hsv_round_trip():
    video = torch.rand(3, 2, 6, 5, generator=gen()) * 1.4 - 0.2  # includes out-of-range values, as after brightness
    for delta in (0.0, 0.13, -0.2, 0.5):
        hsv = rgb_to_hsv(video)
        hsv[0] = (hsv[0] + delta) % 1.0
        assert torch.allclose(adjust_hue(video, delta), hsv_to_rgb(hsv), atol=1e-5)


def test_saturation():
    grey = adjust_saturation(pixel(0.8, 0.4, 0.2), 0.0).flatten()
    assert torch.allclose(grey, torch.tensor([0.8, 0.8, 0.8]))  # grey at the value channel (max)
    half = adjust_saturation(pixel(0.8, 0.4, 0.2), 0.5).flatten()  # S 0.75 -> 0.375, V and H kept
    assert torch.allclose(half, torch.tensor([0.8, 0.6, 0.5]))
    full = adjust_saturation(pixel(0.8, 0.4, 0.2), 10.0).flatten()  # S clamps at 1
    assert torch.allclose(full, torch.tensor([0.8, 0.2667, 0.0]), atol=1e-4)
    video = torch.rand(3, 2, 6, 5, generator=gen()) * 1.4 - 0.2
    for factor in (0.6, 1.0, 1.4):
        hsv = rgb_to_hsv(video)
        hsv[1] = (hsv[1] * factor).clamp(0, 1)
        assert torch.allclose(adjust_saturation(video, factor), hsv_to_rgb(hsv), atol=1e-5)


def test_brightness_and_contrast():
    video = torch.rand(3, 2, 4, 4, generator=gen())
    assert torch.equal(adjust_brightness(video, 0.1), video + 0.1)
    out = adjust_contrast(video, 1.5)
    mean = video.mean(dim=(-2, -1), keepdim=True)  # per channel, per frame (tf.image.adjust_contrast)
    assert torch.allclose(out, (video - mean) * 1.5 + mean)
    assert torch.allclose(out.mean(dim=(-2, -1)), video.mean(dim=(-2, -1)), atol=1e-6)


def test_color_augment_brightness_only_adds_one_delta_then_clips():
    video = torch.rand(3, 4, 8, 8, generator=gen()) * 0.6 + 0.2
    out = color_augment(video, gen(3), saturation=(1, 1), contrast=(1, 1), hue=0.0, p=1.0)
    delta = out - video
    assert torch.allclose(delta, delta.flatten()[0].expand_as(delta), atol=1e-6)
    assert 0 < abs(float(delta.flatten()[0])) <= 32 / 255
    clipped = color_augment(torch.ones(3, 1, 2, 2), gen(1), brightness=0.5, saturation=(1, 1), contrast=(1, 1),
                            hue=0.0, p=1.0)
    assert float(clipped.max()) <= 1.0


def test_color_augment_probability_and_one_draw_per_clip():
    video = torch.rand(3, 1, 8, 8, generator=gen()).expand(3, 5, 8, 8).contiguous()
    assert torch.equal(color_augment(video, gen(), p=0.0), video)
    out = color_augment(video, gen(), p=1.0)
    assert not torch.equal(out, video)
    assert all(torch.equal(out[:, 0], out[:, t]) for t in range(5))  # same change for every frame
    applied = sum(not torch.equal(color_augment(video, gen(s)), video) for s in range(200))
    assert 140 < applied < 180  # p = 0.8


def test_scale_jitter():
    sizes = [jitter_size(100, 200, gen(s)) for s in range(200)]
    changed = [(h, w) for h, w in sizes if (h, w) != (100, 200)]
    assert all(80 <= h <= 120 and 160 <= w <= 240 for h, w in sizes)
    assert 140 < len(changed) < 180
    assert len({round(h / 100 - w / 200, 2) for h, w in changed}) > 10  # factors differ per side
    video = torch.rand(3, 2, 10, 20)
    assert torch.equal(scale_jitter(video, gen(), p=0.0), video)
    out = scale_jitter(video, gen(5), p=1.0)
    assert out.shape[-2:] == torch.Size(jitter_size(10, 20, gen(5), p=1.0))


def test_train_transform_shape_range_and_determinism():
    frames = torch.randint(0, 256, (2, 61, 97, 3), dtype=torch.uint8, generator=gen())
    tt = TrainTransform(InputProtocol())
    out = tt(frames, gen(1))
    assert out.shape == (3, 2, 200, 200) and out.dtype == torch.float32
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    assert torch.equal(out, tt(frames, gen(1))) and not torch.equal(out, tt(frames, gen(2)))


def test_train_transform_without_randomness_is_flip_resize_crop():
    frames = torch.randint(0, 256, (2, 30, 30, 3), dtype=torch.uint8, generator=gen())
    proto = InputProtocol(resize_short_side=16, crop_size=16)
    tt = TrainTransform(proto, jitter=False, color=False)
    plain = resize(to_float(frames), 16, 16)
    outs = [tt(frames, gen(s)) for s in range(40)]
    flipped = sum(torch.allclose(o, hflip(plain), atol=1e-6) for o in outs)
    kept = sum(torch.allclose(o, plain, atol=1e-6) for o in outs)
    assert flipped + kept == 40 and 10 < flipped < 30


def test_train_transform_value_range():
    frames = torch.randint(0, 256, (2, 40, 50, 3), dtype=torch.uint8, generator=gen())
    proto = InputProtocol(resize_short_side=32, crop_size=24, value_range=(-1.0, 1.0))
    plain = TrainTransform(InputProtocol(resize_short_side=32, crop_size=24))(frames, gen(4))
    assert torch.allclose(TrainTransform(proto)(frames, gen(4)), plain * 2 - 1)


def test_eval_transform_is_resize_then_center_crop():
    frames = torch.randint(0, 256, (3, 48, 64, 3), dtype=torch.uint8, generator=gen())
    proto = InputProtocol(resize_short_side=32, eval_crop_size=28)
    out = EvalTransform(proto)(frames)
    expected = center_crop(resize_short_side(to_float(frames), 32), 28)
    assert out.shape == (3, 3, 28, 28) and torch.allclose(out, expected)
    assert torch.equal(out, EvalTransform(proto)(frames, gen(9)))


@settings(max_examples=30, deadline=None)
@given(t=st.integers(1, 3), h=st.integers(8, 48), w=st.integers(8, 48), seed=st.integers(0, 2**31 - 1),
       crop=st.integers(4, 24), short=st.integers(4, 32))
def test_transform_properties(t, h, w, seed, crop, short):
    frames = torch.randint(0, 256, (t, h, w, 3), dtype=torch.uint8, generator=gen(seed))
    proto = InputProtocol(resize_short_side=short, crop_size=crop, eval_crop_size=crop)
    out = TrainTransform(proto)(frames, gen(seed))
    assert out.shape == (3, t, crop, crop)
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    assert torch.equal(out, TrainTransform(proto)(frames, gen(seed)))
    ev = EvalTransform(proto)(frames)
    assert ev.shape == (3, t, crop, crop) and 0.0 <= float(ev.min()) and float(ev.max()) <= 1.0
    assert torch.equal(ev, EvalTransform(proto)(frames))
    col = color_augment(to_float(frames), gen(seed), p=1.0)
    assert col.shape == (3, t, h, w) and 0.0 <= float(col.min()) and float(col.max()) <= 1.0


@pytest.mark.slow
def test_report_speed():
    import time

    frames = torch.randint(0, 256, (32, 256, 340, 3), dtype=torch.uint8, generator=gen())
    tt, et, g = TrainTransform(), EvalTransform(), gen()
    for name, fn in (("train", lambda: tt(frames, g)), ("eval", lambda: et(frames))):
        fn()
        start = time.perf_counter()
        for _ in range(5):
            fn()
        print(f"{name}: {5 / (time.perf_counter() - start):.1f} clips/s (32x256x340)")
