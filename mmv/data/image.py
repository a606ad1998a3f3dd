"""Still images (JPEG, PNG, BMP, WebP ...) decoded with PyAV, so that image benchmarks need no PIL.

FFmpeg's image demuxers recognise the format from the bytes (``png_pipe``, ``jpeg_pipe`` ...), so a path
and the bytes of a zip member are read the same way. Anything unusable becomes a ``DataError``.
"""

from __future__ import annotations

import io
import os

import av
import numpy as np

from mmv.errors import DataError

IMAGE_EXTENSIONS: frozenset[str] = frozenset(".jpg .jpeg .png .bmp .webp .tif .tiff .gif .ppm .pgm".split())
IN_MEMORY = "<in-memory image>"


def decode_image(media: str | os.PathLike | bytes) -> np.ndarray:
    """The first picture of ``media`` (a path or the file's bytes) as uint8 RGB ``[H, W, 3]``.

    Grey, palette, CMYK and alpha images are converted to RGB by FFmpeg's scaler (alpha dropped). EXIF
    orientation is not applied: benchmark images are stored upright.
    """
    if isinstance(media, (bytes, bytearray, memoryview)):
        where = IN_MEMORY
        data = bytes(media)
        if not data:
            raise DataError(where, "empty image (0 bytes)")
        source: object = io.BytesIO(data)
    else:
        where = os.fspath(media)
        if not os.path.exists(where):
            raise DataError(where, "file not found")
        if not os.path.isfile(where):
            raise DataError(where, "not a regular file")
        if os.path.getsize(where) == 0:
            raise DataError(where, "empty file (0 bytes)")
        source = where
    try:
        container = av.open(source, metadata_errors="ignore")
    except av.error.FFmpegError as e:
        raise DataError(where, f"not an image FFmpeg can read ({_msg(e)})") from e
    except OSError as e:
        raise DataError(where, f"cannot read file ({_msg(e)})") from e
    try:
        if not container.streams.video:
            raise DataError(where, "no picture in the file" + (" (audio only)" if container.streams.audio else ""))
        for frame in container.decode(video=0):
            picture = frame.to_ndarray(format="rgb24")
            if picture.ndim != 3 or picture.shape[0] < 1 or picture.shape[1] < 1:
                raise DataError(where, f"unusable picture of shape {picture.shape}")
            return np.ascontiguousarray(picture)
        raise DataError(where, "no decodable picture (truncated or corrupt)")
    except av.error.FFmpegError as e:
        raise DataError(where, f"corrupt image (FFmpeg: {_msg(e)})") from e
    finally:
        container.close()


def _msg(e: BaseException) -> str:
    return str(getattr(e, "strerror", None) or e)
