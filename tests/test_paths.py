"""The output-path check every writer goes through (latentloop.paths)."""

from __future__ import annotations

import os

import pytest

from latentloop.errors import ConfigError, DataError
from latentloop.paths import check_output_dir, check_output_file, ensure_output_dir, ensure_output_file


def test_a_path_below_a_file_names_the_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError) as info:
        check_output_dir(tmp_path / "f" / "a" / "b")
    assert str(info.value) == f"cannot write to {tmp_path}/f/a/b: {tmp_path}/f is a file, not a folder"
    with pytest.raises(DataError, match="f: it is a file, not a folder$"):
        ensure_output_dir(tmp_path / "f")
    with pytest.raises(DataError, match=f"cannot write to {tmp_path}/f/p.png: {tmp_path}/f is a file"):
        check_output_file(tmp_path / "f" / "p.png")
    assert (tmp_path / "f").read_text() == "x"


def test_check_creates_nothing_and_ensure_creates_the_folder(tmp_path):
    assert check_output_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()
    assert ensure_output_dir(tmp_path / "a" / "b").is_dir()
    assert ensure_output_file(tmp_path / "c" / "p.png") == tmp_path / "c" / "p.png"
    assert (tmp_path / "c").is_dir() and not (tmp_path / "c" / "p.png").exists()


def test_what_hint_and_error_type(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match=r"^cannot write to the run folder .*/f/run: .*/f is a file, not a folder; "
                                          r"use out_dir$"):
        ensure_output_dir(tmp_path / "f" / "run", what="the run folder", hint="use out_dir", error=ConfigError)
    with pytest.raises(DataError, match="it is a folder, not a file"):
        check_output_file(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(DataError, match="locked is not writable"):
            check_output_dir(locked / "out")
    finally:
        locked.chmod(0o700)
