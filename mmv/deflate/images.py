"""Still images for deflation: a folder (recursive) or a zip of JPEG/PNG files, decoded with PyAV
(``mmv.data.image.decode_image``).

Images are prepared like evaluation frames of the video network's protocol (short side resized to
``resize_short_side`` with the TF-style bilinear resize, a square crop, mapped to ``value_range``), so
the image network and the static video see the same pixels the video network was trained on.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch.utils.data import Dataset

from mmv.data.image import IMAGE_EXTENSIONS, decode_image
from mmv.data.transforms import center_crop, random_crop, resize_short_side
from mmv.errors import DataError
from mmv.models.config import InputProtocol


@dataclass(frozen=True)
class ImageEntry:
    """A file on disk, or ``member`` of the zip archive ``path``."""

    path: str
    member: Optional[str] = None

    def __str__(self) -> str:
        return f"{self.path}:{self.member}" if self.member else self.path

    def read(self) -> bytes:
        if self.member is None:
            return Path(self.path).read_bytes()
        return _open_zip(self.path).read(self.member)


_ZIPS: dict[tuple[int, str], zipfile.ZipFile] = {}


def _open_zip(path: str) -> zipfile.ZipFile:
    """An open archive, kept per process: re-reading the central directory of a 20,000-member zip for every
    image cost ~0.2 s each. Keyed by pid so that DataLoader workers never share a forked file handle."""
    key = (os.getpid(), path)
    archive = _ZIPS.get(key)
    if archive is None:
        if len(_ZIPS) >= 8:
            _ZIPS.pop(next(iter(_ZIPS))).close()
        archive = _ZIPS[key] = zipfile.ZipFile(path)
    return archive


def list_images(source: str | os.PathLike) -> list[ImageEntry]:
    """Every image under a folder (recursive) or in a zip archive, sorted so the order is reproducible."""
    src = Path(source)
    if src.is_dir():
        return [ImageEntry(str(p)) for p in sorted(src.rglob("*"))
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if src.is_file() and zipfile.is_zipfile(src):
        with zipfile.ZipFile(src) as archive:
            names = sorted(n for n in archive.namelist()
                           if not n.endswith("/") and Path(n).suffix.lower() in IMAGE_EXTENSIONS)
        return [ImageEntry(str(src), n) for n in names]
    raise FileNotFoundError(f"{src}: neither a folder nor a zip archive of images")


def load_image(entry: ImageEntry) -> torch.Tensor:
    """uint8 ``[H, W, 3]`` RGB of ``entry`` (``mmv.data.image.decode_image``); errors name the entry."""
    try:
        return torch.from_numpy(decode_image(entry.read()))
    except DataError as err:
        raise DataError(str(entry), err.reason) from None
    except (OSError, KeyError, zipfile.BadZipFile) as err:
        raise DataError(str(entry), f"cannot read ({type(err).__name__}: {err})") from None


def prepare_image(image: torch.Tensor, protocol: InputProtocol, size: Optional[int] = None,
                  generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """uint8 ``[H, W, 3]`` -> float ``[3, size, size]`` in the protocol's value range.

    Without ``generator``: centre crop (evaluation). With one: random crop and a random horizontal flip.
    ``size`` defaults to the protocol's ``eval_crop_size``.
    """
    size = size or protocol.eval_crop_size
    frames = resize_short_side(image.unsqueeze(0), protocol.resize_short_side)  # [3, 1, h, w] float
    if generator is None:
        x = center_crop(frames, size)
    else:
        x = random_crop(frames, size, generator)
        if float(torch.rand((), generator=generator)) < 0.5:
            x = x.flip(-1)
    lo, hi = protocol.value_range
    return (x[:, 0] * (hi - lo) + lo).contiguous()


class ImageFiles(Dataset):
    """Prepared images from ``ImageEntry`` items; ``train`` adds random crops and flips.

    Item i is ``(image [3, size, size], None)`` or ``(None, "entry: reason")`` for a file that cannot be
    used; ``collate_images`` drops those and lists them under ``"skipped"``. The random draws come from
    torch's RNG, which a ``DataLoader`` seeds per worker from its generator, so a seeded loader repeats.
    """

    def __init__(self, entries: list[ImageEntry], protocol: InputProtocol, size: Optional[int] = None,
                 train: bool = False):
        self.entries, self.protocol, self.size, self.train = entries, protocol, size, train

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> tuple[Optional[torch.Tensor], Optional[str]]:
        entry = self.entries[index]
        try:
            image = load_image(entry)
        except DataError as err:
            return None, str(err)
        generator = None
        if self.train:
            generator = torch.Generator().manual_seed(int(torch.randint(2**62, ())))
        return prepare_image(image, self.protocol, self.size, generator), None


def collate_images(items: list[tuple[Optional[torch.Tensor], Optional[str]]]) -> dict[str, Any]:
    """``{"image": [B, 3, H, W] or None, "skipped": [reasons]}`` from ``ImageFiles`` items."""
    good = [x for x, _ in items if x is not None]
    return {"image": torch.stack(good) if good else None, "skipped": [r for x, r in items if x is None]}
