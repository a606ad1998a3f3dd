"""One clip end to end: window, frames, audio of the same span, narrations, batching, skips."""

import pytest
import torch
from torch.utils.data import DataLoader

from mmv.data.captions import Narration
from mmv.data.clips import ClipBuilder, ClipDataset, seeded_generator
from mmv.data.samples import Skipped, collate
from mmv.data.sources.base import ClipItem
from mmv.data.text import Tokenizer, Vocabulary
from mmv.models.config import InputProtocol
from tests.data.fixtures import find_bursts, read_frame_index, write_text_as_video, write_video

# 4 frames at 2 fps = a 2 s clip; frames stay 48x48 so their barcodes survive the crop.
PROTOCOL = InputProtocol(num_frames=4, fps=2.0, resize_short_side=48, crop_size=48, eval_crop_size=48, max_words=6)
VOCAB = Vocabulary.from_words(["flour", "eggs", "whisk", "oven", "bake", "stir"])
TOKENIZER = Tokenizer(VOCAB, max_words=6)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    # 6 s at 10 fps, tone bursts every 0.5 s from 0.25 s
    return write_video(tmp_path_factory.mktemp("clips") / "v.mp4", num_frames=60, fps=10, width=48, height=48)


def frame_indices(sample):
    frames = (sample["video"].permute(1, 2, 3, 0) * 255).round().to(torch.uint8)
    return [read_frame_index(f) for f in frames]


def test_eval_clip_frames_audio_and_text(video):
    builder = ClipBuilder(PROTOCOL, TOKENIZER, num_candidates=3, train=False)
    narrations = [Narration(0.2, 1.0, "add the flour"), Narration(1.2, 1.8, "whisk eggs"),
                  Narration(4.0, 5.0, "bake in the oven")]
    sample = builder(str(video), narrations, generator=torch.Generator())
    assert sample["meta"]["start"] == 0.0
    assert frame_indices(sample) == [0, 5, 10, 15]  # frames at 0, 0.5, 1.0, 1.5 s of a 10 fps video
    assert sample["video"].shape == (3, 4, 48, 48) and 0 <= sample["video"].min() <= sample["video"].max() <= 1
    # 2 s of 48 kHz audio -> 94 log-mel frames; the bursts at 0.25, 0.75, 1.25, 1.75 s show up there
    assert sample["audio"].shape == (1, 94, 80) and bool(sample["audio_mask"])
    energy = sample["audio"][0].exp().sum(dim=1)
    loud = (energy > energy.median() * 100).nonzero().flatten().tolist()
    burst_frames = {round(t * 48000 / 1024) for t in (0.25, 0.75, 1.25, 1.75)}
    assert all(any(abs(f - b) <= 1 for f in loud) for b in burst_frames)
    # the two narrations inside the window come first (nearest first), then the far one
    assert sample["text"].tolist() == [[VOCAB.unk_id, VOCAB.id("flour"), 0, 0, 0, 0],  # "add" is unknown
                                       [VOCAB.id("whisk"), VOCAB.id("eggs"), 0, 0, 0, 0],
                                       [VOCAB.id("bake"), VOCAB.id("oven"), 0, 0, 0, 0]]
    assert sample["text_mask"].tolist() == [True, True, True]


def test_training_windows_overlap_a_narration(video):
    builder = ClipBuilder(PROTOCOL, TOKENIZER, num_candidates=2, train=True)
    narrations = [Narration(4.0, 4.5, "stir")]
    starts = []
    for seed in range(12):
        sample = builder(str(video), narrations, generator=seeded_generator(seed))
        start = sample["meta"]["start"]
        starts.append(start)
        assert 2.0 < start < 4.5 and start <= 4.0  # overlaps [4.0, 4.5) and fits in the 6 s video
        assert sample["text"][0, 0] == VOCAB.id("stir") and sample["text_mask"].tolist() == [True, False]
    assert len(set(starts)) == 12


def test_window_inside_a_span_and_without_text(video):
    builder = ClipBuilder(PROTOCOL, None, num_candidates=2, train=True)
    for seed in range(8):
        start = builder.window(6.0, (), (1.0, 3.5), seeded_generator(seed))
        assert 1.0 <= start <= 1.5
    sample = builder(str(video), generator=seeded_generator(0))
    assert not sample["text_mask"].any() and sample["text"].abs().sum() == 0


def test_dataset_is_deterministic_and_skips_bad_files(video, tmp_path):
    bad = write_text_as_video(tmp_path / "bad.mp4")
    items = [ClipItem(str(video), (Narration(1.0, 2.0, "flour"),), source="t"), ClipItem(str(bad))]
    dataset = ClipDataset(items, ClipBuilder(PROTOCOL, TOKENIZER, num_candidates=2), seed=3)
    a, b = dataset[0], dataset[0]
    assert torch.equal(a["video"], b["video"]) and a["meta"]["start"] == b["meta"]["start"]
    dataset.set_epoch(1)
    assert dataset[0]["meta"]["start"] != a["meta"]["start"]
    skipped = dataset[1]
    assert isinstance(skipped, Skipped) and skipped.path == str(bad) and "not a media file" in skipped.reason
    batch = collate([a, skipped, b])
    assert batch["size"] == 2 and batch["video"].shape == (2, 3, 4, 48, 48)
    assert batch["text"].shape == (2, 2, 6) and batch["audio_mask"].tolist() == [True, True]
    assert batch["skipped"] == [(str(bad), skipped.reason)]
    assert collate([skipped]) == {"skipped": [(str(bad), skipped.reason)], "size": 0}


def test_loader_with_workers(video):
    items = [ClipItem(str(video), (Narration(1.0, 2.0, "eggs"),))] * 4
    dataset = ClipDataset(items, ClipBuilder(PROTOCOL, TOKENIZER, num_candidates=1), seed=0)
    loader = DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate)
    starts = [m["start"] for batch in loader for m in batch["meta"]]
    assert len(starts) == 4 and starts == [dataset[i]["meta"]["start"] for i in range(4)]


def test_video_without_audio_is_masked(tmp_path):
    silent = write_video(tmp_path / "silent.mp4", num_frames=30, fps=10, width=48, height=48, audio=False)
    sample = ClipBuilder(PROTOCOL, None, num_candidates=1, train=False)(str(silent), generator=torch.Generator())
    assert not bool(sample["audio_mask"])
    assert torch.allclose(sample["audio"], torch.full_like(sample["audio"], torch.log(torch.tensor(1e-6))))
    assert find_bursts(torch.zeros(10), 48000) == []
