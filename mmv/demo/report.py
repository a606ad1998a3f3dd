"""The demo's report: one HTML page, with PNG plots next to it, of what a run learnt.

It shows the loss curves, text-to-video retrieval examples (the query, the top videos as a few frames, right or
wrong), a 2-D map of embeddings coloured by their (never trained on) labels before and after training, and a table
of every number in ``results``. It knows nothing about metric names: whatever the run measured is shown.

Inputs (plain dicts and lists, so any caller can build them; arrays may be numpy arrays, torch tensors or lists):

``results``: stage -> metrics, e.g. ``{"untrained": {...}, "trained": {...}}``. Metrics may nest
    (``{"retrieval": {"t2v": {"R@1": 0.3}}}`` becomes the row ``retrieval/t2v/R@1``); one column per stage, plus
    the change from the first to the last stage when there are two or more. Top-level values that are not dicts
    (``"steps": 500``, ``"train_seconds": 71.2``) go in a separate "run" table.
``loss_curve``: one dict per logged step, ``{"step": 10, "total": 3.2, "nce_va": 1.5, "mil_nce_vt": 1.7}``; every
    numeric key except step/epoch/time/lr is drawn as a curve against ``step`` (or the row number).
``retrieval_examples``: ``[{"query": "seven", "target": 7, "results": [hit, ...]}]``, hits best first, each
    ``{"label": 7, "correct": True, "score": 0.81, "id": "test_00012", "frames": uint8 [N, H, W, 3] or
    "video": path}`` (all keys optional; ``correct`` defaults to ``label == target``; without ``frames`` four
    frames are decoded from ``video``).
``embeddings``: panel title -> ``{"embeddings": [N, D], "labels": [N], "anchors": {name: [D]}}``, e.g.
    ``{"video, untrained": ..., "video, trained": ...}``. Rows are L2-normalised and projected to 2-D by PCA
    (``projection="tsne"`` for t-SNE); anchors (say, the text embeddings of "zero" ... "nine") are drawn as labelled
    stars in the same projection. Each panel also reports the leave-one-out 1-nearest-neighbour accuracy of
    the labels (cosine), a number that says how well the space groups the digits.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

_NOT_CURVES = frozenset({"step", "epoch", "time", "seconds", "wall", "lr", "learning_rate"})
_GOOD, _BAD = "#1a9850", "#d73027"


def format_value(value: Any) -> str:
    """How a number appears in the report's tables: integers as they are, floats with 4 decimals (scientific
    notation when very large or small), anything else as text."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            return str(v)
        return f"{v:.3e}" if v != 0 and not 1e-3 <= abs(v) < 1e5 else f"{v:.4f}"
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # 0-d tensor or array
        return format_value(value.item())
    return str(value)


