"""`replace_file`: a single file replaced atomically, keeping its permissions, leaving nothing behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from workshop.files import replace_file


def test_a_new_file_is_readable_by_the_team(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "baseline.json"
    replace_file(target, b"{}\n")
    assert target.read_bytes() == b"{}\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["baseline.json"]


def test_a_replaced_file_keeps_its_permissions(tmp_path: Path) -> None:
    target = tmp_path / "baseline.json"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    replace_file(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_a_failed_replace_leaves_the_old_file_and_no_staging_file(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.mkdir()  # a folder where the file should go: the rename fails
    with pytest.raises(OSError):
        replace_file(target, b"<p>new</p>")
    assert target.is_dir()
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
