"""The one atomic writer: whole files or nothing, one permission policy, for every kind of file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from violence_cli import atomic


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("kind", ["text", "bytes", "npy", "torch"])
def test_every_kind_lands_whole_with_the_umask_mode(tmp_path, kind) -> None:
    path = tmp_path / f"f.{kind}"
    if kind == "text":
        atomic.write_text(path, "héllo\n")
        assert path.read_text(encoding="utf-8") == "héllo\n"
    elif kind == "bytes":
        atomic.write_bytes(path, b"\x00\x01")
        assert path.read_bytes() == b"\x00\x01"
    elif kind == "npy":
        atomic.save_npy(path, np.arange(3, dtype=np.float32))
        assert np.load(path).tolist() == [0.0, 1.0, 2.0]
    else:
        atomic.write_with(path, lambda tmp: torch.save({"w": torch.ones(2)}, tmp))
        assert torch.load(path, weights_only=True)["w"].sum() == 2
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert os.listdir(tmp_path) == [path.name]


def test_a_failure_leaves_the_old_file_and_no_temporary(tmp_path) -> None:
    path = tmp_path / "x.npy"
    atomic.save_npy(path, np.zeros(2))
    with pytest.raises(RuntimeError):
        atomic.write_with(path, lambda tmp: (tmp.write_bytes(b"half"), (_ for _ in ()).throw(RuntimeError("boom"))))
    assert np.load(path).tolist() == [0.0, 0.0]
    assert os.listdir(tmp_path) == ["x.npy"]


def test_temporary_names_are_hidden_beside_the_target(tmp_path) -> None:
    seen = []
    atomic.write_with(tmp_path / "a.bin", lambda tmp: seen.append(tmp) or tmp.write_bytes(b"1"))
    assert seen[0].parent == tmp_path and seen[0].name.startswith(".a.bin.") and seen[0].name.endswith(".tmp")


def test_atomic_open_refuses_append(tmp_path) -> None:
    with pytest.raises(ValueError):
        with atomic.atomic_open(tmp_path / "a", "a"):
            pass


def test_the_kill_hook_is_off_by_default_and_parses_its_count() -> None:
    assert atomic._kill_hook(None) is None and atomic._kill_hook("") is None
    assert atomic._kill_hook("*/a.json") == ("*/a.json", 1)
    assert atomic._kill_hook("*/state.pt@3") == ("*/state.pt", 3)
    assert atomic._kill_hook("*@x") == ("*@x", 1)  # not a count: part of the glob


def test_the_kill_hook_dies_after_the_write_and_before_the_rename(tmp_path) -> None:
    """A child with the hook on: the first two writes land, the third matching one is whole in
    its temporary file and never renamed, and the process dies of SIGKILL, not an exception."""
    script = (
        "import sys; from violence_cli import atomic; d = sys.argv[1]\n"
        "atomic.write_text(d + '/other.txt', 'x')\n"
        "for i in range(3): atomic.write_text(d + '/f.txt', f'v{i}')\n"
        "print('survived')\n"
    )
    env = {**os.environ, atomic.KILL_ENV: "*/f.txt@3"}
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL and "survived" not in proc.stdout, proc.stderr
    assert (tmp_path / "f.txt").read_text() == "v1" and (tmp_path / "other.txt").read_text() == "x"
    (left,) = [p for p in tmp_path.iterdir() if p.name.endswith(atomic.TMP_SUFFIX)]
    assert left.name.startswith(".f.txt.") and left.read_text() == "v2"  # written whole, then killed

    assert atomic.remove_stale(tmp_path / "f.txt") == [left]
    assert sorted(os.listdir(tmp_path)) == ["f.txt", "other.txt"]


def test_remove_stale_takes_only_the_targets_temporaries(tmp_path) -> None:
    names = [".a.json.abcd1234.tmp", ".a.json.x.tmp", ".a.json.abcd1234.tmp.keep", ".b.json.abcd1234.tmp", "a.json"]
    for name in names:
        (tmp_path / name).write_text("")
    assert [p.name for p in atomic.remove_stale(tmp_path / "a.json")] == [".a.json.abcd1234.tmp"]
    assert sorted(os.listdir(tmp_path)) == sorted(names[1:])
    assert atomic.remove_stale(tmp_path / "absent" / "a.json") == []
