"""Features kept by ``detect --output-dir``, rescoring without decoding, ``detect --features``.

Random weight files (tests/fakeweights.py) by explicit path, one crop, fp32, tiny clips. That a
rerun did not decode is read from the runner's own record (``Outcome.decoded``, the summary's
``rescored``) and the JSON's ``features``, never from timings; the decoder is also made to
fail in those runs, so a decode would show as a failed video.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from fakeweights import cli_weight_args, fake_weights_folder, share_detectors
from mediagen import make_clip
from typer.testing import CliRunner, Result

from violence_cli import media as media_module
from violence_cli.cli import app
from violence_cli.provenance import read_manifest
from violence_cli.runner import DetectJob, discover, run
from violence_cli.runner.kept import kept_bytes_per_hour
from violence_cli.weights import resolve_weight_files

cli = CliRunner()
FP32 = ["--precision", "fp32"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    with fake_weights_folder(tmp_path_factory, "fake-weights") as w:
        yield w


@pytest.fixture(scope="module")
def other_i3d(tmp_path_factory):
    """I3D weights of another seed: features made with them are other features."""
    with fake_weights_folder(tmp_path_factory, "other-weights", seed=1) as w:
        yield w["i3d_rgb_imagenet"]


@pytest.fixture(autouse=True)
def _load_networks_once(monkeypatch) -> None:
    share_detectors(monkeypatch)


@pytest.fixture(scope="module")
def args(weights) -> list[str]:
    return cli_weight_args(weights) + FP32


@pytest.fixture
def clip(tmp_path) -> Path:
    return make_clip(tmp_path / "clip.mp4", seconds=56 / 24, fps=24)  # 3 snippets


def invoke(*argv: object) -> Result:
    result = cli.invoke(app, [str(a) for a in argv])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def scores(doc: dict) -> list[tuple[float, float, float]]:
    return [(s["score"], s["audio_score"], s["visual_score"]) for s in doc["snippets"]]


def forbid_decoding(monkeypatch) -> None:
    """From now on, probing or decoding a video fails it (a decode shows as a failed video)."""

    def refuse(*args, **kwargs):
        raise AssertionError("decoded although the features were kept")

    for name in ("probe", "open_video", "iter_frames", "iter_audio"):  # open_video: the extractor's one open
        monkeypatch.setattr(media_module, name, refuse)


def detect_run(video: Path, out: Path, weights: dict[str, Path], **options) -> object:
    """The library runner, as `detect --output-dir` drives it: its summary (outcomes included).
    ``weights`` names every file the job's model needs (``hypervd`` too for that model)."""
    found = discover([video])
    job = DetectJob(out_dir=out, weights={}, formats=["json"], crops=1, precision="fp32", **options)
    names = {"macil-sd": ("macil_sd",), "hypervd": ("hypervd",), "ensemble": ("macil_sd", "hypervd")}[job.model]
    job.weights = resolve_weight_files({name: weights[name] for name in ("i3d_rgb_imagenet", "vggish", *names)})
    return run(found.videos, job, device="cpu")


def test_rerun_with_a_new_threshold_rescores_without_decoding(clip, tmp_path, weights, monkeypatch) -> None:
    fresh = detect_run(clip, tmp_path / "fresh", weights, threshold=0.2, merge_gap=1.0)
    fresh_doc = json.loads((tmp_path / "fresh" / "clip.json").read_text())
    assert fresh.outcomes[0].decoded is True
    out = tmp_path / "out"
    first = detect_run(clip, out, weights, threshold=0.5)
    (done,) = first.outcomes
    assert done.status == "done" and done.decoded is True and first.rescored == 0
    kept = json.loads((out / "clip.json").read_text())["features"]
    assert kept == {"reused": False, "kept": str(out / "clip.extract.json")}
    assert sorted(p.name for p in out.glob("clip__*.npy")) == ["clip__0.npy", "clip__vggish.npy"]
    assert read_manifest(out)["videos"]["clip"]["record_file"] == "clip.extract.json"

    forbid_decoding(monkeypatch)
    second = detect_run(clip, out, weights, threshold=0.2, merge_gap=1.0)
    (again,) = second.outcomes
    assert again.status == "done", again.error
    assert again.decoded is False and second.rescored == 1  # the runner's record: nothing decoded
    doc = json.loads((out / "clip.json").read_text())
    assert doc["features"] == {"reused": True, "from": str(out / "clip.extract.json")}
    assert doc["params"]["threshold"] == 0.2
    assert scores(doc) == scores(fresh_doc)  # exactly: the kept features are the float32 made
    assert doc["segments"] == fresh_doc["segments"] and doc["video"] == fresh_doc["video"]


