"""What the demo measures: zero-shot retrieval and linear probes of the digit videos, and the FSDD probe.

Every number comes from the evaluation tools (``mmv.eval``: ``extract_features``, ``retrieve``,
``logistic_probe``, ``make_record``); this module only says which examples, layers and definitions the demo
uses. Several networks (the untrained and the trained one) are read from **one** decoding pass: an ``Encoder``
runs each network on the same decoded clips and concatenates the layers asked for, so decoding, the costly part
on a CPU, is paid once.

Definitions (also written into ``results.json``):

- ``t2v``: text -> video over the ten digits. Queries: the ten prompts ``"the number zero"`` ... ``"the number
  nine"``; gallery: every test video; a hit is a video showing the query's digit. ``R@k``: fraction of the ten
  queries with a hit among their k best videos (chance for R@1: the share of the gallery showing that digit,
  about 10 %); ``MedR``: median rank of the first hit; ``zero_shot_top1``: fraction of test videos whose most
  similar prompt names their digit (the same space read the other way: classification with no labels).
- ``a2v``: audio -> video. Queries: each test video's sound track; gallery: the test videos (space S_va, where
  this pair is trained). ``same_video``: the hit is the query's own video (chance R@1 1/N); ``same_digit``: any
  video of the spoken digit (its own included; chance R@1 about 10 %).
- ``probe``: logistic regression (``mmv.eval.linear.logistic_probe``, L2 strength chosen on a validation split
  of the training videos) on the frozen backbone features (``video_repr``, ``audio_repr``) of 400 train videos
  (the digits in turn: ``EvalSettings.probe_train_videos``), scored on the test videos; each window is a row,
  test scores are averaged over a video's windows.
- ``fsdd``: the same probe on ``audio_repr`` of Free Spoken Digit Dataset recordings (real people, never heard
  in training): the official split (takes 0-4 test) and one held-out speaker.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from mmv.demo.narration import DIGIT_WORDS
from mmv.eval.datasets.base import Benchmark, Example
from mmv.eval.encoders import Encoder
from mmv.eval.features import Features, FeatureSpec, extract_features
from mmv.eval.linear import DEFAULT_WEIGHT_DECAYS, logistic_probe
from mmv.eval.results import make_record, model_info
from mmv.eval.retrieval import embed_text, match, pooled, retrieve, similarity

PROMPT = "the number {word}"
VIDEO_LAYERS = ("video_repr", "video_va", "video_vat")
AUDIO_LAYERS = ("audio_repr", "audio_va", "audio_vat")
HELD_OUT_SPEAKER = "george"  # the registry's FSDD protocol
FALLBACK_WEIGHT_DECAY = 1e-2
Progress = Optional[Callable[[int, int], None]]


@dataclass(frozen=True)
class EvalSettings:
    """Windows per example: video windows each cost a decode; audio windows are cut from one decode."""

    video_windows: int = 2
    audio_windows: int = 3
    fsdd_windows: int = 1
    probe_train_videos: int = 400  # the probes fit on this many training videos (balanced over the digits)
    batch_size: int = 64
    num_workers: int = 1           # decoding processes; the networks run in the main process
    probe_threads: int = 2         # torch threads of the L-BFGS probes (nothing else runs then)


def digit_examples(root: Any, split: str) -> list[Example]:
    """The ``split`` videos of a built demo dataset (``DatasetInfo``) as labelled, captioned examples."""
    labels = root.labels()
    captions = json.loads(root.captions(split).read_text())
    return [Example(id=vid, path=str(root.videos(split) / f"{vid}.mp4"), labels=(labels[vid],),
                    captions=tuple(captions.get(vid, {}).get("text", ())))
            for vid in sorted(captions)]


def balanced(examples: Sequence[Example], n: int) -> list[Example]:
    """The first ``n`` examples taking the digits in turn (all of them when ``n`` is larger)."""
    by_digit: dict[int, list[Example]] = {}
    for ex in examples:
        by_digit.setdefault(ex.labels[0], []).append(ex)
    out: list[Example] = []
    k = 0
    while len(out) < min(n, len(examples)):
        for d in sorted(by_digit):
            if k < len(by_digit[d]) and len(out) < n:
                out.append(by_digit[d][k])
        k += 1
    return sorted(out, key=lambda ex: ex.id)


def multi_encoder(models: Mapping[str, nn.Module], layers: Sequence[str], kind: str
                  ) -> tuple[Encoder, dict[str, int]]:
    """One ``Encoder`` giving ``layers`` of every model side by side: ``[B, sum of dims]`` (see ``split_columns``);
    and the width of each layer, filled in by the first batch it encodes."""
    names = list(models)
    dims: dict[str, int] = {}

    def fn(x: torch.Tensor) -> torch.Tensor:
        parts = []
        for name in names:
            out = models[name](video=x) if kind == "video" else models[name](audio=x)
            parts.extend(out[layer] for layer in layers)
        dims.update((layer, int(out[layer].shape[-1])) for layer in layers)
        return torch.cat(parts, dim=1)

    first = models[names[0]]
    encoder = Encoder(fn, input=kind, protocol=first.protocol, module=nn.ModuleDict(dict(models)),
                      description=f"{'+'.join(names)}:{'+'.join(layers)}")
    return encoder, dims


def split_columns(feats: Features, models: Sequence[str], layers: Sequence[str], dims: Mapping[str, int]
                  ) -> dict[str, dict[str, Features]]:
    """model -> layer -> ``Features`` cut from the concatenation ``multi_encoder`` made."""
    out: dict[str, dict[str, Features]] = {}
    at = 0
    for model in models:
        out[model] = {}
        for layer in layers:
            d = dims[layer]
            spec = {**feats.spec, "layer": layer, "model": model}
            out[model][layer] = Features(np.ascontiguousarray(feats.array[:, :, at:at + d]), list(feats.ids),
                                         list(feats.labels), list(feats.skipped), spec, dict(feats.meta))
            at += d
    if at != feats.array.shape[2]:
        raise ValueError(f"features have {feats.array.shape[2]} columns, the layers {at}")
    return out


def extract(models: Mapping[str, nn.Module], examples: Sequence[Example], kind: str, windows: int,
            settings: EvalSettings, progress: Progress = None, media: str = "video") -> dict[str, dict[str, Features]]:
    """model -> layer -> features of ``examples`` (``windows`` evenly spaced windows, centre crop)."""
    layers = VIDEO_LAYERS if kind == "video" else AUDIO_LAYERS
    encoder, dims = multi_encoder(models, layers, kind)
    spec = FeatureSpec(modality=media, layer=f"{kind}_{'+'.join(layers)}", num_windows=windows, flip=False)
    feats = extract_features(encoder, examples, spec, train=False, batch_size=settings.batch_size,
                             num_workers=settings.num_workers, progress=progress)
    if not dims:
        raise ValueError(f"no {kind} window of the {len(examples)} examples could be encoded")
    return split_columns(feats, list(models), layers, dims)


def _gt_by_digit(labels: Sequence[int], digits: Sequence[int]) -> list[list[int]]:
    return [[j for j, lab in enumerate(labels) if lab == d] for d in digits]


def text_to_video(model: nn.Module, video_vat: Features) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``t2v`` metrics (module docstring) and what the report shows: similarities, prompts, labels."""
    labels = [lab[0] for lab in video_vat.labels]
    digits = [d for d in range(10) if d in labels]
    prompts = [PROMPT.format(word=DIGIT_WORDS[d]) for d in digits]
    text = embed_text(model, prompts, "text_vat")
    result = retrieve(text, video_vat.array, _gt_by_digit(labels, digits))
    sim = similarity(text, video_vat.array)  # [digits, videos]
    zero_shot = float(np.mean(np.asarray(digits)[sim.argmax(axis=0)] == np.asarray(labels)))
    order = np.argsort(-sim, axis=1, kind="stable")
    precision10 = float(np.mean([np.mean(np.asarray(labels)[order[i, :10]] == d) for i, d in enumerate(digits)]))
    metrics = {**result["metrics"], "P@10": precision10, "zero_shot_top1": zero_shot}
    params = {**result["params"], "queries": prompts, "prompt": PROMPT, "gallery": "test videos",
              "hit": "a video showing the query's digit", "space": "S_vat (text_vat vs video_vat)",
              "chance_R@1": float(np.mean([np.mean(np.asarray(labels) == d) for d in digits]))}
    shown = {"prompts": prompts, "digits": digits, "similarity": sim, "text": text, "ids": list(video_vat.ids),
             "labels": labels}
    return {"metrics": metrics, "params": params}, shown


