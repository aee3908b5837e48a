"""Hostile weights files, downloads and training states: refused at load, naming what is wrong.

NaN/inf values, non-float tensors and zip archives that would inflate far beyond their
expected size, through every loader (MACIL-SD, I3D, VGGish, PCA); downloads that send more
than the manifest says (stopped at once, nothing kept); ``weights verify`` remembering
the full sha256 of what it passed.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import threading
import zipfile
from pathlib import Path

import pytest
import torch
from fakeweights import fake_weights_folder
from typer.testing import CliRunner

from violence_cli import weights
from violence_cli.cli import app
from violence_cli.errors import WeightsError
from violence_cli.features import load_i3d, load_vggish, load_vggish_pca
from violence_cli.model import load_model

runner = CliRunner()
LOADERS = {
    "macil_sd": lambda path: load_model(path),
    "i3d_rgb_imagenet": load_i3d,
    "vggish": load_vggish,
    "vggish_pca": load_vggish_pca,
}


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory):
    with fake_weights_folder(tmp_path_factory, "fake") as w:
        yield w


def _damaged(source: Path, out: Path, change) -> tuple[Path, str]:
    """``source``'s state dict with ``change(tensor)`` applied to its third key; returns (path, key)."""
    state = torch.load(source, weights_only=True)
    keys = sorted(k for k, v in state.items() if torch.as_tensor(v).is_floating_point())
    key = keys[min(2, len(keys) - 1)]
    state[key] = change(torch.as_tensor(state[key]).clone())
    torch.save(state, out)
    return out, key


@pytest.mark.parametrize(
    ("name", "value"),
    [(name, float("nan")) for name in LOADERS] + [("macil_sd", float("inf")), ("vggish_pca", float("-inf"))],
)
def test_non_finite_values_are_refused_naming_the_key(fake, tmp_path: Path, name: str, value: float) -> None:
    def poison(t: torch.Tensor) -> torch.Tensor:
        t.view(-1)[1] = value
        return t

    path, key = _damaged(fake[name], tmp_path / fake[name].name, poison)
    with pytest.raises(WeightsError, match=rf"{path.name}: refused to load: {key} holds (NaN|infinite)"):
        LOADERS[name](path)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.int32, torch.bool])
def test_tensors_that_are_not_real_floats_are_refused(fake, tmp_path: Path, dtype: torch.dtype) -> None:
    path, key = _damaged(fake["macil_sd"], tmp_path / "m.pkl", lambda t: t.to(dtype))
    with pytest.raises(WeightsError, match=rf"refused to load: {key} is {dtype}, not a real floating type"):
        load_model(path)


def test_batch_norm_counters_may_be_integers(tmp_path: Path) -> None:
    path = tmp_path / "bn.pt"
    torch.save({"bn.weight": torch.ones(3), "bn.num_batches_tracked": torch.tensor(7)}, path)
    assert weights.load_state_dict(path)["bn.num_batches_tracked"].item() == 7


