"""Text to speech with eSpeak NG, in memory, through ctypes over the library that ``espeakng-loader`` ships.

The demo needs thousands of short spoken words (the digit names) in many voices, without a sound card, files or a
network, and the same words on every rebuild. eSpeak NG's synchronous mode hands the samples to a callback,
which collects them here.

Determinism. eSpeak keeps synthesis state in C statics that ``espeak_Terminate``/``espeak_Initialize`` do not reset
(the pitch-flutter phase, the automatic gain, resonator memories, and the random generators of breath noise), so
the same text in the same voice comes out different depending on what was said before (measured: lengths differ
by up to 20 samples, most samples differ; eSpeak NG 1.52 of espeakng-loader 0.2.4). Every call here therefore
loads a fresh copy of the library under a new temporary name, seeds both random generators (eSpeak's own and
libc's ``rand``, used for breath noise), synthesizes, and unloads it: the waveform is then a function of the
arguments alone, ~6 ms per word. The copy also keeps us apart from any other user of eSpeak in the process (a
second load of the same path would share its statics). Calls are serialised by a lock (one load is one global
eSpeak); nothing stays loaded between calls, so forked worker processes are safe.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

# espeak_ng_OUTPUT_MODE / espeak_PARAMETER / flags, from speak_lib.h and espeak_ng.h
_ENOUTPUT_MODE_SYNCHRONOUS = 0x0001
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_BUFFER_MS = 100  # length of the chunks the callback receives

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_LOCK = threading.Lock()


class SpeechError(RuntimeError):
    """eSpeak NG is missing, cannot start, or was asked for a voice or setting it does not have."""


def _paths() -> tuple[str, str]:
    """(library, data folder): ``MMV_ESPEAK_LIBRARY`` / ``MMV_ESPEAK_DATA`` when set (a system eSpeak NG), else the
    files of the ``espeakng-loader`` package."""
    lib, data = os.environ.get("MMV_ESPEAK_LIBRARY"), os.environ.get("MMV_ESPEAK_DATA")
    if not (lib and data):
        try:
            import espeakng_loader
        except ImportError as e:
            raise SpeechError("eSpeak NG is not installed: install the demo extra (pip install -e '.[demo]', which "
                              "brings espeakng-loader), or set MMV_ESPEAK_LIBRARY and MMV_ESPEAK_DATA") from e
        lib = lib or espeakng_loader.get_library_path()
        try:
            data = data or espeakng_loader.get_data_path()
        except RuntimeError as e:
            raise SpeechError(f"eSpeak NG data folder missing: {e}") from e
    if not os.path.isfile(lib):
        raise SpeechError(f"eSpeak NG library not found: {lib}")
    if not os.path.isfile(os.path.join(data, "phontab")):
        raise SpeechError(f"eSpeak NG data folder {data} is incomplete (no 'phontab')")
    return lib, data


def _load_private(lib: str) -> ctypes.CDLL:
    """Load a fresh copy of the library under a new name, so its statics start from scratch and no other eSpeak
    user in the process shares them. The copy is unlinked at once (the loaded mapping stays valid on POSIX)."""
    fd, path = tempfile.mkstemp(prefix="mmv-espeak-", suffix=os.path.splitext(lib)[1] or ".so")
    try:
        with os.fdopen(fd, "wb") as dst, open(lib, "rb") as src:
            shutil.copyfileobj(src, dst)
        return ctypes.CDLL(path)
    finally:
        try:
            os.unlink(path)
        except OSError:  # Windows: a loaded DLL cannot be removed; the temporary folder keeps it
            pass


def _unload(handle: int) -> None:
    import _ctypes

    close = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary", None)
    if close is not None:
        close(handle)


def _bind(lib: ctypes.CDLL) -> None:
    lib.espeak_ng_InitializePath.argtypes = [ctypes.c_char_p]
    lib.espeak_ng_Initialize.argtypes = [ctypes.c_void_p]
    lib.espeak_ng_InitializeOutput.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p]
    lib.espeak_ng_GetStatusCodeMessage.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
    lib.espeak_ng_GetSampleRate.restype = ctypes.c_int
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]


def _status(lib: ctypes.CDLL, code: int) -> str:
    buf = ctypes.create_string_buffer(512)
    lib.espeak_ng_GetStatusCodeMessage(code, buf, len(buf))
    return buf.value.decode(errors="replace") or f"status {code:#x}"


@lru_cache(maxsize=4)
def _variants(data: str) -> frozenset[str]:
    folder = Path(data) / "voices" / "!v"
    return frozenset(p.name for p in folder.iterdir() if p.is_file() and " " not in p.name) if folder.is_dir() \
        else frozenset()


@lru_cache(maxsize=4)
def _languages(data: str) -> tuple[str, ...]:
    return tuple(sorted({p.name.lower() for p in (Path(data) / "lang").rglob("*") if p.is_file()}))


def list_variants() -> list[str]:
    """Voice variants (``en+<variant>``): ``m1``-``m8``, ``f1``-``f5`` and the named ones of the data folder."""
    return sorted(_variants(_paths()[1]))


def list_languages(prefix: str = "") -> list[str]:
    """Language voices of the data folder whose name starts with ``prefix`` (``"en"``: en, en-us, en-gb-x-rp ...)."""
    return [name for name in _languages(_paths()[1]) if name.startswith(prefix.lower())]


def synthesize(text: str, voice: str = "en", pitch: int = 50, rate: int = 175, *, pitch_range: int = 50,
               volume: int = 100, seed: int = 0, trim: bool = True) -> tuple[np.ndarray, int]:
    """Speak ``text``: a float32 mono waveform in [-1, 1] and its sample rate (22050 Hz for eSpeak NG's voices).

    ``voice`` is a language voice with an optional variant, ``"en-us+f2"`` (`list_languages`, `list_variants`);
    ``pitch`` 0-100 (50 normal), ``rate`` in words per minute 80-450, ``pitch_range`` 0-100 (intonation),
    ``volume`` 0-200. ``seed`` drives the breath noise of the breathy voices (most variants): two seeds give two
    slightly different takes. The same arguments always give the same samples. ``trim`` cuts the leading and
    trailing silence eSpeak adds (below 1 % of the peak, keeping 10 ms), so the waveform is the speech itself.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"nothing to say: {text!r}")
    for name, value, lo, hi in (("pitch", pitch, 0, 100), ("rate", rate, 80, 450),
                                ("pitch_range", pitch_range, 0, 100), ("volume", volume, 0, 200)):
        if not lo <= int(value) <= hi:
            raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
    lib_path, data = _paths()
    language, _, variant = voice.partition("+")
    if variant and variant not in _variants(data):
        raise SpeechError(f"no eSpeak NG voice variant {variant!r}; available: {', '.join(sorted(_variants(data)))}")
    with _LOCK:
        samples, sample_rate = _synthesize_locked(lib_path, data, text, voice, int(pitch), int(rate),
                                                  int(pitch_range), int(volume), int(seed))
    wave = samples.astype(np.float32) / 32768.0
    return (_trim(wave, sample_rate) if trim else wave), sample_rate


