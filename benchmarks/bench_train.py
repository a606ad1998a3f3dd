"""Training throughput (clips/s) and peak memory of one optimizer step, per preset and variant.

Runs the training step of ``mmv train`` (``StepRunner``: forward, ``MMVLoss``, backward, gradient norm,
Adam) on synthetic batches at each preset's training protocol (frames, crop, clip-length audio, K
narrations), on this machine's GPU when there is one, else the CPU. Variants: fp32, bf16 autocast,
channels_last, and both. Each (preset, variant) runs in its own process so that peak memory is its own;
the figure is the median step time over ``--steps`` steps after ``--warmup`` steps, and the ratio is
against the fp32 baseline of the same preset measured in the same invocation. Data loading is not
included (see bench_data.py for that side).

    python benchmarks/bench_train.py                                   # tiny presets, CPU
    python benchmarks/bench_train.py --presets mmv_s3d mmv_tsm_resnet50 --batch 32   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

VARIANTS = {"fp32": ("fp32", False), "bf16": ("bf16", False), "channels_last": ("fp32", True),
            "bf16+channels_last": ("bf16", True)}


def measure(preset: str, variant: str, batch: int, steps: int, warmup: int, device_name: str, threads: int) -> dict:
    """One (preset, variant) in this process: median step time and peak memory."""
    import torch

    from mmv.losses import MMVLoss
    from mmv.models import create_model
    from mmv.train.config import TrainConfig
    from mmv.train.step import StepRunner, freeze_unused, make_optimizer, to_channels_last

    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device_name)
    precision, channels_last = VARIANTS[variant]
    torch.manual_seed(0)
    model = create_model(preset)
    model.check_inputs = False
    freeze_unused(model)
    model.to(device).train()
    if channels_last:
        to_channels_last(model)
    p, k = model.protocol, 5
    frames = -(-p.audio_samples // p.audio.frame_step)
    batch_data = {
        "video": torch.rand(batch, 3, p.num_frames, p.crop_size, p.crop_size),
        "audio": torch.randn(batch, 1, frames, p.audio.num_mel_bins),
        "text": torch.randint(0, model.config.text.vocab_size, (batch, k, p.max_words)),
        "audio_mask": torch.ones(batch, dtype=torch.bool), "text_mask": torch.ones(batch, k, dtype=torch.bool),
    }
    if device.type == "cuda":
        batch_data = {key: v.pin_memory() for key, v in batch_data.items()}
    runner = StepRunner(model, MMVLoss(), make_optimizer(TrainConfig(), model), device, precision,
                        grad_clip=0.0, channels_last=channels_last)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
            if i == warmup:
                torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        losses, _ = runner.forward_backward(batch_data)
        runner.step()
        float(losses["loss"])  # the loop syncs once per step too
        if i >= warmup:
            times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        memory = f"{peak:.0f} MiB GPU peak"
    else:
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
        memory = f"{peak_rss:.0f} MiB RSS peak (+{peak_rss - rss_before / 1024:.0f} in the steps)"
    med = statistics.median(times)
    return {"preset": preset, "variant": variant, "batch": batch, "median_s": med,
            "spread_s": (max(times) - min(times)) / 2, "clips_per_s": batch / med, "memory": memory,
            "parameters": sum(q.numel() for q in model.parameters()), "loss": float(losses["loss"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", help="model presets (default: tiny on CPU; paper + tiny on GPU)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--batch", type=int, help="clips per step (default 8 on CPU, 32 on GPU)")
    parser.add_argument("--steps", type=int, default=5, help="measured steps (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one measurement, JSON on stdout
    args = parser.parse_args()

    if args.worker:
        preset, variant = args.worker.split(":", 1)
        print(json.dumps(measure(preset, variant, args.batch, args.steps, args.warmup, args.device, args.threads)))
        return

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device.startswith("cuda")
    presets = args.presets or (["mmv_s3d", "mmv_tsm_resnet50", "mmv_tsm_resnet50x2", "mmv_tiny_tsm"] if gpu
                               else ["mmv_tiny_tsm", "mmv_tiny_s3d"])
    batch = args.batch or (32 if gpu else 8)
    where = torch.cuda.get_device_name(0) if gpu else f"CPU, {args.threads or torch.get_num_threads()} thread(s)"
    print(f"training step (forward + MMVLoss + backward + Adam), batch {batch}, median of {args.steps} steps "
          f"after {args.warmup}, on {where}; torch {torch.__version__}")
    for preset in presets:
        baseline = None
        for variant in args.variants:
            cmd = [sys.executable, __file__, "--worker", f"{preset}:{variant}", "--batch", str(batch),
                   "--steps", str(args.steps), "--warmup", str(args.warmup), "--device", device,
                   "--threads", str(args.threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
            if proc.returncode != 0:
                tail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "?"
                print(f"{preset:20s} {variant:19s} failed: {tail}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            if variant == "fp32":
                baseline = r["median_s"]
            ratio = f"x{baseline / r['median_s']:.2f} vs fp32" if baseline else ""
            print(f"{preset:20s} {variant:19s} {r['median_s'] * 1e3:9.1f} ms (+/- {r['spread_s'] * 1e3:.1f})  "
                  f"{r['clips_per_s']:8.1f} clips/s  {ratio:14s} {r['memory']}")


if __name__ == "__main__":
    main()
