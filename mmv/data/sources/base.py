"""What every source produces: a list of clip items, and a report of what it could not use."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from mmv.data.captions import Narration
from mmv.data.video import VIDEO_EXTENSIONS

MAX_EXAMPLES = 20  # problems listed by path in a report; the rest are counted


@dataclass(frozen=True)
class ClipItem:
    """One video a clip can be drawn from.

    ``span`` limits the clip window to ``[start, end)`` seconds of the file (an AudioSet segment inside
    a full-length video); ``None`` means the whole file.
    """

    path: str
    narrations: tuple[Narration, ...] = ()
    span: Optional[tuple[float, float]] = None
    labels: tuple[str, ...] = ()
    source: str = ""
    video_id: str = ""


@dataclass
class SourceReport:
    """Counts of what a source used and could not use, with the first examples of each problem."""

    name: str
    items: int = 0
    problems: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, problem: str, example: str) -> None:
        self.problems[problem] = self.problems.get(problem, 0) + 1
        shown = self.examples.setdefault(problem, [])
        if len(shown) < MAX_EXAMPLES:
            shown.append(example)

    def summary(self) -> str:
        lines = [f"{self.name}: {self.items} usable videos"]
        for problem, count in sorted(self.problems.items()):
            more = f" (first {len(self.examples[problem])} listed)" if count > len(self.examples[problem]) else ""
            lines.append(f"  {count} {problem}{more}: " + ", ".join(self.examples[problem]))
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"name": self.name, "items": self.items, "problems": dict(self.problems),
                "examples": {k: list(v) for k, v in self.examples.items()}}


def list_videos(root: str | Path, extensions: Iterable[str] = VIDEO_EXTENSIONS) -> list[Path]:
    """Video files below ``root`` (recursive, sorted, hidden files skipped)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder of videos")
    exts = {e.lower() for e in extensions}
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in exts
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))
