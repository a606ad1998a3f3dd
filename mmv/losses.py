"""MMV's contrastive losses (MMV_SPEC D): NCE in S_va, MIL-NCE in S_vat, negatives from the global batch.

Scores are cosine similarities over a temperature (``tau = 0.07``); the embeddings are L2-normalised
here, never inside the model. For a clip ``i`` with candidate narrations ``P(i)`` (NCE: ``K = 1``, the
paired audio), ``directions`` chooses the denominator:

* ``"joint"`` (default): one softmax over both directions, ``-log(sum_P e^s / (sum_P e^s + N_vt + N_tv))``
  with ``N_vt`` the other clips' candidates scored against video ``i`` and ``N_tv`` the other clips'
  videos scored against ``i``'s candidates. This is the paper's formula with the negatives of the
  MIL-NCE reference code, which pools ``x`` and ``x^T`` into one logsumexp.
* ``"concat"``: that reference code literally (``cat(x, x^T)``), where the positives enter the
  denominator twice; its minimum is ``log 2`` instead of 0.
* ``"mean"``: the mean of the video->text and text->video cross-entropies (CLIP style).

Masks (``mask`` [B] for NCE, ``text_mask`` [B, K] for MIL-NCE): a masked candidate is neither a positive
nor a negative. A clip with no real candidate (no audio track; no narration, as AudioSet) is removed
from that loss entirely: it is no anchor, its video is no negative for other clips' candidates, and
its own embeddings are no negatives either. So a masked row changes nothing else: the loss equals the
loss of the batch without that row, in either direction, which keeps ``joint`` and ``mean`` comparable
(VATT likewise excludes text-less clips from MIL-NCE). The loss is the mean over the anchors of the
whole global batch, and 0 (with a gradient path, never NaN) when there are none.

Distributed (``torch.distributed`` initialised, world size R > 1): every rank gathers all ranks'
embeddings *with gradients* (``all_gather_with_grad``; ranks may hold different numbers of clips) and
computes only its own anchors' rows against all gathered columns. Scaling convention: the value
returned on every rank is the global-batch loss (identical on all ranks, ready to log), and its
gradient is ``R x`` this rank's share, so that DistributedDataParallel's gradient *averaging* gives
exactly the gradient of the global-batch loss, as one process holding the whole batch would. Without
DDP, sum the ranks' gradients and divide by R.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

DIRECTIONS = ("joint", "concat", "mean")
_MAX_TERMS = 4
_DTYPE_CODES = {torch.float32: 1, torch.float64: 2}


def world_size(group: Optional[Any] = None) -> int:
    """Ranks in ``group`` when torch.distributed is initialised, else 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(group)
    return 1


class _AllGatherRows(torch.autograd.Function):
    """Concatenate every rank's rows; backward sums the gradients over ranks and keeps this rank's slice."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, sizes: list[int], rank: int, group: Optional[Any]) -> torch.Tensor:
        ctx.group = group
        ctx.lo = sum(sizes[:rank])
        ctx.hi = ctx.lo + sizes[rank]
        x = x.contiguous()
        top = max(sizes)
        if x.shape[0] < top:  # all_gather needs equal shapes: pad, then trim
            x = torch.cat([x, x.new_zeros((top - x.shape[0], *x.shape[1:]))])
        parts = [torch.empty_like(x) for _ in sizes]
        dist.all_gather(parts, x, group=group)
        return torch.cat([p[:n] for p, n in zip(parts, sizes)])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Optional[torch.Tensor], ...]:
        # all_reduce + slice instead of reduce_scatter, which gloo lacks.
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, group=ctx.group)
        return grad[ctx.lo:ctx.hi], None, None, None


def _gather_ints(values: Sequence[int], device: torch.device, group: Optional[Any]) -> torch.Tensor:
    """``[R, len(values)]``: every rank's ``values`` (same length on all ranks)."""
    mine = torch.tensor(list(values), dtype=torch.int64, device=device)
    parts = [torch.empty_like(mine) for _ in range(world_size(group))]
    dist.all_gather(parts, mine, group=group)
    return torch.stack(parts).cpu()


def all_gather_with_grad(x: torch.Tensor, group: Optional[Any] = None, equal_sizes: bool = False) -> torch.Tensor:
    """Every rank's rows of ``x`` concatenated in rank order; gradients flow back to each rank's rows.

    Each rank receives d(sum over ranks of their losses)/d(its rows). Ranks may hold different numbers
    of rows unless ``equal_sizes`` (which saves one small collective). Works on gloo and NCCL.
    """
    if world_size(group) == 1:
        return x
    sizes = [x.shape[0]] * world_size(group) if equal_sizes else \
        _gather_ints([x.shape[0]], x.device, group)[:, 0].tolist()
    return _AllGatherRows.apply(x, sizes, dist.get_rank(group), group)