def _synthesize_locked(lib_path: str, data: str, text: str, voice: str, pitch: int, rate: int, pitch_range: int,
                       volume: int, seed: int) -> tuple[np.ndarray, int]:
    try:
        lib = _load_private(lib_path)
    except OSError as e:
        raise SpeechError(f"cannot load the eSpeak NG library {lib_path}: {e}") from e
    chunks: list[np.ndarray] = []

    def collect(wav, n, _events) -> int:
        if n > 0 and wav:
            chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        return 0

    callback = _CALLBACK(collect)  # kept alive until the library is unloaded below
    try:
        _bind(lib)
        lib.espeak_ng_InitializePath(data.encode())
        status = lib.espeak_ng_Initialize(None)
        if status != 0:
            raise SpeechError(f"eSpeak NG cannot start with the data in {data}: {_status(lib, status)}")
        status = lib.espeak_ng_InitializeOutput(_ENOUTPUT_MODE_SYNCHRONOUS, _BUFFER_MS, None)
        if status != 0:
            raise SpeechError(f"eSpeak NG output set-up failed: {_status(lib, status)}")
        sample_rate = lib.espeak_ng_GetSampleRate()
        lib.espeak_SetSynthCallback(callback)
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            known = ", ".join(_languages(data)[:12])
            raise SpeechError(f"no eSpeak NG voice {voice!r} (languages include {known}, ...; see list_languages())")
        for param, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range), (_VOLUME, volume)):
            lib.espeak_SetParameter(param, value, 0)
        lib.espeak_ng_SetRandSeed(seed)
        ctypes.CDLL(None).srand(ctypes.c_uint(seed & 0xFFFFFFFF))  # libc rand(): breath noise in wavegen
        encoded = text.encode("utf-8") + b"\0"
        err = lib.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise SpeechError(f"espeak_Synth failed (error {err}) for {text!r}")
        lib.espeak_Synchronize()
    finally:
        lib.espeak_Terminate()
        handle = lib._handle
        del lib
        _unload(handle)
        del callback
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    return samples, sample_rate


def _trim(wave: np.ndarray, sample_rate: int, threshold: float = 0.01, keep_s: float = 0.01) -> np.ndarray:
    """Cut silence at both ends: samples under ``threshold`` of the peak, keeping ``keep_s`` around the speech."""
    if wave.size == 0:
        return wave
    loud = np.flatnonzero(np.abs(wave) > threshold * float(np.abs(wave).max()))
    if loud.size == 0:
        return wave[:0]
    keep = int(keep_s * sample_rate)
    return wave[max(0, loud[0] - keep): loud[-1] + 1 + keep]
