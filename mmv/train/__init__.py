"""Training: the loop that joins data, model and losses; distribution, checkpoints, logging."""

from mmv.train.checkpoint import find_resume_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from mmv.train.config import TRAIN_PRESETS, TrainConfig, apply_overrides, resolve_config, train_preset
from mmv.train.loop import TrainResult, train
from mmv.train.schedule import WarmupCosine, lr_at

__all__ = ["TrainConfig", "TRAIN_PRESETS", "train_preset", "resolve_config", "apply_overrides", "train",
           "TrainResult", "lr_at", "WarmupCosine", "save_checkpoint", "load_checkpoint", "list_checkpoints",
           "find_resume_checkpoint"]
