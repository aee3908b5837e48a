"""Provenance for features: `extract` keeps ``features.json`` beside the ``.npy`` files, and
`eval` / `train` read it and report it (violence_cli.provenance).

The extraction runs the real (random-weight) networks of tests/fakeweights.py on 0.8 s clips
with one crop: one snippet each."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import pytest
from fakeweights import fake_weights_folder
from mediagen import make_clip
from typer.testing import CliRunner

from violence_cli.cli import app
from violence_cli.provenance import MANIFEST_FILE, merge_manifest, read_provenance
from violence_cli.runner import ExtractJob
from violence_cli.runner.records import DONE, Outcome
from violence_cli.weights import ResolvedWeights

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory):
    with fake_weights_folder(tmp_path_factory, "weights") as w:
        yield w


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("clips")
    return [make_clip(root / f"{name}.mp4", seconds=0.8, fps=24, size=(32, 24)) for name in ("fight", "calm")]


def _extract(weights: dict[str, Path], out: Path, *args: str):
    w = ["--i3d-weights", str(weights["i3d_rgb_imagenet"]), "--vggish-weights", str(weights["vggish"])]
    return runner.invoke(app, ["extract", "--out", str(out), "--crops", "1", "--device", "cpu", "-q", *w, *args])


def _manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST_FILE).read_text())


@pytest.fixture(scope="module")
def extracted(weights: dict[str, Path], clips: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both clips extracted into one folder by two shards (two runs sharing the folder)."""
    out = tmp_path_factory.mktemp("feats")
    for shard in ("0/2", "1/2"):
        res = _extract(weights, out, "--shard", shard, *map(str, clips))
        assert res.exit_code == 0, res.output
    return out


def test_extract_writes_the_manifest_and_shards_merge(extracted: Path, weights: dict[str, Path]) -> None:
    doc = _manifest(extracted)
    assert doc["schema_version"] == 1 and doc["kind"] == "violence-detect features" and doc["version"]
    protocol = doc["protocol"]
    assert (protocol["fps"], protocol["snippet_frames"], protocol["resize_short"], protocol["crop_size"]) == (
        24,
        16,
        256,
        224,
    )
    assert protocol["vggish"] == {
        "sample_rate": 16000,
        "example_frames": 96,
        "mel_bands": 64,
        "embedding_dim": 128,
        "pca": False,
    }
    sha = {name: hashlib.sha256(weights[name].read_bytes()).hexdigest() for name in ("i3d_rgb_imagenet", "vggish")}
    assert [(w["name"], w["sha256"], w["verified"]) for w in doc["weights"]] == [
        ("i3d_rgb_imagenet", sha["i3d_rgb_imagenet"], False),
        ("vggish", sha["vggish"], False),
    ]
    # both shards' videos, each with its sidecar's record (one record format, referenced by name)
    assert sorted(doc["videos"]) == ["calm", "fight"]
    for name, entry in doc["videos"].items():
        sidecar = json.loads((extracted / entry["record_file"]).read_text())
        assert entry["record_file"] == f"{name}.extract.json"
        assert entry["record"] == sidecar["record"] and entry["n_snippets"] == sidecar["n_snippets"] == 1
        assert entry["record"]["params"]["crops"] == 1 and entry["record"]["params"]["precision"] == "fp32"
        assert entry["record"]["weights"] == sha
    # written atomically: no temporary left beside it
    assert sorted(p.name for p in extracted.iterdir() if not p.name.endswith(".npy")) == [
        "calm.extract.json",
        "features.json",
        "fight.extract.json",
        "results.csv",
    ]