def _number(value: Any) -> Optional[float]:
    """A plain float for ints, floats, numpy scalars and 0-d tensors/arrays; None for anything else (bools too)."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, float, np.number)) or getattr(value, "ndim", None) == 0:
        return float(value)
    return None


def flatten(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}``, in insertion order."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "/"))
        else:
            out[name] = value
    return out


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)  # no pyplot: no global state, no GUI backend
    return fig


def _save(fig, path: Path) -> str:
    fig.savefig(path, format="png", bbox_inches="tight")
    return path.name


def plot_loss(loss_curve: Sequence[Mapping[str, Any]], path: Path) -> Optional[str]:
    """Every loss series against step; None when there is nothing to draw."""
    names = [k for k in dict.fromkeys(k for row in loss_curve for k in row) if k not in _NOT_CURVES
             and any(_number(row.get(k)) is not None for row in loss_curve)]
    if not names:
        return None
    fig = _figure(7, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    for name in names:
        pts = [(_number(row.get("step", i)), _number(row[name])) for i, row in enumerate(loss_curve)
               if _number(row.get(name)) is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name, lw=1.6 if name == "total" else 1.1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Training losses")
    return _save(fig, path)


def _frames_of(hit: Mapping[str, Any], n: int = 4) -> Optional[np.ndarray]:
    frames = hit.get("frames")
    if frames is None and hit.get("video"):
        from mmv.data.video import decode_clip, probe_video

        info = probe_video(hit["video"])
        frames = decode_clip(hit["video"], 0.0, n, n / info.duration, with_audio=False, info=info).frames
    if frames is None:
        return None
    arr = np.asarray(frames.numpy() if hasattr(frames, "numpy") else frames)
    if arr.dtype != np.uint8:
        arr = np.clip(arr * 255 if arr.max() <= 1.0 else arr, 0, 255).astype(np.uint8)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.shape[-1] != 3 and arr.shape[1] == 3:  # [T, 3, H, W]
        arr = arr.transpose(0, 2, 3, 1)
    return arr[np.linspace(0, len(arr) - 1, min(n, len(arr))).round().astype(int)]


def _is_correct(example: Mapping[str, Any], hit: Mapping[str, Any]) -> Optional[bool]:
    if "correct" in hit:
        return bool(hit["correct"])
    if "label" in hit and example.get("target") is not None:
        return hit["label"] == example["target"]
    return None


def plot_retrieval(example: Mapping[str, Any], path: Path, frames_per_video: int = 4) -> str:
    """One row per retrieved video (best first): a few of its frames, framed green (right) or red (wrong)."""
    hits = list(example.get("results", []))
    fig = _figure(1.3 * frames_per_video + 1.6, 1.35 * max(1, len(hits)) + 0.4)
    fig.suptitle(f"query: \u201c{example.get('query', '')}\u201d", fontsize=11)
    for r, hit in enumerate(hits):
        frames = _frames_of(hit, frames_per_video)
        ok = _is_correct(example, hit)
        colour = {True: _GOOD, False: _BAD, None: "#777777"}[ok]
        caption = f"#{r + 1} " + {True: "right", False: "wrong", None: ""}[ok]
        if "label" in hit:
            caption += f"\nlabel {hit['label']}"
        if "score" in hit:
            caption += f"\nscore {float(hit['score']):.3f}"
        for c in range(frames_per_video):
            ax = fig.add_subplot(len(hits), frames_per_video, r * frames_per_video + c + 1)
            if frames is not None and c < len(frames):
                ax.imshow(frames[c])
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(3)
            if c == 0:
                ax.set_ylabel(caption, rotation=0, ha="right", va="center", fontsize=9, color=colour)
    return _save(fig, path)


def project(x: np.ndarray, method: str = "pca", anchors: Optional[np.ndarray] = None, seed: int = 0
            ) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """2-D coordinates of the L2-normalised rows of ``x`` (and of ``anchors`` in the same PCA; with t-SNE they
    are embedded together)."""
    def norm(a):
        a = np.asarray(a, dtype=np.float64)
        return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)

    x = norm(x)
    extra = norm(anchors) if anchors is not None and len(anchors) else None
    if method == "tsne":
        from sklearn.manifold import TSNE

        both = x if extra is None else np.concatenate([x, extra])
        perplexity = float(min(30, max(2, (len(both) - 1) / 3)))
        y = TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(both)
        return (y, None) if extra is None else (y[: len(x)], y[len(x):])
    if method != "pca":
        raise ValueError(f"projection must be 'pca' or 'tsne', got {method!r}")
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    basis = vt[:2].T
    if basis.shape[1] < 2:
        basis = np.pad(basis, ((0, 0), (0, 2 - basis.shape[1])))
    return (x - mean) @ basis, None if extra is None else (extra - mean) @ basis


def nn_accuracy(x: np.ndarray, labels: Sequence[Any]) -> float:
    """Leave-one-out 1-nearest-neighbour accuracy (cosine) of ``labels`` in the space ``x``."""
    x = np.asarray(x, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    labels = np.asarray(labels)
    if len(x) < 2:
        return float("nan")
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    return float(np.mean(labels[sim.argmax(axis=1)] == labels))


def plot_embeddings(embeddings: Mapping[str, Mapping[str, Any]], path: Path, projection: str = "pca"
                    ) -> tuple[str, dict[str, float]]:
    """One scatter panel per entry, coloured by label; returns the file name and each panel's 1-NN accuracy."""
    panels = list(embeddings.items())
    fig = _figure(4.2 * len(panels), 4.2)
    accuracy = {}
    all_labels = sorted({lab for _, p in panels for lab in np.asarray(p["labels"]).tolist()}, key=str)
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(all_labels) <= 10 else "tab20"]
    for i, (title, panel) in enumerate(panels):
        x = np.asarray(panel["embeddings"].numpy() if hasattr(panel["embeddings"], "numpy") else panel["embeddings"])
        labels = np.asarray(panel["labels"])
        anchors = panel.get("anchors") or {}
        names = list(anchors)
        a = np.stack([np.asarray(anchors[n], dtype=np.float64) for n in names]) if names else None
        xy, axy = project(x, projection, a)
        accuracy[title] = nn_accuracy(x, labels)
        ax = fig.add_subplot(1, len(panels), i + 1)
        for k, lab in enumerate(all_labels):
            sel = labels.astype(str) == str(lab)
            if sel.any():
                ax.scatter(xy[sel, 0], xy[sel, 1], s=12, color=cmap(k % cmap.N), label=str(lab), alpha=0.8)
        if axy is not None:
            ax.scatter(axy[:, 0], axy[:, 1], s=140, marker="*", color="black")
            for n, (px, py) in zip(names, axy):
                ax.annotate(str(n), (px, py), fontsize=8, xytext=(3, 3), textcoords="offset points")
        ax.set_title(f"{title}\n1-NN accuracy {format_value(accuracy[title])}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    if panels:
        fig.axes[-1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, title="label")
    return _save(fig, path), accuracy


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def results_tables(results: Mapping[str, Any]) -> str:
    """HTML of the metrics table (one column per stage, and the change) and the run table (top-level scalars)."""
    stages = {k: flatten(v) for k, v in results.items() if isinstance(v, Mapping)}
    scalars = {k: v for k, v in results.items() if not isinstance(v, Mapping)}
    parts = []
    if stages:
        names = list(dict.fromkeys(n for m in stages.values() for n in m))
        cols = list(stages)
        header = ["metric", *cols] + (["change"] if len(cols) >= 2 else [])
        rows = []
        for n in names:
            vals = [stages[c].get(n) for c in cols]
            row = [n, *("" if v is None else format_value(v) for v in vals)]
            if len(cols) >= 2:
                first, last = _number(vals[0]), _number(vals[-1])
                whole = all(isinstance(v, (int, np.integer)) for v in (vals[0], vals[-1]))
                change = None if first is None or last is None else int(last - first) if whole else last - first
                row.append("" if change is None else format_value(change))
            rows.append(row)
        parts.append(_table(header, rows))
    if scalars:
        parts.append("<h3>Run</h3>" + _table(["", "value"], [[k, format_value(v)] for k, v in scalars.items()]))
    return "\n".join(parts)


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}img{max-width:100%}
.examples{display:flex;flex-wrap:wrap;gap:1.5em}.right{color:#1a9850}.wrong{color:#d73027}"""


def write_report(out_dir: str | Path, results: Mapping[str, Any], *, loss_curve: Sequence[Mapping[str, Any]],
                 retrieval_examples: Sequence[Mapping[str, Any]], embeddings: Mapping[str, Mapping[str, Any]],
                 title: str = "mmv demo", summary: str = "", projection: str = "pca") -> Path:
    """Write ``out_dir/report.html`` and its PNGs (``report_*.png``, linked relatively) and return the HTML path.
    See the module docstring for the input structures; any of them may be empty."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections = [f"<h1>{html.escape(title)}</h1>"]
    if summary:
        sections.append(f"<p>{html.escape(summary)}</p>")
    sections.append("<h2>Numbers</h2>" + (results_tables(results) or "<p>No results.</p>"))
    loss_png = plot_loss(loss_curve, out / "report_loss.png") if loss_curve else None
    if loss_png:
        sections.append(f'<h2>Training</h2><img src="{loss_png}" alt="loss curves">')
    if embeddings:
        emb_png, acc = plot_embeddings(embeddings, out / "report_embeddings.png", projection)
        note = ", ".join(f"{html.escape(k)}: {format_value(v)}" for k, v in acc.items())
        sections.append(f"<h2>Embedding map ({html.escape(projection.upper())}, coloured by label)</h2>"
                        f'<img src="{emb_png}" alt="embedding map"><p>1-nearest-neighbour accuracy: {note}</p>')
    if retrieval_examples:
        items = []
        for i, example in enumerate(retrieval_examples):
            png = plot_retrieval(example, out / f"report_retrieval_{i}.png")
            hits = []
            for r, hit in enumerate(example.get("results", [])):
                ok = _is_correct(example, hit)
                verdict = {True: '<span class="right">right</span>', False: '<span class="wrong">wrong</span>',
                           None: ""}[ok]
                what = html.escape(" ".join(str(hit[k]) for k in ("id", "label") if k in hit))
                hits.append(f"<li>#{r + 1} {what} {verdict}</li>")
            items.append(f'<div><h3>\u201c{html.escape(str(example.get("query", "")))}\u201d</h3>'
                         f'<img src="{png}" alt="retrieved videos"><ol style="list-style:none;padding:0">'
                         f'{"".join(hits)}</ol></div>')
        sections.append('<h2>Text to video retrieval</h2><div class="examples">' + "".join(items) + "</div>")
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n")
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
