"""One evaluation, start to finish: a model and a benchmark in, a result record out.

These are what ``mmv eval linear|retrieval`` and ``mmv demo`` call. Each run resolves every protocol
parameter (from the benchmark's documented protocol, the model's input protocol, or the caller) before it
starts, and the record it returns carries all of them, with the skipped examples and the timings.

``protocol="benchmark"`` samples clips as the paper's evaluation of that benchmark does (UCF101: 32 frames
at stride 2 of 25 fps, first 20 s, 224 crops, MMV_SPEC C.4); ``protocol="model"`` uses the model's own
input protocol (what a small model trained here expects).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Optional

import numpy as np

from mmv.eval.datasets.base import Benchmark
from mmv.eval.datasets.registry import BenchmarkInfo, benchmark_info
from mmv.eval.features import FeatureSpec, extract_features
from mmv.eval.linear import DEFAULT_C, logistic_probe, svm_probe
from mmv.eval.metrics import average_precision
from mmv.eval.results import make_record, model_info
from mmv.eval.retrieval import retrieval_eval

PROTOCOLS = ("benchmark", "model")
PROBES = ("svm", "logistic")
# registry keys of per-model protocol values (HMDB51's C) for the released presets
_RELEASED = {"mmv_s3d": "s3d", "mmv_tsm_resnet50": "tsm-resnet50", "mmv_tsm_resnet50x2": "tsm-resnet50x2"}


def feature_spec(info: BenchmarkInfo, *, protocol: str = "benchmark", layer: Optional[str] = None,
                 windows: Optional[int] = None, passes: Optional[int] = None, **fields: Any) -> FeatureSpec:
    """The clip sampling of ``info``'s documented protocol (or the model's, ``protocol="model"``).

    Explicit ``windows`` / ``passes`` / ``fields`` (any ``FeatureSpec`` field) win over both."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    p = info.protocol
    spec: dict[str, Any] = {"modality": info.modality, "layer": layer,
                            "num_windows": int(p.get("test_windows", 10)), "num_passes": int(p.get("train_passes", 10))}
    if protocol == "benchmark" and "frames" in p:
        spec.update(num_frames=int(p["frames"]), fps=float(p["fps"]) / float(p.get("frame_stride", 1)),
                    crop=int(p["crop"]), resize_short_side=int(p.get("resize_min_side", p["crop"])))
        if "max_seconds" in p:
            spec["max_seconds"] = float(p["max_seconds"])
    if windows is not None:
        spec["num_windows"] = int(windows)
    if passes is not None:
        spec["num_passes"] = int(passes)
    spec.update(fields)
    return FeatureSpec(**spec)


def default_c(info: BenchmarkInfo, model: Any) -> tuple[float, str]:
    """The benchmark's documented C for this model, else the official UCF101 script's 0.001; and why."""
    value = info.protocol.get("C")
    if isinstance(value, (int, float)):
        return float(value), f"{info.name} protocol"
    if isinstance(value, Mapping):
        key = _RELEASED.get(getattr(model, "preset", None) or "")
        if key in value:
            return float(value[key]), f"{info.name} protocol for {key}"
    return DEFAULT_C, "default (eval_ucf101.py); the benchmark documents no C for this model"


def masked_map(scores: np.ndarray, labels: list[tuple[int, ...]], ignore: list[tuple[int, ...]],
               num_classes: int) -> dict[str, Any]:
    """Mean AP where ``ignore[i]`` lists classes example i does not count for (VOC07 'difficult')."""
    aps, skipped = {}, 0
    for c in range(num_classes):
        keep = np.array([c not in ig for ig in ignore], dtype=bool)
        positive = np.array([c in lab for lab in labels], dtype=bool)[keep]
        if not positive.any():
            skipped += 1
            continue
        aps[c] = average_precision(scores[keep, c], positive)
    return {"mAP": float(np.mean(list(aps.values()))) if aps else float("nan"), "per_class_ap": aps,
            "classes_scored": len(aps), "classes_skipped": skipped,
            "ignored_pairs": int(sum(len(ig) for ig in ignore))}


