"""Model-to-model conversion: the official Haiku checkpoints into PyTorch weights folders."""

from mmv.convert.haiku import convert_checkpoint, infer_config, load_haiku_model, model_from_tree
from mmv.convert.unpickle import RestrictedUnpickler, load_haiku_checkpoint

__all__ = ["convert_checkpoint", "infer_config", "load_haiku_model", "model_from_tree",
           "load_haiku_checkpoint", "RestrictedUnpickler"]