def audio_to_video(audio_va: Features, video_va: Features) -> dict[str, Any]:
    """The ``a2v`` metrics: own video and same digit as the hit (module docstring)."""
    keep, own_video, dropped = match(audio_va, video_va)  # each sound track's own video, by id
    q = audio_va.array[keep]
    own = retrieve(q, video_va.array, own_video)
    same = retrieve(q, video_va.array, _gt_by_digit([lab[0] for lab in video_va.labels],
                                                    [audio_va.labels[i][0] for i in keep]))
    metrics = {"same_video": own["metrics"], "same_digit": same["metrics"]}
    params = {**own["params"], "space": "S_va (audio_va vs video_va)", "gallery": "test videos",
              "hit": {"same_video": "the query's own video", "same_digit": "any video of the spoken digit"},
              "queries_dropped": dropped}
    return {"metrics": metrics, "params": params}


def probe(train: Features, test: Features, seed: int, threads: int = 0) -> dict[str, Any]:
    """Logistic-regression probe (ten classes), weight decay chosen on held-out training examples; with fewer than
    three examples of some digit (20 % of them rounds to none) nothing can be held out: the grid's middle is used."""
    counts = np.bincount([lab[0] for lab in train.labels], minlength=10)
    grid = DEFAULT_WEIGHT_DECAYS if counts.min() >= 3 else FALLBACK_WEIGHT_DECAY
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return logistic_probe(train, test, grid, num_classes=10, seed=seed)
    finally:
        torch.set_num_threads(previous)


