"""eSpeak NG through ctypes: real speech, voices that differ, identical output for identical arguments."""

from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import pytest

speech = pytest.importorskip("mmv.demo.speech")
pytest.importorskip("espeakng_loader")

from mmv.demo.speech import SpeechError, list_languages, list_variants, synthesize  # noqa: E402


def f0(x: np.ndarray, sr: int) -> float:
    """Median fundamental frequency (Hz) of the loud 40 ms windows, by YIN's normalised difference function."""
    n, lo, hi = int(0.04 * sr), int(sr / 500), int(sr / 50)
    out = []
    for s in range(0, len(x) - n - hi, n // 2):
        w = x[s:s + n + hi].astype(np.float64)
        if np.abs(w[:n]).max() < 0.3 * np.abs(x).max():
            continue
        d = np.array([np.sum((w[:n] - w[t:t + n]) ** 2) for t in range(hi)])
        c = np.concatenate([[1.0], d[1:] * np.arange(1, hi) / np.maximum(np.cumsum(d[1:]), 1e-12)])
        below = np.flatnonzero(c[lo:] < 0.25)
        if below.size:
            t = lo + below[0]
            while t + 1 < hi and c[t + 1] < c[t]:
                t += 1
            out.append(sr / t)
    return float(np.median(out)) if out else float("nan")


def test_seven_is_speech_of_plausible_length():
    x, sr = synthesize("seven")
    assert sr == 22050 and x.dtype == np.float32 and x.ndim == 1
    assert 0.25 < len(x) / sr < 1.0  # one two-syllable word, silence trimmed
    assert 0.1 < np.abs(x).max() <= 1.0
    assert np.sqrt(np.mean(x ** 2)) > 0.03
    # trimmed: speech right at both ends (within the 10 ms kept)
    assert np.abs(x[: int(0.03 * sr)]).max() > 0.01 * np.abs(x).max()
    assert np.abs(x[-int(0.03 * sr):]).max() > 0.01 * np.abs(x).max()
    raw, _ = synthesize("seven", trim=False)
    assert len(raw) > len(x)


def test_voices_pitch_and_rate_change_the_sound():
    male, sr = synthesize("seven", "en+m3")
    female, _ = synthesize("seven", "en-us+f2")
    assert f0(female, sr) > 1.5 * f0(male, sr)  # measured ~170 Hz vs ~83 Hz
    low, _ = synthesize("seven", "en", pitch=20)
    high, _ = synthesize("seven", "en", pitch=80)
    assert f0(high, sr) > 1.5 * f0(low, sr)  # measured ~118 vs ~58 Hz
    slow, _ = synthesize("seven", "en", rate=120)
    fast, _ = synthesize("seven", "en", rate=350)
    assert len(slow) > 1.3 * len(fast)


def test_same_arguments_same_samples_whatever_came_before():
    # eSpeak keeps state between utterances; each call must start from a fresh library
    a, _ = synthesize("seven", "en-us+f2", pitch=60, rate=190, seed=3)
    synthesize("three nine one", "en-gb-x-rp+m4", pitch=10, rate=300, seed=11)
    b, _ = synthesize("seven", "en-us+f2", pitch=60, rate=190, seed=3)
    np.testing.assert_array_equal(a, b)
    c, _ = synthesize("seven", "en-us+f2", pitch=60, rate=190, seed=4)  # f2 is breathy: the seed draws the noise
    assert len(c) != len(a) or not np.array_equal(a, c)


def test_every_listed_english_accent_speaks():
    accents = list_languages("en")
    assert {"en", "en-us", "en-gb-x-rp"} <= set(accents)
    assert {"m1", "f2", "f5"} <= set(list_variants())
    for accent in accents:
        x, _ = synthesize("seven", accent)
        assert np.abs(x).max() > 0.1, accent


def test_errors_are_clear(monkeypatch):
    with pytest.raises(SpeechError, match="no eSpeak NG voice 'xx-nowhere'"):
        synthesize("seven", "xx-nowhere")
    with pytest.raises(SpeechError, match="variant 'nope'"):
        synthesize("seven", "en+nope")
    with pytest.raises(ValueError, match="pitch"):
        synthesize("seven", pitch=101)
    with pytest.raises(ValueError, match="nothing to say"):
        synthesize("  ")
    monkeypatch.setenv("MMV_ESPEAK_LIBRARY", "/nonexistent/libespeak-ng.so")
    monkeypatch.setenv("MMV_ESPEAK_DATA", "/nonexistent/espeak-ng-data")
    with pytest.raises(SpeechError, match="library not found"):
        synthesize("seven")


def _say(args):
    return synthesize(*args)[0]


def test_threads_and_worker_processes_agree_with_serial():
    jobs = [("seven", "en+m3", 40, 160), ("two", "en-us+f4", 70, 220), ("nine", "en", 50, 175)] * 2
    serial = [_say(j) for j in jobs]
    threaded: list = [None] * len(jobs)

    def run(i):
        threaded[i] = _say(jobs[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with multiprocessing.get_context("fork").Pool(2) as pool:
        forked = pool.map(_say, jobs)
    for s, t, f in zip(serial, threaded, forked):
        np.testing.assert_array_equal(s, t)
        np.testing.assert_array_equal(s, f)
