"""Fine-tuning: a backbone plus a linear head (with dropout) trained end to end on a labelled set.

Training sees one random window per example and epoch (``TrainTransform``: flip, scale jitter, crop,
optional colour); testing sees ``test_windows`` linearly spaced windows per example (``EvalTransform``,
centre crop) whose logits are averaged. The paper fine-tunes on UCF101 / HMDB51 but its recipe is
UNCONFIRMED (MMV_SPEC.md E), so every knob lives in ``FinetuneRecipe`` and is recorded in the result.

Media: video windows through ``decode_clip``; audio through ``decode_audio`` + ``log_mel`` (the
protocol's front end); images through ``decode_image``, given to a video backbone as a static video and
to an image network (e.g. a deflated one) as ``[B, 3, H, W]``. A file that cannot be used is skipped,
counted and listed with its reason in the result, never silently.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import av
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mmv.data.audio import log_mel
from mmv.data.audiofile import audio_info, decode_audio
from mmv.data.clips import seeded_generator
from mmv.data.image import decode_image
from mmv.data.transforms import EvalTransform, TrainTransform
from mmv.data.video import decode_clip, eval_window_starts, probe_video, train_window_start
from mmv.errors import DataError
from mmv.eval.datasets.base import Example, read_media
from mmv.models.config import InputProtocol

MODALITIES = ("video", "audio", "image")
BN_MODES = ("train", "frozen_stats", "frozen")
_MEDIA_ERRORS = (DataError, av.error.FFmpegError, OSError, KeyError)


@dataclass
class FinetuneRecipe:
    """Every setting of a fine-tuning run (the paper's recipe is UNCONFIRMED; these are common defaults).

    optimizer: ``sgd`` (momentum, optional nesterov) | ``adam`` | ``adamw``. lr: backbone learning rate;
    head_lr: the head's (None: ``lr``). Schedule: linear warm-up from 0 over ``warmup_epochs``, then a
    half-cosine to ``final_lr_fraction * lr``, stepped per batch. weight_decay applies to conv/linear weights
    only (not BN parameters or biases). bn_mode: ``train`` (batch statistics, running stats updated),
    ``frozen_stats`` (running statistics kept, scale/offset trained), ``frozen`` (BN entirely fixed).
    precise_bn_batches > 0 (with ``bn_mode="train"``): after training, recompute the BN running statistics as
    a plain average over that many training batches (short runs leave the EMA far from the final weights'
    statistics). train_backbone=False trains the head only. Video clips: num_frames / fps / resize_short_side /
    crop_size / eval_crop_size default to the model's protocol.
    """

    epochs: int = 30
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float = 0.01
    head_lr: Optional[float] = None
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    final_lr_fraction: float = 0.0
    dropout: float = 0.5
    label_smoothing: float = 0.0
    bn_mode: str = "train"
    train_backbone: bool = True
    grad_clip: Optional[float] = None
    precise_bn_batches: int = 0
    test_windows: int = 10
    num_frames: Optional[int] = None
    fps: Optional[float] = None
    resize_short_side: Optional[int] = None
    crop_size: Optional[int] = None
    eval_crop_size: Optional[int] = None
    flip: bool = True
    scale_jitter: bool = True
    color: bool = False
    num_workers: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.optimizer not in ("sgd", "adam", "adamw"):
            raise ValueError(f"optimizer must be sgd, adam or adamw, got {self.optimizer!r}")
        if self.bn_mode not in BN_MODES:
            raise ValueError(f"bn_mode must be one of {BN_MODES}, got {self.bn_mode!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.test_windows < 1:
            raise ValueError("epochs, batch_size and test_windows must be >= 1")
        if self.precise_bn_batches and self.bn_mode != "train":
            raise ValueError("precise_bn_batches recomputes BN statistics: it needs bn_mode='train'")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError("dropout and label_smoothing must be in [0, 1)")

    def protocol(self, base: InputProtocol) -> InputProtocol:
        """``base`` with this recipe's clip settings."""
        keys = ("num_frames", "fps", "resize_short_side", "crop_size", "eval_crop_size")
        return dataclasses.replace(base, **{k: getattr(self, k) for k in keys if getattr(self, k) is not None})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class FinetuneClassifier(nn.Module):
    """``backbone`` -> dropout -> linear head (zero-initialised: every class starts equal)."""

    def __init__(self, backbone: nn.Module, dim: int, num_classes: int, dropout: float):
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(dim, num_classes)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.backbone(x)))


