"""Data errors are one line, even when several files are wrong (a CLI prints them as its one-line exit)."""

from __future__ import annotations

import warnings

import pytest

from s4lite import data


def test_several_corrupted_files_give_one_line(tmp_path):
    local = tmp_path / "d"
    local.mkdir()
    names = [data.MNIST_FILES[k][0] for k in ("test_images", "test_labels")]
    for name in names:
        (local / name).write_bytes(b"not mnist")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the per-file md5 warnings
        with pytest.raises(ValueError) as info:
            data.load_mnist("test", local, download=False)
    msg = str(info.value)
    assert msg.startswith("corrupted MNIST file(s): ") and "download=False" in msg
    assert all(name in msg for name in names)
    assert "\n" not in msg, msg


def test_missing_data_advice_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError) as info:
        data.load_mnist("train", tmp_path / "empty", download=False)
    assert "\n" not in str(info.value) and "--data-dir" in str(info.value)
