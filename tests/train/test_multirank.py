"""Two ranks on gloo give what one process holding the whole batch gives: losses, gradients, BN statistics.

One module-scoped spawn runs every two-rank job (the imports dominate the cost); each test compares
one job's per-rank results with a single-process reference computed here.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mmv.losses import DIRECTIONS, MMVLoss, modules_unused_by_loss
from mmv.models import InputProtocol, create_model
from mmv.train.sync_bn import CrossReplicaBatchNorm, convert_sync_batchnorm, revert_sync_batchnorm

WORLD = 2
TIMEOUT_S = 180
LOSS_SPLIT = (0, 3, 5)  # rank 0 holds clips 0-2, rank 1 clips 3-4: unequal shares
MODEL_SPLIT = (0, 2, 4)
PROTOCOL = InputProtocol(num_frames=4, fps=4.0, resize_short_side=40, crop_size=32, eval_crop_size=32)
EMBEDDINGS = ("video_va", "audio_va", "video_vat", "text_vat")
DDP_MODES = ("find_unused", "frozen")


def _make_data() -> dict:
    g = torch.Generator().manual_seed(0)
    b, k = LOSS_SPLIT[-1], 3
    emb = {"video_va": torch.randn(b, 6, generator=g, dtype=torch.float64),
           "audio_va": torch.randn(b, 6, generator=g, dtype=torch.float64),
           "video_vat": torch.randn(b, 4, generator=g, dtype=torch.float64),
           "text_vat": torch.randn(b, k, 4, generator=g, dtype=torch.float64),
           "audio_mask": torch.tensor([True, True, False, True, True]),
           "text_mask": torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0], [0, 0, 0]]).bool()}
    bn = {"x64": torch.randn(4, 3, 2, 5, 5, generator=g, dtype=torch.float64) * 2 + 1,
          "g64": torch.randn(4, 3, 2, 5, 5, generator=g, dtype=torch.float64),
          "x32": (1000 + torch.randn(4, 3, 6, 6, generator=g, dtype=torch.float64)).float()}
    torch.manual_seed(0)
    model = create_model("mmv_tiny_tsm", protocol=PROTOCOL).double()
    n = MODEL_SPLIT[-1]
    batch = {"video": torch.rand(n, 3, 4, 32, 32, generator=g, dtype=torch.float64),
             "audio": torch.randn(n, 1, 16, 80, generator=g, dtype=torch.float64),
             "text": torch.randint(0, 10000, (n, 3, 16), generator=g),
             "audio_mask": torch.tensor([True, True, True, False]),
             "text_mask": torch.tensor([[1, 1, 0], [0, 0, 0], [1, 0, 0], [1, 1, 1]]).bool()}
    return {"emb": emb, "bn": bn, "state": model.state_dict(), "batch": batch}


def _rows(data: dict, lo: int, hi: int) -> dict:
    return {key: value[lo:hi] for key, value in data.items()}


def _loss_job(emb: dict, lo: int, hi: int, directions: str, dtype: torch.dtype) -> dict:
    part = _rows(emb, lo, hi)
    outputs = {key: part[key].to(dtype).requires_grad_() for key in EMBEDDINGS}
    losses = MMVLoss(lambda_va=0.5, lambda_vt=2.0, directions=directions)(outputs, part)
    losses["loss"].backward()
    return {"values": {key: value.detach() for key, value in losses.items()},
            "grads": {key: outputs[key].grad for key in EMBEDDINGS}}


def _bn_job(bn: dict, lo: int, hi: int) -> dict:
    torch.manual_seed(0)
    layer = convert_sync_batchnorm(nn.BatchNorm3d(3).double())
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
        layer.bias.uniform_(-0.5, 0.5)
    x = bn["x64"][lo:hi].clone().requires_grad_()
    for step in range(2):  # two steps: the running statistics accumulate
        y = layer(x * (step + 1))
    (y * bn["g64"][lo:hi]).sum().backward()
    layer.eval()
    result = {"y": y.detach(), "x_grad": x.grad, "w_grad": layer.weight.grad, "b_grad": layer.bias.grad,
              "state": {k: v.clone() for k, v in layer.state_dict().items()},
              "eval": layer(bn["x64"][lo:hi]).detach()}
    wide = CrossReplicaBatchNorm(3, momentum=None).train()  # float32, |mean| / std = 1000
    result["y32"] = wide(bn["x32"][lo:hi]).detach()
    result["state32"] = {k: v.clone() for k, v in wide.state_dict().items()}
    return result


def _model_job(data: dict, lo: int, hi: int, mode: str) -> dict:
    model = create_model("mmv_tiny_tsm", protocol=PROTOCOL).double()
    model.load_state_dict(data["state"])
    model = convert_sync_batchnorm(model.train())
    if mode == "frozen":
        for name in modules_unused_by_loss(model):
            model.get_submodule(name).requires_grad_(False)
    # Cross-replica BN keeps the running statistics equal on every rank: no buffer broadcast needed.
    no_sync = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(
        DistributedDataParallel).parameters else "broadcast_buffers"  # renamed in recent torch
    ddp = DistributedDataParallel(model, find_unused_parameters=mode == "find_unused", **{no_sync: False})
    part = _rows(data["batch"], lo, hi)
    result = {}
    for _ in range(2):  # a second step: DDP complains then if the first left a bucket unreduced
        model.zero_grad(set_to_none=True)
        losses = MMVLoss()(ddp(video=part["video"], audio=part["audio"], text=part["text"]), part)
        losses["loss"].backward()
        result = result or {"values": {key: value.detach() for key, value in losses.items()},
                            "grads": {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
                            "state": {k: v.clone() for k, v in model.state_dict().items()}}
    return result


def _mismatch_job(emb: dict, rank: int) -> str:
    outputs = {key: emb[key][:2] for key in (EMBEDDINGS if rank == 0 else EMBEDDINGS[:2])}
    try:
        MMVLoss()(outputs, {})
    except ValueError as err:
        return str(err)
    return "no error"


def _worker(rank: int, init_file: str, data_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        data = torch.load(data_file)
        results: dict = {}
        lo, hi = LOSS_SPLIT[rank], LOSS_SPLIT[rank + 1]
        for directions in DIRECTIONS:
            for dtype in (torch.float64, torch.float32):
                results[("loss", directions, dtype)] = _loss_job(data["emb"], lo, hi, directions, dtype)
        results["bn"] = _bn_job(data["bn"], 3 * rank, 3 + rank)  # 3 clips and 1 clip
        for mode in DDP_MODES:
            results[("model", mode)] = _model_job(data, MODEL_SPLIT[rank], MODEL_SPLIT[rank + 1], mode)
        results["mismatch"] = _mismatch_job(data["emb"], rank)
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """(data, [results of rank 0, results of rank 1]) from one two-rank run."""
    tmp = tmp_path_factory.mktemp("multirank")
    data = _make_data()
    torch.save(data, tmp / "data.pt")
    start = time.monotonic()
    ctx = mp.start_processes(_worker, args=(str(tmp / "init"), str(tmp / "data.pt"), str(tmp)), nprocs=WORLD,
                             join=False, start_method="spawn")
    while not ctx.join(timeout=1):
        if time.monotonic() - start > TIMEOUT_S:
            for process in ctx.processes:
                process.kill()
            pytest.fail(f"the two ranks did not finish in {TIMEOUT_S} s (a collective mismatch?)")
    return data, [torch.load(tmp / f"rank{r}.pt") for r in range(WORLD)]


def _close(got: torch.Tensor, want: torch.Tensor, tol: float, what: str, scale: float = 0.0) -> float:
    """Max error relative to max(|want|, scale) (a bias followed by BN has a gradient of rounding noise)."""
    err = (got.double() - want.double()).abs().max().item() / max(want.double().abs().max().item(), scale, 1e-30)
    assert err <= tol, f"{what}: relative error {err:.3g} > {tol:g}"
    return err


@pytest.mark.parametrize("directions", DIRECTIONS)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
def test_loss_and_embedding_gradients_match_one_rank_with_the_whole_batch(ranks, directions, dtype, tol):
    data, results = ranks
    ref = _loss_job(data["emb"], 0, LOSS_SPLIT[-1], directions, dtype)
    for r in range(WORLD):
        got = results[r][("loss", directions, dtype)]["values"]
        assert set(got) == set(ref["values"])
        for key, value in ref["values"].items():
            _close(got[key], value, tol, f"rank {r} {key}")
    assert int(ref["values"]["va_anchors"]) == 4 and int(ref["values"]["vt_anchors"]) == 3
    for key in EMBEDDINGS:
        # Each rank's gradient is R x its share: DDP's averaging divides by R.
        rank_grads = torch.cat([results[r][("loss", directions, dtype)]["grads"][key] for r in range(WORLD)])
        _close(rank_grads / WORLD, ref["grads"][key], tol, f"grad {key}")
    masked_audio = ~data["emb"]["audio_mask"]
    assert ref["grads"]["audio_va"][masked_audio].abs().max() == 0


def test_ranks_that_bring_different_terms_both_raise(ranks):
    _, results = ranks
    for r in range(WORLD):
        assert "ranks disagree on the loss inputs" in results[r]["mismatch"]


def test_cross_replica_bn_matches_one_process(ranks):
    data, results = ranks
    bn = data["bn"]
    ref = _bn_job(bn, 0, 4)  # no process group here: plain batch norm over the whole batch
    _close(torch.cat([results[0]["bn"]["y"], results[1]["bn"]["y"]]), ref["y"], 1e-13, "output")
    _close(torch.cat([results[0]["bn"]["x_grad"], results[1]["bn"]["x_grad"]]), ref["x_grad"], 1e-12, "x grad")
    for key in ("w_grad", "b_grad"):  # parameters are replicated: their gradient is the sum over ranks
        _close(results[0]["bn"][key] + results[1]["bn"][key], ref[key], 1e-12, key)
    for r in range(WORLD):
        for key, value in ref["state"].items():
            _close(results[r]["bn"]["state"][key], value, 1e-13, f"rank {r} {key}")
        assert int(results[r]["bn"]["state"]["num_batches_tracked"]) == 2
    _close(torch.cat([results[0]["bn"]["eval"], results[1]["bn"]["eval"]]), ref["eval"], 1e-13, "eval output")


def test_cross_replica_bn_is_stable_when_the_mean_dwarfs_the_spread(ranks):
    data, results = ranks
    x = data["bn"]["x32"].double()
    want = nn.BatchNorm2d(3, momentum=None).double().train()
    expected = want(x)
    got = torch.cat([results[0]["bn"]["y32"], results[1]["bn"]["y32"]])
    _close(got, expected, 1e-4, "float32 output, mean 1000 std 1")
    for key in ("running_mean", "running_var"):
        _close(results[0]["bn"]["state32"][key], want.state_dict()[key], 5e-7, key)
    # The one-pass E[x^2] - E[x]^2 in float32 is visibly off here; the combined two-pass form is not.
    x32 = data["bn"]["x32"]
    naive = (x32 ** 2).mean((0, 2, 3)) - x32.mean((0, 2, 3)) ** 2
    true = x.var((0, 2, 3), unbiased=False)
    assert ((naive.double() - true).abs() / true).max() > 1e-2


@pytest.fixture(scope="module")
def one_process_step(ranks):
    """The plain model (no conversion, no DDP) on the whole batch: losses, model (with grads)."""
    data, _ = ranks
    torch.manual_seed(0)
    model = create_model("mmv_tiny_tsm", protocol=PROTOCOL).double()
    model.load_state_dict(data["state"])
    batch = data["batch"]
    losses = MMVLoss()(model.train()(video=batch["video"], audio=batch["audio"], text=batch["text"]), batch)
    losses["loss"].backward()
    return losses, model


@pytest.mark.parametrize("mode", DDP_MODES)
def test_ddp_model_step_matches_one_process(ranks, one_process_step, mode):
    _, results = ranks
    losses, model = one_process_step
    assert int(losses["va_anchors"]) == 3 and int(losses["vt_anchors"]) == 3
    unused = {n for n, p in model.named_parameters() if p.requires_grad and p.grad is None}
    assert unused == {f"{m}.proj.{w}" for m in modules_unused_by_loss(model) for w in ("weight", "bias")}
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    scale = max(g.abs().max().item() for g in grads.values())
    state = model.state_dict()
    for r in range(WORLD):
        got = results[r][("model", mode)]
        for key in ("loss", "nce_va", "mil_nce_vt", "va_anchors", "vt_anchors"):
            _close(got["values"][key], losses[key].detach(), 1e-12, f"rank {r} {key}")
        assert set(got["grads"]) == set(grads)
        for name, grad in grads.items():
            _close(got["grads"][name], grad, 1e-9, f"rank {r} grad {name}", 1e-6 * scale)
        assert set(got["state"]) == set(state)
        for key, value in state.items():  # BN running statistics and counters after one step
            _close(got["state"][key], value, 1e-12, f"rank {r} {key}")


def test_without_a_process_group_cross_replica_bn_is_plain_bn():
    torch.manual_seed(0)
    plain = nn.BatchNorm2d(4, momentum=0.3)
    ours = CrossReplicaBatchNorm(4, momentum=0.3)
    ours.load_state_dict(plain.state_dict())
    x = torch.randn(3, 4, 5, 5)
    torch.testing.assert_close(ours(x), plain(x), rtol=0, atol=0)
    torch.testing.assert_close(ours.state_dict(), plain.state_dict(), rtol=0, atol=0)
    ours.eval(), plain.eval()
    torch.testing.assert_close(ours(x), plain(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="at least 2D"):
        ours(torch.randn(4))
    with pytest.raises(ValueError, match="expected 4 channels"):
        ours(torch.randn(2, 3, 5))


def test_convert_and_revert_keep_parameters_and_state_dict(tmp_path):
    from mmv.weights import load_model, save_model

    torch.manual_seed(0)
    model = create_model("mmv_tiny_tsm", protocol=PROTOCOL)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = dict(model.named_parameters())
    classes = {n: type(m) for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    assert convert_sync_batchnorm(model, prefer_native=True) is model
    # On the CPU even prefer_native gives ours: nn.SyncBatchNorm refuses CPU tensors.
    assert all(type(model.get_submodule(n)) is CrossReplicaBatchNorm for n in classes)
    assert dict(model.named_parameters()) == params  # the same Parameter objects: optimisers keep working
    torch.testing.assert_close(model.state_dict(), before, rtol=0, atol=0)
    save_model(model, tmp_path / "w")
    torch.testing.assert_close(load_model(tmp_path / "w").state_dict(), before, rtol=0, atol=0)
    revert_sync_batchnorm(model)
    assert {n: type(model.get_submodule(n)) for n in classes} == classes
    torch.testing.assert_close(model.state_dict(), before, rtol=0, atol=0)
    bare = revert_sync_batchnorm(CrossReplicaBatchNorm(2))
    assert isinstance(bare, nn.modules.batchnorm._BatchNorm) and not isinstance(bare, CrossReplicaBatchNorm)
    assert bare(torch.randn(3, 2, 4, 4, 4)).shape == (3, 2, 4, 4, 4)
    assert isinstance(convert_sync_batchnorm(nn.BatchNorm1d(3), prefer_native=False), CrossReplicaBatchNorm)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_prefer_native_picks_sync_batchnorm_on_cuda():
    converted = convert_sync_batchnorm(nn.Sequential(nn.BatchNorm2d(3)).cuda())
    assert isinstance(converted[0], nn.SyncBatchNorm)
    assert isinstance(convert_sync_batchnorm(nn.BatchNorm2d(3).cuda(), prefer_native=False), CrossReplicaBatchNorm)
