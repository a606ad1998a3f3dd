"""On a small HowTo100M-format dataset where picture, sound and narration agree, training learns:
the loss falls and text->video retrieval on the training videos beats chance by far."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import mmv
from mmv.data.clips import ClipBuilder
from mmv.data.text import Tokenizer, Vocabulary
from mmv.train import train
from tests.train.fixtures import build_dataset, looks, tiny_config

VIDEOS = 8


def retrieval(model: mmv.MMV, videos_dir, n: int) -> dict[str, float]:
    """R@1 of text->video and audio->video over the ``n`` training videos (their first eval window)."""
    vocab = Vocabulary(model.vocab)
    tokenizer = Tokenizer(vocab, model.protocol.max_words)
    builder = ClipBuilder(model.protocol, tokenizer, num_candidates=1, train=False)
    clips = [builder(str(videos_dir / f"vid{i}.mp4"), (), None, generator=torch.Generator()) for i in range(n)]
    video = torch.stack([c["video"] for c in clips])
    audio = torch.stack([c["audio"] for c in clips])
    text = tokenizer.encode_batch([look.caption for look in looks(n)])
    model.eval()
    with torch.no_grad():
        out = model(video=video, audio=audio, text=text)
    target = torch.arange(n)
    t2v = F.normalize(out["text_vat"], dim=-1) @ F.normalize(out["video_vat"], dim=-1).T
    a2v = F.normalize(out["audio_va"], dim=-1) @ F.normalize(out["video_va"], dim=-1).T
    return {"text_video_r1": (t2v.argmax(1) == target).float().mean().item(),
            "audio_video_r1": (a2v.argmax(1) == target).float().mean().item()}


def _learn(tmp_path, steps: int, **changes):
    spec = build_dataset(tmp_path / "data", n=VIDEOS)
    config = tiny_config(spec, tmp_path / "run", steps=steps, batch_size=VIDEOS, warmup_steps=steps // 10,
                         checkpoint_every=10 * steps, log_every=1, **changes)
    result = train(config)
    assert result.status == "done"
    losses = [r["loss"] for r in result.history]
    return losses, retrieval(mmv.load_model(result.weights_dir), tmp_path / "data" / "videos", VIDEOS)


def test_loss_falls_and_text_retrieves_its_video(tmp_path):
    losses, scores = _learn(tmp_path, steps=40, color_augment=False)
    first, last = losses[0], sum(losses[-10:]) / 10
    assert last < 0.5 * first, f"loss {first:.3f} -> {last:.3f}"
    # chance is 1/8 = 0.125
    assert scores["text_video_r1"] >= 0.5, scores


@pytest.mark.slow
def test_learning_with_the_full_augmentation(tmp_path):
    # colour jitter (hue +-0.2) makes colours ambiguous; patterns and tones still identify each video
    losses, scores = _learn(tmp_path, steps=200)
    assert sum(losses[-20:]) / 20 < 0.3 * losses[0]
    assert scores["text_video_r1"] >= 0.5 and scores["audio_video_r1"] >= 0.5, scores