def record(info: Mapping[str, Any], name: str, benchmark: str, split: Any, task: str, result: Mapping[str, Any],
           features: Sequence[Features] = (), protocol: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """``make_record`` with the network's ``model_info`` (hashed once per network, not per record) and the demo's
    name for it (untrained / trained)."""
    return make_record(model={**info, "demo_stage": name}, benchmark=benchmark, split=split, task=task, result=result,
                       features=features, benchmark_protocol=protocol)


def subset(feats: Features, ids: set[str]) -> Features:
    """The rows of ``feats`` whose id is in ``ids``."""
    rows = [i for i, x in enumerate(feats.ids) if x in ids]
    return Features(feats.array[rows], [feats.ids[i] for i in rows], [feats.labels[i] for i in rows],
                    [], dict(feats.spec), dict(feats.meta))


def fsdd_benchmarks(path: Any) -> list[tuple[str, Benchmark]]:
    """(key, benchmark) for the official split and one held-out speaker (``george`` when present)."""
    from mmv.eval.datasets import load_benchmark

    official = load_benchmark("fsdd", path, split="official")
    speakers = official.protocol.get("speakers", [])
    held = HELD_OUT_SPEAKER if HELD_OUT_SPEAKER in speakers else speakers[0]
    return [("official", official), ("held_out_speaker", load_benchmark("fsdd", path, split=f"speaker:{held}"))]


def fsdd_probes(models: Mapping[str, nn.Module], path: Any, settings: EvalSettings, seed: int,
                progress: Progress = None) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """model -> {official, held_out_speaker: top1 ...} and the records; features are extracted once for all
    recordings and cut into each split."""
    benches = fsdd_benchmarks(path)
    everything = {ex.id: ex for _, b in benches for split in ("train", "test") for ex in b.split(split)}
    examples = [everything[k] for k in sorted(everything)]
    feats = extract(models, examples, "audio", settings.fsdd_windows, settings, progress, media="audio")
    metrics: dict[str, dict[str, Any]] = {name: {} for name in models}
    infos = {name: model_info(model) for name, model in models.items()}
    records = []
    for key, bench in benches:
        for name in models:
            f = feats[name]["audio_repr"]
            train = subset(f, {ex.id for ex in bench.split("train")})
            test = subset(f, {ex.id for ex in bench.split("test")})
            result = probe(train, test, seed, settings.probe_threads)
            metrics[name][key] = {"top1": result["metrics"]["top1"], "split": bench.protocol["split"],
                                  "n_train": len(train.ids), "n_test": len(test.ids)}
            records.append(record(infos[name], name, "fsdd", bench.protocol["split"], "linear/logistic", result,
                                  [_as_train(train), test], bench.protocol))
    return metrics, records


def _as_train(feats: Features) -> Features:
    """The record files features by ``spec["train"]``; training-side features here are test-style windows."""
    return Features(feats.array, feats.ids, feats.labels, feats.skipped, {**feats.spec, "train": True,
                                                                           "windows_as_rows": True}, feats.meta)


def evaluate_digits(models: Mapping[str, nn.Module], train_examples: Sequence[Example],
                    test_examples: Sequence[Example], settings: EvalSettings, seed: int,
                    progress: Optional[Callable[[str, int, int], None]] = None
                    ) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """model -> metrics (t2v, a2v, probe), the full records, and what the report draws."""
    def report(what: str) -> Progress:
        return (lambda d, n: progress(what, d, n)) if progress else None

    w = settings
    splits = (("train", balanced(train_examples, w.probe_train_videos)), ("test", list(test_examples)))
    video = {s: extract(models, ex, "video", w.video_windows, w, report(f"video, {s}")) for s, ex in splits}
    audio = {s: extract(models, ex, "audio", w.audio_windows, w, report(f"audio, {s}")) for s, ex in splits}
    metrics: dict[str, dict[str, Any]] = {}
    records: list[dict[str, Any]] = []
    shown: dict[str, Any] = {}
    for name, model in models.items():
        t2v, shown[name] = text_to_video(model, video["test"][name]["video_vat"])
        shown[name]["audio_va"] = audio["test"][name]["audio_va"]
        shown[name]["video_vat"] = video["test"][name]["video_vat"]
        a2v = audio_to_video(audio["test"][name]["audio_va"], video["test"][name]["video_va"])
        vprobe = probe(video["train"][name]["video_repr"], video["test"][name]["video_repr"], seed, w.probe_threads)
        aprobe = probe(audio["train"][name]["audio_repr"], audio["test"][name]["audio_repr"], seed, w.probe_threads)
        metrics[name] = {"t2v": t2v["metrics"], "a2v": a2v["metrics"],
                         "probe": {"video_top1": vprobe["metrics"]["top1"], "audio_top1": aprobe["metrics"]["top1"]}}
        info = model_info(model)
        records += [
            record(info, name, "demo-digits", "test", "retrieval/text->video (digit prompts)", t2v,
                   [video["test"][name]["video_vat"]]),
            record(info, name, "demo-digits", "test", "retrieval/audio->video", a2v,
                   [audio["test"][name]["audio_va"], video["test"][name]["video_va"]]),
            record(info, name, "demo-digits", "train->test", "linear/logistic video_repr", vprobe,
                   [_as_train(video["train"][name]["video_repr"]), video["test"][name]["video_repr"]]),
            record(info, name, "demo-digits", "train->test", "linear/logistic audio_repr", aprobe,
                   [_as_train(audio["train"][name]["audio_repr"]), audio["test"][name]["audio_repr"]]),
        ]
    return metrics, records, shown


LOSS_KEYS = {"loss": "total", "nce_va": "nce_va (video-audio)", "mil_nce_vt": "mil_nce_vt (video-text)"}
SHOWN_DIGITS = (3, 7)


def report_inputs(shown: Mapping[str, Mapping[str, Any]], history: Sequence[Mapping[str, Any]],
                  test_examples: Sequence[Example], top: int = 4) -> dict[str, Any]:
    """``loss_curve``, ``retrieval_examples`` and ``embeddings`` for ``mmv.demo.report.write_report``: the loss
    terms only; for two digits the top test videos of their prompt, untrained then trained; the test videos in
    S_vat (with the prompts as stars) and their sound tracks in S_va, before and after training."""
    curve = [{"step": h["step"], **{label: h[k] for k, label in LOSS_KEYS.items() if k in h}} for h in history]
    paths = {ex.id: ex.path for ex in test_examples}
    examples = []
    for d in SHOWN_DIGITS:
        for name, s in shown.items():
            if d not in s["digits"]:
                continue
            row = s["similarity"][s["digits"].index(d)]
            best = np.argsort(-row, kind="stable")[:top]
            examples.append({"query": f"{s['prompts'][s['digits'].index(d)]} ({name})", "target": d,
                             "results": [{"id": s["ids"][j], "label": s["labels"][j], "score": float(row[j]),
                                          "video": paths[s["ids"][j]]} for j in best]})
    embeddings = {}
    for space, key in (("video, S_vat", "video_vat"), ("sound, S_va", "audio_va")):
        for name, s in shown.items():
            feats = s[key]
            panel = {"embeddings": pooled(feats.array, "mean_embedding"), "labels": [lab[0] for lab in feats.labels]}
            if key == "video_vat":
                panel["anchors"] = {str(d): s["text"][i] for i, d in enumerate(s["digits"])}
            embeddings[f"{space}, {name}"] = panel
    return {"loss_curve": curve, "retrieval_examples": examples, "embeddings": embeddings}
