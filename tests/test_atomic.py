"""The one atomic writer: whole files or nothing, one permission policy, for every kind of file."""

from __future__ import annotations

import os

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
