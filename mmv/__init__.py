"""mmv: Self-Supervised MultiModal Versatile Networks (Alayrac et al., NeurIPS 2020) in PyTorch."""

from mmv.data.audio import log_mel
from mmv.errors import CheckpointError, DataError, UnsafePickleError
from mmv.models import MMV, InputProtocol, MMVConfig, create_model, get_preset, list_models
from mmv.weights import load_model, save_model

__version__ = "0.1.0"

__all__ = ["MMV", "MMVConfig", "InputProtocol", "create_model", "get_preset", "list_models",
           "load_model", "save_model", "log_mel", "CheckpointError", "DataError", "UnsafePickleError",
           "__version__"]
