"""bot4.outdir: output checks, run folder names, staged folders and files (renamed when complete,
removed on error or interrupt)."""

from __future__ import annotations

import pytest

from bot4.errors import InputError
from bot4.outdir import check_new_dir, check_new_file, check_out_root, new_run_dir, staged_dir, staged_file


def test_run_folders_never_reuse_a_name(tmp_path):
    a = new_run_dir(tmp_path, "demo")
    assert a.parent == tmp_path and a.name.endswith("-demo") and not a.exists()
    (tmp_path / f".{a.name}.partial-12345").mkdir()     # another process is writing it
    b = new_run_dir(tmp_path, "demo")
    assert b.name == a.name + "-2"
    b.mkdir()
    assert new_run_dir(tmp_path, "demo").name == a.name + "-3"


def test_staged_dir_appears_only_when_complete(tmp_path):
    final = tmp_path / "runs" / "r1"
    with staged_dir(final) as stage:
        (stage / "a.txt").write_text("a")
        assert not final.exists() and stage.parent == final.parent
    assert [p.name for p in final.iterdir()] == ["a.txt"]
    assert [p.name for p in final.parent.iterdir()] == ["r1"]


@pytest.mark.parametrize("error", [KeyboardInterrupt, ValueError])
def test_staged_dir_is_removed_on_error(tmp_path, error):
    final = tmp_path / "r"
    with pytest.raises(error):
        with staged_dir(final) as stage:
            (stage / "half.bin").write_bytes(b"x")
            raise error()
    assert list(tmp_path.iterdir()) == []


def test_staged_dir_takes_an_empty_folder_but_never_one_with_files(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with staged_dir(empty) as stage:
        (stage / "f").write_text("1")
    assert (empty / "f").read_text() == "1"
    with pytest.raises(InputError, match="already holds files"):
        with staged_dir(empty):
            pass
    assert [p.name for p in empty.iterdir()] == ["f"]


def test_staged_file_replaces_only_when_complete(tmp_path):
    final = tmp_path / "f.npz"
    final.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with staged_file(final) as tmp:
            assert tmp.suffix == ".npz" and tmp.parent == tmp_path
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert final.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.npz"]
    with staged_file(final) as tmp:
        tmp.write_bytes(b"new")
    assert final.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["f.npz"]


def test_checks_name_the_parameter_and_the_fix(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = [
        (lambda: check_out_root(afile), "is a file"),
        (lambda: check_out_root(tmp_path / "no" / "root"), "does not exist"),
        (lambda: check_new_dir(afile), "is a file"),
        (lambda: check_new_dir(tmp_path), "already holds files"),
        (lambda: check_new_dir(tmp_path / "no" / "d"), "does not exist"),
        (lambda: check_new_file(tmp_path, (".npz",)), "does not end in .npz"),
        (lambda: check_new_file(tmp_path / "d.npz", (".npz",)) if (tmp_path / "d.npz").mkdir() is None else None,
         "is a folder"),
        (lambda: check_new_file(tmp_path / "no" / "f.npz", (".npz",)), "does not exist"),
    ]
    for call, needle in cases:
        with pytest.raises(InputError, match=needle) as exc:
            call()
        assert exc.value.fix or exc.value.suggest
    assert check_out_root(tmp_path / "new") == tmp_path / "new"        # created later, parent exists
    assert check_new_file(afile, ()) == afile                            # replaced when complete
