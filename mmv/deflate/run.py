"""``mmv deflate``: a weights folder and a set of images in, a tuned image network and a report out."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import torch
from torch.utils.data import DataLoader

from mmv.deflate.images import ImageFiles, collate_images, list_images
from mmv.deflate.network import deflate_model, save_image_network
from mmv.deflate.tune import tune_deflated
from mmv.weights import load_model

REPORT_FILE = "deflation.json"


def _split(n: int, holdout: float | int) -> int:
    """Number of held-out images: a count, or a fraction of ``n`` (at least 1, leaving at least 1)."""
    k = int(holdout) if isinstance(holdout, int) else int(round(n * float(holdout)))
    if n < 2:
        raise ValueError(f"need at least 2 images (training and held-out), found {n}")
    return min(max(k, 1), n - 1)


def run_deflation(weights_dir: str | os.PathLike, images_source: str | os.PathLike, out_dir: str | os.PathLike,
                  steps: int = 1000, lr: float = 1e-3, *, output: str = "video_repr", batch_size: int = 16,
                  holdout: float | int = 0.1, max_images: Optional[int] = None, num_frames: Optional[int] = None,
                  image_size: Optional[int] = None, tsm_shift: str = "fold", num_workers: int = 0,
                  device: str = "cpu", seed: int = 0,
                  progress: Optional[Callable[[int, float], None]] = None) -> dict[str, Any]:
    """Deflate the video backbone of the model in ``weights_dir``, tune its BN affine parameters on images,
    save the image network to ``out_dir`` and return the report (also written to ``out_dir/deflation.json``).

    Images (a folder, searched recursively, or a zip of JPEG/PNG) are shuffled with ``seed``; ``holdout``
    (a fraction or a count) of them only measure the gap. Training images get random crops and flips,
    held-out ones a centre crop, both at ``image_size`` (default: the protocol's ``eval_crop_size``).
    ``num_frames``: frames of the static video (default: the protocol's). Report keys: ``before``/``after``
    (mean and relative L1 on the held-out images), ``settings``, ``images``, ``seconds``.
    """
    started = time.time()
    model = load_model(weights_dir, device=device)
    entries = list_images(images_source)
    if not entries:
        raise ValueError(f"{images_source}: no images (jpg, png, ...) found")
    order = torch.randperm(len(entries), generator=torch.Generator().manual_seed(seed)).tolist()
    entries = [entries[i] for i in order]
    if max_images is not None:
        entries = entries[:max_images]
    n_held = _split(len(entries), holdout)
    held, train = entries[:n_held], entries[n_held:]
    protocol = model.protocol

    loader_rng = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(ImageFiles(train, protocol, image_size, train=True), batch_size=batch_size,
                              shuffle=True, drop_last=len(train) >= batch_size, num_workers=num_workers,
                              generator=loader_rng, collate_fn=collate_images)
    held_loader = DataLoader(ImageFiles(held, protocol, image_size), batch_size=batch_size,
                             num_workers=num_workers, collate_fn=collate_images)

    torch.manual_seed(seed)
    net = deflate_model(model, tsm_shift=tsm_shift)
    naive = {"tsm_shift": tsm_shift} if model.config.video.arch == "tsm_resnet" else {}
    net, result = tune_deflated(net, model, train_loader, held_loader, steps=steps, lr=lr, output=output,
                                num_frames=num_frames, device=device, progress=progress)
    report = {
        "weights": str(weights_dir),
        "preset": model.preset,
        "video_arch": model.config.video.arch,
        "images": {"source": str(images_source), "train": len(train), "heldout": len(held)},
        "settings": {"steps": steps, "lr": lr, "output": output, "batch_size": batch_size,
                     "num_frames": result.num_frames, "image_size": image_size or protocol.eval_crop_size,
                     "optimizer": result.optimizer, "schedule": result.schedule, "bn_mode": result.bn_mode,
                     "seed": seed, "device": device, **naive},
        "before": vars(result.before),
        "after": vars(result.after),
        "losses": result.to_dict()["losses"],
        "trained_parameter_count": len(result.trained_parameters),
        "skipped": result.skipped,
    }
    report["seconds"] = round(time.time() - started, 3)
    out = save_image_network(net.to("cpu"), out_dir, extra={"deflation": report})
    (Path(out) / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report
