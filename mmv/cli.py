"""The ``mmv`` command: a thin layer over library functions that the tests call directly."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Optional

from mmv.errors import CheckpointError


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

    p = sub.add_parser("info", help="describe a weights folder")
    p.add_argument("weights")
    p.set_defaults(func=_cmd_info)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CheckpointError as err:
        print(f"mmv: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
