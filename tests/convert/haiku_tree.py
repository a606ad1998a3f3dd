"""Write a model back into a Haiku-style tree (the inverse of the converter), for round-trip tests."""

import numpy as np

from mmv.convert.names import AS_IS, CONV1D_AS_LINEAR, CONV2D, CONV3D, COUNTER, LINEAR, VECTOR, haiku_entries


def to_haiku(tensor, layout):
    a = tensor.detach().numpy()
    if layout == CONV2D:
        return a.transpose(2, 3, 1, 0).copy()
    if layout == CONV3D:
        return a.transpose(2, 3, 4, 1, 0).copy()
    if layout == LINEAR:
        return a.T.copy()
    if layout == CONV1D_AS_LINEAR:
        return a.T[None].copy()
    if layout == VECTOR:
        return a.reshape(1, 1, -1).copy()
    if layout == COUNTER:
        return np.asarray(int(a), dtype=np.int32)
    assert layout == AS_IS
    return a.copy()


def tree_from_model(model):
    state = model.state_dict()
    tree = {"params": {}, "state": {}}
    for e in haiku_entries(model):
        tree[e.collection].setdefault(e.module, {})[e.name] = to_haiku(state[e.torch_key], e.layout)
        if e.collection == "state":  # Haiku EMAs also carry an un-debiased 'hidden' and a counter
            leaves = tree["state"][e.module]
            leaves.setdefault("hidden", np.full_like(leaves.get("average", np.zeros(1)), 7.0))
            leaves.setdefault("counter", np.asarray(3, dtype=np.int32))
    for leaves in tree["state"].values():
        leaves.setdefault("hidden", np.full_like(leaves["average"], 7.0))
    return tree