def test_another_model_rescores_the_kept_features(clip, tmp_path, weights, shared_dir, monkeypatch) -> None:
    """Features kept by a MACIL-SD run are HyperVD's and the ensemble's input too: no decoding,
    and each model's scores are what it gives on the kept files themselves."""
    from violence_cli.hypervd import hypervd_probabilities, load_hypervd
    from violence_cli.model import load_model, score_snippets

    out = tmp_path / "out"
    first = detect_run(clip, out, weights)
    assert first.outcomes[0].decoded is True
    rgb = np.load(out / "clip__0.npy")[:, None, :]  # (T, 1 crop, 1024), as kept
    audio = np.load(out / "clip__vggish.npy")
    want_hyper = hypervd_probabilities(load_hypervd(shared_dir / "weights" / "hypervd.pkl"), rgb, audio)
    want_macil = score_snippets(load_model(weights["macil_sd"]), rgb, audio).av
    forbid_decoding(monkeypatch)
    both = {**weights, "hypervd": shared_dir / "weights" / "hypervd.pkl"}
    for model, want in (("hypervd", want_hyper), ("ensemble", (want_macil + want_hyper) / 2)):
        summary = detect_run(clip, out, both, model=model)
        (again,) = summary.outcomes
        assert again.status == "done", again.error
        assert again.decoded is False and summary.rescored == 1, model
        doc = json.loads((out / "clip.json").read_text())
        assert doc["features"] == {"reused": True, "from": str(out / "clip.extract.json")}
        assert doc["params"]["model"] == model
        got = np.array([s["score"] for s in doc["snippets"]])
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=model)
    assert not np.allclose(want_hyper, want_macil, atol=1e-3)  # the two models differ: the check can fail


def test_a_folder_of_kept_videos_decodes_nothing_ahead(tmp_path, weights, monkeypatch) -> None:
    """The runner announces the next video to the extractor (decode-ahead); a video whose kept
    features match is not announced, and the networks are never even loaded."""
    from violence_cli.features.extract import FeatureExtractor

    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a", "b", "c"):
        make_clip(videos / f"{name}.mp4", seconds=40 / 24, fps=24)
    out = tmp_path / "out"
    found = discover([videos])
    job = DetectJob(out_dir=out, weights={}, formats=["json"], crops=1, precision="fp32")
    job.weights = resolve_weight_files({n: weights[n] for n in ("i3d_rgb_imagenet", "vggish", "macil_sd")})
    assert [o.decoded for o in run(found.videos, job, device="cpu").outcomes] == [True, True, True]

    def refuse(self, *args, **kwargs):
        raise AssertionError("a kept video was decoded ahead or its networks loaded")

    forbid_decoding(monkeypatch)
    monkeypatch.setattr(FeatureExtractor, "prefetch", refuse)
    monkeypatch.setattr(FeatureExtractor, "__init__", refuse)
    job.threshold = 0.9
    summary = run(found.videos, job, device="cpu")
    assert [(o.status, o.decoded) for o in summary.outcomes] == [("done", False)] * 3, summary.outcomes
    assert summary.rescored == 3


def test_cli_says_rescored_and_counts_it(tmp_path, args) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a", "b"):
        make_clip(videos / f"{name}.mp4", seconds=40 / 24, fps=24)
    out = tmp_path / "out"
    first = invoke(videos, "--output-dir", out, *args)
    assert first.exit_code == 0, first.stderr
    assert first.stderr.count("kept the features: ") == 2 and "nothing decoded" not in first.stderr
    again = invoke(videos, "--output-dir", out, "--threshold", "0.9", "-f", "csv", *args)
    assert again.exit_code == 0, again.stderr
    assert again.stderr.count("nothing decoded") == 2
    assert "2 scored (" in again.stderr and "2 rescored from kept features" in again.stderr
    assert (out / "a.csv").is_file()


