"""Random states of a process (Python, NumPy, torch CPU and CUDA) as checkpoint-safe plain data.

Training data draws its randomness from seeded generators (``seeded_generator``), so these states
matter only for randomness elsewhere (a future dropout, user code); they are saved anyway so that a
resumed run is the uninterrupted one. The NumPy state is stored as a tensor and ints, because
``torch.load(weights_only=True)`` refuses NumPy arrays.
"""

from __future__ import annotations

import random
from typing import Any, Optional

import numpy as np
import torch


def capture_rng(device: Optional[torch.device] = None) -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
        "cuda": None,
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device).cpu()
    return state


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def restore_rng(states: Any, rank: int = 0, device: Optional[torch.device] = None) -> None:
    """Restore this rank's entry of ``states`` (a list by rank, or one state); ``None`` does nothing."""
    if not states:
        return
    state = states[rank] if isinstance(states, list) and rank < len(states) else \
        (states[0] if isinstance(states, list) else states)
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
