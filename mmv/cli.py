"""The ``mmv`` command: a thin layer over library functions that the tests call directly."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from mmv.errors import CheckpointError, DataError


def _cmd_convert(args: argparse.Namespace) -> int:
    from mmv.convert import convert_checkpoint
    from mmv.weights import load_model

    out = convert_checkpoint(args.checkpoint, args.out_dir, vocab=args.vocab, graph=args.graph)
    model = load_model(out)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"wrote {out}/model.safetensors and config.json: {model.preset or 'custom'} "
          f"({model.config.video.arch}, graph {model.config.graph}, {n_params:,} parameters"
          f"{', vocabulary attached' if model.vocab else ', no vocabulary'})")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from mmv.models import get_preset, list_models

    for name in list_models():
        preset = get_preset(name)
        p = preset.protocol()
        print(f"{name:22s} {'released' if preset.released else '        '}  {p.num_frames} frames @ "
              f"{p.fps:g} fps, crop {p.crop_size}/{p.eval_crop_size}, {preset.description}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from mmv.weights import load_model

    model = load_model(args.weights)
    info = {
        "preset": model.preset,
        "parameters": sum(p.numel() for p in model.parameters()),
        "model": model.config.to_dict(),
        "protocol": model.protocol.to_dict(),
        "vocabulary_words": len(model.vocab) if model.vocab else None,
    }
    print(json.dumps(info, indent=2))
    return 0


def _cmd_data_check(args: argparse.Namespace) -> int:
    from mmv.data.check import check_dataset
    from mmv.data.sources.base import list_videos
    from mmv.data.sources.spec import read_spec

    path = Path(args.path)
    if path.is_dir() and not (path / "shards.json").is_file():
        report = check_dataset(path)
    else:
        specs = [s for s in read_spec(path) if not s.is_shards]
        report = check_dataset([v for s in specs for v in list_videos(s.paths["videos"])])
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.summary())
    return 1 if report.bad else 0


def _cmd_shard(args: argparse.Namespace) -> int:
    from mmv.data.sharding import shard_items
    from mmv.data.sources.spec import load_items, read_spec
    from mmv.data.transcode import TranscodeSettings

    settings = TranscodeSettings(segment_seconds=args.segment, fps=args.fps, short_side=args.short_side,
                                 gop=args.gop, crf=args.crf)
    specs = [s for s in read_spec(args.source) if not s.is_shards]
    if not specs:
        raise SystemExit("mmv shard: the source holds no videos (it is already sharded?)")
    for spec in specs:
        items, report = load_items(spec)
        print(report.summary())
        out = Path(args.out_dir) / spec.name if len(specs) > 1 else Path(args.out_dir)

        def progress(done: int, total: int, name: str = spec.name) -> None:
            print(f"\r{name}: {done}/{total} videos", end="", file=sys.stderr, flush=True)

        written = shard_items(items, out, settings, margin=args.margin, max_samples=args.max_samples,
                              max_bytes=int(args.max_mb * 2**20), name=spec.name, progress=progress)
        print(file=sys.stderr)
        print(f"wrote {out}: " + written.summary())
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from mmv.train.config import describe_settings, parse_assignments, resolve_config

    if args.help_config:
        print(describe_settings())
        return 0
    overrides = parse_assignments(args.set or [])
    for flag, key in (("data", "data"), ("out", "out_dir"), ("steps", "steps"), ("batch_size", "batch_size")):
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    config = resolve_config(args.preset, args.config, overrides)
    if args.print_config:
        print(config.to_json(), end="")
        return 0
    from mmv.train import train

    return train(config, resume=args.resume).exit_code


def _cmd_demo(args: argparse.Namespace) -> int:
    from mmv.demo.run import run_demo

    run_demo(args.out, seed=args.seed, quick=args.quick, steps=args.steps, fsdd_path=args.fsdd, threads=args.threads,
             data_dir=args.data_dir, progress=args.progress, num_workers=args.workers, batch_size=args.batch_size,
             num_train=args.train_videos, num_test=args.test_videos)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmv", description="Self-Supervised MultiModal Versatile Networks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("convert", help="convert an official MMV .pkl checkpoint into a weights folder")
    p.add_argument("checkpoint", help="mmv_s3d.pkl, mmv_tsm_resnet_x1.pkl or mmv_tsm_resnet_x2.pkl")
    p.add_argument("out_dir", help="folder to write model.safetensors and config.json into")
    p.add_argument("--vocab", help="word list, one word per line, naming the rows of the word table")
    p.add_argument("--graph", choices=["fac", "fac_relu", "fac_bnrelu", "disjoint", "shared"],
                   help="embedding graph (inferred; fac and fac_relu look alike, the release is fac_relu)")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("models", help="list the model presets and their input protocols")
    p.set_defaults(func=_cmd_models)

    data = sub.add_parser("data", help="inspect training data").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("check", help="try every video of a folder or source spec; list the unusable ones")
    p.add_argument("path", help="a folder of videos or a JSON source spec")
    p.add_argument("--json", action="store_true", help='print {"ok": [...], "bad": [...], "without_audio": [...]}')
    p.set_defaults(func=_cmd_data_check)

    p = sub.add_parser("shard", help="pre-transcode a source into WebDataset tar shards")
    p.add_argument("source", help="a folder of videos or a JSON source spec")
    p.add_argument("out_dir")
    p.add_argument("--segment", type=float, default=10.0, help="seconds per stored segment (default 10)")
    p.add_argument("--fps", type=float, default=10.0, help="frame rate of the stored clips (default 10)")
    p.add_argument("--short-side", type=int, default=256, help="short side in pixels (default 256)")
    p.add_argument("--gop", type=int, default=10, help="keyframe interval in frames (default 10)")
    p.add_argument("--crf", type=int, default=23, help="H.264 quality, lower is better (default 23)")
    p.add_argument("--margin", type=float, default=30.0, help="seconds of narrations kept around each segment")
    p.add_argument("--max-samples", type=int, default=1000, help="samples per shard (default 1000)")
    p.add_argument("--max-mb", type=float, default=1024.0, help="megabytes per shard (default 1024)")
    p.set_defaults(func=_cmd_shard)

    p = sub.add_parser("train", help="train an MMV model (one process, or one per GPU under torchrun)",
                       description="Settings: a preset, then --config FILE (JSON), then --set KEY=VALUE and the "
                                   "flags below. `mmv train --help-config` lists every setting. Exit status: 0 done "
                                   "or preempted (SIGTERM, checkpointed), 2 bad input, 3 non-finite loss.")
    p.add_argument("--preset", help="mmv_s3d, mmv_tsm_resnet50, mmv_tsm_resnet50x2 (the paper's runs), "
                                    "mmv_tiny_tsm, mmv_tiny_s3d (CPU)")
    p.add_argument("--config", help="JSON file of settings (may name a \"preset\"; a run's config.json works)")
    p.add_argument("--data", help="JSON source spec or folder of training data")
    p.add_argument("--out", help="run folder: config, metrics, checkpoints, final weights (setting out_dir)")
    p.add_argument("--steps", type=int, help="total optimizer steps")
    p.add_argument("--batch-size", type=int, help="global batch size (split over the ranks)")
    p.add_argument("--resume", help="'latest' (newest valid checkpoint of the run folder, or a fresh start if "
                                    "there is none) or a checkpoint file")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any setting, e.g. --set lr=0.001 --set model_overrides.graph=disjoint (repeatable)")
    p.add_argument("--print-config", action="store_true", help="print the resolved settings and exit")
    p.add_argument("--help-config", action="store_true", help="list every setting with its type and default")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("demo", help="build digit videos, train a tiny MMV on the CPU, evaluate it, write a report",
                       description="Everything goes into --out: data/, run/ (training), results.json, records.json, "
                                   "report.html and its PNGs. About ten minutes on 2 CPU cores (docs/demo.md).")
    p.add_argument("--out", default="mmv-demo", help="output folder (default mmv-demo)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data, the initialisation and the training")
    p.add_argument("--quick", action="store_true", help="a smaller dataset and fewer steps (a first look)")
    p.add_argument("--steps", type=int, help="training steps")
    p.add_argument("--batch-size", type=int, help="clips per training step")
    p.add_argument("--train-videos", type=int, help="number of training videos")
    p.add_argument("--test-videos", type=int, help="number of test videos")
    p.add_argument("--fsdd", default="auto", help="Free Spoken Digit Dataset folder for the real-speech probe, "
                                                  "'auto' (../shared/data/fsdd if present) or 'none'")
    p.add_argument("--data-dir", help="where the videos are built or reused (default OUT/data)")
    p.add_argument("--threads", type=int, help="torch threads of the main process")
    p.add_argument("--workers", type=int, help="data loader workers during training")
    p.add_argument("--progress", default="auto", choices=["auto", "bar", "lines", "off"])
    p.set_defaults(func=_cmd_demo)

    from mmv.cli_eval import add_parsers as add_eval_parsers

    add_eval_parsers(sub)

    p = sub.add_parser("info", help="describe a weights folder")
    p.add_argument("weights")
    p.set_defaults(func=_cmd_info)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CheckpointError, DataError, FileNotFoundError, ValueError) as err:  # UnknownNameError too
        print(f"mmv: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
