"""MSR-VTT 1k-A: the 1,000 test videos (one caption each) of zero-shot text-to-video retrieval.

The split is ``MSRVTT_JSFUSION_test.csv`` (JSFusion's, used by MIL-NCE as ``msrvtt_test.csv`` and by CLIP4Clip
under ``msrvtt_data/``): comma-separated, header ``key,vid_key,video_id,sentence``, one row per caption. Rows
of one video are gathered into one example (in 1k-A each video has one), kept in file order, which is the order
of the retrieval gallery. Videos are ``{video_id}.mp4`` anywhere under the media folder (the official archive
keeps them in ``videos/all/``).
"""

from __future__ import annotations

from typing import Optional

from mmv.data.sources.base import SourceReport
from mmv.data.video import VIDEO_EXTENSIONS
from mmv.errors import DataError
from mmv.eval.datasets._common import (
    MISSING,
    MediaIndex,
    PathLike,
    benchmark,
    check_split,
    locate,
    media_folder,
    read_csv,
    require_folder,
)
from mmv.eval.datasets.base import Benchmark, Example

COLUMNS = ("key", "vid_key", "video_id", "sentence")
NAMES = ["MSRVTT_JSFUSION_test.csv", "msrvtt_data/MSRVTT_JSFUSION_test.csv", "msrvtt_test.csv", "csv/msrvtt_test.csv"]


def load_msrvtt(root: PathLike, *, split: Optional[str] = None, annotations: Optional[PathLike] = None,
                require_media: bool = True, media: Optional[PathLike] = None) -> Benchmark:
    """The 1k-A test split as 'test': one retrieval example per video, its captions attached."""
    check_split("msrvtt", split, (None, "1k-A"))
    csv_path = locate("MSR-VTT 1k-A test CSV", annotations, root, NAMES)
    captions: dict[str, list[str]] = {}
    for line_no, row in read_csv(csv_path, COLUMNS):
        video, sentence = row["video_id"].strip(), row["sentence"].strip()
        if not video or not sentence:
            raise DataError(csv_path, f"line {line_no}: empty video_id or sentence")
        captions.setdefault(video, []).append(sentence)
    report = SourceReport("msrvtt")
    videos = media_folder(root, media, [])
    index = None
    if require_media:
        require_folder(videos, "MSR-VTT")
        index = MediaIndex(videos, VIDEO_EXTENSIONS)
    examples = []
    for video, texts in captions.items():
        path = str(videos / f"{video}.mp4") if index is None else index.find_stem(video)
        if path is None:
            report.add(MISSING, video)
            continue
        examples.append(Example(id=video, path=path, captions=tuple(texts)))
    protocol = {"split": "1k-A", "csv": str(csv_path), "captions": sum(len(t) for t in captions.values()),
                "media": str(videos), "media_checked": require_media}
    return benchmark("msrvtt", "video", [], {"test": examples}, report, protocol)
