"""Pictures and sound of one demo video: a handwritten digit moving over a texture, a spoken word over noise.

Everything is a pure function of its arguments and a numpy ``Generator``, so a video is rebuilt identically from
its seed. Pictures are float RGB in [0, 1] until `write_mp4` turns them into H.264 (yuv420p) with an AAC track,
the format the data loader reads from real datasets.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

BACKGROUNDS = ("noise", "gradient", "stripes", "checker", "blobs")
NOISES = ("white", "pink", "brown", "hum")


def _luma(rgb: np.ndarray) -> np.ndarray:
    """Elementwise, not a matrix product: BLAS kernels may round differently from one process to another."""
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def digit_alpha(image: np.ndarray, cx: float, cy: float, side: float, size: int) -> np.ndarray:
    """Coverage ``[size, size]`` in [0, 1] of a 28x28 digit image drawn as a ``side``-pixel square centred at
    (``cx``, ``cy``) (pixel units, x to the right, y down), bilinearly resampled: the digit's stroke mask in a frame.
    Tests and overlays use it to know where the digit is."""
    img = np.asarray(image, dtype=np.float64).reshape(28, 28) / 255.0
    coords = np.arange(size) + 0.5
    scale = 28.0 / side
    u = (coords - (cx - side / 2)) * scale - 0.5  # source column of each output column
    v = (coords - (cy - side / 2)) * scale - 0.5
    padded = np.pad(img, 1)  # zero border: outside the image the digit is transparent

    def taps(t: np.ndarray):
        t = np.clip(t + 1, 0, 29)  # index into the padded image
        i0 = np.clip(np.floor(t).astype(int), 0, 28)
        return i0, t - i0

    x0, fx = taps(u)
    y0, fy = taps(v)
    top = padded[y0][:, x0] * (1 - fx) + padded[y0][:, x0 + 1] * fx
    bottom = padded[y0 + 1][:, x0] * (1 - fx) + padded[y0 + 1][:, x0 + 1] * fx
    return np.clip(top * (1 - fy)[:, None] + bottom * fy[:, None], 0.0, 1.0)


def smooth_track(rng: np.random.Generator, num_frames: int, fps: float, size: int) -> np.ndarray:
    """Per frame ``[cx, cy, side]``: a slow random path (two sinusoids per axis) and a gently breathing size,
    kept inside the frame. Smooth, so consecutive frames look like motion rather than jumps."""
    t = np.arange(num_frames) / fps
    base = rng.uniform(0.42, 0.58) * size
    side = base * (1 + rng.uniform(0.05, 0.18) * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t
                                                        + rng.uniform(0, 2 * np.pi)))
    half = side.max() / 2 * 0.75  # the strokes of an MNIST digit fill about 3/4 of its box
    lo, hi = half, size - half
    out = [None, None]
    for axis in range(2):
        w = rng.uniform(0.3, 1.0, 2)
        path = sum(wk * np.sin(2 * np.pi * rng.uniform(0.06, 0.35) * t + rng.uniform(0, 2 * np.pi)) for wk in w)
        path = path / w.sum()  # within [-1, 1]
        reach = rng.uniform(0.5, 1.0)
        out[axis] = (lo + hi) / 2 + path * reach * (hi - lo) / 2
    return np.stack([out[0], out[1], side], axis=1)


def background(rng: np.random.Generator, kind: str, size: int) -> np.ndarray:
    """A ``[size, size, 3]`` texture of moderate contrast (luma within 0.2 of a mean in [0.3, 0.7]), so a bright or
    dark digit always stands out."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    c1, c2 = rng.uniform(0.2, 0.8, 3), rng.uniform(0.2, 0.8, 3)
    if kind == "noise":
        coarse = rng.uniform(0, 1, (6, 6, 3))
        idx = np.linspace(0, 5, size)
        i0 = np.floor(idx).astype(int).clip(0, 4)
        f = (idx - i0)[:, None]
        rows = coarse[i0] * (1 - f[..., None]) + coarse[i0 + 1] * f[..., None]
        smooth = rows[:, i0] * (1 - f.T[..., None]) + rows[:, i0 + 1] * f.T[..., None]
        img = 0.25 + 0.5 * smooth + rng.normal(0, 0.05, (size, size, 3))
    elif kind == "gradient":
        a = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(a) * xx + np.sin(a) * yy)
        ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-9)
        img = c1 * (1 - ramp[..., None]) + c2 * ramp[..., None]
    elif kind == "stripes":
        a, period = rng.uniform(0, np.pi), rng.uniform(5, 16) / size
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * (np.cos(a) * xx + np.sin(a) * yy) / period)
        img = c1 * (1 - wave[..., None]) + c2 * wave[..., None]
    elif kind == "checker":
        cell = rng.uniform(5, 14) / size
        mask = ((np.floor(xx / cell) + np.floor(yy / cell)) % 2)[..., None]
        img = c1 * (1 - mask) + c2 * mask
    elif kind == "blobs":
        img = np.broadcast_to(c1, (size, size, 3)).copy()
        for _ in range(rng.integers(3, 7)):
            mx, my, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.1, 0.3)
            g = np.exp(-((xx - mx) ** 2 + (yy - my) ** 2) / (2 * r * r))[..., None]
            img = img * (1 - g) + rng.uniform(0.2, 0.8, 3) * g
    else:
        raise ValueError(f"unknown background {kind!r}; one of {BACKGROUNDS}")
    # squeeze the luma to within 0.2 of its mean, and the mean into [0.3, 0.7], so the digit colour always contrasts
    lum = _luma(img)
    mean = float(lum.mean())
    spread = max(float(np.abs(lum - mean).max()), 1e-6)
    img = mean + (img - mean) * min(1.0, 0.2 / spread)
    return np.clip(img + (np.clip(mean, 0.3, 0.7) - mean), 0, 1)