def _deflated(source: Path, out: Path) -> Path:
    """The same torch archive with its members deflated (torch stores them uncompressed)."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    return out


def test_archive_declaring_far_more_than_expected_is_refused_before_inflating(fake, tmp_path: Path) -> None:
    state = torch.load(fake["macil_sd"], weights_only=True)
    state["fc_v.weight"] = torch.zeros(16, 2**20)  # 64 MiB of zeros: deflates to ~65 kB
    big = tmp_path / "big.pt"
    torch.save(state, big)
    bomb = _deflated(big, tmp_path / "bomb.pkl")
    big.unlink()
    assert bomb.stat().st_size < 2_000_000
    with pytest.raises(WeightsError, match=r"bomb.pkl: refused to load: the archive declares 6\d,\d{3},\d{3} bytes"):
        load_model(bomb)  # expected: 347,009 float32 parameters
    with pytest.raises(WeightsError, match="far more than"):
        weights.load_state_dict(bomb)  # no expected size: twice the file's size
    ok = _deflated(fake["macil_sd"], tmp_path / "ok.pkl")  # a deflated archive of the right size loads
    load_model(ok)


# --- downloads --------------------------------------------------------------------------


class _Endless(http.server.BaseHTTPRequestHandler):
    """/endless: zeros without a Content-Length, until the client stops reading;
    /liar: announces a Content-Length far larger than the manifest's size."""

    sent: list[int] = []

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        if self.path.endswith("liar.pkl"):
            self.send_header("Content-Length", str(50 * 2**20))
        self.end_headers()
        sent = 0
        try:
            while sent < 200 * 2**20:
                self.wfile.write(bytes(64 * 1024))
                sent += 64 * 1024
        except (BrokenPipeError, ConnectionResetError):
            pass
        type(self).sent.append(sent)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endless(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    handler = type("H", (_Endless,), {"sent": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    sha = "0" * 64

    def entry(name: str, filename: str, size: int | None) -> weights.WeightsEntry:
        return weights.WeightsEntry(name, filename, f"{base}/{filename}", size, sha, None, None, "test", "MIT", {})

    entries = {
        "macil_sd": entry("macil_sd", "endless.pkl", 1_402_373),
        "i3d_rgb_imagenet": entry("i3d_rgb_imagenet", "rgb_imagenet.pt", None),
        "vggish": entry("vggish", "liar.pkl", 1_000_000),
    }
    monkeypatch.setattr(weights.manifest, "_registry", lambda: entries)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    yield handler
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    ("name", "what"), [("macil_sd", "sent more than 1,402,373"), ("vggish", "announces 52,428,800")]
)
def test_download_stops_once_it_passes_the_manifest_size(endless, name: str, what: str) -> None:
    seen: list[int] = []
    with pytest.raises(WeightsError, match=rf"download from .* stopped: the server {what} bytes"):
        weights.download_weights(name, progress=lambda done, total: seen.append(done))
    assert max(seen, default=0) <= weights.get_entry(name).size
    folder = weights.cache_dir()
    assert list(folder.iterdir()) == []  # no temporary file left


def test_download_of_unknown_size_stops_at_the_cap(endless, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights.download, "DOWNLOAD_CAP_BYTES", 3 * 2**20)
    with pytest.raises(WeightsError, match=r"sent more than 3,145,728 bytes \(the cap for a file of unknown size"):
        weights.download_weights("i3d_rgb_imagenet")
    assert list(weights.cache_dir().iterdir()) == []


# --- weights verify remembers full digests ----------------------------------------------


def test_verify_records_the_full_sha256_and_catches_a_later_change(fake, tmp_path: Path, monkeypatch) -> None:
    """VGGish's manifest check is an 8-hex-digit sha256 prefix: a different file with the
    same prefix would pass it. Verify records the full digest and reports the change."""
    data = fake["macil_sd"].read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    folder = tmp_path / "w"
    folder.mkdir()
    (folder / "v.pth").write_bytes(data)
    entry = weights.WeightsEntry(
        "vggish", "v.pth", "http://127.0.0.1:9/v.pth", None, None, sha[:8], None, "t", "MIT", {}
    )
    monkeypatch.setattr(weights.manifest, "_registry", lambda: {"vggish": entry})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))

    result = runner.invoke(app, ["weights", "verify", "--weights-dir", str(folder)])
    assert result.exit_code == 0, result.output
    record = json.loads((weights.cache_dir() / weights.VERIFIED_FILE).read_text())
    assert record["files"] == {str((folder / "v.pth").resolve()): sha}

    # a forged file that keeps the published 8-digit prefix (simulated: the prefix check is patched to pass)
    (folder / "v.pth").write_bytes(data + b"\0")
    monkeypatch.setattr(weights.verify, "integrity_problem", lambda path, entry: None)
    result = runner.invoke(app, ["weights", "verify", "--weights-dir", str(folder), "--json"])
    assert result.exit_code == 1
    (check,) = json.loads(result.stdout)["weights"]
    assert not check["verified"] and f"sha256 was {sha}" in check["problem"]