def run_linear(model: Any, benchmark: Benchmark, *, probe: str = "svm", spec: Optional[FeatureSpec] = None,
               protocol: str = "benchmark", C: Optional[float | list[float]] = None,
               weight_decay: Optional[float | list[float]] = None, device: str = "cpu", batch_size: int = 16,
               num_workers: int = 0, cache_dir: Optional[str] = None, seed: int = 0, model_path: Optional[str] = None,
               progress: Optional[Callable[[str, int, int], None]] = None) -> dict[str, Any]:
    """Linear probe of ``model`` on ``benchmark`` (its ``train`` split fitted, ``test`` scored)."""
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {PROBES}, got {probe!r}")
    info = benchmark_info(benchmark.name)
    spec = spec or feature_spec(info, protocol=protocol)
    common = dict(device=device, batch_size=batch_size, num_workers=num_workers, cache_dir=cache_dir, seed=seed)
    feats = {}
    for split, train in (("train", True), ("test", False)):
        report = (lambda d, n, s=split: progress(s, d, n)) if progress else None
        feats[split] = extract_features(model, benchmark.split(split), spec, train=train, progress=report, **common)
    extra: dict[str, Any] = {}
    k = len(benchmark.classes)
    if probe == "svm":
        c_source = "given"
        if C is None:
            C, c_source = default_c(info, model)
        result = svm_probe(feats["train"], feats["test"], C, multilabel=benchmark.multilabel, num_classes=k, seed=seed)
        result["params"]["C_source"] = c_source
    else:
        kwargs = {} if weight_decay is None else {"weight_decay": weight_decay}
        result = logistic_probe(feats["train"], feats["test"], device=device, multilabel=benchmark.multilabel,
                                num_classes=k, seed=seed, **kwargs)
    test_examples = {ex.id: ex for ex in benchmark.split("test")}
    ignore = [test_examples[i].ignore for i in result["predictions"]["ids"]]
    if benchmark.multilabel and any(ignore):
        labels = [test_examples[i].labels for i in result["predictions"]["ids"]]
        extra["metrics_all_pairs"] = result["metrics"]
        result["metrics"] = masked_map(np.asarray(result["predictions"]["scores"]), labels, ignore, k)
    return make_record(model=model_info(model, model_path), benchmark=benchmark.name, split=_split(benchmark),
                       task=f"linear/{probe}", result=result, features=[feats["train"], feats["test"]],
                       benchmark_protocol=benchmark.protocol, extra=extra or None)


def run_retrieval(model: Any, benchmark: Benchmark, *, query: str = "text", target: str = "video",
                  aggregate: str = "mean_embedding", spec: Optional[FeatureSpec] = None, protocol: str = "benchmark",
                  windows: Optional[int] = None, device: str = "cpu", batch_size: int = 16, num_workers: int = 0,
                  cache_dir: Optional[str] = None, model_path: Optional[str] = None) -> dict[str, Any]:
    """Zero-shot ``query`` -> ``target`` retrieval on the ``test`` split of ``benchmark``."""
    info = benchmark_info(benchmark.name)
    if spec is None:
        # No published windowing for MMV's retrieval (MMV_SPEC E): VATT's 4 clips unless told otherwise.
        spec = feature_spec(info, protocol=protocol, windows=windows if windows is not None else 4)
    if protocol == "benchmark" and spec.num_frames is None:
        # The retrieval sets document no clip sampling: VATT's 32 frames at stride 2 of 25 fps, 224 crops.
        spec = dataclasses.replace(spec, num_frames=32, fps=12.5, crop=224, resize_short_side=224)
    result = retrieval_eval(model, benchmark.split("test"), query, target, media=benchmark.modality,
                            aggregate=aggregate, spec=spec, device=device, batch_size=batch_size,
                            num_workers=num_workers, cache_dir=cache_dir)
    return make_record(model=model_info(model, model_path), benchmark=benchmark.name, split=_split(benchmark),
                       task=f"retrieval/{query}->{target}", result=result, benchmark_protocol=benchmark.protocol)


def _split(benchmark: Benchmark) -> Any:
    return benchmark.protocol.get("split", benchmark.protocol.get("fold"))
