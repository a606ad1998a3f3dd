"""Read the released MMV ``.pkl`` checkpoints as plain data, without JAX, Haiku or dill.

The files are ``dill`` pickles from 2020 of ``{'params': ..., 'state': ...}``: two-level mappings
``{module_path: {name: array}}``. A pickle can name any Python callable, so loading one with
``pickle.load`` can run arbitrary code. Here every global the stream asks for is looked up in an
allow-list of data constructors; anything else is refused *before* it is called.

What the stream can contain (research notes in ``docs/checkpoints.md``):

* NumPy arrays: ``numpy.core.multiarray._reconstruct`` / ``numpy._core...`` with ``numpy.ndarray`` and
  ``numpy.dtype``; dill (0.3.1-0.3.4) writes ``_reconstruct`` as
  ``dill._dill._get_attr(dill._dill._import_module('numpy.core._multiarray_umath'), '_reconstruct')``.
  JAX ``DeviceArray`` of 2020 pickles exactly like an ndarray.
* Haiku containers: ``frozendict`` (Haiku 0.0.1-0.0.2) and ``FlatMapping`` (0.0.3+), each rebuilt
  from one dict argument; mapped to ``dict``.
* Re-saved files: ``dill._dill._create_array``, ``jax._src.device_array.reconstruct_device_array``,
  ``jax._src.array._reconstruct_array``: an ndarray rebuilt by ``_reconstruct`` and ``__setstate__``.
"""

from __future__ import annotations

import collections
import io
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mmv.errors import CheckpointError, UnsafePickleError

try:  # NumPy 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - NumPy 1
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]

_RECONSTRUCT = _multiarray._reconstruct
_SCALAR = _multiarray.scalar
_NUMPY_MODULES = {"numpy.core._multiarray_umath", "numpy.core.multiarray",
                  "numpy._core._multiarray_umath", "numpy._core.multiarray"}
_NUMPY_FUNCTIONS = {"_reconstruct": _RECONSTRUCT, "scalar": _SCALAR}


class _ModuleRef:
    """Stands in for a module that dill would import: only NumPy's array module, never imported."""

    def __init__(self, name: str):
        self.name = name


def _dill_import_module(name: str, *_: Any) -> _ModuleRef:
    if name not in _NUMPY_MODULES:
        raise UnsafePickleError(f"the pickle asks to import module {name!r}; only NumPy's array "
                                f"module is allowed")
    return _ModuleRef(name)


def _dill_get_attr(obj: Any, name: str) -> Callable[..., Any]:
    if not isinstance(obj, _ModuleRef) or name not in _NUMPY_FUNCTIONS:
        raise UnsafePickleError(f"the pickle asks for attribute {name!r} of {obj!r}; only NumPy's "
                                f"_reconstruct and scalar are allowed")
    return _NUMPY_FUNCTIONS[name]


def _rebuild_array(fun: Any, args: tuple, state: Any, *_: Any) -> np.ndarray:
    """dill's ``_create_array`` and JAX's array reconstructors: ``fun(*args).__setstate__(state)``."""
    if fun is not _RECONSTRUCT:
        raise UnsafePickleError(f"array reconstructor {fun!r} is not NumPy's _reconstruct")
    array = fun(*args)
    array.__setstate__(state)
    return array


def _dill_load_type(name: str) -> type:
    if name != "MappingProxyType":
        raise UnsafePickleError(f"the pickle asks for type {name!r}; only MappingProxyType is allowed")
    return dict


def _mapping(data: Any = ()) -> dict:
    return dict(data)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    # Protocol-2 pickles write bytes as _codecs.encode(str, 'latin1').
    ("_codecs", "encode"): lambda text, encoding="utf-8": str(text).encode(str(encoding)),
    ("dill._dill", "_import_module"): _dill_import_module,
    ("dill.dill", "_import_module"): _dill_import_module,
    ("dill._dill", "_get_attr"): _dill_get_attr,
    ("dill.dill", "_get_attr"): _dill_get_attr,
    ("dill._dill", "_create_array"): _rebuild_array,
    ("dill.dill", "_create_array"): _rebuild_array,
    ("dill._dill", "_load_type"): _dill_load_type,
    ("jax._src.device_array", "reconstruct_device_array"): _rebuild_array,
    ("jax._src.array", "_reconstruct_array"): _rebuild_array,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_module, "_reconstruct")] = _RECONSTRUCT
    _ALLOWED[(_module, "scalar")] = _SCALAR
for _module in ("numpy.core.numeric", "numpy._core.numeric"):  # pickle protocol 5
    _ALLOWED[(_module, "_frombuffer")] = _numeric._frombuffer
for _name in ("FlatMapping", "FlatMap", "frozendict"):
    _ALLOWED[("haiku._src.data_structures", _name)] = _mapping
    _ALLOWED[("haiku.data_structures", _name)] = _mapping


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only dicts, lists, tuples and NumPy arrays."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load {module}.{name}: this checkpoint asks to call something that is "
                f"not plain data (dicts and arrays), which could run arbitrary code") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing persistent id {pid!r}: not plain data")


def load_haiku_checkpoint(path: str | Path) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """``{'params': {module: {name: ndarray}}, 'state': {...}}`` from a released ``.pkl``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    raw = path.read_bytes()
    if not raw:
        raise CheckpointError(f"{path}: the file is empty")
    try:
        data = RestrictedUnpickler(io.BytesIO(raw)).load()
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{path}: {err}") from None
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, IndexError, KeyError,
            AttributeError, MemoryError) as err:
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({type(err).__name__}: {err})") \
            from None
    return _validate_tree(data, path)


def _validate_tree(data: Any, path: Path) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    if not isinstance(data, Mapping) or "params" not in data:
        kind = f"keys {sorted(map(str, data))}" if isinstance(data, Mapping) else type(data).__name__
        raise CheckpointError(f"{path}: expected a mapping with 'params' and 'state', got {kind}")
    tree: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for collection in ("params", "state"):
        modules = data.get(collection, {})
        if not isinstance(modules, Mapping):
            raise CheckpointError(f"{path}: '{collection}' is a {type(modules).__name__}, not a mapping")
        tree[collection] = {}
        for module, leaves in modules.items():
            if not isinstance(leaves, Mapping):
                raise CheckpointError(f"{path}: {collection} module {module!r} is a "
                                      f"{type(leaves).__name__}, not a mapping of arrays")
            out = {}
            for name, value in leaves.items():
                if not isinstance(value, (np.ndarray, np.generic, int, float)):
                    raise CheckpointError(f"{path}: {collection} {module} :: {name} is a "
                                          f"{type(value).__name__}, not an array")
                out[str(name)] = np.asarray(value)
            tree[collection][str(module)] = out
    return tree
