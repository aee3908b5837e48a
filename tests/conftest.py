"""Shared fixtures: where the read-only test assets live.

The assets (real media, the published MACIL-SD checkpoint, the XD-Violence annotations)
sit in ``../shared`` beside the checkout; ``$VIOLENCE_DETECT_SHARED`` overrides that.
Tests read them in place and never copy them into the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VIOLENCE_DETECT_SHARED", REPO.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"test assets not found at {SHARED} (set VIOLENCE_DETECT_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def media_dir(shared_dir: Path) -> Path:
    return shared_dir / "media"


@pytest.fixture(scope="session")
def macil_checkpoint(shared_dir: Path) -> Path:
    return shared_dir / "weights" / "macil_sd.pkl"


@pytest.fixture(scope="session")
def xd_annotations(shared_dir: Path) -> Path:
    return shared_dir / "xd" / "annotations.txt"


@pytest.fixture(autouse=True)
def _isolated_weights_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may read or fill the user's real weights cache."""
    cache = tmp_path_factory.getbasetemp() / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("VIOLENCE_DETECT_WEIGHTS", raising=False)


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread per xdist worker: two workers x two threads on two cores made the
    small-tensor tests (training, eval) about ten times slower than one thread each."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules of small training steps, also outside xdist: they run faster on one
    thread than on two; the previous setting is restored for the rest of the session."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
