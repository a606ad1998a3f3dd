"""Forward throughput and peak memory of the model presets, and the cost of TF "SAME" padding.

Prints medians over repeated runs and ratios against a baseline measured in the same run:

* for each preset, eval-mode clips/s of the video, audio and text towers at the preset's protocol
  (frames, eval crop, clip-length audio) on the chosen device;
* the price of exact parity: ``SameConv`` (explicit asymmetric pad, as the release needs) against
  ``nn.Conv2d`` with PyTorch's symmetric padding on one stride-2 layer, and the whole video tower of
  the first preset with TF "SAME" against symmetric padding (wrong results, same shapes).

    python benchmarks/bench_models.py                      # tiny presets, CPU
    python benchmarks/bench_models.py --presets mmv_s3d mmv_tsm_resnet50 --batch 2 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from mmv.models import create_model
from mmv.models.layers import SameConv


def timed(fn, repeats: int, device: str) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def describe(times: list[float]) -> str:
    med = statistics.median(times)
    spread = (max(times) - min(times)) / 2
    return f"median {med * 1e3:8.1f} ms (+/- {spread * 1e3:.1f})"


def bench_preset(name: str, batch: int, repeats: int, device: str) -> None:
    torch.manual_seed(0)
    model = create_model(name).to(device).eval()
    p = model.protocol
    frames = int(p.audio_samples / p.audio.frame_step + 0.999)
    inputs = {
        "video": torch.rand(batch, 3, p.num_frames, p.eval_crop_size, p.eval_crop_size, device=device),
        "audio": torch.randn(batch, 1, frames, p.audio.num_mel_bins, device=device),
        "text": torch.randint(0, model.config.text.vocab_size, (batch, p.max_words), device=device),
    }
    n_params = sum(q.numel() for q in model.parameters())
    print(f"\n{name}: {n_params / 1e6:.1f} M parameters, batch {batch}, video {tuple(inputs['video'].shape)}, "
          f"audio {tuple(inputs['audio'].shape)}")
    for modality, x in inputs.items():
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        with torch.no_grad():
            times = timed(lambda m=modality, x=x: model(**{m: x}), repeats, device)
        rate = batch / statistics.median(times)
        memory = (f", peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
                  if device.startswith("cuda") else "")
        print(f"  {modality:5s} {describe(times)}  {rate:8.1f} clips/s{memory}")


def bench_same_padding(repeats: int, device: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(32, 64, 56, 56, device=device)
    ours = SameConv(2, 64, 64, 3, 2).to(device)
    baseline = nn.Conv2d(64, 64, 3, 2, padding=1, bias=False).to(device)
    with torch.no_grad():
        baseline.weight.copy_(ours.weight)
        t_ours = timed(lambda: ours(x), repeats, device)
        t_base = timed(lambda: baseline(x), repeats, device)
    ratio = statistics.median(t_ours) / statistics.median(t_base)
    print(f"\nstride-2 3x3 conv, 32x64x56x56: SameConv {describe(t_ours)}; nn.Conv2d(padding=1) "
          f"{describe(t_base)}; ratio {ratio:.2f}")


def bench_padding_in_model(name: str, batch: int, repeats: int, device: str) -> None:
    import mmv.models.layers as layers

    torch.manual_seed(0)
    model = create_model(name).to(device).eval()
    p = model.protocol
    video = torch.rand(batch, 3, p.num_frames, p.eval_crop_size, p.eval_crop_size, device=device)
    exact = layers.same_padding
    with torch.no_grad():
        t_same = timed(lambda: model(video=video), repeats, device)
        layers.same_padding = lambda n, k, s: (k // 2, k // 2) if k % 2 else exact(n, k, s)
        try:
            t_sym = timed(lambda: model(video=video), repeats, device)
        finally:
            layers.same_padding = exact
    ratio = statistics.median(t_same) / statistics.median(t_sym)
    print(f"{name} video tower: SAME {describe(t_same)}; symmetric {describe(t_sym)}; ratio {ratio:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["mmv_tiny_tsm", "mmv_tiny_s3d"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    bench_same_padding(args.repeats, args.device)
    bench_padding_in_model(args.presets[0], args.batch, args.repeats, args.device)
    for name in args.presets:
        bench_preset(name, args.batch, args.repeats, args.device)


if __name__ == "__main__":
    main()
