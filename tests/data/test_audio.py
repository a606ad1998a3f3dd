"""The log-mel front end against TensorFlow's output (golden file) and an independent float64 NumPy recipe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mmv.data.audio import log_mel, mel_matrix, num_frames
from mmv.models.config import AudioFrontEnd

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
GOLDEN = SHARED / "reference" / "golden" / "public_logmel.npz"
WAVES = ("sweep", "noise", "silence", "tones")


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    if not GOLDEN.is_file():
        pytest.skip(f"{GOLDEN} not found")
    return dict(np.load(GOLDEN))


def reference_log_mel(wave: np.ndarray, sr: int = 48000, frame: int = 2048, step: int = 1024, mels: int = 80,
                      lo: float = 80.0, hi: float = 7600.0) -> np.ndarray:
    """The TF recipe written out again in float64 NumPy, as an independent check."""
    wave = np.asarray(wave, dtype=np.float64)
    frames = -(-len(wave) // step)
    x = np.pad(wave, (0, (frames - 1) * step + frame - len(wave)))
    chunks = x[np.arange(frames)[:, None] * step + np.arange(frame)]
    window = np.hanning(frame + 1)[:-1]  # periodic Hann
    spectrum = np.abs(np.fft.rfft(chunks * window, axis=-1))

    def mel(f):
        return 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)

    bins = mel(np.linspace(0, sr / 2, frame // 2 + 1))[:, None]
    edges = np.linspace(mel(lo), mel(hi), mels + 2)
    weights = np.clip(np.minimum((bins - edges[:-2]) / (edges[1:-1] - edges[:-2]),
                                 (edges[2:] - bins) / (edges[2:] - edges[1:-1])), 0, None)
    weights[0] = 0.0
    return np.log(spectrum @ weights + 1e-6)


def test_mel_matrix_matches_tensorflow(golden):
    ours = mel_matrix().numpy()
    assert ours.shape == (1025, 80) and ours.dtype == np.float32
    # TF builds it in float32; the residual is float32 rounding of the mel edges (7.5e-6 measured).
    assert np.abs(ours - golden["mel_matrix"]).max() < 1e-5
    assert np.array_equal(ours > 0, golden["mel_matrix"] > 0)


@pytest.mark.parametrize("name", WAVES)
def test_log_mel_matches_tensorflow(golden, name):
    ours = log_mel(golden[f"wave/{name}"]).numpy().astype(np.float64)
    ref = golden[f"logmel/{name}"].astype(np.float64)
    assert ours.shape == ref.shape == (150, 80)
    if name == "silence":
        assert np.array_equal(ours, ref)  # log(0 + 1e-6) exactly
        return
    mel_ours, mel_ref = np.exp(ours), np.exp(ref)
    peak = mel_ref.max()
    # In linear mel space the two agree to float32 FFT rounding of the loudest bin.
    assert np.abs(mel_ours - mel_ref).max() < 2e-5 * peak
    # In log space: tight wherever the band holds signal; in the deep stop band of the sweep and tones
    # (mel ~ 1e-5 of the peak) both sides are rounding noise, and the logs of noise differ.
    loud = mel_ref > 1e-3 * peak
    assert np.abs(ours - ref)[loud].max() < 2e-4
    if name == "noise":  # broadband: every entry is loud
        assert np.abs(ours - ref).max() < 5e-5


def test_log_mel_matches_float64_recipe():
    rng = np.random.default_rng(0)
    t = np.arange(30000) / 48000
    wave = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
    ours = log_mel(wave.astype(np.float32)).numpy()
    ref = reference_log_mel(wave)
    assert ours.shape == ref.shape == (30, 80)
    assert np.abs(ours - ref).max() < 1e-4


def test_pure_tone_lands_in_its_mel_band():
    f = 1000.0
    wave = (0.5 * np.sin(2 * np.pi * f * np.arange(48000) / 48000)).astype(np.float32)
    out = log_mel(wave)
    edges = 1127.0 * np.log1p(np.linspace(80.0, 7600.0, 82)[[0, -1]] / 700.0)
    centers = np.linspace(edges[0], edges[1], 82)[1:-1]
    expected = int(np.argmin(np.abs(centers - 1127.0 * np.log1p(f / 700.0))))
    assert (out[2:-2].argmax(dim=-1) == expected).all()  # full frames only


def test_batch_equals_items_and_numpy_equals_torch():
    rng = np.random.default_rng(1)
    waves = rng.uniform(-1, 1, size=(2, 3, 5000)).astype(np.float32)
    batch = log_mel(torch.from_numpy(waves))
    assert batch.shape == (2, 3, 5, 80) and batch.dtype == torch.float32
    for i in range(2):
        for j in range(3):
            assert torch.allclose(batch[i, j], log_mel(waves[i, j]), atol=1e-5, rtol=0)
    assert torch.allclose(log_mel(waves[0, 0].astype(np.float64)), log_mel(waves[0, 0]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("samples", [1, 1023, 1024, 1025, 2047, 2048, 2049, 4097, 153600, 153601])
def test_frame_count_is_ceil_samples_over_step(samples):
    out = log_mel(torch.full((samples,), 0.1))
    assert out.shape == (-(-samples // 1024), 80) == (num_frames(samples), 80)


def test_pad_end_zero_pads_at_the_end():
    rng = np.random.default_rng(2)
    wave = rng.uniform(-1, 1, 5001).astype(np.float32)
    short = log_mel(wave)
    longer = log_mel(np.concatenate([wave, np.zeros(3000, np.float32)]))
    assert short.shape[0] == 5 and longer.shape[0] == 8
    assert torch.allclose(short, longer[:5], atol=1e-5, rtol=0)
    # The last frame starts at sample 4096 and sees 905 samples, then zeros.
    ref = reference_log_mel(wave)
    assert np.abs(short.numpy() - ref)[-1].max() < 1e-3


def test_custom_front_end():
    fe = AudioFrontEnd(sample_rate=16000, frame_length=400, frame_step=160, num_mel_bins=40,
                       lower_edge_hz=20.0, upper_edge_hz=8000.0)
    wave = np.random.default_rng(3).uniform(-1, 1, 1600).astype(np.float32)
    out = log_mel(wave, sample_rate=16000, front_end=fe).numpy()
    assert out.shape == (10, 40)
    # fft_length is the next power of two (512), as tf.signal.stft does; the frame is zero-padded to it.
    frames = 10
    x = np.pad(wave.astype(np.float64), (0, (frames - 1) * 160 + 400 - 1600))
    chunks = x[np.arange(frames)[:, None] * 160 + np.arange(400)] * np.hanning(401)[:-1]
    spec = np.abs(np.fft.rfft(chunks, n=512, axis=-1))
    expected = np.log(spec @ mel_matrix(40, 257, 16000, 20.0, 8000.0).double().numpy() + 1e-6)
    assert np.abs(out - expected).max() < 1e-4


def test_mel_matrix_shape_of_the_bands():
    m = mel_matrix().numpy()
    freqs = np.linspace(0, 24000, 1025)
    assert (m[0] == 0).all()  # the DC bin is excluded
    assert (m[freqs > 7600] == 0).all() and (m[freqs < 80] == 0).all()
    assert (m.max(axis=0) > 0.5).all() and m.max() <= 1.0
    peaks = m.argmax(axis=0)
    assert (np.diff(peaks) >= 0).all()  # bands ascend in frequency
    with pytest.raises(ValueError, match="Nyquist"):
        mel_matrix(upper_edge_hz=30000.0)
    with pytest.raises(ValueError):
        mel_matrix(num_mel_bins=0)


def test_errors_are_clear():
    wave = np.zeros(4800, np.float32)
    with pytest.raises(ValueError, match="resample"):
        log_mel(wave, sample_rate=16000)
    with pytest.raises(ValueError, match="floating point"):
        log_mel(np.zeros(4800, np.int16))
    with pytest.raises(ValueError, match="floating point"):
        log_mel(torch.zeros(4800, dtype=torch.int32))
    with pytest.raises(ValueError, match="empty"):
        log_mel(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="empty"):
        log_mel(torch.tensor(1.0))
    with pytest.raises(ValueError, match="empty"):
        log_mel(torch.zeros(0, 100))
    with pytest.raises(ValueError, match="torch.Tensor or numpy"):
        log_mel([0.0, 0.1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_matches_cpu():
    wave = torch.rand(2, 48000) * 2 - 1
    cpu = log_mel(wave)
    gpu = log_mel(wave.cuda())
    assert gpu.device.type == "cuda"
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-3, rtol=0)