@dataclass
class FinetuneResult:
    recipe: dict[str, Any]
    protocol: dict[str, Any]
    modality: str
    num_classes: int
    test_top1: float
    test_top5: Optional[float]
    train_top1_last_epoch: float
    train_eval_top1: Optional[float]
    epoch_losses: list[float]
    steps: int
    num_train: int
    num_test: int
    trainable_parameters: int
    frozen_parameters: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    model: Optional[FinetuneClassifier] = None

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model"}
        d["skipped"] = [list(s) for s in self.skipped]
        return d


class _Windows(Dataset):
    """Item i: ``(i, inputs [W, ...], label, None)`` or ``(i, None, label, reason)``; W = 1 in training."""

    def __init__(self, examples: Sequence[Example], modality: str, protocol: InputProtocol, recipe: FinetuneRecipe,
                 train: bool, image_as_video: bool):
        self.examples, self.modality, self.protocol, self.train = list(examples), modality, protocol, train
        self.recipe, self.image_as_video, self.epoch = recipe, image_as_video, 0
        self.train_tf = TrainTransform(protocol, flip_p=0.5 if recipe.flip else 0.0, jitter=recipe.scale_jitter,
                                       color=recipe.color)
        self.eval_tf = EvalTransform(protocol)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int):
        ex = self.examples[i]
        try:
            return i, self._inputs(ex), ex.label, None
        except _MEDIA_ERRORS as e:
            return i, None, ex.label, e.reason if isinstance(e, DataError) else f"{type(e).__name__}: {e}"

    def _starts(self, duration: float, clip: float, g: Optional[torch.Generator]) -> list[float]:
        if self.train:
            return [train_window_start(duration, clip, g)]
        return eval_window_starts(duration, clip, self.recipe.test_windows)

    def _frames(self, frames: torch.Tensor, g: Optional[torch.Generator]) -> torch.Tensor:
        return self.train_tf(frames, g) if self.train else self.eval_tf(frames)

    def _inputs(self, ex: Example) -> torch.Tensor:
        media = read_media(ex)
        g = seeded_generator("finetune", self.recipe.seed, self.epoch, ex.id) if self.train else None
        p = self.protocol
        if self.modality == "image":
            x = self._frames(torch.from_numpy(decode_image(media))[None], g)  # [3, 1, h, w]
            x = x.expand(-1, p.num_frames, -1, -1).contiguous() if self.image_as_video else x[:, 0]
            return x[None]
        clip_seconds = p.num_frames / p.fps
        if self.modality == "audio":
            fe = p.audio
            duration = ex.end - ex.start if ex.end is not None else None
            if duration is None:  # a header without duration (0) gives one window from the start
                duration = max(0.0, audio_info(media).duration - ex.start)
            waves = [decode_audio(media, ex.start + s, clip_seconds, fe.sample_rate)
                     for s in self._starts(duration, clip_seconds, g)]
            return torch.stack([log_mel(torch.from_numpy(w), fe.sample_rate, fe)[None] for w in waves])
        info = probe_video(media)
        end = info.duration if ex.end is None else min(ex.end, info.duration)
        clips = [decode_clip(media, ex.start + s, p.num_frames, p.fps, with_audio=False, info=info).frames
                 for s in self._starts(max(0.0, end - ex.start), clip_seconds, g)]
        return torch.stack([self._frames(c, g) for c in clips])


def _collate(items):
    ok = [it for it in items if it[1] is not None]
    bad = [it for it in items if it[1] is None]
    x = torch.stack([it[1] for it in ok]) if ok else None
    y = torch.tensor([it[2] for it in ok], dtype=torch.long)
    return [it[0] for it in ok], x, y, [(it[0], it[3]) for it in bad]


