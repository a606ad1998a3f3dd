"""Files that appear whole or not at all: written under a temporary name beside the target, then renamed.

A reader (or a crash) never sees half a file under the real name: weights, checkpoints, configs, results,
feature caches and shard indexes all go through `atomic_write`. The temporary name keeps the target's suffix
(``.model.1234.tmp.safetensors``) for writers that add or check one (``np.savez``), starts with a dot so
listings by name pattern skip it, and holds the process id so two processes never share one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename) to disk, where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any], *, durable: bool = False) -> Path:
    """Make ``path`` by ``write(temporary_path)`` and a rename; on any failure the temporary file is removed
    and ``path`` keeps what it held. ``durable``: also flush the file and the rename to disk (checkpoints)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        if durable:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, durable: bool = False) -> Path:
    """``atomic_write`` of UTF-8 text, byte for byte (no newline translation on any platform)."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(text.encode("utf-8")), durable=durable)
