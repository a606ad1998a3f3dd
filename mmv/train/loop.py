"""``train(config)``: data, model and losses joined; DDP, checkpoints, resume, preemption, feedback.

One step: the data loader's next global batch (this rank's slice) -> the model (bf16 autocast on CUDA
by default) -> ``MMVLoss`` in float32 (negatives gathered over ranks) -> backward (DDP averages the
gradients; SyncBatchNorm shares the statistics) -> gradient norm (clipped if asked) -> one small
all-reduce that carries the loss, the norm, the skipped-sample count and the stop requests of every
rank -> the optimizer step, unless the loss or the norm is not finite. Every decision to stop is
taken from that all-reduce, so all ranks stop at the same step.

The run folder holds ``config.json`` (the resolved configuration), ``metrics.jsonl``, ``checkpoints/``,
``skipped.jsonl`` (files that could not be decoded) and, at the end, ``model/`` (the weights in the
format ``mmv.load_model`` reads).
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from mmv.data.clips import ClipBuilder
from mmv.data.text import Tokenizer, Vocabulary
from mmv.data.transforms import TrainTransform
from mmv.errors import CheckpointError
from mmv.train.checkpoint import (
    CHECKPOINT_DIR,
    find_resume_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from mmv.train.config import TrainConfig, save_config
from mmv.train.data import DataPosition, TrainingData, load_sources
from mmv.train.distributed import (
    DistContext,
    all_gather_objects,
    all_reduce_sum,
    broadcast_object,
    cleanup,
    init_distributed,
)
from mmv.train.logging import MetricsLog, ProgressBar
from mmv.train.rng import capture_rng, restore_rng
from mmv.train.schedule import WarmupCosine
from mmv.train.step import (
    StepRunner,
    initial_model,
    make_optimizer,
    protocol_for,
    resolve_precision,
    to_channels_last,
)
from mmv.train.words import caption_texts, word_setup

WEIGHTS_DIR = "model"
SKIPPED_FILE = "skipped.jsonl"
SIGNAL_ENV = "MMV_TRAIN_SIGNAL_AT_STEP"  # test hook, "STEP[:KILL|TERM]": signal this process after that step
NONFINITE_EXIT = 3
# Settings that a resumed run must share with the run it continues (others, like steps or out_dir, may change).
_RESUME_FIXED = ("model", "model_overrides", "protocol_overrides", "batch_size", "seed", "num_candidates",
                 "epoch_samples")
# Settings whose change is allowed but reported (moved data; the vocabulary comes from the checkpoint).
_RESUME_NOTED = ("data", "word_vectors", "vocab_size", "vocab_from_captions")


@dataclass
class TrainResult:
    """How a run ended: ``done``, ``preempted`` (SIGTERM: checkpointed) or ``nonfinite`` (stopped)."""

    status: str
    step: int
    run_dir: Path
    weights_dir: Optional[Path] = None
    checkpoint: Optional[Path] = None
    loss: Optional[float] = None
    skipped: int = 0
    message: str = ""
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("done", "preempted")

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else NONFINITE_EXIT


class _StopFlag:
    """SIGTERM (preemption) asks for a checkpoint at the next step boundary; the handler only sets a flag."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        self.requested = True

    def install(self) -> None:
        try:
            self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._handler)
        except ValueError:  # not the main thread: no handler (the caller stops us some other way)
            pass

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()


def train(config: TrainConfig, resume: Optional[str] = None) -> TrainResult:
    """Run (or, with ``resume="latest"`` or a checkpoint path, continue) the training ``config`` describes."""
    config.validate()
    ctx = init_distributed(config.device)
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        return _Run(config, ctx, resume).run()
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_deterministic)
        cleanup(ctx)


