import json
import subprocess
import sys

import torch

from mmv import create_model, save_model
from mmv.cli import main


def test_models_lists_presets_with_protocols(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "mmv_s3d" in out and "released" in out and "32 frames @ 10 fps, crop 200/224" in out
    assert "mmv_tiny_tsm" in out and "8 frames @ 8 fps, crop 64/64" in out


def test_info_describes_a_weights_folder(tmp_path, capsys):
    torch.manual_seed(0)
    model = create_model("mmv_tiny_tsm")
    save_model(model, tmp_path / "w")
    assert main(["info", str(tmp_path / "w")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["preset"] == "mmv_tiny_tsm"
    assert info["parameters"] == sum(p.numel() for p in model.parameters())
    assert info["protocol"]["num_frames"] == 8 and info["model"]["graph"] == "fac_relu"


def test_info_on_a_broken_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["info", str(tmp_path)]) == 2
    assert "missing config.json" in capsys.readouterr().err


def test_entry_point_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "mmv.cli", "models"], capture_output=True, text=True,
                            check=True)
    assert "mmv_tsm_resnet50x2" in result.stdout