def test_verify_says_when_it_cannot_record_the_digests(fake, tmp_path: Path, monkeypatch) -> None:
    """A cache that cannot be written (here its folder is a file): the checks still pass and
    one warning names the record's path and the consequence, instead of saying nothing."""
    data = fake["macil_sd"].read_bytes()
    folder = tmp_path / "w"
    folder.mkdir()
    (folder / "m.pkl").write_bytes(data)
    entry = weights.WeightsEntry(
        "macil_sd",
        "m.pkl",
        "http://127.0.0.1:9/m.pkl",
        len(data),
        hashlib.sha256(data).hexdigest(),
        None,
        None,
        "t",
        "MIT",
        {},
    )
    monkeypatch.setattr(weights.manifest, "_registry", lambda: {"macil_sd": entry})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    (tmp_path / "xdg").mkdir()
    weights.cache_dir().write_text("a file where the cache folder should be")

    told: list[str] = []
    (check,) = weights.verify_weights(weights_dir=folder, on_warning=told.append)
    assert check.verified
    (warning,) = told
    assert warning.startswith(f"{weights.cache_dir() / weights.VERIFIED_FILE}: ") and "cannot tell" in warning
    result = runner.invoke(app, ["weights", "verify", "--weights-dir", str(folder)])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("could not be recorded") == 1 and "Traceback" not in result.stderr


# --- training states ---------------------------------------------------------------------


def _break_state(state: dict, how: str) -> None:
    if how == "missing key":
        del state["opt_av"]
    elif how == "unknown config field":
        state["config"]["warp_factor"] = 9
    elif how == "config type":
        state["config"]["lr"] = "fast"
    elif how == "config value":
        state["config"]["temperature"] = -1.0
    elif how == "shape":
        state["model"]["fc_v.weight"] = torch.zeros(3, 3)
    elif how == "nan weights":
        state["teacher"]["fc.weight"][0, 0] = float("nan")
    elif how == "optimizer":
        state["opt_av"]["param_groups"] = []


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("missing key", "missing opt_av"),
        ("unknown config field", "unknown config field.* warp_factor"),
        ("config type", "config field lr is 'fast'"),
        ("config value", "config: .*temperature"),
        ("shape", r"model.fc_v.weight: shape \(3, 3\)"),
        ("nan weights", "teacher.fc.weight is not finite"),
        ("optimizer", "ValueError"),
    ],
)
def test_damaged_training_state_is_refused_before_use(trained, tmp_path: Path, how: str, message: str) -> None:
    from violence_cli.errors import InputError
    from violence_cli.training import TrainConfig, train

    bags, run = trained
    out = tmp_path / "run"
    shutil.copytree(run, out)
    state = torch.load(out / "state.pt", weights_only=True)
    _break_state(state, how)
    torch.save(state, out / "state.pt")
    with pytest.raises(InputError, match=rf"state.pt: damaged training state \(.*{message}.*\); cannot resume"):
        train(bags, out, TrainConfig(epochs=2, batch_size=4), resume=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """A one-epoch run on four tiny synthetic videos: (training set, its folder)."""
    from violence_cli.training import TrainConfig, build_training_set, train
    from violence_cli.training.synthetic import make_synthetic_xd
    from violence_cli.xdfeatures import discover_folder

    root = tmp_path_factory.mktemp("train")
    synth = make_synthetic_xd(root / "s", 2, 2, crops=1, min_len=16, max_len=20, seed=1)
    bags = build_training_set(discover_folder(synth.root))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(bags, root / "run", TrainConfig(epochs=1, batch_size=4))
    finally:
        torch.set_num_threads(before)
    return bags, root / "run"
