"""Errors survive being re-raised from a DataLoader worker, which rebuilds them from their message."""

import pytest
from torch.utils.data import DataLoader, Dataset

from mmv.cli import main
from mmv.errors import DataError, UnknownNameError
from mmv.models import create_model, get_preset
from mmv.weights import save_model


def test_data_error_names_path_and_reason_and_rebuilds_from_its_message():
    err = DataError("/v/a.mp4", "no video stream")
    assert str(err) == "/v/a.mp4: no video stream" and (err.path, err.reason) == ("/v/a.mp4", "no video stream")
    again = DataError(str(err))
    assert str(again) == str(err) and again.reason == str(err) and again.path == ""


class _Broken(Dataset):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int):
        raise DataError("/v/b.mp4", "moov atom not found")


def test_a_worker_raised_data_error_stays_a_data_error():
    loader = DataLoader(_Broken(), num_workers=1)
    with pytest.raises(DataError, match="/v/b.mp4: moov atom not found"):
        next(iter(loader))


def test_an_unknown_name_is_a_key_error_and_a_plain_message_for_the_cli(capsys, tmp_path):
    with pytest.raises(UnknownNameError) as caught:
        get_preset("nope")
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, ValueError)
    assert str(caught.value).startswith("unknown model 'nope'; available: ")  # not KeyError's quoted repr
    weights = save_model(create_model("mmv_tiny_tsm"), tmp_path / "w")
    assert main(["eval", "linear", str(weights), "ucf102", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("mmv: error: no benchmark 'ucf102'; known: [")
