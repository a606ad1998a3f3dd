"""Describing the training data: a JSON source spec, or just a folder.

    {"sources": [
      {"type": "howto100m", "videos": "ht100m/videos", "captions": "ht100m/caption.json", "weight": 1},
      {"type": "audioset", "videos": "audioset/clips", "segments": "audioset/balanced_train_segments.csv"},
      {"type": "subtitles", "videos": "my_videos"},
      {"type": "folder", "videos": "more_videos"},
      {"type": "shards", "urls": "shards/ht100m"}
    ]}

Relative paths are relative to the spec file. A folder given instead of a spec is read as shards
(it has ``shards.json``), as videos with subtitles (it has ``.srt``/``.vtt`` files), or as plain videos.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmv.data.sources.audioset import audioset_items
from mmv.data.sources.base import ClipItem, SourceReport
from mmv.data.sources.folder import folder_items
from mmv.data.sources.howto100m import howto100m_items
from mmv.data.sources.subtitles import subtitle_items

# type -> (required path fields, builder)
_BUILDERS: dict[str, tuple[tuple[str, ...], Callable[..., tuple[list[ClipItem], SourceReport]]]] = {
    "howto100m": (("videos", "captions"), howto100m_items),
    "subtitles": (("videos",), subtitle_items),
    "audioset": (("videos", "segments"), audioset_items),
    "folder": (("videos",), folder_items),
}
SOURCE_TYPES = tuple(_BUILDERS) + ("shards",)


@dataclass(frozen=True)
class SourceSpec:
    type: str
    name: str
    weight: float = 1.0
    paths: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def is_shards(self) -> bool:
        return self.type == "shards"


def read_spec(spec: str | Path | dict) -> list[SourceSpec]:
    """The sources of a spec file, a spec dict, or a folder."""
    base = Path(".")
    if isinstance(spec, (str, Path)):
        path = Path(spec)
        if path.is_dir():
            return [spec_for_folder(path)]
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"{path}: no such source spec or folder") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not a JSON source spec ({err})") from None
        base = path.parent
    entries = spec.get("sources") if isinstance(spec, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError('a source spec needs a non-empty "sources" list')
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or entry.get("type") not in SOURCE_TYPES:
            raise ValueError(f"source {i}: needs a \"type\" among {', '.join(SOURCE_TYPES)}")
        kind = entry["type"]
        required = ("urls",) if kind == "shards" else _BUILDERS[kind][0]
        missing = [k for k in required if k not in entry]
        if missing:
            raise ValueError(f"source {i} ({kind}): missing {missing}")
        paths = {k: _resolve(base, entry[k]) for k in required}
        options = {k: v for k, v in entry.items() if k not in (*required, "type", "weight", "name")}
        out.append(SourceSpec(kind, str(entry.get("name", f"{kind}{i}")), float(entry.get("weight", 1.0)),
                              paths, options))
    return out


def _resolve(base: Path, value: str) -> str:
    if "://" in str(value):
        return str(value)
    path = Path(value)
    return str(path if path.is_absolute() else base / path)


def spec_for_folder(folder: Path) -> SourceSpec:
    if (folder / "shards.json").is_file() or any(folder.glob("*.tar")):
        return SourceSpec("shards", folder.name or "shards", paths={"urls": str(folder)})
    if any(p.suffix.lower() in (".srt", ".vtt") for p in folder.rglob("*")):
        return SourceSpec("subtitles", folder.name or "subtitles", paths={"videos": str(folder)})
    return SourceSpec("folder", folder.name or "folder", paths={"videos": str(folder)})


def load_items(spec: SourceSpec) -> tuple[list[ClipItem], SourceReport]:
    """The clip items of a (non-shard) source and its report."""
    if spec.is_shards:
        raise ValueError(f"source {spec.name}: shards hold no items to list; read them with ShardDataset")
    return _BUILDERS[spec.type][1](**spec.paths, name=spec.name, **spec.options)
