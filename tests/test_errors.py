"""Errors survive being re-raised from a DataLoader worker, which rebuilds them from their message."""

import pytest
from torch.utils.data import DataLoader, Dataset

from mmv.errors import DataError


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
