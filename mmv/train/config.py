"""What a training run does: one flat ``TrainConfig``, named presets, a JSON file and ``--set`` overrides.

Resolution order: a preset (``TRAIN_PRESETS``), then a JSON config file (which may name its own
``"preset"``), then ``key=value`` overrides, checked against the field types so that a typo or a wrong
type stops the run before it starts. The resolved configuration is written into the run folder
(``config.json``) and into every checkpoint, so a run always says how it was made.

The dataclass defaults are the paper's recipe (MMV_SPEC D): Adam, lr 0.002 with a 5k-step half-cosine
warm-up then a half-period cosine decay, global batch 4096, 1:1 loss weights (HowTo100M + AudioSet),
tau 0.07, about 500k steps (inferred), on the released S3D-G model and input protocol.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmv.atomic import atomic_write_text

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
OPTIMIZERS = ("adam", "adamw")
PROGRESS = ("auto", "bar", "lines", "off")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    """Every setting of a run. Sizes are global (over all ranks) unless the name says otherwise."""

    preset: str = "custom"
    # -- model --
    model: str = "mmv_s3d"                      # a model preset of mmv.list_models()
    model_overrides: dict[str, Any] = field(default_factory=dict)     # MMVConfig fields (graph, va_dim...)
    protocol_overrides: dict[str, Any] = field(default_factory=dict)  # InputProtocol fields (num_frames...)
    # -- data --
    data: str = ""                              # a JSON source spec or a folder (required)
    num_candidates: int = 5                     # K narrations per clip for MIL-NCE
    epoch_samples: int = 0                      # samples per epoch; 0: every item once (shards: shards.json)
    shuffle_buffer: int = 100                   # shards only: raw samples held per worker for shuffling
    color_augment: bool = True
    scale_jitter: bool = True
    max_retries: int = 20                       # other draws tried when a sample cannot be decoded
    num_workers: int = 8                        # DataLoader workers per rank
    prefetch_factor: int = 2
    # -- text --
    word_vectors: str = ""                      # "glove" (the installed 6B 50-d), or a GloVe / word2vec file
    vocab_size: int = 65534                     # most frequent words of the table kept (+ <pad>, <unk>)
    vocab_from_captions: bool = False           # also every word of the training narrations (raw sources)
    # -- optimisation --
    batch_size: int = 4096
    steps: int = 500_000
    lr: float = 0.002
    warmup_steps: int = 5000
    final_lr_ratio: float = 0.0                 # lr at the last step, as a fraction of lr
    optimizer: str = "adam"                     # adam (L2 in the gradient) or adamw (decoupled decay)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0                   # not published for MMV
    decay_norm_and_bias: bool = False           # apply weight decay to BN parameters and biases too
    grad_clip: float = 0.0                      # max global gradient norm; 0: no clipping
    # -- loss --
    lambda_va: float = 1.0
    lambda_vt: float = 1.0
    temperature: float = 0.07
    directions: str = "joint"
    # -- hardware --
    device: str = "auto"                        # auto: cuda when available
    precision: str = "auto"                     # auto: bf16 autocast on CUDA, fp32 on CPU
    channels_last: bool = False
    sync_bn: bool = True                        # cross-replica BN when there is more than one rank
    find_unused_parameters: bool = False
    seed: int = 0
    deterministic: bool = False
    threads: int = 0                            # torch threads per rank; 0: torch's default
    # -- run --
    out_dir: str = "runs/mmv"
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 10
    tensorboard: bool = False
    progress: str = "auto"                      # auto (bar on a terminal, else lines), bar, lines, off

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    def validate(self, *, require_data: bool = True) -> TrainConfig:
        """Raise ``ValueError`` naming the setting that cannot work; returns ``self``."""
        from mmv.losses import DIRECTIONS
        from mmv.models import get_preset
        from mmv.models.config import InputProtocol, MMVConfig

        try:
            get_preset(self.model)
        except KeyError as err:
            raise ValueError(f"model: {err.args[0]}") from None
        _check_subfields("model_overrides", self.model_overrides, MMVConfig)
        _check_subfields("protocol_overrides", self.protocol_overrides, InputProtocol)
        if require_data and not self.data:
            raise ValueError("data: no training data given; pass --data SPEC_OR_FOLDER (a JSON source spec or a "
                             "folder of videos, see docs/training.md)")
        if not self.word_vectors:
            raise ValueError("word_vectors: the text tower needs a frozen word table; set word_vectors to a "
                             "word2vec file (GoogleNews-vectors-negative300.bin, as the paper), a GloVe text "
                             "file, or \"glove\" for the installed GloVe 6B 50-d")
        checks = [
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.steps >= 1, "steps must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (0 <= self.warmup_steps <= self.steps, "warmup_steps must lie in [0, steps]"),
            (0 <= self.final_lr_ratio <= 1, "final_lr_ratio must lie in [0, 1]"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.grad_clip >= 0, "grad_clip must be >= 0 (0 turns clipping off)"),
            (self.num_candidates >= 1, "num_candidates must be >= 1"),
            (self.epoch_samples >= 0, "epoch_samples must be >= 0"),
            (self.num_workers >= 0, "num_workers must be >= 0"),
            (self.prefetch_factor >= 1, "prefetch_factor must be >= 1"),
            (self.max_retries >= 0, "max_retries must be >= 0"),
            (self.vocab_size >= 0, "vocab_size must be >= 0"),
            (self.vocab_size > 0 or self.vocab_from_captions, "vocab_size 0 needs vocab_from_captions"),
            (self.checkpoint_every >= 1, "checkpoint_every must be >= 1"),
            (self.keep_checkpoints >= 1, "keep_checkpoints must be >= 1"),
            (self.log_every >= 1, "log_every must be >= 1"),
            (self.temperature > 0, "temperature must be > 0"),
            (self.threads >= 0, "threads must be >= 0"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}"),
            (self.progress in PROGRESS, f"progress must be one of {PROGRESS}"),
            (self.device in DEVICES, f"device must be one of {DEVICES}"),
            (self.directions in DIRECTIONS, f"directions must be one of {DIRECTIONS}"),
            (all(0 <= b < 1 for b in self.betas), "betas must lie in [0, 1)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"{message} (got {_value_for(message, self)})")
        return self


def _value_for(message: str, config: TrainConfig) -> str:
    name = message.split()[0]
    return repr(getattr(config, name, "?"))


def _check_subfields(name: str, values: dict[str, Any], cls: type) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            raise ValueError(f"{name}.{key}: not a {cls.__name__} field{_suggest(key, known)}; known: "
                             f"{', '.join(sorted(known))}")


def _suggest(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ---------------------------------------------------------------------------------------------------
# presets

def _paper(model: str) -> Callable[[], TrainConfig]:
    # The released models: 32 frames at 10 fps, 200x200 crops, 3.2 s of 48 kHz audio, 16-word narrations
    # (the model preset's protocol), global batch 4096, word2vec 65536 x 300 (a path the user gives).
    return lambda: TrainConfig(preset=model, model=model, out_dir=f"runs/{model}")


def _tiny(model: str) -> Callable[[], TrainConfig]:
    # Trains on a CPU in minutes: the tiny towers (8 frames at 8 fps, 64x64 crops, 1 s of audio), GloVe 50-d
    # restricted to the narrations' words and the 20k most frequent words.
    return lambda: TrainConfig(
        preset=model, model=model, word_vectors="glove", vocab_size=20000, vocab_from_captions=True,
        batch_size=16, steps=2000, lr=0.002, warmup_steps=100, num_workers=2, shuffle_buffer=100,
        checkpoint_every=200, keep_checkpoints=3, log_every=10, out_dir=f"runs/{model}")


TRAIN_PRESETS: dict[str, Callable[[], TrainConfig]] = {
    "mmv_s3d": _paper("mmv_s3d"),
    "mmv_tsm_resnet50": _paper("mmv_tsm_resnet50"),
    "mmv_tsm_resnet50x2": _paper("mmv_tsm_resnet50x2"),
    "mmv_tiny_tsm": _tiny("mmv_tiny_tsm"),
    "mmv_tiny_s3d": _tiny("mmv_tiny_s3d"),
}


def train_preset(name: str) -> TrainConfig:
    """A fresh copy of a named training preset."""
    if name not in TRAIN_PRESETS:
        raise ValueError(f"unknown training preset {name!r}{_suggest(name, TRAIN_PRESETS)}; available: "
                         f"{', '.join(TRAIN_PRESETS)}")
    return TRAIN_PRESETS[name]()


# ---------------------------------------------------------------------------------------------------
# overrides

_HINTS: dict[str, Any] = {}


def _field_types() -> dict[str, Any]:
    if not _HINTS:
        _HINTS.update(typing.get_type_hints(TrainConfig))
    return _HINTS


def _coerce(key: str, hint: Any, value: Any) -> Any:
    """``value`` as the type ``hint`` of setting ``key``, or a ``ValueError`` that says what was expected."""
    origin = typing.get_origin(hint)
    bad = ValueError(f"{key}: expected {_type_name(hint)}, got {value!r}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise bad
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise bad
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if hint is str:
        if isinstance(value, (dict, list)) or value is None:
            raise bad
        return str(value)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise bad
        return tuple(_coerce(key, a, v) for a, v in zip(args, value))
    if origin is dict:
        if not isinstance(value, dict):
            raise bad
        return dict(value)
    raise bad  # pragma: no cover - every field type is handled above


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is tuple:
        return f"a list of {len(typing.get_args(hint))} numbers"
    if origin is dict:
        return "a JSON object"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(config: TrainConfig, values: dict[str, Any]) -> TrainConfig:
    """A copy of ``config`` with ``values`` set; keys may be dotted into a dict field
    (``model_overrides.graph``). Unknown keys and wrong types raise ``ValueError``."""
    hints = _field_types()
    data = config.to_dict()
    for key, value in values.items():
        name, _, sub = key.partition(".")
        if name not in hints:
            raise ValueError(f"unknown setting {name!r}{_suggest(name, hints)}; see `mmv train --help-config`")
        if sub:
            if typing.get_origin(hints[name]) is not dict:
                raise ValueError(f"{key}: {name} is not a group of settings")
            data[name] = {**data[name], sub: value}
        elif isinstance(value, str) and hints[name] is not str:
            data[name] = _coerce(key, hints[name], _parse_value(value))
        else:
            data[name] = _coerce(key, hints[name], value)
    return TrainConfig(**data)


def parse_assignments(assignments: Sequence[str]) -> dict[str, Any]:
    """``["lr=0.001", "model_overrides.graph=disjoint"]`` -> ``{"lr": "0.001", ...}`` (typed later)."""
    out: dict[str, Any] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        key = key.strip()
        name, _, sub = key.partition(".")
        out[key] = _parse_value(value) if sub else value
    return out


def load_config(path: str | Path) -> dict[str, Any]:
    """The settings of a JSON config file (a partial ``TrainConfig``, optionally with ``"preset"``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such config file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a JSON config ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file holds a JSON object of settings")
    return data


def resolve_config(preset: str | None = None, config_file: str | Path | None = None,
                   overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Preset, then config file, then overrides (see the module docstring)."""
    file_values = load_config(config_file) if config_file else {}
    name = preset or file_values.get("preset")
    config = train_preset(name) if name and name != "custom" else TrainConfig()
    where = f"{config_file}: " if config_file else ""
    try:
        # "_run" (and any "_"-key) is what save_config adds: a saved config.json is a valid config file
        config = apply_overrides(config, {k: v for k, v in file_values.items()
                                          if k != "preset" and not k.startswith("_")})
    except ValueError as err:
        raise ValueError(f"{where}{err}") from None
    if name:
        config.preset = name
    return apply_overrides(config, overrides or {})


def save_config(config: TrainConfig, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write the resolved configuration (plus ``extra``: world size, versions) as JSON, atomically."""
    payload = {**config.to_dict(), **({"_run": extra} if extra else {})}
    return atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def describe_settings() -> str:
    """One line per setting with its type and default (``mmv train --help-config``)."""
    hints = _field_types()
    default = TrainConfig()
    return "\n".join(f"{f.name:24s} {_type_name(hints[f.name]):26s} default {getattr(default, f.name)!r}"
                     for f in dataclasses.fields(TrainConfig))
