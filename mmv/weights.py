"""Weights on disk: ``model.safetensors`` + ``config.json`` (+ ``vocab.txt``), never pickles.

``config.json`` holds the model config and its input protocol, so a folder always says how its
inputs must be prepared. The same folder format serves converted release checkpoints and weights the
project trains itself. Files are written atomically (temporary file, then rename).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mmv.atomic import atomic_write, atomic_write_text
from mmv.errors import CheckpointError
from mmv.models.config import InputProtocol, MMVConfig
from mmv.models.mmv import MMV

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.txt"
FORMAT = "mmv"
FORMAT_VERSION = 1


def save_model(model: MMV, out_dir: str | Path, *, preset: Optional[str] = None,
               vocab: Optional[Sequence[str]] = None, extra: Optional[dict[str, Any]] = None) -> Path:
    """Write ``model`` to ``out_dir``; ``vocab`` (one word per row of the word table) is optional."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab = list(vocab) if vocab is not None else getattr(model, "vocab", None)
    if vocab is not None:
        _check_vocab(vocab, model.config.text.vocab_size, "vocabulary")
        atomic_write_text(out / VOCAB_FILE, "".join(f"{w}\n" for w in vocab))
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "preset": preset if preset is not None else getattr(model, "preset", None),
        "model": model.config.to_dict(),
        "protocol": model.protocol.to_dict(),
        "vocab": VOCAB_FILE if vocab is not None else None,
        **(extra or {}),
    }
    return write_weights_folder(out, model.state_dict(), config)


def write_weights_folder(out: Path, state_dict: dict[str, torch.Tensor], config: dict[str, Any]) -> Path:
    """``model.safetensors`` of ``state_dict`` (on the CPU) and ``config.json`` of ``config`` in ``out``, each
    written atomically, the weights first: a folder whose config is new always has its weights."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    atomic_write(out / WEIGHTS_FILE, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    atomic_write_text(out / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    return out


def read_folder_config(config_path: Path, fmt: str, version: int, what: str) -> dict:
    """A weights folder's ``config.json``, checked to be JSON of format ``fmt`` no newer than ``version``."""
    try:
        meta = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{config_path}: not valid JSON ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise CheckpointError(f"{config_path}: not {what} (no \"format\": \"{fmt}\")")
    if meta.get("format_version", 0) > version:
        raise CheckpointError(f"{config_path}: format version {meta['format_version']} is newer than this "
                              f"mmv understands ({version}); upgrade mmv")
    return meta


def load_model(path: str | Path, device: str | torch.device = "cpu", check_inputs: bool = True) -> MMV:
    """The model saved in folder ``path``, in eval mode, with ``.protocol``, ``.preset`` and ``.vocab``."""
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a weights folder (expected {CONFIG_FILE} and {WEIGHTS_FILE})")
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    for required in (config_path, weights_path):
        if not required.is_file():
            raise CheckpointError(f"{folder}: missing {required.name}")
    meta = read_folder_config(config_path, FORMAT, FORMAT_VERSION, "an mmv config")
    try:
        config = MMVConfig.from_dict(meta["model"])
        protocol = InputProtocol.from_dict(meta.get("protocol", {}))
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{config_path}: invalid model description ({err})") from None

    model = MMV(config, protocol, check_inputs=check_inputs)
    try:
        tensors = load_file(str(weights_path), device=str(device))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{weights_path}: unreadable weights, truncated or corrupt? ({err})") from None
    _check_tensors(model, tensors, weights_path)
    model.load_state_dict(tensors)
    model.to(device)
    model.preset = meta.get("preset")
    if meta.get("vocab"):
        model.vocab = read_vocab(folder / meta["vocab"], config.text.vocab_size)
    return model.eval()


def read_vocab(path: str | Path, expected_size: Optional[int] = None) -> list[str]:
    """One word per line (UTF-8); line i names row i of the word table."""
    path = Path(path)
    try:
        words = path.read_text(encoding="utf-8").split("\n")
    except FileNotFoundError:
        raise CheckpointError(f"{path}: vocabulary file not found") from None
    except UnicodeDecodeError as err:
        raise CheckpointError(f"{path}: vocabulary is not UTF-8 text ({err})") from None
    if words and words[-1] == "":
        words.pop()
    words = [w.rstrip("\r") for w in words]
    if expected_size is not None:
        _check_vocab(words, expected_size, str(path))
    return words


def _check_vocab(words: Sequence[str], size: int, what: str) -> None:
    if len(words) != size:
        raise CheckpointError(f"{what}: {len(words)} words for a word table of {size} rows")
    bad = [i for i, w in enumerate(words) if "\n" in w]
    if bad:
        raise CheckpointError(f"{what}: word {bad[0]} contains a line break")


def _check_tensors(model: MMV, tensors: dict[str, torch.Tensor], source: Path) -> None:
    expected = model.state_dict()
    problems = [f"missing {k} {tuple(v.shape)}" for k, v in expected.items() if k not in tensors]
    problems += [f"unexpected {k}" for k in tensors if k not in expected]
    problems += [f"{k} has shape {tuple(tensors[k].shape)}, expected {tuple(v.shape)}"
                 for k, v in expected.items() if k in tensors and tensors[k].shape != v.shape]
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise CheckpointError(f"{source}: {len(problems)} tensor(s) do not match config.json:\n  {shown}{more}")