def test_changed_input_or_other_weights_invalidate_kept_features(clip, tmp_path, weights, other_i3d, args) -> None:
    out = tmp_path / "out"
    assert invoke(clip, "--output-dir", out, "--json", *args).exit_code == 0
    base = json.loads(invoke(clip, "--output-dir", out, "--json", "--threshold", "0.4", *args).stdout)
    assert base["features"]["reused"] is True

    # the same bytes under a new modification time: the fingerprint changed, so extract again
    stat = clip.stat()
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = json.loads(invoke(clip, "--output-dir", out, "--json", "--threshold", "0.3", *args).stdout)
    assert changed["features"] == {"reused": False, "kept": str(out / "clip.extract.json")}

    other = [a if a != str(weights["i3d_rgb_imagenet"]) else str(other_i3d) for a in args]
    made = json.loads(invoke(clip, "--output-dir", out, "--json", "--threshold", "0.35", *other).stdout)
    assert made["features"]["reused"] is False
    assert scores(made) != scores(changed)  # other features, other scores
    used = {w["name"]: w["sha256"] for w in made["weights"]}
    record = json.loads((out / "clip.extract.json").read_text())["record"]
    assert record["weights"]["i3d_rgb_imagenet"] == used["i3d_rgb_imagenet"]

    # another crop count or precision is not a match either
    five = [a if a != "1" else "5" for a in other]
    assert json.loads(invoke(clip, "--output-dir", out, "--json", *five).stdout)["features"]["reused"] is False
    assert len(list(out.glob("clip__*.npy"))) == 6
    assert json.loads(invoke(clip, "--output-dir", out, "--json", *other).stdout)["features"]["reused"] is False
    assert sorted(p.name for p in out.glob("clip__*.npy")) == ["clip__0.npy", "clip__vggish.npy"]  # no stale crops


def test_damaged_kept_features_are_made_again(clip, tmp_path, args) -> None:
    out = tmp_path / "out"
    assert invoke(clip, "--output-dir", out, *args).exit_code == 0
    crop = out / "clip__0.npy"
    crop.write_bytes(crop.read_bytes()[:-100])  # cut short
    doc = json.loads(invoke(clip, "--output-dir", out, "--json", "--threshold", "0.3", *args).stdout)
    assert doc["features"]["reused"] is False
    assert np.load(crop).shape == (3, 1024)  # whole again


def test_no_keep_features_writes_none(clip, tmp_path, args) -> None:
    out = tmp_path / "out"
    r = invoke(clip, "--output-dir", out, "--no-keep-features", "--json", *args)
    assert r.exit_code == 0, r.stderr
    assert "features" not in json.loads(r.stdout)
    assert sorted(p.name for p in out.iterdir()) == ["clip.json", "results.csv"]


def test_extract_then_detect_features_scores_alone(clip, tmp_path, weights, monkeypatch) -> None:
    feats = tmp_path / "feats"
    extract = invoke(
        "extract", clip, "--out", feats, "--crops", "1", "--device", "cpu", "--no-download", *FP32,
        "--i3d-weights", weights["i3d_rgb_imagenet"], "--vggish-weights", weights["vggish"],
    )  # fmt: skip
    assert extract.exit_code == 0, extract.stderr
    forbid_decoding(monkeypatch)
    out = tmp_path / "out"
    r = invoke("--features", feats, "--checkpoint", weights["macil_sd"], "--device", "cpu", "--no-download",
               "--output-dir", out, "-f", "all", "--json")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    alone = json.loads(r.stdout)
    assert alone["features"] == {"reused": True, "from": str(feats / "clip.extract.json"), "alone": True}
    assert alone["video"]["path"] == str(clip) and alone["video"]["width"] == 64  # from the sidecar
    assert {w["name"] for w in alone["weights"]} == {"i3d_rgb_imagenet", "vggish", "macil_sd"}
    for name in ("clip.json", "clip.csv", "clip.segments.csv", "clip.vtt", "clip.srt", "clip.html", "index.html"):
        assert (out / name).is_file(), name
    page = (out / "clip.html").read_text()
    assert "no video to play" in page and "controls" not in page and 'id="video"' in page


