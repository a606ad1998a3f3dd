"""Every benchmark by name: how to load it, what it measures, and the protocol MMV evaluates it with.

``load_benchmark("ucf101", root, split=1)`` reads the official annotation files and returns a `Benchmark` whose
splits are named by their role, ``'train'`` (what a classifier is fitted on) and ``'test'`` (what is scored);
retrieval sets have only ``'test'``. ``list_benchmarks()`` gives the metadata a runner needs: the modality, the
metric, the splits or folds to run and average, and the default protocol parameters of MMV_SPEC C.4 and E
(values the paper does not give are marked UNCONFIRMED there and here).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Optional, Union

from mmv.errors import UnknownNameError
from mmv.eval.datasets.audioset import load_audioset
from mmv.eval.datasets.base import Benchmark
from mmv.eval.datasets.cifar10 import load_cifar10
from mmv.eval.datasets.esc50 import load_esc50
from mmv.eval.datasets.fsdd import load_fsdd
from mmv.eval.datasets.hmdb51 import load_hmdb51
from mmv.eval.datasets.imagenet import load_imagenet
from mmv.eval.datasets.kinetics import load_kinetics600
from mmv.eval.datasets.msrvtt import load_msrvtt
from mmv.eval.datasets.ucf101 import load_ucf101
from mmv.eval.datasets.voc07 import load_voc07
from mmv.eval.datasets.youcook2 import load_youcook2

Split = Union[int, str, None]
UNCONFIRMED = "UNCONFIRMED"


@dataclass(frozen=True)
class BenchmarkInfo:
    """What a runner needs to know about a benchmark before loading it.

    Attributes:
      task: 'classification' or 'retrieval'.
      metric: the headline metric, 'top1', 'mAP' or 'retrieval' (``metrics`` lists all reported).
      splits: the values ``split=`` accepts; ``default_split`` is used for ``None``.
      average_over: the splits a headline number averages (several folds or official splits), else empty.
      protocol: default evaluation parameters (classifier, C, clip sampling ...), as documented in MMV_SPEC.
      reference: published numbers to compare against (MMV Table 2 per backbone, or the data README).
    """

    name: str
    title: str
    modality: str
    task: str
    multilabel: bool
    metric: str
    metrics: tuple[str, ...]
    splits: tuple[Split, ...]
    default_split: Split
    average_over: tuple[Split, ...]
    loader: Callable[..., Benchmark] = field(repr=False)
    protocol: Mapping[str, Any] = field(default_factory=dict)
    reference: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    in_paper: bool = True


def _info(**kwargs: Any) -> BenchmarkInfo:
    for key in ("protocol", "reference"):
        kwargs[key] = MappingProxyType(dict(kwargs.get(key, {})))
    return BenchmarkInfo(**kwargs)


_MODELS = ("s3d", "tsm-resnet50", "tsm-resnet50x2")
_RETRIEVAL_WINDOWS = f"{UNCONFIRMED}: VATT used 32 frames at stride 2 and 25 fps, 224 centre crop, mean of 4 clips"

_BENCHMARKS = (
    _info(name="ucf101", title="UCF101 action recognition (linear)", modality="video", task="classification",
          multilabel=False, metric="top1", metrics=("top1", "top5"), splits=(1, 2, 3), default_split=1,
          average_over=(1, 2, 3), loader=load_ucf101,
          protocol={"features": "vid_repr", "classifier": "LinearSVC", "C": 0.001, "standardize": True,
                    "train_passes": 10, "test_windows": 10, "frames": 32, "frame_stride": 2, "fps": 25,
                    "max_seconds": 20, "resize_min_side": 224, "crop": 224, "train_augment": "random offset, flip",
                    "test_score": "mean decision_function over the windows",
                    "average_over_splits": f"{UNCONFIRMED} (the official script runs split 1)"},
          reference={"s3d": 89.6, "tsm-resnet50": 91.5, "tsm-resnet50x2": 91.8}),
    _info(name="hmdb51", title="HMDB51 action recognition (linear)", modality="video", task="classification",
          multilabel=False, metric="top1", metrics=("top1",), splits=(1, 2, 3), default_split=1,
          average_over=(1, 2, 3), loader=load_hmdb51,
          protocol={"features": "vid_repr", "classifier": "LinearSVC",
                    "C": MappingProxyType({"s3d": 0.0003, "tsm-resnet50": 0.0001, "tsm-resnet50x2": 0.0003}),
                    "standardize": True, "train_passes": 10, "test_windows": 10, "frames": 32, "frame_stride": 1,
                    "fps": 10, "extract_min_side": 256, "resize_min_side": 224, "crop": 200,
                    "train_augment": "random crop, flip"},
          reference={"s3d": 62.6, "tsm-resnet50": 66.7, "tsm-resnet50x2": 67.1}),
    _info(name="kinetics600", title="Kinetics-600 action recognition (linear)", modality="video",
          task="classification", multilabel=False, metric="top1", metrics=("top1", "top5"), splits=(None,),
          default_split=None, average_over=(), loader=load_kinetics600, aliases=("k600", "kinetics"),
          protocol={"features": "vid_repr", "classifier": "linear", "recipe": UNCONFIRMED,
                    "test_split": "val (2018) / validate (2020)"},
          reference={"s3d": 68.0, "tsm-resnet50": 67.8, "tsm-resnet50x2": 70.5}),
    _info(name="esc50", title="ESC-50 sound classification (linear)", modality="audio", task="classification",
          multilabel=False, metric="top1", metrics=("top1",), splits=(1, 2, 3, 4, 5), default_split=1,
          average_over=(1, 2, 3, 4, 5), loader=load_esc50,
          protocol={"features": "aud_repr", "classifier": "linear", "folds": 5,
                    "split_meaning": "split=k: test fold k, train the other four", "recipe": UNCONFIRMED},
          reference={"s3d": 87.7, "tsm-resnet50": 86.4, "tsm-resnet50x2": 88.9}),
    _info(name="audioset", title="AudioSet sound tagging (MLP, mAP)", modality="audio", task="classification",
          multilabel=True, metric="mAP", metrics=("mAP",), splits=("balanced", "unbalanced"),
          default_split="balanced", average_over=(), loader=load_audioset,
          protocol={"features": "aud_repr", "classifier": "MLP", "recipe": UNCONFIRMED, "classes": 527,
                    "test_csv": "eval_segments.csv"},
          reference={"s3d": 30.3, "tsm-resnet50": 30.6, "tsm-resnet50x2": 30.9}),
    _info(name="msrvtt", title="MSR-VTT 1k-A zero-shot text-to-video retrieval", modality="video", task="retrieval",
          multilabel=False, metric="retrieval", metrics=("R@1", "R@5", "R@10", "MedR"), splits=(None, "1k-A"),
          default_split=None, average_over=(), loader=load_msrvtt, aliases=("msrvtt1ka", "msrvtt1k"),
          protocol={"direction": "text->video", "space": "S_vat", "zero_shot": True,
                    "windows": _RETRIEVAL_WINDOWS},
          reference={"tsm-resnet50x2": MappingProxyType({"R@1": 9.3, "R@5": 23.0, "R@10": 31.1, "MedR": 38})}),
    _info(name="youcook2", title="YouCook2 zero-shot text-to-video retrieval (validation clips)", modality="video",
          task="retrieval", multilabel=False, metric="retrieval", metrics=("R@1", "R@5", "R@10", "MedR"),
          splits=(None, "validation"), default_split=None, average_over=(), loader=load_youcook2,
          aliases=("yc2", "youcookii"),
          protocol={"direction": "text->video", "space": "S_vat", "zero_shot": True,
                    "windows": _RETRIEVAL_WINDOWS},
          reference={"tsm-resnet50x2": MappingProxyType({"R@10": 45.4, "MedR": 13})}),
    _info(name="voc07", title="PASCAL VOC 2007 image classification (deflated video network, mAP)", modality="image",
          task="classification", multilabel=True, metric="mAP", metrics=("mAP",), splits=("test", "val"),
          default_split="test", average_over=(), loader=load_voc07,
          aliases=("voc2007", "pascalvoc2007", "pascalvoc07"),
          protocol={"train_list": "trainval", "test_list": "test", "difficult": "ignored (Example.ignore)",
                    "ap": f"VOC07 devkit 11-point interpolated AP ({UNCONFIRMED} which AP MMV used)",
                    "classifier": UNCONFIRMED, "video_to_image": "n-def / def / i-inf (Table 3)"},
          reference={"s3d": MappingProxyType({"n-def": 41.8, "def": 71.4, "i-inf": 72.1}),
                     "tsm-resnet50": MappingProxyType({"n-def": 34.4, "def": 74.8, "i-inf": 75.7}),
                     "tsm-resnet50x2": MappingProxyType({"n-def": 45.6, "def": 77.4, "i-inf": 77.4})}),
    _info(name="imagenet", title="ImageNet classification (deflated video network)", modality="image",
          task="classification", multilabel=False, metric="top1", metrics=("top1", "top5"), splits=(None, "val"),
          default_split=None, average_over=(), loader=load_imagenet, aliases=("ilsvrc2012", "in1k"),
          protocol={"train_folder": "train", "test_folder": "val", "classifier": UNCONFIRMED,
                    "video_to_image": "n-def / def / i-inf (Table 3)"},
          reference={"s3d": MappingProxyType({"def": (45.2, 71.3), "i-inf": (46.7, 72.5)}),
                     "tsm-resnet50": MappingProxyType({"def": (50.4, 76.0), "i-inf": (51.5, 77.3)}),
                     "tsm-resnet50x2": MappingProxyType({"def": (56.6, 81.4), "i-inf": (57.4, 81.7)})}),
    _info(name="fsdd", title="Free Spoken Digit Dataset (project sanity check, linear)", modality="audio",
          task="classification", multilabel=False, metric="top1", metrics=("top1",),
          splits=("official", "speaker:<name>"), default_split="official", average_over=(), loader=load_fsdd,
          aliases=("freespokendigit",), in_paper=False,
          protocol={"features": "aud_repr", "classifier": "logistic regression",
                    "official": "takes 0-4 test, 5-49 train", "held_out_speaker": "speaker:george"},
          reference={"log-mel mean+std, official": 95.0, "log-mel mean+std, speaker:george": 48.6,
                     "random features": 7.3}),
    _info(name="cifar10", title="CIFAR-10 (project sanity check, image, linear)", modality="image",
          task="classification", multilabel=False, metric="top1", metrics=("top1",), splits=(None,),
          default_split=None, average_over=(), loader=load_cifar10, in_paper=False,
          protocol={"classifier": "logistic regression", "train_per_class": "1,000 in the shared zip"},
          reference={"raw pixels, 1,000 per class": 36.4, "chance": 10.0}),
)
_BY_NAME = {info.name: info for info in _BENCHMARKS}
_ALIASES = {alias: info.name for info in _BENCHMARKS for alias in info.aliases}


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def benchmark_info(name: str) -> BenchmarkInfo:
    """The metadata of a benchmark, by name or alias (case, '-', '_' and spaces ignored: 'ESC-50', 'K600')."""
    key = _key(name)
    key = _ALIASES.get(key, key)
    if key not in _BY_NAME:
        raise UnknownNameError(f"no benchmark {name!r}; known: {sorted(_BY_NAME)}")
    return _BY_NAME[key]


def list_benchmarks() -> list[BenchmarkInfo]:
    """All benchmarks, those of the paper first, in the paper's order."""
    return list(_BENCHMARKS)


def load_benchmark(name: str, root: Union[str, Path], *, split: Split = None,
                   annotations: Optional[Union[str, Path]] = None, **options: Any) -> Benchmark:
    """Load a benchmark's examples from its official layout under ``root``.

    ``split`` picks the official split, fold or protocol (see ``benchmark_info(name).splits``; ``None``: the
    default); ``annotations`` points at the annotation files when they are not under ``root``. Common options:
    ``require_media=False`` lists the annotated examples without looking at the disk (paths are where the
    media should be), ``media=`` names the media folder; benchmark-specific ones are in each loader."""
    info = benchmark_info(name)
    return info.loader(root, split=split, annotations=annotations, **options)
