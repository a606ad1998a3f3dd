"""The MMV module: modality subsets, embedding graphs, presets, input protocol checks, SyncBN."""

import pytest
import torch
from torch import nn

from mmv.models import InputProtocol, MMVConfig, create_model, get_preset, list_models
from mmv.models.config import HeadConfig
from mmv.models.init import init_like_release
from mmv.models.mmv import MMV

VIDEO = torch.rand(2, 3, 8, 64, 64)
AUDIO = torch.randn(2, 1, 48, 80)
TEXT = torch.randint(0, 10000, (2, 16))


def tiny(**overrides) -> MMV:
    torch.manual_seed(0)
    return create_model("mmv_tiny_tsm", **overrides)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name,total", [("mmv_s3d", 57_509_968), ("mmv_tsm_resnet50", 72_388_608),
                                        ("mmv_tsm_resnet50x2", 143_828_544)])
def test_released_presets_have_the_release_parameter_totals(name, total):
    assert n_params(create_model(name, init="torch")) == total


def test_registry_and_protocols():
    assert {"mmv_s3d", "mmv_tsm_resnet50", "mmv_tsm_resnet50x2", "mmv_tiny_tsm", "mmv_tiny_s3d"} <= set(
        list_models())
    released = get_preset("mmv_s3d").protocol()
    assert (released.num_frames, released.fps, released.crop_size, released.eval_crop_size) == (32, 10.0, 200, 224)
    assert released.value_range == (0.0, 1.0) and released.max_words == 16
    assert released.audio_samples == 153_600 and released.audio.num_mel_bins == 80
    assert create_model("mmv_tiny_s3d").preset == "mmv_tiny_s3d"
    with pytest.raises(KeyError, match="unknown model 'nope'; available: "):
        create_model("nope")


def test_any_subset_of_modalities():
    model = tiny().eval()
    with torch.no_grad():
        assert set(model(video=VIDEO)) == {"video_repr", "video_va", "video_vat"}
        assert set(model(audio=AUDIO)) == {"audio_repr", "audio_va", "audio_vat"}
        assert set(model(text=TEXT)) == {"text_repr", "text_vat", "text_at"}
        both = model(video=VIDEO, text=TEXT)
        alone = model(video=VIDEO)
    assert torch.equal(both["video_vat"], alone["video_vat"])
    with pytest.raises(ValueError, match="at least one"):
        model()


def test_fac_graph_wiring():
    model = tiny().eval()
    with torch.no_grad():
        out = model(video=VIDEO, audio=AUDIO)
        vis = model.heads["vis_embd"]
        assert torch.allclose(out["video_vat"], vis(torch.relu(out["video_va"])))
        # audio reaches S_vat at eval through the same vis_embd head (and its BN statistics)
        assert torch.allclose(out["audio_vat"], vis(torch.relu(out["audio_va"])))
    assert model.heads["vis_embd"].in_dim == model.config.va_dim
    model.train()
    out = model(video=VIDEO, audio=AUDIO)
    assert "audio_vat" not in out and out["audio_at"].shape == (2, model.config.at_dim)


def test_fac_use_audio_text_routes_audio_through_vis_embd_in_training():
    model = tiny(use_audio_text=True).train()
    assert "audio_vat" in model(audio=AUDIO)


def test_fac_variants():
    plain = tiny(graph="fac").eval()
    with torch.no_grad():
        out = plain(video=VIDEO)
        assert torch.allclose(out["video_vat"], plain.heads["vis_embd"](out["video_va"]))
    bnrelu = tiny(graph="fac_bnrelu").eval()
    assert set(bnrelu.fine_bn) == {"video", "audio"}
    with torch.no_grad():
        out = bnrelu(video=VIDEO)
        expected = bnrelu.heads["vis_embd"](torch.relu(bnrelu.fine_bn["video"](out["video_va"])))
    assert torch.allclose(out["video_vat"], expected)


def test_disjoint_graph():
    model = tiny(graph="disjoint").eval()
    assert model.heads["vis_embd"].in_dim == model.video.out_dim
    with torch.no_grad():
        out = model(video=VIDEO, audio=AUDIO, text=TEXT)
        assert torch.allclose(out["video_vat"], model.heads["vis_embd"](out["video_repr"]))
    assert "audio_vat" not in out and "audio_at" in out and "text_at" in out


