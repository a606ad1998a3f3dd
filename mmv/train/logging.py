"""What a run tells its user: a progress line, a JSONL metrics file, optional TensorBoard.

Only rank 0 reports. The progress bar is one carriage-returned line on a terminal (step, loss,
clips/s, lr, time left); elsewhere (a batch job's log file) it prints a plain line every ``log_every``
steps instead, so logs do not fill with control characters. ``metrics.jsonl`` gets one JSON object per
logged step, appended and flushed, so it can be followed while the run goes and survives a crash.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import IO, Any, Optional

METRICS_FILE = "metrics.jsonl"


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class ProgressBar:
    """``step 120/2000 [####......] 6% loss 3.21 | 45.3 clips/s | lr 1.2e-03 | 1m10s left``."""

    def __init__(self, total: int, mode: str = "auto", stream: Optional[IO[str]] = None, width: int = 24,
                 every: int = 10):
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        self.mode, self.total, self.width, self.every = mode, total, width, max(1, every)
        self._last_len = 0

    def line(self, step: int, values: dict[str, Any]) -> str:
        frac = min(1.0, step / self.total) if self.total else 1.0
        filled = int(round(frac * self.width))
        parts = [f"step {step}/{self.total} [{'#' * filled}{'.' * (self.width - filled)}] {frac * 100:3.0f}%"]
        if "loss" in values:
            parts.append(f"loss {values['loss']:.4f}")
        if "clips_per_s" in values:
            parts.append(f"{values['clips_per_s']:.1f} clips/s")
        if "lr" in values:
            parts.append(f"lr {values['lr']:.2e}")
        if values.get("skipped"):
            parts.append(f"{values['skipped']} skipped")
        if "eta_s" in values:
            parts.append(f"{format_duration(values['eta_s'])} left")
        return " | ".join(parts)

    def update(self, step: int, values: dict[str, Any]) -> None:
        if self.mode == "off":
            return
        text = self.line(step, values)
        if self.mode == "bar":
            pad = " " * max(0, self._last_len - len(text))
            self.stream.write("\r" + text + pad)
            self._last_len = len(text)
        elif step % self.every == 0 or step == self.total:
            self.stream.write(text + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line that must not be overwritten by the bar (warnings, checkpoints)."""
        if self.mode == "bar" and self._last_len:
            self.stream.write("\n")
            self._last_len = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.mode == "bar" and self._last_len:
            self.stream.write("\n")
            self.stream.flush()
            self._last_len = 0


class MetricsLog:
    """Appends one JSON object per record to ``metrics.jsonl``; mirrors scalars to TensorBoard if asked."""

    def __init__(self, run_dir: str | Path, tensorboard: bool = False, say=print):
        self.path = Path(run_dir) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                say(f"TensorBoard logging is off: torch.utils.tensorboard does not import ({err}); "
                    f"`pip install tensorboard` to have it. Metrics still go to {self.path}.")
            else:
                self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))

    @property
    def tensorboard_enabled(self) -> bool:
        return self._tb is not None

    def write(self, record: dict[str, Any]) -> None:
        record = {"time": round(time.time(), 3), **record}
        self._file.write(json.dumps(record, allow_nan=True) + "\n")
        self._file.flush()
        if self._tb is not None and "step" in record:
            for key, value in record.items():
                if key not in ("step", "time") and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(f"train/{key}", value, record["step"])

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl`` (for tests and plots)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