def _check_pairs(x: torch.Tensor, y: torch.Tensor, mask: Optional[torch.Tensor], names: tuple[str, str],
                 mask_name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate NCE inputs; returns them in MIL-NCE form (``y`` [B, 1, D], mask [B, 1])."""
    if x.dim() != 2 or y.dim() != 2:
        raise ValueError(f"{names[0]} and {names[1]} must be [B, D]; got shapes {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    if x.shape != y.shape:
        raise ValueError(f"{names[0]} {tuple(x.shape)} and {names[1]} {tuple(y.shape)} must have the same "
                         f"batch size and dim")
    mask = _check_mask(mask, (x.shape[0],), mask_name, x.device)
    return x, y[:, None], mask[:, None]


def _check_milnce(video: torch.Tensor, text: torch.Tensor, text_mask: Optional[torch.Tensor],
                  names: tuple[str, str] = ("video", "text"), mask_name: str = "text_mask",
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if text.dim() == 2:  # one narration per clip
        if text_mask is not None and text_mask.dim() == 1:
            text_mask = text_mask[:, None]
        text = text[:, None]
    if video.dim() != 2 or text.dim() != 3:
        raise ValueError(f"{names[0]} must be [B, D] and {names[1]} [B, K, D] (or [B, D]); got shapes "
                         f"{tuple(video.shape)} and {tuple(text.shape)}")
    if video.shape[0] != text.shape[0] or video.shape[1] != text.shape[2]:
        raise ValueError(f"{names[0]} {tuple(video.shape)} and {names[1]} {tuple(text.shape)} must have the "
                         f"same batch size and dim")
    mask = _check_mask(text_mask, tuple(text.shape[:2]), mask_name, video.device)
    return video, text, mask


def _check_mask(mask: Optional[torch.Tensor], shape: tuple[int, ...], name: str,
                device: torch.device) -> torch.Tensor:
    if mask is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != shape:
        got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"{name} must have shape {list(shape)}, got {got}")
    return mask.to(device=device, dtype=torch.bool) if mask.dtype != torch.bool else mask.to(device)


def _check_options(temperature: float, directions: str) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if directions not in DIRECTIONS:
        raise ValueError(f"directions must be one of {DIRECTIONS}, got {directions!r}")


def _term_rows(v: torch.Tensor, t: torch.Tensor, m: torch.Tensor, lo: int, hi: int, temperature: float,
               directions: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of the losses of anchors ``lo..hi-1`` of the global batch, and the global anchor count.

    ``v`` [N, D] and ``t`` [N, K, D] are normalised, ``m`` [N, K] marks real candidates. Masked scores
    are filled with the dtype's lowest finite value: exp() makes them exactly 0, and a row with no
    real entry stays finite (an all -inf logsumexp would make NaN gradients).
    """
    n, k, d = t.shape
    b = hi - lo
    valid = m.any(1)  # clips with at least one real candidate: the anchors, and the only negatives
    own = torch.arange(lo, hi, device=v.device)
    low = torch.finfo(v.dtype).min
    s_vt = (v[lo:hi] @ t.reshape(n * k, d).T).view(b, n, k) / temperature  # my videos x all candidates
    s_tv = torch.einsum("ikd,jd->ikj", t[lo:hi], v) / temperature  # my candidates x all videos
    ml = m[lo:hi]
    num = s_vt[torch.arange(b, device=v.device), own].masked_fill(~ml, low).logsumexp(1)
    vt = s_vt.masked_fill(~m, low).reshape(b, n * k)  # includes the positives once
    tv_keep = ml[:, :, None] & valid[None, None, :]  # includes the positives (own video) again
    if directions == "mean":
        tv = s_tv.masked_fill(~tv_keep, low).reshape(b, k * n)
        loss = 0.5 * (vt.logsumexp(1) - num) + 0.5 * (tv.logsumexp(1) - num)
    else:
        if directions == "joint":
            tv_keep = tv_keep & (torch.arange(n, device=v.device)[None, None, :] != own[:, None, None])
        tv = s_tv.masked_fill(~tv_keep, low).reshape(b, k * n)
        loss = torch.cat([vt, tv], 1).logsumexp(1) - num
    loss = torch.where(valid[lo:hi], loss, torch.zeros_like(loss))
    return loss.sum(), valid.sum()


def _contrastive(terms: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], temperature: float,
                 directions: str, group: Optional[Any], gather: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Losses ``[len(terms)]`` (global value; gradient scaled for DDP averaging) and anchor counts.

    Each term is ``(video [B, D], candidates [B, K, D], mask [B, K])`` with the same B. All terms travel
    in one gather: a header collective first checks that every rank brings the same terms. Scores are
    computed in float32 at least, with autocast off (bf16 scores over 0.07 lose the ranking).
    """
    _check_options(temperature, directions)
    if not 1 <= len(terms) <= _MAX_TERMS:
        raise ValueError(f"between 1 and {_MAX_TERMS} loss terms, got {len(terms)}")
    device = terms[0][0].device.type
    if device in ("cpu", "cuda"):
        with torch.autocast(device, enabled=False):
            return _contrastive_fp(terms, temperature, directions, group, gather)
    return _contrastive_fp(terms, temperature, directions, group, gather)


def _contrastive_fp(terms: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], temperature: float,
                    directions: str, group: Optional[Any], gather: bool) -> tuple[torch.Tensor, torch.Tensor]:
    dtype = torch.float32
    for v, t, _ in terms:
        dtype = torch.promote_types(dtype, torch.promote_types(v.dtype, t.dtype))
    rows = terms[0][0].shape[0]
    pieces, shapes = [], []
    for v, t, m in terms:
        if v.shape[0] != rows:
            raise ValueError(f"every loss term needs the same batch size, got {rows} and {v.shape[0]}")
        k, d = t.shape[1], t.shape[2]
        pieces += [F.normalize(v.to(dtype), dim=-1), F.normalize(t.to(dtype), dim=-1).reshape(rows, k * d),
                   m.to(dtype)]
        shapes.append((k, d))
    flat = torch.cat(pieces, 1)
    ranks = world_size(group) if gather else 1
    lo, hi = 0, rows
    if ranks > 1:
        header = [rows, _DTYPE_CODES.get(dtype, 0), len(terms)]
        for i in range(_MAX_TERMS):
            header += list(shapes[i]) if i < len(shapes) else [0, 0]
        table = _gather_ints(header, flat.device, group)
        if not bool((table[:, 1:] == table[0, 1:]).all()):
            raise ValueError(
                "ranks disagree on the loss inputs ([dtype, terms, (K, D) per term] by rank: "
                f"{table[:, 1:].tolist()}); every rank must pass the same modalities with the same K and D "
                "(mark an absent modality with a False mask instead of leaving its key out)")
        sizes = table[:, 0].tolist()
        rank = dist.get_rank(group)
        lo, hi = sum(sizes[:rank]), sum(sizes[:rank + 1])
        flat = _AllGatherRows.apply(flat, sizes, rank, group)
    sums, counts = [], []
    col = 0
    for k, d in shapes:
        v, t, m = torch.split(flat[:, col:col + d + k * d + k], [d, k * d, k], 1)
        col += d + k * d + k
        total, count = _term_rows(v, t.reshape(-1, k, d), m > 0.5, lo, hi, temperature, directions)
        sums.append(total)
        counts.append(count)
    count = torch.stack(counts)
    part = torch.stack(sums) / count.clamp(min=1).to(dtype)
    if ranks == 1:
        return part, count
    value = part.detach().clone()
    dist.all_reduce(value, group=group)  # the global loss: the sum of the ranks' shares
    scaled = part * ranks
    return scaled - scaled.detach() + value, count


def nce(x: torch.Tensor, y: torch.Tensor, mask: Optional[torch.Tensor] = None, temperature: float = 0.07,
        directions: str = "joint", *, group: Optional[Any] = None, gather: bool = True) -> torch.Tensor:
    """NCE between paired rows of ``x`` and ``y`` [B, D] (video and audio in S_va).

    ``mask`` [B] bool: False where the pair is absent (a clip without audio); such rows are dropped
    (see the module docstring). ``gather=False`` keeps negatives rank-local even when distributed.
    """
    return mil_nce(*_check_pairs(x, y, mask, ("x", "y"), "mask"), temperature, directions, group=group,
                   gather=gather)


def mil_nce(video: torch.Tensor, text: torch.Tensor, text_mask: Optional[torch.Tensor] = None,
            temperature: float = 0.07, directions: str = "joint", *, group: Optional[Any] = None,
            gather: bool = True) -> torch.Tensor:
    """MIL-NCE between ``video`` [B, D] and its candidate narrations ``text`` [B, K, D] (S_vat).

    Positives: the real candidates of the clip (``text_mask`` [B, K]); negatives: the other clips'
    candidates and the other clips' videos scored against this clip's candidates (in one denominator,
    or in the second cross-entropy with ``directions="mean"``). ``text`` [B, D] means K = 1.
    """
    video, text, mask = _check_milnce(video, text, text_mask)
    loss, _ = _contrastive([(video, text, mask)], temperature, directions, group, gather)
    return loss[0]


def modules_unused_by_loss(model: nn.Module) -> list[str]:
    """Submodules of an ``MMV`` in training mode whose outputs no ``MMVLoss`` term reads.

    The release computes ``audio2txt_embd`` / ``txt2audio_embd`` (and, for ``fac_bnrelu``, the audio's
    fine BN) although no loss uses them. Freeze these (``requires_grad_(False)``) before wrapping in
    DistributedDataParallel, or pass ``find_unused_parameters=True`` to it.
    """
    config = model.config
    if config.graph == "shared":
        return []
    unused = ["heads.audio2txt_embd", "heads.txt2audio_embd"]
    if config.graph == "fac_bnrelu":
        unused.append("fine_bn.audio")
    return unused


class MMVLoss(nn.Module):
    """``lambda_va * NCE(video_va, audio_va) + lambda_vt * MIL-NCE(video_vat, text_vat)``.

    The model routes each graph's embeddings into these keys (shared: ``video_vat`` is ``video_va``;
    disjoint: ``vis_embd`` on the backbone; FAC: ``vis_embd`` on act(``video_va``)), so this loss is the
    same for every graph. ``audio_vat`` / ``audio_at`` / ``text_at`` are not used: there is no audio-text
    loss. The paper weighs 1:1 on HowTo100M+AudioSet and 10:1 (vt:va) on HowTo100M alone.

    ``forward(outputs, batch)``: ``outputs`` from ``MMV.forward``; ``batch`` supplies ``audio_mask`` [B]
    and ``text_mask`` [B, K] (all True when absent). A term whose embeddings are missing from
    ``outputs`` (the batch had no audio / no text) is skipped and reported as 0. Returns ``loss``,
    ``nce_va``, ``mil_nce_vt`` (global-batch values, see the module docstring for the gradient scaling)
    and ``va_anchors``, ``vt_anchors`` (global counts of clips that took part).
    """

    def __init__(self, lambda_va: float = 1.0, lambda_vt: float = 1.0, temperature: float = 0.07,
                 directions: str = "joint", group: Optional[Any] = None, gather: bool = True):
        super().__init__()
        _check_options(temperature, directions)
        self.lambda_va, self.lambda_vt = float(lambda_va), float(lambda_vt)
        self.temperature, self.directions = float(temperature), directions
        self.group, self.gather = group, gather

    def forward(self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        terms, names = [], []
        if "video_va" in outputs and "audio_va" in outputs:
            terms.append(_check_pairs(outputs["video_va"], outputs["audio_va"], batch.get("audio_mask"),
                                      ("video_va", "audio_va"), "audio_mask"))
            names.append("va")
        if "video_vat" in outputs and "text_vat" in outputs:
            terms.append(_check_milnce(outputs["video_vat"], outputs["text_vat"], batch.get("text_mask"),
                                       ("video_vat", "text_vat")))
            names.append("vt")
        if not terms:
            raise ValueError(f"MMVLoss needs video_va + audio_va and/or video_vat + text_vat; outputs have "
                             f"{sorted(outputs)}")
        losses, counts = _contrastive(terms, self.temperature, self.directions, self.group, self.gather)
        zero = losses.new_zeros(())
        out = {"nce_va": zero, "mil_nce_vt": zero, "va_anchors": counts.new_zeros(()),
               "vt_anchors": counts.new_zeros(())}
        total = zero
        for name, loss, count in zip(names, losses, counts):
            weight = self.lambda_va if name == "va" else self.lambda_vt
            out["nce_va" if name == "va" else "mil_nce_vt"] = loss
            out[f"{name}_anchors"] = count
            total = total + weight * loss
        out["loss"] = total
        return out

    def extra_repr(self) -> str:
        return (f"lambda_va={self.lambda_va}, lambda_vt={self.lambda_vt}, temperature={self.temperature}, "
                f"directions={self.directions!r}")
