"""Zero-shot retrieval between any two modalities through MMV's shared spaces.

Spaces (why): the FAC graph is trained with NCE between video and audio in the fine space **S_va** and
with MIL-NCE between video and text in the coarse space **S_vat**; audio reaches S_vat only through the
video head ``vis_embd`` (MMV_SPEC A.6, F.7). So text<->video and text<->audio compare in S_vat (``*_vat``:
text<->audio is the paper's zero-shot transfer through the video modality), and audio<->video in S_va
(``*_va``), the space where that pair was actually trained. In a ``disjoint`` graph audio and text meet in
their own space (``audio_at`` / ``text_at``).

Every embedding is L2-normalised before the dot product (MMV_SPEC F.11). Several windows per item are
combined by ``mean_embedding`` (normalise each window, average, normalise again) or ``mean_similarity``
(the mean cosine over all window pairs; by linearity that is the dot product of the *un-renormalised*
window means, which is how it is computed). Ranks count ties pessimistically (``metrics``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import torch

from mmv.data.text import Tokenizer, Vocabulary
from mmv.eval.datasets.base import Example
from mmv.eval.features import Features, FeatureSpec, extract_features
from mmv.eval.metrics import GroundTruth, rank_metrics, retrieval_ranks

AGGREGATES = ("mean_embedding", "mean_similarity")
MODALITIES = ("video", "audio", "text")
RETRIEVAL_WINDOWS = 4  # VATT, which "follows MMV's pipeline", averages 4 clips (MMV_SPEC E; UNCONFIRMED for MMV)


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def pooled(emb: np.ndarray, aggregate: str) -> np.ndarray:
    """``[N, W, D]`` (or ``[N, D]``) window embeddings -> ``[N, D]`` item vectors for one aggregation."""
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim == 2:
        emb = emb[:, None]
    if emb.ndim != 3:
        raise ValueError(f"embeddings must be [N, D] or [N, W, D], got shape {emb.shape}")
    mean = _normalise(emb).mean(axis=1)
    return _normalise(mean) if aggregate == "mean_embedding" else mean


def similarity(query: np.ndarray, target: np.ndarray, aggregate: str = "mean_embedding") -> np.ndarray:
    """Cosine similarity ``[Nq, Nt]`` of L2-normalised (window-aggregated) embeddings."""
    q, t = pooled(query, aggregate), pooled(target, aggregate)
    if q.shape[1] != t.shape[1]:
        raise ValueError(f"query and target live in different spaces: dims {q.shape[1]} and {t.shape[1]}")
    return q @ t.T


def retrieve(query: np.ndarray, target: np.ndarray, gt: GroundTruth, aggregate: str = "mean_embedding",
             ks: Sequence[int] = (1, 5, 10)) -> dict[str, Any]:
    """R@k, median and mean rank of ``query [Nq, (W,) D]`` against ``target [Nt, (W,) D]``.

    ``gt[i]``: the index or indices of query i's correct targets (a video has several captions).
    Returns ``{"metrics", "params", "ranks"}``.
    """
    ranks = retrieval_ranks(similarity(query, target, aggregate), gt)
    q, t = np.asarray(query), np.asarray(target)
    params = {"aggregate": aggregate, "normalise": "L2 per window (and after averaging for mean_embedding)",
              "ties": "pessimistic", "n_queries": int(q.shape[0]), "n_targets": int(t.shape[0]),
              "query_windows": int(q.shape[1]) if q.ndim == 3 else 1,
              "target_windows": int(t.shape[1]) if t.ndim == 3 else 1}
    return {"metrics": rank_metrics(ranks, ks), "params": params, "ranks": ranks}


def space_layers(model: Any, a: str, b: str) -> tuple[str, str]:
    """The output keys comparing modalities ``a`` and ``b`` (see the module docstring for why)."""
    for m in (a, b):
        if m not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {m!r}")
    if a == b:
        raise ValueError(f"retrieval needs two different modalities, got {a} and {b}")
    pair = {a, b}
    if pair == {"video", "audio"}:
        space = "va"
    elif pair == {"audio", "text"} and getattr(getattr(model, "config", None), "graph", None) == "disjoint":
        space = "at"
    else:
        space = "vat"
    return f"{a}_{space}", f"{b}_{space}"


def tokenizer_for(model: Any) -> Tokenizer:
    """``Tokenizer(Vocabulary(model.vocab), protocol.max_words)``; a clear error when there is no vocabulary."""
    words = getattr(model, "vocab", None)
    if not words:
        raise ValueError("this model has no vocabulary, so text cannot be embedded: convert it with "
                         "`mmv convert ... --vocab words.txt` or save it with save_model(..., vocab=...)")
    try:
        vocab = Vocabulary(words)
    except ValueError as e:
        raise ValueError(f"the model's vocabulary cannot be used by the tokenizer ({e})") from None
    return Tokenizer(vocab, model.protocol.max_words)


def caption_items(examples: Sequence[Example]) -> tuple[list[str], list[str], list[str]]:
    """Every caption of every example: ``(texts, caption ids "<id>#<k>", owner example ids)``."""
    texts, ids, owners = [], [], []
    for ex in examples:
        for k, text in enumerate(ex.captions):
            texts.append(text)
            ids.append(f"{ex.id}#{k}")
            owners.append(ex.id)
    return texts, ids, owners


def embed_text(model: Any, texts: Sequence[str], layer: str = "text_vat", *, device: str | torch.device = "cpu",
               batch_size: int = 256) -> np.ndarray:
    """``[N, D]`` embeddings of ``texts`` at ``layer`` (model in eval mode, previous mode restored)."""
    tok = tokenizer_for(model)
    was_training = model.training
    model.to(device).eval()
    out = []
    try:
        with torch.no_grad():
            for i in range(0, len(texts), batch_size):
                ids = tok.encode_batch(list(texts[i:i + batch_size])).to(device)
                result = model(text=ids)
                if layer not in result:
                    raise ValueError(f"the model gives no {layer!r} (it gives {sorted(result)})")
                out.append(result[layer].float().cpu().numpy())
    finally:
        if was_training:
            model.train()
    dim = out[0].shape[1] if out else 0
    return np.concatenate(out) if out else np.zeros((0, dim), np.float32)


def embed_for_retrieval(model: Any, examples: Sequence[Example], modality: str, layer: str, *,
                        media: str = "video", spec: Optional[FeatureSpec] = None,
                        device: str | torch.device = "cpu", batch_size: int = 16, **kwargs: Any) -> Features:
    """Embeddings of one modality of ``examples`` at ``layer`` (from ``space_layers``).

    Text: one row per caption (``ids`` ``"<id>#<k>"``, ``meta["owners"]`` the example ids). Video / audio:
    ``spec.num_windows`` test windows per example (default ``RETRIEVAL_WINDOWS``) via ``extract_features``
    (``media`` is the examples' kind; ``kwargs`` go there: ``cache_dir``, ``num_workers``, ``progress``).
    """
    if modality == "text":
        texts, ids, owners = caption_items(examples)
        if not texts:
            raise ValueError("no example has captions: nothing to embed as text")
        emb = embed_text(model, texts, layer, device=device, batch_size=max(batch_size, 64))
        return Features(emb[:, None].astype(np.float32), ids, [() for _ in ids],
                        spec={"modality": "text", "layer": layer, "max_words": model.protocol.max_words},
                        meta={"owners": owners})
    spec = spec or FeatureSpec(modality=media, num_windows=RETRIEVAL_WINDOWS)
    spec = FeatureSpec(**{**spec.to_dict(), "modality": media, "layer": layer})
    return extract_features(model, examples, spec, train=False, device=device, batch_size=batch_size, **kwargs)


def _brief(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != "protocol"}


def _owners(feats: Features) -> list[str]:
    return list(feats.meta.get("owners", feats.ids))


def match(query: Features, target: Features) -> tuple[np.ndarray, list[list[int]], int]:
    """Query rows that have a correct target (same owner example), their target rows, and how many were
    dropped because every target of theirs was skipped."""
    where: dict[str, list[int]] = {}
    for j, owner in enumerate(_owners(target)):
        where.setdefault(owner, []).append(j)
    keep, gt = [], []
    for i, owner in enumerate(_owners(query)):
        if owner in where:
            keep.append(i)
            gt.append(where[owner])
    return np.array(keep, np.int64), gt, len(query.ids) - len(keep)


def retrieval_eval(model: Any, examples: Sequence[Example], query: str = "text", target: str = "video", *,
                   media: str = "video", aggregate: str = "mean_embedding", spec: Optional[FeatureSpec] = None,
                   device: str | torch.device = "cpu", batch_size: int = 16, ks: Sequence[int] = (1, 5, 10),
                   **kwargs: Any) -> dict[str, Any]:
    """Zero-shot ``query`` -> ``target`` retrieval over ``examples`` (e.g. text -> video on MSRVTT 1k-A).

    Every example is in the gallery; queries whose target failed to decode are dropped and counted.
    Returns ``{"metrics", "params", "timings", "skipped", "predictions"}``.
    """
    t0 = time.perf_counter()
    q_layer, t_layer = space_layers(model, query, target)
    common = dict(media=media, spec=spec, device=device, batch_size=batch_size, **kwargs)
    q = embed_for_retrieval(model, examples, query, q_layer, **common)
    t = embed_for_retrieval(model, examples, target, t_layer, **common)
    t1 = time.perf_counter()
    keep, gt, dropped = match(q, t)
    if not len(keep):
        raise ValueError("no query has a decodable correct target")
    result = retrieve(q.array[keep], t.array, gt, aggregate, ks)
    skipped = [s for f in (q, t) for s in f.skipped]
    params = {**result["params"], "query": query, "target": target, "query_layer": q_layer, "target_layer": t_layer,
              "queries_dropped": dropped, "query_spec": _brief(q.spec), "target_spec": _brief(t.spec),
              "protocol": model.protocol.to_dict()}
    return {"metrics": result["metrics"], "params": params,
            "timings": {"embed_s": t1 - t0, "total_s": time.perf_counter() - t0},
            "skipped": [vars(s) for s in skipped],
            "predictions": {"query_ids": [q.ids[i] for i in keep], "ranks": result["ranks"]}}