def digit_colour(rng: np.random.Generator, bg: np.ndarray) -> np.ndarray:
    """A colour far from the background in brightness (bright on dark, dark on bright), with a random tint."""
    tint = rng.uniform(-0.12, 0.12, 3)
    base = 0.92 if _luma(bg).mean() < 0.5 else 0.06
    return np.clip(base + tint, 0, 1)


def render_frames(image: np.ndarray, track: np.ndarray, bg: np.ndarray, colour: np.ndarray,
                  drift: Sequence[float], fps: float) -> np.ndarray:
    """uint8 frames ``[T, size, size, 3]``: the background drifting by ``drift`` px/s (wrapping), the digit
    alpha-blended on top along ``track``."""
    size = bg.shape[0]
    frames = np.empty((len(track), size, size, 3), np.uint8)
    for i, (cx, cy, side) in enumerate(track):
        t = i / fps
        shifted = np.roll(bg, (int(round(drift[1] * t)), int(round(drift[0] * t))), axis=(0, 1))
        a = digit_alpha(image, cx, cy, side, size)[..., None]
        frames[i] = np.round((shifted * (1 - a) + colour * a) * 255).astype(np.uint8)
    return frames


def resample(wave: np.ndarray, rate: int, to_rate: int) -> np.ndarray:
    """Mono float32 ``wave`` from ``rate`` to ``to_rate`` Hz with FFmpeg's resampler (as the data loader does);
    same start, ``round(len * to_rate / rate)`` samples."""
    wave = np.ascontiguousarray(wave, dtype=np.float32)
    if rate == to_rate or wave.size == 0:
        return wave.copy()
    resampler = av.AudioResampler(format="flt", layout="mono", rate=to_rate)
    frame = av.AudioFrame.from_ndarray(wave[None], format="flt", layout="mono")
    frame.sample_rate, frame.pts = rate, 0
    out = [f.to_ndarray()[0] for f in resampler.resample(frame)] + [f.to_ndarray()[0] for f in resampler.resample(None)]
    y = np.concatenate(out) if out else np.zeros(0, np.float32)
    n = int(round(wave.size * to_rate / rate))
    return np.pad(y, (0, max(0, n - y.size)))[:n].astype(np.float32)


def noise(rng: np.random.Generator, kind: str, num_samples: int, sample_rate: int) -> np.ndarray:
    """Unit-RMS background noise: white, pink (1/f), brown (1/f^2) or mains hum with a little hiss."""
    if kind == "hum":
        t = np.arange(num_samples) / sample_rate
        f0 = rng.choice([50.0, 60.0])
        x = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi))
                for k in range(1, 6)) + rng.normal(0, 0.1, num_samples)
    elif kind in ("white", "pink", "brown"):
        x = rng.normal(0, 1, num_samples)
        if kind != "white":
            spec = np.fft.rfft(x)
            f = np.fft.rfftfreq(num_samples, 1 / sample_rate)
            f[0] = f[1]
            spec /= f ** (0.5 if kind == "pink" else 1.0)
            spec[f < 20] = 0
            x = np.fft.irfft(spec, num_samples)
    else:
        raise ValueError(f"unknown noise {kind!r}; one of {NOISES}")
    return (x / max(float(np.sqrt(np.mean(x ** 2))), 1e-12)).astype(np.float32)


def write_mp4(path: str | Path, frames: np.ndarray, fps: int, audio: np.ndarray, sample_rate: int) -> None:
    """H.264 yuv420p video (a keyframe every second, so clips seek cheaply) with mono AAC audio, in mp4."""
    path = Path(path)
    with av.open(str(path), "w", options={"avoid_negative_ts": "disabled"}) as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = int(fps)
        # One thread and no assembly: x264's SIMD code made 1 encode in 5-30 of the same tiny frames differ
        # (measured at 48 px); without it, rebuilds give identical bytes, for +60 ms per 5 s of 64 px video.
        stream.options = {"crf": "18", "preset": "veryfast", "keyint": str(int(fps)), "threads": "1",
                          "x264-params": "asm=0"}
        astream = out.add_stream("aac", rate=sample_rate, layout="mono")
        astream.codec_context.bit_rate = 96_000
        astream.options = {"aac_coder": "fast"}  # 3x faster than the default (it was 60 % of a video's build time)
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, int(fps))
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        chunk = 1024 * 8
        audio = np.clip(np.asarray(audio, np.float32), -1, 1)
        for s in range(0, audio.size, chunk):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[None, s:s + chunk]), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = sample_rate, s, Fraction(1, sample_rate)
            for packet in astream.encode(frame):
                out.mux(packet)
        for packet in astream.encode():
            out.mux(packet)
