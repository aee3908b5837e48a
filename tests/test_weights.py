"""The weights registry: manifest, resolution order, verified downloads, safe loading, CLI.

Downloads are served by an HTTP server on 127.0.0.1 that the tests start; no test reaches
the internet. The registry is swapped for entries that point at that server and carry
the same names as the real ones (so the CLI's name checking applies unchanged).
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import os
import pickle
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require_module
from typer.testing import CliRunner

from violence_cli import weights
from violence_cli.cli import app
from violence_cli.errors import WeightsError

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


# --- a local HTTP server and a registry pointing at it --------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802  (http.server's name)
        type(self).requests.append(self.path)
        super().do_GET()

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass


def _payload() -> bytes:
    """A small but real state dict (about 1.2 MB: several download chunks)."""
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"payload-{os.getpid()}.pt"
    generator = torch.Generator().manual_seed(0)
    torch.save({"fc.weight": torch.randn(300, 1000, generator=generator), "fc.bias": torch.zeros(300)}, path)
    data = path.read_bytes()
    path.unlink()
    return data


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("served")
    good = _payload()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF  # same size, one byte flipped
    for name in ("macil_sd.pkl", "rgb_imagenet.pt", "vggish-abc.pth"):
        (root / name).write_bytes(good)
    (root / "pca.pth").write_bytes(bytes(bad))
    (root / "mirror").mkdir()
    (root / "mirror" / "macil_sd.pkl").write_bytes(good)

    handler = type("Handler", (_Handler,), {"requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a, **k: handler(*a, directory=str(root), **k))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield {"base": base, "good": good, "handler": handler, "root": root}
    httpd.shutdown()
    httpd.server_close()


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.fixture
def registry(server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, weights.WeightsEntry]:
    """Entries with the real names, each using one kind of integrity data, served locally."""
    good, base = server["good"], server["base"]
    sha = hashlib.sha256(good).hexdigest()

    def entry(name: str, filename: str, *, size=None, sha256=None, prefix=None, blob=None) -> weights.WeightsEntry:
        return weights.WeightsEntry(
            name, filename, f"{base}/{filename}", size, sha256, prefix, blob, "test server", "MIT", {}
        )

    entries = {
        "macil_sd": entry("macil_sd", "macil_sd.pkl", size=len(good), sha256=sha),
        "i3d_rgb_imagenet": entry("i3d_rgb_imagenet", "rgb_imagenet.pt", blob=_git_blob_sha1(good)),
        "vggish": entry("vggish", "vggish-abc.pth", prefix=sha[:8]),
        "vggish_pca": entry("vggish_pca", "pca.pth", sha256=sha),  # served corrupted
    }
    monkeypatch.setattr(weights.manifest, "_registry", lambda: entries)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(weights.WEIGHTS_ENV, raising=False)
    monkeypatch.delenv(weights.WEIGHTS_URL_ENV, raising=False)
    server["handler"].requests.clear()
    return entries


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*.tmp")) if folder.exists() else []


# --- the manifest ---------------------------------------------------------------------------


def test_manifest_lists_the_five_files_with_integrity_data() -> None:
    entries = {e.name: e for e in weights.available_weights()}
    assert list(entries) == ["macil_sd", "hypervd", "i3d_rgb_imagenet", "vggish", "vggish_pca"]
    for e in entries.values():
        # HyperVD publishes a generic ckpt/pretrained.pkl: kept as hypervd.pkl, beside the others
        assert e.url.startswith("https://") and e.url.endswith("pretrained.pkl" if e.name == "hypervd" else e.filename)
        assert e.license and e.source and e.metadata
    assert entries["macil_sd"].metadata["reported_ap"] == 83.40
    assert entries["i3d_rgb_imagenet"].git_blob_sha1 == "73a4fd1d87eb3dbd97f33a9779fa1caa3d28111a"
    assert "05783d11f9632b25fe3d50395a9c9bb51f848d6d" in entries["i3d_rgb_imagenet"].url
    for name in ("vggish", "vggish_pca"):  # torchvggish puts the sha256 prefix in the file name
        assert entries[name].sha256_prefix and entries[name].sha256_prefix in entries[name].filename


def test_manifest_matches_the_published_checkpoint(macil_checkpoint: Path) -> None:
    entry = weights.get_entry("macil_sd")
    assert weights.integrity_problem(macil_checkpoint, entry) is None
    info = weights.describe_weights(macil_checkpoint, "macil_sd")
    assert info["verified"] and info["sha256"] == entry.sha256


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(WeightsError, match="macil_sd"):
        weights.get_entry("resnet")


def test_manifest_is_inside_the_wheel_and_found_there(tmp_path: Path) -> None:
    builders = require_module("hatchling.builders.wheel", "hatchling builds the wheel (the dev extra)")
    wheel = Path(next(iter(builders.WheelBuilder(str(REPO)).build(directory=str(tmp_path), versions=["standard"]))))
    with zipfile.ZipFile(wheel) as zf:
        packaged = json.loads(zf.read("violence_cli/weights_manifest.json"))
        zf.extractall(tmp_path / "site")
    assert packaged == json.loads((REPO / "weights" / "manifest.json").read_text())
    # An installed copy (no checkout around it) reads the packaged manifest.
    code = "from violence_cli import weights as w; print(w.manifest_text()[1]); print(len(w.available_weights()))"
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    where, count = out.stdout.split()
    assert Path(where).is_relative_to(tmp_path / "site") and count == "5"


# --- integrity ------------------------------------------------------------------------------


def test_git_blob_sha1_equals_git_hash_object(tmp_path: Path) -> None:
    git = shutil.which("git")
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(5000))
    expected = (
        subprocess.run([git, "hash-object", str(path)], capture_output=True, text=True, check=True).stdout.strip()
        if git
        else _git_blob_sha1(path.read_bytes())
    )
    assert weights.file_digest(path).git_blob_sha1 == expected
    assert weights.file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name,kind", [("macil_sd", "sha256"), ("i3d_rgb_imagenet", "git blob"), ("vggish", "sha256")])
def test_each_kind_of_integrity_data_rejects_a_changed_file(registry, server, tmp_path, name, kind) -> None:
    path = tmp_path / "f"
    path.write_bytes(server["good"])
    assert weights.integrity_problem(path, registry[name]) is None
    changed = bytearray(server["good"])
    changed[0] ^= 1
    path.write_bytes(bytes(changed))
    os.utime(path, ns=(1, 1))  # a new mtime: no stale digest may be reused
    problem = weights.integrity_problem(path, registry[name])
    assert problem is not None and kind in problem


# --- resolution order and downloads ---------------------------------------------------------


def test_download_verifies_renames_and_reports_progress(registry, server) -> None:
    calls: list[tuple[int, int | None]] = []
    path = weights.resolve_weights("macil_sd", progress=lambda done, total: calls.append((done, total)))
    assert path == weights.cache_dir() / "macil_sd.pkl"
    assert path.read_bytes() == server["good"]
    assert calls[0][0] == 0 and calls[-1] == (len(server["good"]), len(server["good"]))
    assert len(calls) > 2 and _leftovers(path.parent) == []
    sd = weights.load_state_dict(path)
    assert set(sd) == {"fc.weight", "fc.bias"}
    # Now cached and verified: no second request.
    assert weights.resolve_weights("macil_sd") == path
    assert server["handler"].requests == ["/macil_sd.pkl"]


@pytest.mark.parametrize("name", ["i3d_rgb_imagenet", "vggish"])
def test_download_with_git_blob_or_sha256_prefix(registry, server, name) -> None:
    path = weights.resolve_weights(name)
    assert path.read_bytes() == server["good"]


def test_corrupted_download_is_deleted_and_fails_clearly(registry) -> None:
    with pytest.raises(WeightsError, match=r"pca\.pth fails verification \(sha256 .*expected") as err:
        weights.resolve_weights("vggish_pca")
    assert "127.0.0.1" in err.value.message
    cache = weights.cache_dir()
    assert not (cache / "pca.pth").exists() and _leftovers(cache) == []


def test_git_blob_mismatch_on_download(registry, server, monkeypatch) -> None:
    entry = dataclasses.replace(registry["i3d_rgb_imagenet"], url=f"{server['base']}/pca.pth")
    monkeypatch.setitem(registry, "i3d_rgb_imagenet", entry)
    with pytest.raises(WeightsError, match="git blob SHA-1"):
        weights.download_weights("i3d_rgb_imagenet")
    assert list(weights.cache_dir().iterdir()) == []


def test_http_error_and_unreachable_server_leave_nothing(registry, server, monkeypatch) -> None:
    monkeypatch.setitem(registry, "vggish", dataclasses.replace(registry["vggish"], url=f"{server['base']}/nope.pth"))
    with pytest.raises(WeightsError, match="HTTP 404") as err:
        weights.resolve_weights("vggish")
    assert "violence-detect weights download" in err.value.hint
    closed = dataclasses.replace(registry["vggish"], url="http://127.0.0.1:9/vggish-abc.pth")  # discard port
    monkeypatch.setitem(registry, "vggish", closed)
    with pytest.raises(WeightsError, match="download failed"):
        weights.resolve_weights("vggish")
    assert list(weights.cache_dir().iterdir()) == []


def test_cached_file_that_fails_verification_is_downloaded_again(registry, server) -> None:
    cache = weights.cache_dir()
    cache.mkdir(parents=True)
    (cache / "macil_sd.pkl").write_bytes(b"truncated")
    with pytest.raises(WeightsError, match="fail verification"):
        weights.resolve_weights("macil_sd", download=False)
    path = weights.resolve_weights("macil_sd")
    assert path.read_bytes() == server["good"]
    assert server["handler"].requests == ["/macil_sd.pkl"] and _leftovers(cache) == []


def test_resolution_order(registry, tmp_path, monkeypatch) -> None:
    folders = {k: tmp_path / k for k in ("explicit", "weights_dir", "env")}
    for folder in folders.values():
        folder.mkdir()
        (folder / "macil_sd.pkl").write_bytes(folder.name.encode())  # not the registry's data: used as is
    cache = weights.cache_dir()
    cache.mkdir(parents=True)
    (cache / "macil_sd.pkl").write_bytes(b"cache")
    monkeypatch.setenv(weights.WEIGHTS_ENV, str(folders["env"]))
    explicit = folders["explicit"] / "macil_sd.pkl"
    wd = folders["weights_dir"]
    assert weights.resolve_weights("macil_sd", explicit, weights_dir=wd, download=False) == explicit
    assert weights.resolve_weights("macil_sd", weights_dir=wd, download=False) == wd / "macil_sd.pkl"
    assert weights.resolve_weights("macil_sd", download=False) == folders["env"] / "macil_sd.pkl"
    monkeypatch.delenv(weights.WEIGHTS_ENV)
    with pytest.raises(WeightsError, match="fail verification"):  # the cache is checked, folders are not
        weights.resolve_weights("macil_sd", download=False)
    with pytest.raises(WeightsError, match="not found"):
        weights.resolve_weights("macil_sd", tmp_path / "missing.pkl")
    with pytest.raises(WeightsError, match="not a folder"):
        weights.resolve_weights("macil_sd", weights_dir=tmp_path / "nowhere")


def test_missing_without_download_names_file_url_command_and_env(registry) -> None:
    with pytest.raises(WeightsError) as err:
        weights.resolve_weights("vggish", download=False)
    message = err.value.message
    for part in ("vggish-abc.pth", registry["vggish"].url, "weights download vggish", "$VIOLENCE_DETECT_WEIGHTS"):
        assert part in message


def test_mirror_url_replaces_the_public_address(registry, server, monkeypatch) -> None:
    monkeypatch.setenv(weights.WEIGHTS_URL_ENV, f"{server['base']}/mirror/")
    path = weights.resolve_weights("macil_sd")
    assert path.read_bytes() == server["good"]
    assert server["handler"].requests == ["/mirror/macil_sd.pkl"]


# --- safe loading ---------------------------------------------------------------------------


class _Payload:
    """Pickles to a call that writes a marker file: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def test_a_checkpoint_cannot_run_code(tmp_path: Path) -> None:
    # The payload is live: plain pickle runs it.
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps({"w": _Payload(proof)}))
    assert proof.exists()

    marker = tmp_path / "marker"
    zipped, raw = tmp_path / "evil.pt", tmp_path / "evil.pkl"
    torch.save({"w": _Payload(marker)}, zipped)
    raw.write_bytes(pickle.dumps({"w": _Payload(marker)}, protocol=2))
    for path in (zipped, raw):
        with pytest.raises(WeightsError, match="refused to load") as err:
            weights.load_state_dict(path)
        assert str(path) in err.value.message
    assert not marker.exists()


