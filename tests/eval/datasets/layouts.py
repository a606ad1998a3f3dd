"""Helpers that write tiny fixtures in the benchmarks' official layouts (placeholder media, exact bytes)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
ANNOTATIONS = SHARED_DATA / "annotations"


def write(path: Path, lines: Iterable[str], *, eol: str = "\n", final_eol: bool = True) -> Path:
    """Write ``lines`` joined by ``eol`` as raw bytes, so CRLF stays CRLF."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = eol.join(lines) + (eol if final_eol else "")
    path.write_bytes(text.encode("utf-8"))
    return path


def touch(root: Path, *relatives: str) -> None:
    """Empty placeholder media files: the adapters only list them."""
    for rel in relatives:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
