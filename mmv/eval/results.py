"""One evaluation result as a self-describing JSON record, and a table of several.

A record says which weights (path, preset, weights hash), which benchmark split or fold, every protocol
parameter of the features and of the probe or retrieval, the metrics, the timings, what was skipped and
the mmv version, so that a number can always be traced back to how it was made.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from mmv.atomic import atomic_write_text
from mmv.eval.encoders import weights_hash
from mmv.eval.features import Features

RECORD_VERSION = 1


def model_info(model: Any, path: Optional[str | os.PathLike] = None, *, hash_weights: bool = True) -> dict[str, Any]:
    """``{"path", "preset", "graph", "weights_sha256", "class"}`` of a model (any ``nn.Module``)."""
    config = getattr(model, "config", None)
    return {"path": os.fspath(path) if path is not None else None, "preset": getattr(model, "preset", None),
            "graph": getattr(config, "graph", None), "class": type(model).__name__,
            "weights_sha256": weights_hash(model) if hash_weights and isinstance(model, torch.nn.Module) else None}


def _jsonable(value: Any) -> Any:
    """Plain JSON: numpy scalars to Python numbers, arrays to lists, non-finite floats to None."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def make_record(*, model: Mapping[str, Any], benchmark: str, split: Any, task: str, result: Mapping[str, Any],
                features: Sequence[Features] = (), benchmark_protocol: Optional[Mapping[str, Any]] = None,
                extra: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """A record from a probe or retrieval ``result`` (its ``predictions`` are left out: too big for JSON).

    ``features``: the train / test ``Features`` used, whose spec, skipped examples and timings are recorded.
    ``benchmark_protocol``: how the adapter chose the split (``Benchmark.protocol``).
    """
    from mmv import __version__

    feats = {}
    for f in features:
        name = "train" if f.spec.get("train") else "test"
        feats[name] = {"spec": f.spec, "n_examples": len(f.ids), "shape": list(f.array.shape),
                       "skipped": len(f.skipped), "skipped_by_reason": f.skipped_counts(),
                       "skipped_examples": [vars(s) for s in f.skipped[:20]],
                       "timings": f.meta.get("timings"), "cache": f.meta.get("cache")}
    record = {"record_version": RECORD_VERSION, "mmv_version": __version__,
              "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "host": {"python": platform.python_version(), "torch": torch.__version__},
              "model": dict(model), "benchmark": benchmark, "split": split, "task": task,
              "benchmark_protocol": dict(benchmark_protocol or {}),
              "metrics": result.get("metrics", {}), "params": result.get("params", {}),
              "timings": result.get("timings", {}), "features": feats}
    if "skipped" in result:
        record["skipped"] = {"count": len(result["skipped"]), "examples": list(result["skipped"])[:20]}
    if extra:
        record.update(extra)
    return _jsonable(record)


def write_result(path: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Write ``record`` as indented JSON, atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps(_jsonable(record), indent=2, allow_nan=False) + "\n")


def read_result(path: str | os.PathLike) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


_METRIC_ORDER = ("top1", "top5", "mAP", "R@1", "R@5", "R@10", "MedR", "MeanR")
_RANKS = ("MedR", "MeanR")  # shown as numbers; every other metric is a fraction shown in %


def _cell(key: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return f"{value:.1f}" if key in _RANKS else f"{100 * value:.1f}"
    return str(value)


def _how(params: Mapping[str, Any]) -> str:
    if params.get("C") is not None:
        return f"svm C={params['C']:g}"
    if params.get("weight_decay") is not None:
        return f"lbfgs wd={params['weight_decay']:.3g}"
    if params.get("aggregate"):
        return f"{params.get('query', '?')}->{params.get('target', '?')} {params['aggregate']}"
    return ""


def format_table(records: Sequence[Mapping[str, Any]]) -> str:
    """A plain-text table, one row per record: accuracies, mAP and recalls in %, ranks as numbers."""
    metrics = [m for m in _METRIC_ORDER if any(m in r.get("metrics", {}) for r in records)]
    header = ["benchmark", "split", "task", "model", "method", *metrics, "skipped"]
    rows = [header]
    for r in records:
        model = r.get("model", {})
        name = model.get("preset") or model.get("path") or model.get("class") or "?"
        skipped = sum(f.get("skipped", 0) for f in r.get("features", {}).values())
        skipped += r.get("skipped", {}).get("count", 0)
        m = r.get("metrics", {})
        split = r.get("split")
        rows.append([str(r.get("benchmark", "")), "" if split is None else str(split), str(r.get("task", "")),
                     str(name), _how(r.get("params", {})), *[_cell(k, m.get(k)) for k in metrics], str(skipped)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