def test_load_state_dict_shapes_of_files(tmp_path: Path) -> None:
    wrapped = tmp_path / "dp.pt"
    torch.save({"module.a.weight": torch.ones(2, 3), "module.a.bias": torch.zeros(2)}, wrapped)
    assert set(weights.load_state_dict(wrapped)) == {"a.weight", "a.bias"}

    nested = tmp_path / "nested.pt"
    torch.save({"state_dict": {"a": torch.ones(1)}, "epoch": 3}, nested)
    assert set(weights.load_state_dict(nested)) == {"a"}

    arrays = tmp_path / "pca.pth"  # torchvggish's PCA file holds numpy arrays
    torch.save({"pca_eigen_vectors": np.eye(4), "pca_means": np.arange(4, dtype=np.float32)}, arrays)
    sd = weights.load_state_dict(arrays)
    assert sd["pca_eigen_vectors"].dtype == torch.float64 and torch.equal(sd["pca_means"], torch.arange(4.0))

    for bad, match in (
        ([torch.ones(1)], "not a state dict .*list"),
        ({"a": torch.ones(1), "note": "text"}, "entry 'note' is a str"),
        ({}, "empty"),
    ):
        path = tmp_path / "bad.pt"
        torch.save(bad, path)
        with pytest.raises(WeightsError, match=match):
            weights.load_state_dict(path)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(WeightsError, match="junk.pt: not a readable PyTorch checkpoint"):
        weights.load_state_dict(junk)
    with pytest.raises(WeightsError, match="not found"):
        weights.load_state_dict(tmp_path / "absent.pt")


