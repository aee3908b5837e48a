"""Shared fixtures: where the read-only test assets live; the CI gate for optional parts.

The assets (real media, the published MACIL-SD checkpoint, the XD-Violence annotations)
sit in ``../shared`` beside the checkout; ``$VIOLENCE_DETECT_SHARED`` overrides that.
Tests read them in place and never copy them into the repository.

A test that needs an optional component (Ray, Chromium, resampy, the trained I3D download)
calls :func:`missing` or :func:`require_module` when it is absent: a skip that says why on
a developer's machine, a failure under ``CI=true`` (.ci/run installs every one of them, so
an absent one there is a broken install, not a reason to test less).
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest
import torch

# The Ray clusters tests start (test_runner_ray, test_serve), set before anything imports ray
# (it reads them at import) and inherited by the servers and actors they start:
# - loopback only: Ray turns 127.0.0.1 into the machine's address and listened on every
#   interface (its GCS, raylet and workers on *:port); this flag, meant for laptops, keeps
#   the whole cluster on 127.0.0.1;
# - workers at the tests' own priority: Ray runs them at nice 15, so a busy machine starved
#   an actor (5 minutes importing torch at load 8; serve's job "still running after 300 s").
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_worker_niceness", "0")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VIOLENCE_DETECT_SHARED", REPO.parent / "shared")).resolve()


def in_ci() -> bool:
    """``CI`` is set to true (.ci/run sets ``CI=true``; so do most CI services)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(reason: str) -> NoReturn:
    """An optional component is absent: skip saying ``reason``, or under CI fail with it."""
    if in_ci():
        pytest.fail(f"CI=true: {reason}; .ci/run installs it, so its install is broken", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require_module(name: str, why: str) -> ModuleType:
    """``import name``, or :func:`missing` naming the module, the import error and ``why``."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(f"{name} cannot be imported ({exc}); {why}")


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


# A whole run (-n 2) peaks at about 1.1 GB in the temporary folder (measured 2026-12-02).
NEEDED_TMP_BYTES = 2 * 1024**3


def pytest_sessionstart(session: pytest.Session) -> None:
    """Stop at once, in one line, when the temporary folder's disk is nearly full: otherwise
    hundreds of tests error with ENOSPC in tmp_path (CI's run at ec81464 did)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    folder = tempfile.gettempdir()
    free = shutil.disk_usage(folder).free
    if free < NEEDED_TMP_BYTES:
        pytest.exit(
            f"{folder}: only {free / 1024**3:.1f} GB free; the tests need {NEEDED_TMP_BYTES / 1024**3:.0f} GB",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )


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
