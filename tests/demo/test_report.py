"""The HTML report: every number shown, every image a real PNG next to the page, right/wrong marked."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from mmv.demo.report import flatten, format_value, nn_accuracy, project, write_report  # noqa: E402

from ..data.fixtures import write_video  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _inputs(tmp_path):
    rng = np.random.default_rng(0)
    results = {
        "untrained": {"retrieval": {"t2v": {"R@1": 0.1234, "R@5": 0.4567}}, "linear_va": 0.25, "nce_va": 4.8123},
        "trained": {"retrieval": {"t2v": {"R@1": 0.8765, "R@5": 0.9876}}, "linear_va": 0.93, "nce_va": 1.0042},
        "steps": 300,
        "train_seconds": 71.2345,
        "preset": "mmv_tiny_tsm",
    }
    loss_curve = [{"step": s, "total": 5 * np.exp(-s / 100) + 1, "nce_va": 2.5 * np.exp(-s / 80) + 0.4,
                   "mil_nce_vt": 2.5 * np.exp(-s / 120) + 0.6, "lr": 1e-3} for s in range(0, 300, 10)]
    frames = (rng.uniform(0, 1, (6, 24, 24, 3)) * 255).astype(np.uint8)
    video = write_video(tmp_path / "clip.mp4", num_frames=20, fps=10, width=32, height=32, audio=False)
    retrieval = [
        {"query": "seven", "target": 7, "results": [
            {"id": "test_00003", "label": 7, "score": 0.91, "frames": frames},
            {"id": "test_00011", "label": 1, "score": 0.55, "frames": frames.astype(np.float32) / 255},
            {"id": "test_00042", "label": 7, "score": 0.50, "video": str(video)}]},
        {"query": "look at this 2", "results": [{"id": "test_00001", "label": 2, "correct": True, "frames": frames}]},
    ]
    centres = rng.normal(0, 1, (10, 16)) * 5
    labels = np.repeat(np.arange(10), 12)
    trained = centres[labels] + rng.normal(0, 0.3, (120, 16))
    untrained = rng.normal(0, 1, (120, 16))
    embeddings = {"video, untrained": {"embeddings": untrained, "labels": labels},
                  "video, trained": {"embeddings": trained, "labels": labels,
                                     "anchors": {str(d): centres[d] for d in range(10)}}}
    return results, loss_curve, retrieval, embeddings


def test_report_holds_every_number_and_valid_pngs(tmp_path):
    results, loss_curve, retrieval, embeddings = _inputs(tmp_path)
    path = write_report(tmp_path / "out", results, loss_curve=loss_curve, retrieval_examples=retrieval,
                        embeddings=embeddings, title="demo <run>")
    page = path.read_text()
    assert path.name == "report.html" and "<title>demo &lt;run&gt;</title>" in page
    images = re.findall(r'<img src="([^"]+)"', page)
    assert sorted(images) == ["report_embeddings.png", "report_loss.png", "report_retrieval_0.png",
                              "report_retrieval_1.png"]
    for name in images:
        data = (path.parent / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 2000, name
    for stage in ("untrained", "trained"):
        for metric, value in flatten(results[stage]).items():
            assert metric in page and format_value(value) in page, (metric, value)
    for key in ("steps", "train_seconds", "preset"):
        assert key in page and format_value(results[key]) in page
    assert "0.8765" in page and "0.7531" in page  # a value and its change from untrained to trained
    # retrieval: 3 right (two by label == target, one stated), 1 wrong
    assert page.count('<span class="right">right</span>') == 3 and page.count('<span class="wrong">wrong</span>') == 1
    assert "test_00011 1" in page and "\u201clook at this 2\u201d" in page
    # the trained space groups the labels (1-NN accuracy 1), the random one does not (chance is 0.1)
    assert float(re.search(r"video, trained: ([0-9.]+)", page).group(1)) == 1.0
    assert float(re.search(r"video, untrained: ([0-9.]+)", page).group(1)) < 0.4


def test_empty_inputs_still_make_a_page(tmp_path):
    path = write_report(tmp_path, {}, loss_curve=[], retrieval_examples=[], embeddings={})
    assert "No results." in path.read_text() and not list(tmp_path.glob("*.png"))


def test_format_value():
    assert [format_value(v) for v in (3, 0.5, 0.12345, 1234.5, 1e-5, 2.5e6, float("nan"), True, "x")] == \
        ["3", "0.5000", "0.1235", "1234.5000", "1.000e-05", "2.500e+06", "nan", "True", "x"]
    assert format_value(np.float32(0.25)) == "0.2500" and format_value(np.int64(7)) == "7"


def test_projection_and_neighbours():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 0.05, (20, 8)) + 1, rng.normal(0, 0.05, (20, 8)) - 1
    x = np.concatenate([a, b])
    labels = [0] * 20 + [1] * 20
    xy, anchors = project(x, "pca", anchors=np.stack([a.mean(0), b.mean(0)]))
    assert xy.shape == (40, 2) and anchors.shape == (2, 2)
    gap = abs(xy[:20, 0].mean() - xy[20:, 0].mean())
    assert gap > 10 * xy[:20, 0].std()  # the first component separates the two groups
    assert np.sign(anchors[0, 0]) == np.sign(xy[:20, 0].mean())
    assert nn_accuracy(x, labels) == 1.0
    assert nn_accuracy(np.ones((4, 3)) + np.arange(4)[:, None] * [0, 0, 1e-9], [0, 1, 0, 1]) <= 1.0


def test_importing_the_demo_stays_light():
    code = ("import sys, mmv.demo.report, mmv.demo.dataset, mmv.demo.speech;"
            "print(sorted(m for m in ('matplotlib', 'mlxtend', 'sklearn', 'espeakng_loader') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_tensors_and_numpy_values_are_accepted(tmp_path):
    torch = pytest.importorskip("torch")
    results = {"before": {"acc": torch.tensor(0.5), "n": 3}, "after": {"acc": np.float32(0.75), "n": 5}}
    path = write_report(tmp_path, results,
                        loss_curve=[{"step": torch.tensor(i), "total": torch.tensor(1.0 / (i + 1))} for i in range(5)],
                        retrieval_examples=[],
                        embeddings={"t": {"embeddings": torch.randn(20, 4), "labels": torch.arange(20) % 2}})
    page = path.read_text()
    assert "<td>acc</td><td>0.5000</td><td>0.7500</td><td>0.2500</td>" in page
    assert "<td>n</td><td>3</td><td>5</td><td>2</td>" in page
    assert (tmp_path / "report_loss.png").read_bytes()[:8] == PNG_MAGIC