def test_a_second_run_updates_the_manifest(weights: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "feats"
    clip = make_clip(tmp_path / "one.mp4", seconds=0.8, fps=24, size=(32, 24))
    assert _extract(weights, out, str(clip)).exit_code == 0
    first = _manifest(out)["videos"]["one"]["record"]["source"]
    st = os.stat(clip)
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # "changed": the video is redone
    other = make_clip(tmp_path / "two.mp4", seconds=0.8, fps=24, size=(32, 24))
    res = _extract(weights, out, str(clip), str(other))
    assert res.exit_code == 0, res.output
    doc = _manifest(out)
    assert sorted(doc["videos"]) == ["one", "two"]
    assert doc["videos"]["one"]["record"]["source"]["mtime_ns"] == first["mtime_ns"] + 5_000_000_000
    assert doc["videos"]["one"]["record"] == json.loads((out / "one.extract.json").read_text())["record"]


def test_concurrent_updates_keep_every_video(tmp_path: Path) -> None:
    """Many processes finishing into one folder (threads here: flock excludes per open file)."""
    w = {"i3d_rgb_imagenet": ResolvedWeights("i3d_rgb_imagenet", tmp_path / "i3d.pt", "a" * 64, False, "x")}
    names = [f"v{i}" for i in range(12)]
    for name in names:
        record = {"source": {"size": 1, "mtime_ns": 2}, "weights": {"i3d_rgb_imagenet": "a" * 64}, "params": {}}
        (tmp_path / f"{name}.extract.json").write_text(json.dumps({"record": record, "n_snippets": 3}))
    job = ExtractJob(tmp_path, w)  # type: ignore[arg-type]
    threads = [
        threading.Thread(target=job.finish, args=([Outcome(str(tmp_path / f"{n}.mp4"), n, DONE)],)) for n in names
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(_manifest(tmp_path)["videos"]) == sorted(names)


def test_merge_keeps_only_weights_still_in_use() -> None:
    old = merge_manifest(
        None,
        [{"name": "i3d", "sha256": "1" * 64, "verified": False}],
        {"a": {"record": {"weights": {"i3d": "1" * 64}}}},
    )
    new = merge_manifest(
        old,
        [{"name": "i3d", "sha256": "2" * 64, "verified": True}],
        {"a": {"record": {"weights": {"i3d": "2" * 64}}}},
    )
    assert [w["sha256"] for w in new["weights"]] == ["2" * 64]  # "a" was redone with other weights
    assert list(new["videos"]) == ["a"]


# --- eval reads it ----------------------------------------------------------------------------


def _eval(extracted: Path, checkpoint: Path, tmp_path: Path, *args: str):
    annotations = tmp_path / "annotations.txt"
    annotations.write_text("fight 0 15\n")
    return runner.invoke(
        app,
        ["eval", "--annotations", str(annotations), "--checkpoint", str(checkpoint), "--device", "cpu", *args],
    )


def test_eval_reports_provenance_and_warns_once(extracted: Path, macil_checkpoint: Path, tmp_path: Path) -> None:
    res = _eval(extracted, macil_checkpoint, tmp_path, "--features", str(extracted), "--json")
    assert res.exit_code == 0, res.output
    assert res.stderr.count("features made with unverified weights") == 1
    assert "i3d_rgb_imagenet" in res.stderr and "AP on them" in res.stderr
    prov = json.loads(res.stdout)["features_provenance"]
    assert [(w["name"], w["verified"]) for w in prov["weights"]] == [("i3d_rgb_imagenet", False), ("vggish", False)]
    assert prov["precision"] == ["fp32"] and prov["crops"] == [1] and prov["videos"] == 2
    assert prov["manifests"] == [str(extracted / MANIFEST_FILE)]

    res = _eval(extracted, macil_checkpoint, tmp_path, "--features", str(extracted))
    assert res.exit_code == 0, res.output
    line = next(x for x in res.stdout.splitlines() if x.startswith("features "))
    assert "i3d_rgb_imagenet" in line and "unverified" in line and line.endswith("; fp32; 1 crop; 2 videos"), line


def test_eval_without_a_manifest_says_nothing(extracted: Path, macil_checkpoint: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    for npy in extracted.glob("*.npy"):
        (plain / npy.name).write_bytes(npy.read_bytes())
    res = _eval(plain, macil_checkpoint, tmp_path, "--features", str(plain), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["features_provenance"] is None
    assert "unverified weights" not in res.stderr and "manifest" not in res.stderr
    res = _eval(plain, macil_checkpoint, tmp_path, "--features", str(plain))
    assert res.exit_code == 0 and not any(x.startswith("features ") for x in res.stdout.splitlines())


def test_damaged_manifest_is_one_warning(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_FILE).write_text("{not json")
    warnings: list[str] = []
    assert read_provenance([tmp_path], warnings.append) is None
    assert len(warnings) == 1 and "features.json" in warnings[0] and "provenance unknown" in warnings[0]


# --- train reads it ---------------------------------------------------------------------------


def test_train_reports_provenance(tmp_path: Path) -> None:
    from violence_cli.training.synthetic import make_synthetic_xd

    data = make_synthetic_xd(tmp_path / "train", 3, 3, crops=1, min_len=16, max_len=24, seed=3)
    videos = {"x": {"record": {"weights": {"i3d_rgb_imagenet": "c" * 64}, "params": {"crops": 1, "precision": "bf16"}}}}
    doc = merge_manifest(None, [{"name": "i3d_rgb_imagenet", "sha256": "c" * 64, "verified": False}], videos)
    (data.root / MANIFEST_FILE).write_text(json.dumps(doc))
    args = ["train", "--features", str(data.root), "--out", str(tmp_path / "run"), "--epochs", "1", "--device", "cpu"]
    res = runner.invoke(app, [*args, "--batch-size", "2", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    prov = summary["features_provenance"]
    assert prov["weights"][0]["sha256"] == "c" * 64 and prov["precision"] == ["bf16"] and prov["videos"] == 1
    assert summary["val_features_provenance"] is None
    assert sum("features made with unverified weights" in w for w in summary["warnings"]) == 1
