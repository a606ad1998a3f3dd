"""The MMV audio front end: waveform -> log-mel spectrogram, as TensorFlow/DMVR compute it (MMV_SPEC C.2).

Why a re-implementation and not torchaudio: the released weights were trained on TensorFlow's exact
recipe (``tf.signal.stft`` with a periodic Hann window and ``pad_end=True``, the magnitude, the HTK mel
matrix of ``tf.signal.linear_to_mel_weight_matrix`` with the DC bin zeroed, ``log(x + 1e-6)``). Other
libraries differ in padding (centred frames), window symmetry, mel scale (Slaney) or normalisation,
and any of those shifts the input distribution the audio tower expects.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional

import numpy as np
import torch

from mmv.models.config import AudioFrontEnd

_MEL_BREAK_HZ = 700.0  # HTK mel scale: mel = 1127 ln(1 + f / 700)
_MEL_HIGH_Q = 1127.0
_F32 = np.float32


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    # float32 throughout and log(1 + x) rather than log1p: this reproduces TensorFlow's float32 matrix
    # more closely (7.5e-6 max difference against 1.2e-5 for an exact float64 computation).
    return _F32(_MEL_HIGH_Q) * np.log(_F32(1.0) + np.asarray(hz, dtype=_F32) / _F32(_MEL_BREAK_HZ))


def _linspace(start: float, stop: float, num: int) -> np.ndarray:
    """``tf.linspace`` in float32: ``start + i * delta`` with exact end points."""
    start, stop = _F32(start), _F32(stop)
    delta = (stop - start) / _F32(max(num - 1, 1))
    out = start + delta * np.arange(num, dtype=_F32)
    out[-1] = stop
    return out.astype(_F32)


def mel_matrix(num_mel_bins: int = 80, num_spectrogram_bins: int = 1025, sample_rate: int = 48000,
               lower_edge_hz: float = 80.0, upper_edge_hz: float = 7600.0) -> torch.Tensor:
    """``[num_spectrogram_bins, num_mel_bins]`` float32 weights, as ``tf.signal.linear_to_mel_weight_matrix``.

    Triangular bands evenly spaced on the HTK mel scale, slopes computed in mel space, the DC bin
    given zero weight. Computed in float32 in TensorFlow's order of operations, so that the rounding
    matches too (to about 1e-5).
    """
    if num_mel_bins < 1 or num_spectrogram_bins < 2 or sample_rate <= 0:
        raise ValueError(f"mel_matrix needs num_mel_bins >= 1, num_spectrogram_bins >= 2 and sample_rate > 0; "
                         f"got {num_mel_bins}, {num_spectrogram_bins}, {sample_rate}")
    nyquist = sample_rate / 2.0
    if not 0.0 <= lower_edge_hz < upper_edge_hz <= nyquist:
        raise ValueError(f"mel_matrix needs 0 <= lower_edge_hz < upper_edge_hz <= {nyquist} (Nyquist); "
                         f"got {lower_edge_hz}, {upper_edge_hz}")
    return torch.from_numpy(_mel_matrix_np(num_mel_bins, num_spectrogram_bins, float(sample_rate),
                                           float(lower_edge_hz), float(upper_edge_hz)).copy())


@lru_cache(maxsize=8)
def _mel_matrix_np(num_mel_bins: int, num_spectrogram_bins: int, sample_rate: float, lower_edge_hz: float,
                   upper_edge_hz: float) -> np.ndarray:
    freqs = _linspace(0.0, sample_rate / 2.0, num_spectrogram_bins)[1:]  # DC bin excluded
    bins_mel = _hz_to_mel(freqs)[:, None]
    edges = _linspace(_hz_to_mel(lower_edge_hz), _hz_to_mel(upper_edge_hz), num_mel_bins + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    lower_slopes = (bins_mel - lower) / (center - lower)
    upper_slopes = (upper - bins_mel) / (upper - center)
    weights = np.maximum(_F32(0.0), np.minimum(lower_slopes, upper_slopes))
    weights = np.concatenate([np.zeros((1, num_mel_bins), dtype=_F32), weights], axis=0)
    out = weights.astype(np.float32)
    out.setflags(write=False)
    return out


def num_frames(num_samples: int, front_end: Optional[AudioFrontEnd] = None) -> int:
    """Frames that ``log_mel`` returns for ``num_samples`` samples: ``ceil(samples / step)`` (``pad_end``)."""
    fe = front_end or AudioFrontEnd()
    return -(-int(num_samples) // fe.frame_step)


def log_mel(waveform: torch.Tensor | np.ndarray, sample_rate: int = 48000,
            front_end: Optional[AudioFrontEnd] = None) -> torch.Tensor:
    """Float ``[..., samples]`` waveform in [-1, 1] -> float32 ``[..., frames, num_mel_bins]`` log-mel.

    ``frames = ceil(samples / frame_step)``: like ``tf.signal.stft(pad_end=True)`` the signal is
    zero-padded at the end so that every sample starts a hop. Runs on the waveform's device; the
    leading dimensions are a batch. ``sample_rate`` must equal ``front_end.sample_rate``: resampling is
    the caller's job, because silently doing it here would hide a mismatch with the trained weights.
    """
    fe = front_end or AudioFrontEnd()
    if sample_rate != fe.sample_rate:
        raise ValueError(f"audio at {sample_rate} Hz, but the front end expects {fe.sample_rate} Hz: "
                         f"resample the waveform first")
    if isinstance(waveform, np.ndarray):
        if not np.issubdtype(waveform.dtype, np.floating):
            raise ValueError(f"waveform must be floating point in [-1, 1], got a NumPy array of {waveform.dtype}")
        waveform = torch.from_numpy(np.ascontiguousarray(waveform))
    elif not isinstance(waveform, torch.Tensor):
        raise ValueError(f"waveform must be a torch.Tensor or numpy.ndarray, got {type(waveform).__name__}")
    if not waveform.is_floating_point():
        raise ValueError(f"waveform must be floating point in [-1, 1], got a tensor of {waveform.dtype}")
    if waveform.dim() == 0 or waveform.shape[-1] == 0:
        raise ValueError(f"waveform is empty (shape {tuple(waveform.shape)}); expected [..., samples] with samples > 0")
    if waveform.numel() == 0:
        raise ValueError(f"waveform batch is empty (shape {tuple(waveform.shape)})")
    if fe.frame_length < 1 or fe.frame_step < 1:
        raise ValueError(f"frame_length and frame_step must be positive, got {fe.frame_length}, {fe.frame_step}")

    x = waveform.to(torch.float32)
    samples = x.shape[-1]
    frames = num_frames(samples, fe)
    fft_length = 1 << max(0, math.ceil(math.log2(fe.frame_length)))  # tf.signal.stft's default fft_length
    pad = max(0, (frames - 1) * fe.frame_step + fe.frame_length - samples)
    x = torch.nn.functional.pad(x, (0, pad))
    chunks = x.unfold(-1, fe.frame_length, fe.frame_step)[..., :frames, :]  # [..., frames, frame_length]
    n = torch.arange(fe.frame_length, device=x.device, dtype=torch.float64)
    window = (0.5 - 0.5 * torch.cos(2.0 * math.pi * n / fe.frame_length)).to(torch.float32)  # periodic Hann
    magnitude = torch.fft.rfft(chunks * window, n=fft_length).abs()
    mel = mel_matrix(fe.num_mel_bins, fft_length // 2 + 1, fe.sample_rate, fe.lower_edge_hz,
                     fe.upper_edge_hz).to(x.device)
    return torch.log(magnitude @ mel + fe.log_offset)