class _Run:
    def __init__(self, config: TrainConfig, ctx: DistContext, resume: Optional[str]):
        self.config, self.ctx, self.resume = config, ctx, resume
        self.run_dir = Path(config.out_dir)
        self.ckpt_dir = self.run_dir / CHECKPOINT_DIR
        self.bar = ProgressBar(config.steps, config.progress if ctx.is_main else "off", every=config.log_every)
        self.stop = _StopFlag()

    def say(self, text: str) -> None:
        if self.ctx.is_main:
            self.bar.message(text)

    def _setup(self) -> None:
        config, ctx = self.config, self.ctx
        if config.threads:
            torch.set_num_threads(config.threads)
        if config.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = not config.deterministic
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.state: Optional[dict[str, Any]] = None
        self.resumed_from: Optional[Path] = None
        if self.resume:
            # Rank 0 picks the checkpoint (and reports bad ones); the others load the same file.
            choice = None
            if ctx.is_main:
                found = find_resume_checkpoint(self.ckpt_dir, self.resume, "cpu", report=self.say)
                choice = str(found[0]) if found else None
            choice = broadcast_object(ctx, choice)
            if ctx.is_main or choice is None:
                found = (Path(choice), found[1]) if choice else None
            else:
                found = (Path(choice), load_checkpoint(choice, "cpu"))
            if found is None:
                self.say(f"no checkpoint in {self.ckpt_dir} yet: starting from scratch")
            else:
                self.resumed_from, self.state = found
                self._check_resumable(json.loads(self.state.get("config", "{}")))
                self.say(f"resuming from {self.resumed_from} (step {self.state['step']})")

        sources = load_sources(config.data)
        for report in sources.reports:
            self.say(report.summary())
        self.protocol = protocol_for(config)
        if self.state is not None:
            vocab, table = Vocabulary(list(self.state["vocab"])), None
        else:
            captions = [t for items in sources.items.values() for t in caption_texts(items)] \
                if config.vocab_from_captions else []
            vocab, table = word_setup(config.word_vectors, config.vocab_size, captions, say=self.say)
        self.vocab = vocab
        model, frozen = initial_model(config, self.protocol, vocab, table)
        if frozen and not config.find_unused_parameters:
            self.say(f"frozen (no loss reads them): {', '.join(frozen)}")
        model.to(ctx.device)
        if ctx.distributed and config.sync_bn:
            from mmv.train.sync_bn import convert_sync_batchnorm

            convert_sync_batchnorm(model)  # after .to(device): native SyncBatchNorm on CUDA
        if config.channels_last:
            to_channels_last(model)
        self.model = model
        self.precision = resolve_precision(config, ctx.device)
        from mmv.losses import MMVLoss

        loss_fn = MMVLoss(config.lambda_va, config.lambda_vt, config.temperature, config.directions)
        optimizer = make_optimizer(config, model)
        self.schedule = WarmupCosine(config.lr, config.warmup_steps, config.steps, config.final_lr_ratio)

        builder = ClipBuilder(self.protocol, Tokenizer(vocab, self.protocol.max_words), config.num_candidates)
        if not (config.color_augment and config.scale_jitter):
            builder.transform = TrainTransform(self.protocol, jitter=config.scale_jitter, color=config.color_augment)
        self.data = TrainingData(
            sources, builder, batch_size=config.batch_size, rank=ctx.rank, world_size=ctx.world_size,
            seed=config.seed, epoch_samples=config.epoch_samples, num_workers=config.num_workers,
            prefetch_factor=config.prefetch_factor, pin_memory=ctx.device.type == "cuda",
            shuffle_buffer=config.shuffle_buffer, max_retries=config.max_retries)

        self.step, self.position, self.skipped_total = 0, DataPosition(), 0
        if self.state is not None:
            self._restore(model, optimizer)
        wrapped: nn.Module = model
        if ctx.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            wrapped = DDP(model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None,
                          find_unused_parameters=config.find_unused_parameters,
                          broadcast_buffers=not config.sync_bn)
        self.runner = StepRunner(wrapped, loss_fn, optimizer, ctx.device, self.precision, config.grad_clip,
                                 config.channels_last)
        if self.state is not None and self.state.get("scaler"):
            self.runner.scaler.load_state_dict(self.state["scaler"])
        if ctx.is_main:
            save_config(config, self.run_dir / "config.json", extra={
                "world_size": ctx.world_size, "device": str(ctx.device), "precision": self.precision,
                "torch": torch.__version__, "resumed_from": str(self.resumed_from) if self.resumed_from else None,
                "vocabulary": len(vocab), "parameters": sum(p.numel() for p in model.parameters()),
                "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)})
        if self.state is not None:
            restore_rng(self.state.get("rng"), ctx.rank, ctx.device)
        self.state = None  # free the loaded tensors

    def _check_resumable(self, saved: dict[str, Any]) -> None:
        def changed(keys: tuple[str, ...]) -> str:
            return "; ".join(f"{k}: {saved[k]!r} -> {getattr(self.config, k)!r}" for k in keys
                             if k in saved and saved[k] != getattr(self.config, k)
                             and not (isinstance(saved[k], list) and tuple(saved[k]) == getattr(self.config, k)))

        fixed, noted = changed(_RESUME_FIXED), changed(_RESUME_NOTED)
        if fixed:
            raise CheckpointError(f"{self.resumed_from}: cannot resume with different settings ({fixed}); "
                                  f"start a new run in another out_dir instead")
        if noted:
            self.say(f"note: resuming with changed settings ({noted}); the vocabulary comes from the checkpoint, "
                     f"and the data order continues only if the data are the same")

    def _restore(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        state = self.state
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(f"{self.resumed_from}: does not fit this model ({err})") from None
        self.step = int(state["step"])
        self.position = DataPosition.from_dict(state["data"])
        self.skipped_total = int(state.get("metrics", {}).get("skipped", 0))
        saved_world = int(state.get("world_size", self.ctx.world_size))
        if saved_world != self.ctx.world_size:
            self.say(f"note: the checkpoint was written by {saved_world} rank(s), this run has {self.ctx.world_size}; "
                     f"the data order continues, the random states of the extra ranks do not")

    def _checkpoint(self, loss: Optional[float]) -> Optional[Path]:
        ctx = self.ctx
        rng = all_gather_objects(ctx, capture_rng(ctx.device))
        streams = all_gather_objects(ctx, self.position.streams)
        merged = DataPosition(self.position.epoch, self.position.batch,
                              {k: v for s in streams for k, v in s.items()})
        if not ctx.is_main:
            return None
        state = {
            "model": self.model.state_dict(), "optimizer": self.runner.optimizer.state_dict(),
            "scaler": self.runner.scaler.state_dict() if self.runner.scaler.is_enabled() else None,
            "schedule": self.schedule.state_dict(), "data": merged.to_dict(), "rng": rng,
            "vocab": list(self.vocab.words), "config": self.config.to_json(), "world_size": ctx.world_size,
            "metrics": {"skipped": self.skipped_total, "loss": loss},
        }
        return save_checkpoint(self.ckpt_dir, self.step, state, keep=self.config.keep_checkpoints)

    def _final_weights(self) -> Optional[Path]:
        if not self.ctx.is_main:
            return None
        from mmv.train.sync_bn import revert_sync_batchnorm
        from mmv.weights import save_model

        model = revert_sync_batchnorm(self.model)
        model.eval()
        return save_model(model, self.run_dir / WEIGHTS_DIR, vocab=self.vocab.words,
                          extra={"training": {"steps": self.step, "config": self.config.to_dict()}})

    def _record_skipped(self, skipped: list) -> None:
        if not skipped:
            return
        with open(self.run_dir / SKIPPED_FILE, "a", encoding="utf-8") as f:
            for path, reason in skipped:
                record = {"step": self.step + 1, "rank": self.ctx.rank, "path": path, "reason": reason}
                f.write(json.dumps(record) + "\n")

    def run(self) -> TrainResult:
        try:
            self.stop.install()  # from the start: a SIGTERM during set-up stops after the first step
            self._setup()
            return self._loop()
        finally:
            self.stop.uninstall()
            self.bar.close()

    def _loop(self) -> TrainResult:
        config, ctx = self.config, self.ctx
        log = MetricsLog(self.run_dir, config.tensorboard, say=self.say) if ctx.is_main else None
        found = list_checkpoints(self.ckpt_dir)
        last_ckpt = found[-1][1] if found else None
        result = TrainResult("done", self.step, self.run_dir, checkpoint=last_ckpt, skipped=self.skipped_total)
        signal_at = _signal_hook(os.environ.get(SIGNAL_ENV, ""))
        window: list[list[float]] = []
        t_window, data_time = time.perf_counter(), 0.0
        checked_unused = False
        loss_value: Optional[float] = None
        batches = self.data.batches(self.position) if self.step < config.steps else iter(())
        try:
            while self.step < config.steps:
                t0 = time.perf_counter()
                position, batch = next(batches)
                data_time += time.perf_counter() - t0
                self._record_skipped(batch["skipped"])
                lr = self.schedule(self.step + 1)
                for group in self.runner.optimizer.param_groups:
                    group["lr"] = lr
                losses, norm = self.runner.forward_backward(batch)
                if not checked_unused:
                    self._check_unused()
                    checked_unused = True
                stats = torch.stack([losses["loss"].float(), losses["nce_va"].float(), losses["mil_nce_vt"].float(),
                                     norm.float().to(losses["loss"].device)])
                flags = torch.tensor([float(self.stop.requested), float(len(batch["skipped"]))],
                                     device=stats.device)
                values = all_reduce_sum(ctx, torch.cat([stats, flags])).tolist()  # the one sync of the step
                w = float(ctx.world_size)
                loss_value, va, vt, gnorm = values[0] / w, values[1] / w, values[2] / w, values[3] / w
                stop_requested, skipped = values[4] > 0, int(values[5])
                bad_norm = not math.isfinite(gnorm) and self.precision != "fp16"  # fp16: the scaler skips it
                if not math.isfinite(loss_value) or bad_norm:
                    return self._nonfinite(result, loss_value, gnorm, log)
                self.runner.step()
                self.step += 1
                self.position = position
                self.skipped_total += skipped
                window.append([loss_value, va, vt, gnorm, skipped])
                elapsed = time.perf_counter() - t_window
                rate = len(window) * config.batch_size / max(elapsed, 1e-9)
                shown = {"loss": loss_value, "clips_per_s": rate, "lr": lr, "skipped": self.skipped_total,
                         "eta_s": (config.steps - self.step) * elapsed / len(window)}
                self.bar.update(self.step, shown)
                if self.step % config.log_every == 0 or self.step == config.steps or stop_requested:
                    record = self._record(window, lr, rate, data_time / max(elapsed, 1e-9))
                    result.history.append(record)
                    if log is not None:
                        log.write(record)
                    window, t_window, data_time = [], time.perf_counter(), 0.0
                if self.step % config.checkpoint_every == 0 or self.step == config.steps or stop_requested:
                    result.checkpoint = self._checkpoint(loss_value) or result.checkpoint
                if signal_at and self.step == signal_at[0]:
                    os.kill(os.getpid(), signal_at[1])
                if stop_requested and self.step < config.steps:
                    result.status = "preempted"
                    result.message = f"stopped by SIGTERM at step {self.step}; checkpoint {result.checkpoint}"
                    self.say(result.message)
                    break
        finally:
            if hasattr(batches, "close"):
                batches.close()
            if log is not None:
                log.close()
        result.step, result.loss, result.skipped = self.step, loss_value, self.skipped_total
        if result.status == "done":
            result.weights_dir = self._final_weights()
            result.message = f"done: {self.step} steps; weights in {result.weights_dir}"
            self.say(result.message)
        return result

    def _record(self, window: list[list[float]], lr: float, rate: float, data_fraction: float) -> dict[str, float]:
        n = len(window)
        mean = [sum(row[i] for row in window) / n for i in range(4)]
        epochs = self.position.epoch + self.position.batch / self.data.batches_per_epoch
        record = {"step": self.step, "epoch": round(epochs, 4), "loss": mean[0], "nce_va": mean[1],
                  "mil_nce_vt": mean[2], "grad_norm": mean[3], "lr": lr, "clips_per_s": rate,
                  "data_wait": data_fraction, "skipped": int(sum(row[4] for row in window)),
                  "skipped_total": self.skipped_total}
        if self.ctx.device.type == "cuda":
            record["max_memory_gb"] = torch.cuda.max_memory_allocated(self.ctx.device) / 2**30
        return record

    def _check_unused(self) -> None:
        missing = [name for name, p in self.model.named_parameters() if p.requires_grad and p.grad is None]
        if missing and not self.config.find_unused_parameters:
            text = (f"{len(missing)} trainable parameter(s) got no gradient ({', '.join(missing[:5])}"
                    f"{' ...' if len(missing) > 5 else ''}): no loss term reaches them")
            if self.ctx.distributed:
                raise RuntimeError(text + "; DDP cannot train like this: --set find_unused_parameters=true")
            self.say("warning: " + text)

    def _nonfinite(self, result: TrainResult, loss: float, gnorm: float, log: Optional[MetricsLog]) -> TrainResult:
        what = f"loss {loss}" if not math.isfinite(loss) else f"gradient norm {gnorm}"
        kept = list_checkpoints(self.ckpt_dir)
        last = kept[-1][1] if kept else None
        result.status, result.step, result.loss = "nonfinite", self.step, loss
        result.checkpoint = last
        result.message = (f"stopped: {what} at step {self.step + 1} (not applied). The last good checkpoint is "
                          f"{last or 'none (no checkpoint was written yet)'}; resume from it with a lower lr "
                          f"(--set lr=...), gradient clipping (--set grad_clip=1.0) or fp32 (--set precision=fp32).")
        if log is not None:
            log.write({"step": self.step + 1, "event": "nonfinite", "loss": loss, "grad_norm": gnorm})
        if self.ctx.is_main:
            print(f"mmv train: {result.message}", file=sys.stderr, flush=True)
        return result


def _signal_hook(value: str) -> Optional[tuple[int, int]]:
    """``"5"`` or ``"5:KILL"`` -> (5, SIGKILL); ``"5:TERM"`` -> (5, SIGTERM); empty -> None."""
    if not value:
        return None
    step, _, name = value.partition(":")
    return int(step), getattr(signal, f"SIG{name or 'KILL'}")
