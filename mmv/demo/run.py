"""``mmv demo``: build the digit videos, train a small FAC model on the CPU, evaluate it next to the same network
before training, and write a report; every artefact in one folder.

Stages, each with its own progress bar: **data** (``mmv.demo.dataset``, cached by its settings) -> **train**
(``mmv.train.train`` on the train videos' narrations, audio and frames; the labels are never read) -> **evaluate**
(``mmv.demo.evaluate``: zero-shot text->video and audio->video retrieval and digit probes on the test videos,
the FSDD probe when its recordings are found; the untrained and the trained network read the same decoded clips)
-> **report** (``mmv.demo.report``). ``results.json`` holds every printed number, the settings that produced
it, the timings per stage and the machine; ``records.json`` the full evaluation records.

"Untrained" is the network the run starts from: rebuilt with the trainer's own code path (same seed, preset,
vocabulary and word table), and checked against the trained network's parameters that no loss touches (the
unused heads and the frozen word table), which equal their initial values only if the initialisation was the same.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Optional

import numpy as np
import torch

from mmv.demo.evaluate import EvalSettings
from mmv.train.logging import format_duration

RESULTS_VERSION = 1
FSDD_CANDIDATES = ("../shared/data/fsdd",)  # relative to the working folder and to the repository


@dataclass(frozen=True)
class DemoSettings:
    """What a demo run does. The defaults fit about ten minutes on 2 CPU cores (docs/demo.md, "Results")."""

    num_train: int = 3000         # many short videos: with few, the network memorises them instead of the digits
    num_test: int = 100
    seconds: float = 3.0
    fps: int = 8
    size: int = 64
    preset: str = "mmv_tiny_tsm"
    num_frames: int = 4           # clips of 4 frames at 4 fps (1 s of sound), 48 px crops of the 54 px resize
    clip_fps: float = 4.0
    crop: int = 48
    steps: int = 1500
    batch_size: int = 32
    lr: float = 0.004
    warmup_fraction: float = 0.05  # of the steps: a half-cosine warm-up, then a half-cosine decay
    color_augment: bool = False
    num_workers: int = 2          # DataLoader workers of the trainer (one torch thread each)
    threads: int = 1              # torch threads of the main process (training step and evaluation)
    build_workers: int = 2        # processes rendering the videos
    eval: EvalSettings = field(default_factory=EvalSettings)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


QUICK = dict(num_train=400, num_test=50, steps=150)


def demo_settings(quick: bool = False, **overrides: Any) -> DemoSettings:
    """The defaults, the ``quick`` ones (about two minutes, for a first look), then ``overrides`` (None: keep)."""
    values = {**(QUICK if quick else {}), **{k: v for k, v in overrides.items() if v is not None}}
    known = {f.name for f in dataclasses.fields(DemoSettings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown demo setting(s) {unknown}; known: {sorted(known)}")
    if isinstance(values.get("eval"), dict):
        values["eval"] = EvalSettings(**values["eval"])
    return DemoSettings(**values)


class StageBar:
    """``[2/4] train   [#######.........]  120/400 steps  1m10s``: carriage-returned on a terminal; elsewhere (a
    log file) a line at each quarter of each sub-task, so logs stay short."""

    def __init__(self, index: int, count: int, name: str, unit: str, mode: str = "auto",
                 stream: Optional[IO[str]] = None, width: int = 24):
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        self.mode, self.width, self.unit = mode, width, unit
        self.prefix = f"[{index}/{count}] {name:<8s}"
        self.started, self._dirty = time.perf_counter(), False
        self._shown: dict[tuple[str, int], int] = {}

    def update(self, done: int, total: int, note: str = "") -> None:
        if self.mode == "off" or total <= 0:
            return
        frac = min(1.0, done / total)
        quarter = int(frac * 4)
        if self.mode == "lines":
            if self._shown.get((note, total), -1) >= quarter or (quarter == 0 and done > 1):
                return
            self._shown[(note, total)] = quarter
        filled = int(round(frac * self.width))
        text = (f"{self.prefix} [{'#' * filled}{'.' * (self.width - filled)}] {done:>5d}/{total} {self.unit}"
                f"  {format_duration(time.perf_counter() - self.started)}{'  ' + note if note else ''}")
        if self.mode == "bar":
            self.stream.write("\r" + text.ljust(100))
            self._dirty = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        if self.mode == "off":
            return
        self.close()
        self.stream.write(f"{self.prefix} {text}\n")
        self.stream.flush()

    def close(self) -> None:
        if self._dirty:
            self.stream.write("\n")
            self.stream.flush()
            self._dirty = False


def find_fsdd(fsdd_path: Any = "auto") -> tuple[Optional[Path], str]:
    """The FSDD folder to evaluate on and why: ``None``/``"none"`` skips, a path must exist, ``"auto"`` looks in
    ``../shared/data/fsdd`` of the working folder and of the repository (skipped when absent)."""
    if fsdd_path is None or str(fsdd_path).lower() == "none":
        return None, "not asked for"
    if str(fsdd_path) != "auto":
        path = Path(fsdd_path).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"--fsdd {path}: no such folder (give the FSDD folder or its recordings/)")
        return path.resolve(), "given"
    roots = [Path.cwd(), Path(__file__).resolve().parents[2]]
    for root in roots:
        for rel in FSDD_CANDIDATES:
            path = (root / rel).resolve()
            if (path / "recordings").is_dir() or any(path.glob("*_*_*.wav")):
                return path, "found"
    return None, f"not found (looked for {', '.join(str((r / c).resolve()) for r in roots for c in FSDD_CANDIDATES)})"


def machine_info(threads: int) -> dict[str, Any]:
    """Where the numbers were measured."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "torch_threads": threads, "python": platform.python_version(),
            "torch": torch.__version__, "load_average": [round(x, 2) for x in load] if load else None}


