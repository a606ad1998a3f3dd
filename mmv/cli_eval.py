"""``mmv eval linear|retrieval|finetune|list`` and ``mmv deflate``: thin commands over ``mmv.eval.run``,
``mmv.eval.finetune`` and ``mmv.deflate``; each prints a table and writes a JSON record of every parameter."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


def _load_network(path: str, device: str) -> Any:
    """An MMV weights folder, or a deflated image network folder (``mmv deflate``'s output)."""
    config = Path(path) / "config.json"
    if config.is_file():
        try:
            is_image = json.loads(config.read_text(encoding="utf-8")).get("format") == "mmv-image"
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            is_image = False
        if is_image:
            from mmv.deflate import load_image_network

            return load_image_network(path, device=device)
    from mmv.weights import load_model

    return load_model(path, device=device)


def _splits(args: argparse.Namespace) -> list[Any]:
    from mmv.eval.datasets.registry import benchmark_info

    info = benchmark_info(args.benchmark)
    if args.all_splits:
        if not info.average_over:
            raise ValueError(f"{info.name} has no splits or folds to average over")
        return list(info.average_over)
    return [_split_value(args.split)]


def _split_value(text: Any) -> Any:
    if text is None:
        return None
    return int(text) if str(text).isdigit() else text


def _spec(args: argparse.Namespace, net: Any) -> Any:
    from mmv.eval.datasets.registry import benchmark_info
    from mmv.eval.encoders import is_mmv
    from mmv.eval.run import feature_spec

    fields = {k: v for k, v in (("num_frames", args.frames), ("fps", args.fps), ("crop", args.crop),
                                ("resize_short_side", args.crop)) if v is not None}
    info = benchmark_info(args.benchmark)
    if info.modality == "image" and not is_mmv(net):
        fields["image_input"] = "image"  # a deflated network takes the image itself
    return feature_spec(info, protocol=args.protocol, layer=args.layer, windows=args.windows, passes=args.passes,
                        **fields)


def _write(records: list[dict], out: str | None, default_name: str) -> None:
    from mmv.eval.results import format_table, write_result

    print(format_table(records))
    if len(records) > 1:
        metric = next(iter(records[0]["metrics"]))
        values = [r["metrics"][metric] for r in records if isinstance(r["metrics"].get(metric), (int, float))]
        print(f"mean {metric} over {len(values)} splits: {float(np.mean(values)):.2f}")
        records = records + [{"summary": f"mean over splits {[r['split'] for r in records]}",
                              "metric": metric, "mean": float(np.mean(values))}]
    path = Path(out or default_name)
    write_result(path, records[0] if len(records) == 1 else {"records": records})
    print(f"wrote {path}")


def _cmd_linear(args: argparse.Namespace) -> int:
    from mmv.eval.datasets import load_benchmark
    from mmv.eval.run import run_linear

    net = _load_network(args.weights, args.device)
    records = []
    for split in _splits(args):
        bench = load_benchmark(args.benchmark, args.root, split=split, annotations=args.annotations)
        if bench.report is not None and bench.report.problems:
            print(bench.report.summary(), file=sys.stderr)
        records.append(run_linear(net, bench, probe=args.probe, spec=_spec(args, net), C=args.C,
                                  weight_decay=args.weight_decay, device=args.device, batch_size=args.batch_size,
                                  num_workers=args.workers, cache_dir=args.cache, seed=args.seed,
                                  model_path=args.weights, progress=_progress))
        print(file=sys.stderr)
    _write(records, args.out, f"{bench.name}_linear_{args.probe}.json")
    return 0


def _cmd_retrieval(args: argparse.Namespace) -> int:
    from mmv.eval.datasets import load_benchmark
    from mmv.eval.run import run_retrieval

    net = _load_network(args.weights, args.device)
    bench = load_benchmark(args.benchmark, args.root, split=_split_value(args.split), annotations=args.annotations)
    if bench.report is not None and bench.report.problems:
        print(bench.report.summary(), file=sys.stderr)
    record = run_retrieval(net, bench, query=args.query, target=args.target, aggregate=args.aggregate,
                           spec=_spec(args, net) if args.protocol == "model" or args.frames else None,
                           protocol=args.protocol, windows=args.windows, device=args.device,
                           batch_size=args.batch_size, num_workers=args.workers, cache_dir=args.cache,
                           model_path=args.weights)
    _write([record], args.out, f"{bench.name}_retrieval_{args.query}2{args.target}.json")
    return 0


def _cmd_finetune(args: argparse.Namespace) -> int:
    from mmv.eval.datasets import load_benchmark
    from mmv.eval.finetune import FinetuneRecipe, finetune
    from mmv.eval.results import make_record, model_info

    net = _load_network(args.weights, args.device)
    recipe = FinetuneRecipe(epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                            weight_decay=args.wd, num_workers=args.workers, seed=args.seed,
                            train_backbone=not args.head_only)
    records = []
    for split in _splits(args):
        bench = load_benchmark(args.benchmark, args.root, split=split, annotations=args.annotations)
        result = finetune(net, bench.split("train"), bench.split("test"), bench.modality, len(bench.classes),
                          recipe, device=args.device)
        d = result.to_dict()
        records.append(make_record(
            model=model_info(net, args.weights), benchmark=bench.name, split=split, task="finetune",
            result={"metrics": {"top1": d["test_top1"], "top5": d["test_top5"]}, "params": d,
                    "skipped": d["skipped"]},
            benchmark_protocol=bench.protocol))
    _write(records, args.out, f"{bench.name}_finetune.json")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from mmv.eval.datasets.registry import list_benchmarks

    for info in list_benchmarks():
        splits = ", ".join(str(s) for s in info.splits if s is not None) or "-"
        print(f"{info.name:12s} {info.modality:6s} {info.metric:9s} splits: {splits:24s} {info.title}")
    return 0


def _cmd_deflate(args: argparse.Namespace) -> int:
    from mmv.deflate import run_deflation

    def progress(step: int, loss: float) -> None:
        print(f"\rdeflate: step {step}/{args.steps} L1 {loss:.4f}", end="", file=sys.stderr, flush=True)

    report = run_deflation(args.weights, args.images, args.out, steps=args.steps, lr=args.lr, output=args.output,
                           batch_size=args.batch_size,
                           holdout=int(args.holdout) if args.holdout >= 1 else args.holdout, max_images=args.max_images,
                           image_size=args.image_size, tsm_shift=args.tsm_shift, num_workers=args.workers,
                           device=args.device, seed=args.seed, progress=progress)
    print(file=sys.stderr)
    before, after = report["before"], report["after"]
    print(f"L1 gap to the video network on static videos ({report['settings']['output']}), held-out images:")
    print(f"  before tuning: mean {before['mean_l1']:.4g}  relative {before['relative_l1']:.4g}")
    print(f"  after tuning:  mean {after['mean_l1']:.4g}  relative {after['relative_l1']:.4g}")
    print(f"wrote {args.out} (image network + deflation.json)")
    return 0


def _progress(split: str, done: int, total: int) -> None:
    print(f"\rfeatures {split}: {done}/{total}", end="", file=sys.stderr, flush=True)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("weights", help="a weights folder (mmv convert / mmv train), or a deflated image network")
    p.add_argument("benchmark", help="benchmark name (`mmv eval list`)")
    p.add_argument("root", help="the benchmark's folder (media, and annotations unless --annotations)")
    p.add_argument("--split", help="official split / fold / protocol (e.g. 1, 'speaker:george'); default: the "
                                   "benchmark's default")
    p.add_argument("--annotations", help="folder or file of the annotation files when not under ROOT")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=16, help="clips per forward pass (finetune: per step)")
    p.add_argument("--workers", type=int, default=0, help="decoding worker processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="JSON result file (default: <benchmark>_<task>.json)")


def _sampling(p: argparse.ArgumentParser, windows_default: str) -> None:
    p.add_argument("--protocol", choices=["benchmark", "model"], default="benchmark",
                   help="clip sampling of the paper's evaluation (default) or of the model's own input protocol")
    p.add_argument("--layer", help="video_repr (default), video_va, video_vat, audio_repr, video:Mixed_4f ...")
    p.add_argument("--windows", type=int, help=f"test windows per example ({windows_default})")
    p.add_argument("--passes", type=int, help="augmented training passes (default: the benchmark's, else 10)")
    p.add_argument("--frames", type=int, help="frames per clip (overrides the protocol)")
    p.add_argument("--fps", type=float, help="frame rate of the clip (overrides the protocol)")
    p.add_argument("--crop", type=int, help="crop size (overrides the protocol)")
    p.add_argument("--cache", help="feature cache folder (reused when model, data and settings are the same)")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``eval`` (with its subcommands) and ``deflate`` to the ``mmv`` parser."""
    ev = sub.add_parser("eval", help="downstream evaluation: linear probes, retrieval, fine-tuning")
    evs = ev.add_subparsers(dest="eval_command", required=True)

    p = evs.add_parser("linear", help="linear probe on frozen features (SVM as the paper, or L-BFGS logistic)")
    _common(p)
    _sampling(p, "default: the benchmark's, else 10")
    p.add_argument("--probe", choices=["svm", "logistic"], default="svm")
    p.add_argument("--C", type=float, nargs="+", help="SVM C (several: chosen on a validation split of train); "
                                                      "default: the benchmark's documented value, else 0.001")
    p.add_argument("--weight-decay", type=float, nargs="+", help="logistic L2 strength(s)")
    p.add_argument("--all-splits", action="store_true", help="run every official split / fold and average")
    p.set_defaults(func=_cmd_linear)

    p = evs.add_parser("retrieval", help="zero-shot retrieval between two modalities through the shared spaces")
    _common(p)
    _sampling(p, "default 4, as VATT")
    p.add_argument("--query", choices=["text", "video", "audio"], default="text")
    p.add_argument("--target", choices=["text", "video", "audio"], default="video")
    p.add_argument("--aggregate", choices=["mean_embedding", "mean_similarity"], default="mean_embedding")
    p.set_defaults(func=_cmd_retrieval)

    p = evs.add_parser("finetune", help="fine-tune the backbone with a linear head")
    _common(p)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], default="sgd")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--wd", type=float, default=1e-4, help="weight decay")
    p.add_argument("--head-only", action="store_true", help="train only the linear head")
    p.add_argument("--all-splits", action="store_true", help="run every official split / fold and average")
    p.set_defaults(func=_cmd_finetune)

    p = evs.add_parser("list", help="the benchmarks, their modality, metric and splits")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("deflate", help="turn a video network into an image network and tune its BN gamma/beta")
    p.add_argument("weights", help="a weights folder with an S3D-G or TSM video backbone")
    p.add_argument("images", help="a folder (searched recursively) or zip of JPEG/PNG images")
    p.add_argument("out", help="folder for the image network and deflation.json")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--output", choices=["video_repr", "video_va", "video_vat"], default="video_repr",
                   help="which output the image network must match (unpublished; default the backbone's)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--holdout", type=float, default=0.1, help="fraction (or count, >= 1) of images only measured")
    p.add_argument("--max-images", type=int)
    p.add_argument("--image-size", type=int, help="default: the protocol's eval crop")
    p.add_argument("--tsm-shift", choices=["fold", "off"], default="fold",
                   help="TSM: fold the release's channel swap into the next conv (exact) or turn it off")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_deflate)
