"""Training checkpoints: written atomically, verified on load, the last K kept.

A checkpoint is ``checkpoints/step-00001000.pt`` (``torch.save`` of plain data: tensors, numbers,
strings, lists, dicts; read back with ``weights_only=True``, so loading runs no code) and a small
``step-00001000.json`` beside it with the step, the byte size and the SHA-256 of the ``.pt``. Both are
written under a temporary name, flushed to disk (``fsync``) and renamed, so a crash never leaves a
half-written checkpoint under a real name. Loading checks the size and hash when the ``.json`` exists,
then the structure; any problem is a ``CheckpointError`` naming the file. ``resume="latest"`` walks back
from the newest checkpoint to the newest valid one, reporting the ones it had to pass over.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import torch

from mmv.atomic import atomic_write, atomic_write_text
from mmv.errors import CheckpointError

FORMAT = "mmv-train"
VERSION = 1
CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step-(\d+)\.pt$")
REQUIRED_KEYS = ("format", "version", "step", "model", "optimizer", "data")


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}.pt"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(folder: str | Path, step: int, state: dict[str, Any], keep: int = 3) -> Path:
    """Write ``state`` as the checkpoint of ``step`` in ``folder``; then delete all but the newest ``keep``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / checkpoint_name(step)
    payload = {"format": FORMAT, "version": VERSION, "step": int(step), **state}
    atomic_write(path, lambda tmp: torch.save(payload, tmp), durable=True)
    info = {"step": int(step), "file": path.name, "bytes": path.stat().st_size, "sha256": _sha256(path)}
    atomic_write_text(path.with_suffix(".json"), json.dumps(info) + "\n", durable=True)
    prune_checkpoints(folder, keep)
    return path


def list_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every checkpoint in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def prune_checkpoints(folder: str | Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest checkpoints (and their ``.json``); returns what was deleted."""
    removed = []
    for _, path in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)
        removed.append(path)
    return removed


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The state saved in ``path``, verified; ``CheckpointError`` (naming the file) when it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        try:
            info = json.loads(sidecar.read_text(encoding="utf-8"))
            size, sha = int(info["bytes"]), str(info["sha256"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
            raise CheckpointError(f"{sidecar}: unreadable checkpoint record ({err})") from None
        actual = path.stat().st_size
        if actual != size:
            raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({actual} bytes, {size} were written)")
        if _sha256(path) != sha:
            raise CheckpointError(f"{path}: corrupt checkpoint (its SHA-256 differs from the one recorded at save)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # zip, pickle and I/O errors all mean the same thing here
        raise CheckpointError(f"{path}: unreadable checkpoint, truncated or corrupt? "
                              f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an mmv training checkpoint (for weights folders use mmv.load_model)")
    if state.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state['version']} is newer than this mmv ({VERSION})")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint, missing {missing}")
    return state


def find_resume_checkpoint(folder: str | Path, resume: str, map_location: str | torch.device = "cpu",
                           report: Optional[Callable[[str], None]] = None) -> Optional[tuple[Path, dict]]:
    """The checkpoint to resume from: ``resume`` is ``"latest"`` (the newest valid one in ``folder``,
    or ``None`` when there is none yet) or a path (which must load). Invalid checkpoints passed over
    on the way back are reported through ``report``."""
    if resume != "latest":
        path = Path(resume)
        return path, load_checkpoint(path, map_location)
    bad = []
    for _, path in reversed(list_checkpoints(folder)):
        try:
            state = load_checkpoint(path, map_location)
        except CheckpointError as err:
            bad.append(str(err))
            if report is not None:
                report(f"skipping an unusable checkpoint: {err}")
            continue
        return path, state
    if bad:
        raise CheckpointError("no valid checkpoint to resume from; every one is unusable:\n  " + "\n  ".join(bad))
    return None
