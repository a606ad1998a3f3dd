"""Small media writers for the evaluation tests (PyAV only): WAV files and still images."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_wav(path, samples: np.ndarray, sample_rate: int = 8000) -> Path:
    """Mono 16-bit PCM WAV of float ``samples`` in [-1, 1]."""
    path = Path(path)
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=sample_rate, layout="mono")
        for s in range(0, len(pcm), 1024):
            frame = av.AudioFrame.from_ndarray(pcm[None, s:s + 1024], format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = sample_rate, s, Fraction(1, sample_rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_image(path, picture: np.ndarray) -> Path:
    """A PNG (lossless) or JPEG (by extension) of uint8 ``[H, W, 3]`` RGB."""
    path = Path(path)
    png = path.suffix.lower() == ".png"
    codec, pix = ("png", "rgb24") if png else ("mjpeg", "yuvj444p")
    with av.open(str(path), "w", format="image2") as out:
        stream = out.add_stream(codec, rate=1)
        stream.height, stream.width = picture.shape[:2]
        stream.pix_fmt = pix
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24").reformat(format=pix)
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def make_picture(height: int = 48, width: int = 64) -> np.ndarray:
    """Smooth gradients plus a block: survives JPEG within a few levels."""
    y, x = np.mgrid[0:height, 0:width]
    pic = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), np.full_like(x, 90)], -1)
    pic[height // 4: height // 2, width // 4: width // 2] = (250, 20, 20)
    return pic.astype(np.uint8)