def _prepare_out(out: Path) -> None:
    """Make ``out``; refuse a non-empty folder that is not a demo output (never delete someone's files)."""
    if out.exists() and any(out.iterdir()) and not (out / "results.json").is_file() and not (out / "run").is_dir() \
            and not (out / "data").is_dir():
        raise FileExistsError(f"{out} holds other files; choose an empty or new folder for the demo")
    out.mkdir(parents=True, exist_ok=True)


def _train_config(settings: DemoSettings, spec: Path, run_dir: Path, seed: int, progress: str):
    from mmv.train import apply_overrides, train_preset

    protocol = {"num_frames": settings.num_frames, "fps": float(settings.clip_fps), "crop_size": settings.crop,
                "eval_crop_size": settings.crop, "resize_short_side": int(round(settings.crop * 9 / 8))}
    return apply_overrides(train_preset(settings.preset), {
        "data": str(spec), "protocol_overrides": protocol, "out_dir": str(run_dir), "seed": seed,
        "steps": settings.steps, "batch_size": settings.batch_size, "lr": settings.lr,
        "warmup_steps": int(round(settings.warmup_fraction * settings.steps)),
        "color_augment": settings.color_augment, "num_workers": settings.num_workers, "threads": settings.threads,
        "checkpoint_every": settings.steps, "keep_checkpoints": 1, "log_every": max(1, settings.steps // 50),
        "progress": progress})


def untrained_like(config, trained) -> tuple[Any, dict[str, Any]]:
    """The network of step 0 of ``config``'s run (see the module docstring) and the evidence that it is."""
    from mmv.data.text import Vocabulary
    from mmv.train.step import initial_model, protocol_for

    table = trained.text.embed.weight.detach().clone()  # frozen: the run's GloVe table, as loaded
    model, untouched = initial_model(config, protocol_for(config), Vocabulary(list(trained.vocab)), table)
    ours, theirs = model.state_dict(), trained.state_dict()
    names = [n for n in ours if any(n.startswith(m + ".") for m in untouched)]
    equal = all(torch.equal(ours[n], theirs[n]) for n in names)
    model.check_inputs = True
    model.eval()
    return model, {"untrained_equals_run_init": bool(equal and names), "compared_tensors": names,
                   "how": "parameters no loss reads keep their initial values through training"}


def _summary_rows(metrics: dict[str, dict[str, Any]], num_test: int) -> list[tuple[str, str, float]]:
    """(label, metric path, chance) of the printed table."""
    rows = [("text->video R@1 (10 digit prompts)", "t2v/R@1", 0.1),
            ("zero-shot digit top-1 (test videos)", "t2v/zero_shot_top1", 0.1),
            ("audio->video R@1, own video", "a2v/same_video/R@1", 1.0 / max(1, num_test)),
            ("audio->video R@1, same digit", "a2v/same_digit/R@1", 0.1),
            ("video probe top-1 (video_repr)", "probe/video_top1", 0.1),
            ("audio probe top-1 (audio_repr)", "probe/audio_top1", 0.1)]
    if "fsdd" in metrics.get("trained", {}):
        split = metrics["trained"]["fsdd"]["held_out_speaker"]["split"].partition(":")[2]
        rows += [("FSDD probe top-1, official split", "fsdd/official/top1", 0.1),
                 (f"FSDD probe top-1, held-out speaker {split}", "fsdd/held_out_speaker/top1", 0.1)]
    return rows


def _get(tree: dict[str, Any], path: str) -> Any:
    for key in path.split("/"):
        tree = tree[key]
    return tree


def summary_table(metrics: dict[str, dict[str, Any]], num_test: int) -> tuple[str, dict[str, dict[str, float]]]:
    """The printed table and its numbers."""
    lines = [f"{'':42s} {'untrained':>10s} {'trained':>10s} {'chance':>8s}"]
    numbers = {}
    for label, path, chance in _summary_rows(metrics, num_test):
        u, t = float(_get(metrics["untrained"], path)), float(_get(metrics["trained"], path))
        numbers[label] = {"metric": path, "untrained": u, "trained": t, "chance": chance}
        lines.append(f"{label:42s} {100 * u:9.1f}% {100 * t:9.1f}% {100 * chance:7.1f}%")
    return "\n".join(lines), numbers


def run_demo(out_dir: str | os.PathLike = "mmv-demo", *, seed: int = 0, quick: bool = False,
             steps: Optional[int] = None, fsdd_path: Any = "auto", threads: Optional[int] = None,
             data_dir: Optional[str | os.PathLike] = None, progress: str = "auto",
             say: Callable[[str], None] = print, **overrides: Any) -> dict[str, Any]:
    """Run the whole demo into ``out_dir`` and return ``results`` (also written to ``results.json``).

    ``quick``: a smaller dataset and fewer steps; ``steps``, ``threads`` and ``overrides`` (``DemoSettings``
    fields: ``num_train``, ``batch_size`` ...) change single settings. ``data_dir``: where the videos are built or
    reused (default ``out_dir/data``). ``fsdd_path``: ``"auto"``, a folder, or None. ``progress``: auto, bar,
    lines or off.
    """
    from mmv.demo import evaluate as ev
    from mmv.demo.dataset import build_digit_dataset
    from mmv.demo.report import write_report
    from mmv.eval.results import write_result
    from mmv.train import train
    from mmv.weights import load_model, save_model

    t_start = time.perf_counter()
    settings = demo_settings(quick, steps=steps, threads=threads, **overrides)
    out = Path(out_dir)
    _prepare_out(out)
    fsdd, fsdd_why = find_fsdd(fsdd_path)
    machine = machine_info(settings.threads)
    timings: dict[str, float] = {}
    n_stages = 4
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        # 1. data
        t0 = time.perf_counter()
        bar = StageBar(1, n_stages, "data", "videos", progress)
        info = build_digit_dataset(Path(data_dir) if data_dir else out / "data", num_train=settings.num_train,
                                   num_test=settings.num_test, seconds=settings.seconds, fps=settings.fps,
                                   size=settings.size, seed=seed, workers=settings.build_workers,
                                   progress=bar.update)
        bar.message(f"{'reused' if info.reused else 'built'} {info.num_train} train + {info.num_test} test videos "
                    f"in {info.root}")
        timings["data_s"] = time.perf_counter() - t0

        # 2. train (labels are not in the spec: the trainer sees videos, sound and narrations only)
        t0 = time.perf_counter()
        spec = out / "train_data.json"
        spec.write_text(json.dumps({"sources": [{"type": "howto100m", "videos": str(info.videos("train").resolve()),
                                                 "captions": str(info.captions("train").resolve())}]}, indent=1))
        run_dir = out / "run"
        if run_dir.exists():
            shutil.rmtree(run_dir)  # a previous demo's run: metrics.jsonl would otherwise be appended to
        config = _train_config(settings, spec, run_dir, seed, progress)
        StageBar(2, n_stages, "train", "steps", progress).message(
            f"{settings.preset}, {settings.steps} steps of {settings.batch_size} clips, {settings.num_workers} "
            f"loader workers, {settings.threads} torch thread(s)")
        result = train(config)
        if not result.ok or result.weights_dir is None:
            raise RuntimeError(f"training did not finish: {result.message}")
        timings["train_s"] = time.perf_counter() - t0

        # 3. evaluate
        t0 = time.perf_counter()
        trained = load_model(result.weights_dir)  # the trainer has restored settings.threads
        untrained, init_check = untrained_like(config, trained)
        if not init_check["untrained_equals_run_init"]:
            raise RuntimeError("the rebuilt untrained network differs from the run's initial one "
                               f"({init_check['compared_tensors']})")
        save_model(untrained, out / "untrained_model", extra={"demo": "the network of step 0 of run/"})
        models = {"untrained": untrained, "trained": trained}
        bar = StageBar(3, n_stages, "evaluate", "items", progress)
        train_ex, test_ex = ev.digit_examples(info, "train"), ev.digit_examples(info, "test")
        metrics, records, shown = ev.evaluate_digits(models, train_ex, test_ex, settings.eval, seed,
                                                     progress=lambda what, d, n: bar.update(d, n, what))
        if fsdd is not None:
            fsdd_metrics, fsdd_records = ev.fsdd_probes(models, fsdd, settings.eval, seed,
                                                        progress=lambda d, n: bar.update(d, n, "FSDD recordings"))
            for name in models:
                metrics[name]["fsdd"] = fsdd_metrics[name]
            records += fsdd_records
        bar.close()
        timings["evaluate_s"] = time.perf_counter() - t0

        # 4. report
        t0 = time.perf_counter()
        bar = StageBar(4, n_stages, "report", "files", progress)
        table, numbers = summary_table(metrics, len(test_ex))
        training = _training_summary(result)
        inputs = ev.report_inputs(shown, result.history, test_ex)

        report_results = {name: _report_metrics(m) for name, m in metrics.items()}
        report_results.update({"seed": seed, "steps": settings.steps, "train_seconds": round(timings["train_s"], 1)})
        html = write_report(out, report_results, title="mmv demo: MMV learns digits it was never told",
                            summary=_report_summary(settings, info, fsdd), **inputs)
        bar.update(1, 1)
        bar.close()
        timings["report_s"] = time.perf_counter() - t0
    finally:
        torch.set_num_threads(previous_threads)
    timings["total_s"] = time.perf_counter() - t_start
    machine["load_average_end"] = machine_info(settings.threads)["load_average"]
    results = {
        "results_version": RESULTS_VERSION, "summary": numbers, "untrained": metrics["untrained"],
        "trained": metrics["trained"], "training": training, "checks": init_check,
        "definitions": ev.__doc__.split("Definitions (also written into ``results.json``):")[1].strip(),
        "settings": {"seed": seed, "quick": quick, **settings.to_dict(), "dataset": info.settings,
                     "data_dir": str(info.root.resolve()), "data_reused": info.reused,
                     "fsdd": str(fsdd) if fsdd else None, "fsdd_status": fsdd_why, "train_config": config.to_dict()},
        "timings": {k: round(v, 2) for k, v in timings.items()}, "machine": machine,
        "files": {"report": html.name, "records": "records.json", "trained_model": "run/model",
                  "untrained_model": "untrained_model", "run": "run", "data": str(info.root)},
    }
    write_result(out / "records.json", {"records": records})
    write_result(out / "results.json", results)
    say(f"\n{table}\n\ntrained {settings.steps} steps in {format_duration(timings['train_s'])}; whole demo "
        f"{format_duration(timings['total_s'])} (data {format_duration(timings['data_s'])}, evaluation "
        f"{format_duration(timings['evaluate_s'])}); {fsdd_why if fsdd is None else 'FSDD: ' + str(fsdd)}\n"
        f"report: {html}\nnumbers: {out / 'results.json'}")
    return results


def _training_summary(result) -> dict[str, Any]:
    hist = result.history
    rates = [h["clips_per_s"] for h in hist[1:]] or [h["clips_per_s"] for h in hist]
    return {"status": result.status, "steps": result.step, "first_loss": hist[0]["loss"] if hist else None,
            "final_loss": result.loss, "clips_per_s": float(np.median(rates)) if rates else None,
            "data_wait": float(np.median([h["data_wait"] for h in hist])) if hist else None,
            "skipped": result.skipped}


def _report_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The report's table: the metrics without the bookkeeping (split names, counts)."""
    out = {k: v for k, v in metrics.items() if k != "fsdd"}
    if "fsdd" in metrics:
        out["fsdd"] = {k: {"top1": v["top1"]} for k, v in metrics["fsdd"].items()}
    return out


def _report_summary(settings: DemoSettings, info, fsdd: Optional[Path]) -> str:
    return (f"A {settings.preset} network was trained for {settings.steps} steps of {settings.batch_size} clips on "
            f"{info.num_train} narrated videos of handwritten digits (frames, sound and narrations only; no label), "
            f"then compared with the same network before training on {info.num_test} test videos with unseen "
            f"images and voices" + (", and on the Free Spoken Digit Dataset's real recordings." if fsdd else "."))
