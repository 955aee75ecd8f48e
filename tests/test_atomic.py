"""dclip.runtime.atomic.atomic_write: complete files only, and the umask's mode (not mkstemp's 0600)."""
import os
import stat

import pytest

from dclip.runtime.atomic import atomic_write, new_file_mode


@pytest.fixture
def umask():
    """Set a umask for one test and restore the previous one after it."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_mask(mask):
        os.umask(mask)

    yield set_mask
    os.umask(saved)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600), (0o027, 0o640)])
def test_written_file_has_the_umask_mode(tmp_path, umask, mask, expected):
    umask(mask)
    path = atomic_write(tmp_path / "sub" / "table.csv", lambda tmp: tmp.write_text("a,b\n"))
    assert path.read_text() == "a,b\n"
    assert stat.S_IMODE(path.stat().st_mode) == expected
    # the same mode a plain open() gives a new file under this umask
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert stat.S_IMODE(plain.stat().st_mode) == expected == new_file_mode()


def test_overwrite_replaces_content_and_mode(tmp_path, umask):
    target = tmp_path / "w.bin"
    target.write_bytes(b"old")
    os.chmod(target, 0o600)
    umask(0o022)
    atomic_write(target, lambda tmp: tmp.write_bytes(b"new"))
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_failed_write_leaves_no_file_and_no_temporary(tmp_path):
    def boom(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(tmp_path / "out.json", boom)
    assert list(tmp_path.iterdir()) == []
