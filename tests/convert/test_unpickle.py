"""The restricted unpickler: plain data in every container the 2020 files may use; nothing else runs.

The streams are real pickles: the tests register stand-in modules under the names that Haiku, JAX and
dill used (``haiku._src.data_structures``, ``jax._src.array``, ``dill._dill``), pickle with them, and
remove them again before loading, so that loading cannot import anything.
"""

import io
import os
import pickle
import sys
import types

import numpy as np
import pytest

from mmv.convert import load_haiku_checkpoint
from mmv.convert.unpickle import RestrictedUnpickler
from mmv.errors import CheckpointError, UnsafePickleError

ARRAY = np.arange(6, dtype=np.float32).reshape(2, 3)
TREE = {"params": {"m/~/conv": {"w": ARRAY}}, "state": {"m/bn/~/mean_ema": {"average": ARRAY[0]}}}


def fake_module(name, **attrs):
    module = types.ModuleType(name)
    for key, value in attrs.items():
        value.__module__ = name
        value.__qualname__ = key
        setattr(module, key, value)
    return module


class StandIns:
    """Stand-in modules registered while pickling and removed (``forget``) before loading."""

    def __init__(self):
        self.names = []

    def register(self, *modules):
        for module in modules:
            parts = module.__name__.split(".")
            for i in range(1, len(parts)):  # pickle imports the parent packages too
                parent = ".".join(parts[:i])
                if parent not in sys.modules:
                    sys.modules[parent] = types.ModuleType(parent)
                    self.names.append(parent)
            sys.modules[module.__name__] = module
            self.names.append(module.__name__)

    def forget(self):
        for name in self.names:
            sys.modules.pop(name, None)
        self.names = []


@pytest.fixture()
def stand_ins():
    modules = StandIns()
    yield modules
    modules.forget()


def load_bytes(data: bytes):
    return RestrictedUnpickler(io.BytesIO(data)).load()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_plain_numpy_tree(tmp_path, protocol):
    path = tmp_path / "c.pkl"
    path.write_bytes(pickle.dumps(TREE, protocol=protocol))
    tree = load_haiku_checkpoint(path)
    assert np.array_equal(tree["params"]["m/~/conv"]["w"], ARRAY)
    assert tree["state"]["m/bn/~/mean_ema"]["average"].dtype == np.float32


def test_haiku_mappings_become_dicts(stand_ins):
    class FlatMapping(dict):  # Haiku >= 0.0.3: __reduce__ -> (FlatMapping, (dict,))
        def __reduce__(self):
            return type(self), (dict(self),)

    class frozendict(dict):  # noqa: N801  Haiku 0.0.1-0.0.2
        def __reduce__(self):
            return type(self), (dict(self),)

    stand_ins.register(fake_module("haiku._src.data_structures", FlatMapping=FlatMapping, frozendict=frozendict))
    wrapped = FlatMapping(params=FlatMapping({"m/~/conv": frozendict(w=ARRAY)}), state=FlatMapping())
    data = pickle.dumps(wrapped, protocol=4)
    stand_ins.forget()
    tree = load_bytes(data)
    assert type(tree) is dict and type(tree["params"]["m/~/conv"]) is dict
    assert np.array_equal(tree["params"]["m/~/conv"]["w"], ARRAY)


def test_dill_2020_numpy_stream(stand_ins):
    """dill 0.3.1-0.3.4 write NumPy's _reconstruct as _get_attr(_import_module(...), '_reconstruct')."""

    def _import_module(name):
        raise AssertionError("never called while pickling")

    def _get_attr(obj, name):
        raise AssertionError("never called while pickling")

    stand_ins.register(fake_module("dill._dill", _import_module=_import_module, _get_attr=_get_attr))

    class NumpyModule:
        def __reduce__(self):
            return _import_module, ("numpy.core._multiarray_umath",)

    class Reconstruct:  # callable, so pickle accepts it as a reduce function, and saved by its own reduce
        def __call__(self, *args):
            raise AssertionError("never called while pickling")

        def __reduce__(self):
            return _get_attr, (NumpyModule(), "_reconstruct")

    _, args, state = ARRAY.__reduce__()

    class DillArray:  # REDUCE(_reconstruct, args) then BUILD(state), as dill writes an ndarray
        def __reduce__(self):
            return Reconstruct(), args, state

    data = pickle.dumps({"params": {"m": {"w": DillArray()}}}, protocol=4)
    stand_ins.forget()
    assert b"dill._dill" in data and b"_get_attr" in data and b"numpy.core._multiarray_umath" in data
    assert b"numpy.core.multiarray" not in data
    tree = load_bytes(data)
    assert np.array_equal(tree["params"]["m"]["w"], ARRAY)


def test_resaved_jax_and_dill_arrays(stand_ins):
    def _reconstruct_array(fun, args, arr_state, aval_state):
        raise AssertionError("never called while pickling")

    def _create_array(f, args, state, npdict=None):
        raise AssertionError("never called while pickling")

    stand_ins.register(fake_module("jax._src.array", _reconstruct_array=_reconstruct_array),
                       fake_module("dill._dill", _create_array=_create_array))
    fun, args, state = ARRAY.__reduce__()

    class JaxArray:
        def __reduce__(self):
            return _reconstruct_array, (fun, args, state, {"weak_type": False})

    class DillArray:
        def __reduce__(self):
            return _create_array, (fun, args, state, None)

    data = pickle.dumps({"params": {"a": {"w": JaxArray()}, "b": {"w": DillArray()}}}, protocol=4)
    stand_ins.forget()
    tree = load_bytes(data)
    assert np.array_equal(tree["params"]["a"]["w"], ARRAY) and np.array_equal(tree["params"]["b"]["w"], ARRAY)


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_arbitrary_callables_are_refused_before_they_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"params": {"m": {"w": Exploit(marker)}}}))
    with pytest.raises(UnsafePickleError, match=r"refusing to load (posix|os|nt)\.system"):
        load_haiku_checkpoint(path)
    assert not marker.exists()


def test_dill_helpers_cannot_reach_other_modules(stand_ins):
    def _import_module(name):
        return None

    stand_ins.register(fake_module("dill._dill", _import_module=_import_module))

    class Sneaky:
        def __reduce__(self):
            return _import_module, ("os",)

    data = pickle.dumps(Sneaky())
    stand_ins.forget()
    with pytest.raises(UnsafePickleError, match="asks to import module 'os'"):
        load_bytes(data)


@pytest.mark.parametrize("payload,message", [
    (b"", "the file is empty"),
    (pickle.dumps(TREE)[:40], "truncated or corrupt"),
    (pickle.dumps([1, 2, 3]), "expected a mapping with 'params'"),
    (pickle.dumps({"params": {"m": [1, 2]}}), "not a mapping of arrays"),
    (pickle.dumps({"params": {"m": {"w": "text"}}}), "is a str, not an array"),
])
def test_malformed_checkpoints(tmp_path, payload, message):
    path = tmp_path / "c.pkl"
    path.write_bytes(payload)
    with pytest.raises(CheckpointError, match=message):
        load_haiku_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_haiku_checkpoint(tmp_path / "absent.pkl")
