"""Progress line, metrics file, and the TensorBoard fallback."""

from __future__ import annotations

import io
import json

from mmv.train.logging import MetricsLog, ProgressBar, format_duration, read_metrics


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal_rewrites_one_line():
    out = _Tty()
    bar = ProgressBar(200, "auto", stream=out, width=10)
    bar.update(50, {"loss": 3.14159, "clips_per_s": 12.345, "lr": 0.002, "eta_s": 125})
    bar.update(100, {"loss": 2.5, "clips_per_s": 13.0, "lr": 0.001, "skipped": 3})
    bar.message("checkpoint saved")
    bar.close()
    text = out.getvalue()
    assert text.startswith("\rstep 50/200 [##........]  25% | loss 3.1416 | 12.3 clips/s | lr 2.00e-03 | 2m05s left")
    assert "\rstep 100/200 [#####.....]  50% | loss 2.5000 | 13.0 clips/s | lr 1.00e-03 | 3 skipped" in text
    assert "\ncheckpoint saved\n" in text


def test_progress_in_a_log_file_prints_every_n_steps():
    out = io.StringIO()
    bar = ProgressBar(30, "auto", stream=out, every=10)
    for step in range(1, 31):
        bar.update(step, {"loss": 1.0})
    lines = out.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["10/30", "20/30", "30/30"] and "\r" not in out.getvalue()
    assert format_duration(3725) == "1h02m" and format_duration(float("nan")) == "?"


def test_metrics_jsonl_and_missing_tensorboard(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    said = []
    log = MetricsLog(tmp_path, tensorboard=True, say=said.append)
    assert not log.tensorboard_enabled
    assert len(said) == 1 and "pip install tensorboard" in said[0] and "metrics.jsonl" in said[0]
    log.write({"step": 1, "loss": 2.0})
    log.write({"step": 2, "loss": float("nan"), "event": "nonfinite"})
    log.close()
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == [1, 2] and records[0]["loss"] == 2.0 and "time" in records[0]
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])["loss"] == 2.0