def test_shared_graph_has_one_head_per_modality():
    heads = {name: HeadConfig("linear", False) for name in MMVConfig().heads}
    model = tiny(graph="shared", va_dim=64, vat_dim=64, at_dim=64, heads=heads).eval()
    assert set(model.heads) == {"vis_embd", "audio_embd", "txt_embd"}
    assert model.head("vid2audio_embd") is model.heads["vis_embd"]
    with torch.no_grad():
        out = model(video=VIDEO, audio=AUDIO, text=TEXT)
    assert torch.equal(out["video_va"], out["video_vat"]) and torch.equal(out["audio_va"], out["audio_vat"])
    with pytest.raises(ValueError, match="one head per modality"):
        tiny(graph="shared")  # the tiny preset's heads differ between the pairs


def test_config_validation():
    with pytest.raises(ValueError, match="unknown embedding graph"):
        MMVConfig(graph="triangle")
    with pytest.raises(ValueError, match="missing"):
        MMVConfig(heads={"vis_embd": HeadConfig()})
    config = get_preset("mmv_tiny_tsm").config()
    assert MMVConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown field"):
        MMVConfig.from_dict({**config.to_dict(), "dropout": 0.1})


def test_input_protocol_is_enforced():
    model = tiny().eval()
    with pytest.raises(TypeError, match="divide uint8 frames by 255"):
        model(video=(VIDEO * 255).to(torch.uint8))
    with pytest.raises(ValueError, match=r"expect \[0.0, 1.0\]"):
        model(video=VIDEO * 255)
    with pytest.raises(ValueError, match=r"\[B, 3, T, H, W\]"):
        model(video=VIDEO.transpose(1, 2))
    with pytest.raises(ValueError, match="log-mel spectrogram"):
        model(audio=torch.randn(2, 1, 48, 40))
    with pytest.raises(ValueError, match=r"\[B, N\] or \[B, K, N\]"):
        model(text=TEXT[0])
    with torch.no_grad():  # a [B, frames, mel] spectrogram gets its channel axis
        assert torch.allclose(model(audio=AUDIO[:, 0])["audio_va"], model(audio=AUDIO)["audio_va"])
    lenient = MMV(model.config, InputProtocol(), check_inputs=False).eval()
    with torch.no_grad():
        lenient(video=VIDEO * 255)


def test_k_narrations_per_clip():
    model = tiny().eval()
    words = torch.randint(0, 10000, (2, 5, 16))
    with torch.no_grad():
        out = model(text=words)
        single = model(text=words[:, 3])
    assert out["text_vat"].shape == (2, 5, 64)
    assert torch.allclose(out["text_vat"][:, 3], single["text_vat"], atol=1e-6)


def test_every_bn_converts_to_sync_batchnorm():
    model = tiny(graph="fac_bnrelu")
    n_bn = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert sum(isinstance(m, nn.SyncBatchNorm) for m in synced.modules()) == n_bn > 20
    assert not any(type(m) in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d) for m in synced.modules())


def test_release_initialisation():
    torch.manual_seed(0)
    model = init_like_release(create_model("mmv_tsm_resnet50", init="torch"))
    conv = model.video.groups[2][0].conv1.weight  # 3x3, 256 in: fan_in 2304
    assert conv.std().item() == pytest.approx((1 / 2304) ** 0.5, rel=0.02)
    assert conv.abs().max().item() <= 2 * (1 / 2304) ** 0.5 / 0.8796 + 1e-6
    linear = model.heads["txt_embd"].proj
    assert linear.weight.std().item() == pytest.approx(0.88 / 2048 ** 0.5, rel=0.02)
    assert linear.bias.abs().sum() == 0
    bn = model.video.final_bn
    assert (bn.weight == 1).all() and (bn.bias == 0).all()


def test_word_vectors_set_the_text_table():
    vectors = torch.randn(37, 50)
    model = create_model("mmv_tiny_s3d", word_vectors=vectors)
    assert model.config.text.vocab_size == 37 and torch.equal(model.text.embed.weight, vectors)
    with pytest.raises(ValueError, match="init must be"):
        create_model("mmv_tiny_s3d", init="xavier")


def test_bf16_autocast_runs():
    model = tiny().eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(video=VIDEO, audio=AUDIO, text=TEXT)
    with torch.no_grad():
        full = model(video=VIDEO)["video_vat"]
    assert out["video_vat"].dtype == torch.bfloat16
    assert (out["video_vat"].float() - full).abs().max() < 0.05 * full.abs().max()
