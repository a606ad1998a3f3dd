"""Benchmark adapters: official annotation layouts read as published (see ``base.Benchmark``, ``registry``)."""

from mmv.eval.datasets.base import Benchmark, Example, read_media
from mmv.eval.datasets.registry import BenchmarkInfo, benchmark_info, list_benchmarks, load_benchmark

__all__ = ["Benchmark", "BenchmarkInfo", "Example", "benchmark_info", "list_benchmarks", "load_benchmark",
           "read_media"]