def test_detect_features_equals_detect(clip, tmp_path, weights, args) -> None:
    """The equality itself (the video decoded here, once, for the reference)."""
    reference = json.loads(invoke(clip, "--json", *args).stdout)
    feats = tmp_path / "feats"
    assert invoke(
        "extract", clip, "--out", feats, "--crops", "1", "--device", "cpu", "--no-download", *FP32,
        "--i3d-weights", weights["i3d_rgb_imagenet"], "--vggish-weights", weights["vggish"],
    ).exit_code == 0  # fmt: skip
    alone = json.loads(
        invoke(
            "--features", feats, "--checkpoint", weights["macil_sd"], "--device", "cpu", "--no-download", "--json"
        ).stdout  # fmt: skip
    )
    assert scores(alone) == scores(reference)
    assert alone["segments"] == reference["segments"]
    assert alone["video"]["duration"] == reference["video"]["duration"]
    # an earlier run's --output-dir is a features folder too
    out = tmp_path / "out"
    assert invoke(clip, "--output-dir", out, *args).exit_code == 0
    kept = json.loads(
        invoke(
            "--features", out, "--checkpoint", weights["macil_sd"], "--device", "cpu", "--no-download", "--json"
        ).stdout  # fmt: skip
    )
    assert scores(kept) == scores(reference)


def test_released_layout_in_split_folders_scores_with_a_warning(clip, tmp_path, weights, args) -> None:
    out = tmp_path / "out"
    assert invoke(clip, "--output-dir", out, *args).exit_code == 0
    rgb, audio = tmp_path / "RGBTest", tmp_path / "vggish-features" / "Test"
    rgb.mkdir()
    audio.mkdir(parents=True)
    name = "Bad.Boys.1995__#01-11-55_01-12-40_label_G-B2-B6"  # dots and '#' as XD-Violence names are
    shutil.copy(out / "clip__0.npy", rgb / f"{name}__0.npy")
    shutil.copy(out / "clip__vggish.npy", audio / f"{name}__vggish.npy")
    r = invoke("--features", rgb, "--features", audio, "--checkpoint", weights["macil_sd"], "--device", "cpu",
               "--no-download", "--json", "-o", tmp_path / "r.html")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["video"]["n_snippets"] == 3 and doc["video"]["duration"] == pytest.approx(2.0)
    assert doc["params"]["precision"] == "unknown" and [w["name"] for w in doc["weights"]] == ["macil_sd"]
    assert any("no NAME.extract.json" in w for w in doc["warnings"])
    assert scores(doc) == scores(json.loads((out / "clip.json").read_text()))
    assert "no video to play" in (tmp_path / "r.html").read_text()


def test_features_option_misuse_is_a_usage_error(clip, tmp_path, weights) -> None:
    feats = tmp_path / "feats"
    feats.mkdir()
    base = ["--checkpoint", weights["macil_sd"], "--no-download"]
    r = invoke("--features", feats, clip, *base)
    assert r.exit_code == 2 and "give no VIDEO" in r.stderr
    r = invoke("--features", feats, "--start", "3", *base)
    assert r.exit_code == 2 and "--start/--end" in r.stderr
    r = invoke("--features", feats, *base)
    assert r.exit_code == 1 and "no features found" in r.stderr and "Traceback" not in r.stderr


def test_disk_per_hour_follows_the_layout() -> None:
    # float32: 1024 per crop + 128 per snippet, 1.5 snippets a second
    assert kept_bytes_per_hour(5) == 5400 * (5 * 1024 + 128) * 4 == 113_356_800
    assert kept_bytes_per_hour(1) == 5400 * (1024 + 128) * 4 == 24_883_200
