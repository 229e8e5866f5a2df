"""Atomic writes: all or nothing, permissions of a plain open (umask honoured), no temporary left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tadcli.io.atomic import atomic_output, write_text_atomic


@pytest.fixture()
def umask_027():
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def test_a_new_file_gets_0666_less_the_umask_and_a_replaced_one_keeps_its_mode(tmp_path: Path, umask_027) -> None:
    target = tmp_path / "deep" / "events.csv"
    write_text_atomic(target, "video,start\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    os.chmod(target, 0o600)
    write_text_atomic(target, "video,start,end\n")
    assert target.read_text() == "video,start,end\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "timeline.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="renderer failed"):
        with atomic_output(target) as handle:
            handle.write(b"half of a new file")
            raise RuntimeError("renderer failed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["timeline.png"]


def test_a_name_at_the_file_system_limit_is_written(tmp_path: Path) -> None:
    """The temporary file's name must fit too: it keeps only the start of the destination's name."""
    target = tmp_path / ("e" * 250 + ".json")
    write_text_atomic(target, "{}\n")
    assert target.read_text() == "{}\n" and [p.name for p in tmp_path.iterdir()] == [target.name]


def test_a_symlink_is_followed_and_a_full_device_is_one_line_with_exit_code_1(tmp_path: Path) -> None:
    from tadcli.errors import DiskFullError

    target, link = tmp_path / "real.txt", tmp_path / "link.txt"
    target.write_text("old\n")
    link.symlink_to(target.name)
    write_text_atomic(link, "new\n")
    assert link.is_symlink() and target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.txt", "real.txt"]

    with pytest.raises(DiskFullError) as raised:
        write_text_atomic("/dev/full", "x" * 10_000)
    assert str(raised.value).startswith("/dev/full: no space left on device") and raised.value.exit_code == 1
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)  # written through, never replaced