def _resolve(model_or_backbone: nn.Module, modality: str) -> tuple[nn.Module, InputProtocol, bool]:
    """(backbone, protocol, whether images go in as static videos)."""
    protocol = getattr(model_or_backbone, "protocol", None)
    if hasattr(model_or_backbone, "embed_video") and hasattr(model_or_backbone, "video"):  # an MMV model
        backbone = model_or_backbone.audio if modality == "audio" else model_or_backbone.video
        return backbone, protocol, modality == "image"
    return model_or_backbone, protocol or InputProtocol(), False


def _set_bn(model: nn.Module, mode: str) -> None:
    if mode == "train":
        return
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


@torch.no_grad()
def _precise_bn(clf: FinetuneClassifier, loader: DataLoader, batches: int, device) -> int:
    """Replace the BN running statistics by their average over ``batches`` training batches; returns the count."""
    bns = [m for m in clf.backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or batches < 1:
        return 0
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    clf.backbone.train()
    done = 0
    while done < batches:
        before = done
        for _, x, _, _ in loader:
            if x is None:
                continue
            clf.backbone(x[:, 0].to(device))
            done += 1
            if done == batches:
                break
        if done == before:
            break
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
    clf.eval()
    return done


def _lr_lambda(total: int, warmup: int, final: float) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return f


def _optimizer(clf: FinetuneClassifier, recipe: FinetuneRecipe) -> torch.optim.Optimizer:
    groups = []
    head_lr = recipe.lr if recipe.head_lr is None else recipe.head_lr
    for part, lr in ((clf.backbone, recipe.lr), (clf.head, head_lr)):
        params = [(n, p) for n, p in part.named_parameters() if p.requires_grad]
        decay = [p for n, p in params if p.dim() > 1]
        rest = [p for n, p in params if p.dim() <= 1]
        groups += [{"params": decay, "lr": lr, "weight_decay": recipe.weight_decay},
                   {"params": rest, "lr": lr, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=recipe.momentum, nesterov=recipe.nesterov)
    return (torch.optim.Adam if recipe.optimizer == "adam" else torch.optim.AdamW)(groups)


@torch.no_grad()
def _evaluate(clf: FinetuneClassifier, loader: DataLoader, device, skipped: list, examples) -> tuple[float, float]:
    clf.eval()
    hit1 = hit5 = n = 0
    for _, x, y, bad in loader:
        skipped += [(examples[i].id, r) for i, r in bad]
        if x is None:
            continue
        b, w = x.shape[:2]
        logits = clf(x.flatten(0, 1).to(device)).reshape(b, w, -1).mean(dim=1).cpu()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hit1 += int((top[:, 0] == y).sum())
        hit5 += int((top == y[:, None]).any(dim=1).sum())
        n += b
    return (hit1 / n, hit5 / n) if n else (float("nan"), float("nan"))


def finetune(model_or_backbone: nn.Module, train_examples: Sequence[Example], test_examples: Sequence[Example],
             modality: str, num_classes: int, recipe: Optional[FinetuneRecipe] = None, *,
             device: str | torch.device = "cpu", evaluate_train: bool = False,
             progress: Optional[Callable[[int, int, float], None]] = None) -> FinetuneResult:
    """Fine-tune a copy of the backbone (``model_or_backbone`` itself is not changed) with a linear head.

    ``model_or_backbone``: an MMV model (its video tower for video and image examples, audio tower for
    audio) or any module mapping inputs to ``[B, D]`` (e.g. a deflated ``ImageNetwork``) with ``out_dim``.
    Examples are single-label. ``evaluate_train`` also scores the training set with the test windows.
    ``progress(epoch, step, loss)`` after every step. Returns accuracies, losses, the recipe and the model.
    """
    recipe = recipe or FinetuneRecipe()
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    if not train_examples or not test_examples:
        raise ValueError("need training and test examples")
    for ex in list(train_examples) + list(test_examples):
        if len(ex.labels) != 1 or not 0 <= ex.labels[0] < num_classes:
            raise ValueError(f"example {ex.id}: fine-tuning needs one label in [0, {num_classes}), got {ex.labels}")
    started = time.time()
    backbone, protocol, image_as_video = _resolve(model_or_backbone, modality)
    protocol = recipe.protocol(protocol)
    dim = getattr(backbone, "out_dim", None)
    if dim is None:
        raise ValueError(f"{type(backbone).__name__} has no out_dim: cannot size the linear head")
    torch.manual_seed(recipe.seed)
    clf = FinetuneClassifier(copy.deepcopy(backbone), int(dim), num_classes, recipe.dropout).to(device)
    for name, p in clf.backbone.named_parameters():
        is_bn = any(name.startswith(f"{m}.") for m, mod in clf.backbone.named_modules()
                    if isinstance(mod, nn.modules.batchnorm._BatchNorm))
        p.requires_grad_(recipe.train_backbone and not (is_bn and recipe.bn_mode == "frozen"))
    trainable = sum(p.numel() for p in clf.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in clf.parameters() if not p.requires_grad)

    train_set = _Windows(train_examples, modality, protocol, recipe, True, image_as_video)
    test_set = _Windows(test_examples, modality, protocol, recipe, False, image_as_video)
    loader_rng = torch.Generator().manual_seed(recipe.seed)
    train_loader = DataLoader(train_set, recipe.batch_size, shuffle=True, collate_fn=_collate,
                              num_workers=recipe.num_workers, generator=loader_rng)
    steps_per_epoch = math.ceil(len(train_set) / recipe.batch_size)
    total = recipe.epochs * steps_per_epoch
    optimizer = _optimizer(clf, recipe)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(total, int(round(recipe.warmup_epochs * steps_per_epoch)), recipe.final_lr_fraction))
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    skipped: list[tuple[str, str]] = []
    epoch_losses: list[float] = []
    step = 0
    correct = seen = 0
    for epoch in range(recipe.epochs):
        train_set.epoch = epoch
        clf.train()
        _set_bn(clf.backbone, recipe.bn_mode)
        total_loss, correct, seen = 0.0, 0, 0
        for _, x, y, bad in train_loader:
            skipped += [(train_set.examples[i].id, r) for i, r in bad]
            if x is None:
                continue
            x, y = x[:, 0].to(device), y.to(device)
            logits = clf(x)
            loss = criterion(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.grad_clip is not None:
                nn.utils.clip_grad_norm_([p for p in clf.parameters() if p.requires_grad], recipe.grad_clip)
            optimizer.step()
            schedule.step()
            step += 1
            total_loss += float(loss.detach()) * len(y)
            correct += int((logits.argmax(dim=1) == y).sum())
            seen += len(y)
            if progress is not None:
                progress(epoch, step, float(loss.detach()))
        epoch_losses.append(total_loss / max(seen, 1))
    if recipe.bn_mode == "train" and recipe.precise_bn_batches > 0:
        _precise_bn(clf, train_loader, recipe.precise_bn_batches, device)

    test_loader = DataLoader(test_set, max(1, recipe.batch_size // recipe.test_windows), collate_fn=_collate,
                             num_workers=recipe.num_workers)
    top1, top5 = _evaluate(clf, test_loader, device, skipped, test_set.examples)
    train_eval = None
    if evaluate_train:
        train_eval_set = _Windows(train_examples, modality, protocol, recipe, False, image_as_video)
        train_eval = _evaluate(clf, DataLoader(train_eval_set, test_loader.batch_size, collate_fn=_collate),
                               device, [], train_eval_set.examples)[0]
    return FinetuneResult(
        recipe=recipe.to_dict(), protocol=protocol.to_dict(), modality=modality, num_classes=num_classes,
        test_top1=top1, test_top5=top5 if num_classes > 5 else None,
        train_top1_last_epoch=correct / max(seen, 1), train_eval_top1=train_eval, epoch_losses=epoch_losses,
        steps=step, num_train=len(train_examples), num_test=len(test_examples), trainable_parameters=trainable,
        frozen_parameters=frozen, skipped=skipped, seconds=round(time.time() - started, 3), model=clf.eval())