def test_published_checkpoint_loads_safely(macil_checkpoint: Path) -> None:
    sd = weights.load_state_dict(macil_checkpoint)
    assert len(sd) == 38 and sum(t.numel() for t in sd.values()) == 347_009
    assert all(t.device.type == "cpu" for t in sd.values())


def test_check_state_dict_names_missing_unexpected_and_shapes() -> None:
    sd = {"a": torch.zeros(2, 3), "b": torch.zeros(4), "extra": torch.zeros(1)}
    weights.check_state_dict({"a": sd["a"], "b": sd["b"]}, {"a": (2, 3), "b": (4,)}, "ok.pt")
    with pytest.raises(WeightsError) as err:
        weights.check_state_dict(sd, {"a": (3, 2), "b": (4,), "c": (1,)}, "m.pt")
    message = err.value.message
    assert message.startswith("m.pt: ")
    assert "1 missing key: c" in message and "1 unexpected key: extra" in message
    assert "a (2, 3) instead of (3, 2)" in message


# --- the CLI --------------------------------------------------------------------------------


def test_cli_download_list_verify_path(registry, server) -> None:
    result = runner.invoke(app, ["weights", "path", "macil_sd"])
    assert result.exit_code == 1 and "violence-detect weights download macil_sd" in result.stderr

    result = runner.invoke(app, ["weights", "download", "macil_sd", "vggish"])
    assert result.exit_code == 0, result.output
    assert "macil_sd  downloaded" in result.stdout and "vggish  downloaded" in result.stdout

    result = runner.invoke(app, ["weights", "download", "--json"])  # all four: pca is served corrupted
    assert result.exit_code == 1
    status = {w["name"]: w["status"] for w in json.loads(result.stdout)["weights"]}
    assert status == {
        "macil_sd": "present",
        "i3d_rgb_imagenet": "downloaded",
        "vggish": "present",
        "vggish_pca": "failed",
    }
    assert "fails verification" in result.stderr

    listed = json.loads(runner.invoke(app, ["weights", "list", "--json"]).stdout)
    where = {w["name"]: w["location"] for w in listed["weights"]}
    assert where == {"macil_sd": "cache", "i3d_rgb_imagenet": "cache", "vggish": "cache", "vggish_pca": None}
    text = runner.invoke(app, ["weights", "list"]).stdout
    assert "vggish_pca" in text and "missing" in text and "cache" in text
    assert all(len(line) <= 100 for line in text.splitlines())

    result = runner.invoke(app, ["weights", "path", "macil_sd"])
    assert result.exit_code == 0 and result.stdout.strip() == str(weights.cache_dir() / "macil_sd.pkl")

    result = runner.invoke(app, ["weights", "verify"])
    assert result.exit_code == 0 and result.stdout.count("ok  ") == 3
    (weights.cache_dir() / "rgb_imagenet.pt").write_bytes(b"damaged")
    result = runner.invoke(app, ["weights", "verify", "--json"])
    assert result.exit_code == 1
    verdict = {w["name"]: w["verified"] for w in json.loads(result.stdout)["weights"]}
    assert verdict == {"macil_sd": True, "i3d_rgb_imagenet": False, "vggish": True}

    result = runner.invoke(app, ["weights", "path", "i3d_rgb_imagenet", "--download"])
    assert result.exit_code == 0 and Path(result.stdout.strip()).read_bytes() == server["good"]


def test_cli_rejects_unknown_names(registry) -> None:
    result = runner.invoke(app, ["weights", "path", "resnet"])
    assert result.exit_code == 2


def test_cli_progress_bar_and_offline_folder(registry, server, tmp_path, monkeypatch) -> None:
    import io

    from rich.console import Console

    from violence_cli import console

    drawn = io.StringIO()
    monkeypatch.setattr(console, "stderr", Console(file=drawn, force_terminal=True, width=100))
    folder = tmp_path / "offline"
    result = runner.invoke(app, ["weights", "download", "macil_sd", "--weights-dir", str(folder)])
    assert result.exit_code == 0, result.output
    assert (folder / "macil_sd.pkl").read_bytes() == server["good"]
    assert "macil_sd" in drawn.getvalue() and "MB" in drawn.getvalue()  # the byte bar was drawn
    assert not weights.cache_dir().exists()  # --weights-dir, not the cache

    monkeypatch.setenv(weights.WEIGHTS_ENV, str(folder))
    result = runner.invoke(app, ["weights", "path", "macil_sd"])
    assert result.stdout.strip() == str(folder / "macil_sd.pkl")
    result = runner.invoke(app, ["weights", "verify", "macil_sd", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["weights"][0]["origin"] == "env"
