"""The model registry (macil-sd, hypervd, ensemble) through the library and the CLI.

The two published checkpoints are used (MACIL-SD and HyperVD, from the shared test assets);
I3D and VGGish are random test weights (tests/fakeweights.py), so the scores mean nothing:
what is tested is which model scored, how, and what the outputs say.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from fakeweights import fake_weights_folder
from mediagen import make_clip
from typer.testing import CliRunner

from violence_cli.cli import app
from violence_cli.errors import UsageError
from violence_cli.evaluate import evaluate, save_scores
from violence_cli.hypervd import hypervd_probabilities, load_hypervd
from violence_cli.model import load_model, score_snippets
from violence_cli.models import MODEL_NAMES, NO_HEADS, checkpoint_map, load_scorer
from violence_cli.pipeline import Detector
from violence_cli.writers import get_writer
from violence_cli.xdfeatures import discover_folder

runner = CliRunner()


@pytest.fixture(scope="module")
def ckpts(shared_dir: Path) -> dict[str, Path]:
    return {"macil_sd": shared_dir / "weights" / "macil_sd.pkl", "hypervd": shared_dir / "weights" / "hypervd.pkl"}


@pytest.fixture(scope="module")
def features() -> tuple[np.ndarray, np.ndarray]:
    """(T, 5, 1024) rgb and (T, 128) audio at the scale where HyperVD's scores do not saturate."""
    rs = np.random.RandomState(4)
    return rs.standard_normal((9, 5, 1024)).astype(np.float32), rs.standard_normal((9, 128)).astype(np.float32)


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    with fake_weights_folder(tmp_path_factory, "fake-weights") as w:
        yield w


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("media") / "clip.mp4", seconds=3.0, fps=24)  # 4 snippets


def test_names_and_checkpoint_order() -> None:
    assert MODEL_NAMES == ("macil-sd", "hypervd", "ensemble")
    assert checkpoint_map("ensemble", ["a.pkl", "b.pkl"]) == {"macil_sd": "a.pkl", "hypervd": "b.pkl"}
    assert checkpoint_map("ensemble", "a.pkl") == {"macil_sd": "a.pkl", "hypervd": None}
    assert checkpoint_map("hypervd", ["h.pkl"]) == {"hypervd": "h.pkl"}
    with pytest.raises(UsageError, match="2 files for model hypervd, which takes at most 1"):
        checkpoint_map("hypervd", ["a", "b"])
    with pytest.raises(UsageError, match="model resnet: expected one of macil-sd, hypervd, ensemble"):
        checkpoint_map("resnet", None)


def test_each_scorer_is_its_network(ckpts, features) -> None:
    rgb, audio = features
    macil = load_scorer("macil-sd", ckpts).score(rgb, audio)
    expected = score_snippets(load_model(ckpts["macil_sd"]), rgb, audio)
    np.testing.assert_array_equal(macil.av, expected.av)
    np.testing.assert_array_equal(macil.audio, expected.audio)
    hyper = load_scorer("hypervd", ckpts).score(rgb, audio)
    np.testing.assert_array_equal(hyper.av, hypervd_probabilities(load_hypervd(ckpts["hypervd"]), rgb, audio))
    assert hyper.audio is None and hyper.visual is None  # no heads: nothing, not a copy of the score


def test_ensemble_is_exactly_the_mean(ckpts, features) -> None:
    rgb, audio = features
    macil = load_scorer("macil-sd", ckpts).score(rgb, audio).av
    hyper = load_scorer("hypervd", ckpts).score(rgb, audio).av
    ens = load_scorer("ensemble", ckpts).score(rgb, audio)
    assert not np.allclose(macil, hyper, atol=0.01)  # two different models: the mean is not either one
    mean = ((macil.astype(np.float64) + hyper.astype(np.float64)) / 2).astype(np.float32)
    np.testing.assert_array_equal(ens.av, mean)
    assert ens.audio is None and ens.visual is None
    np.testing.assert_array_equal(ens.parts["macil-sd"], macil)
    np.testing.assert_array_equal(ens.parts["hypervd"], hyper)


def test_hypervd_causal_rows_see_only_the_past(ckpts, features) -> None:
    rgb, audio = features
    scorer = load_scorer("hypervd", ckpts)
    causal = scorer.score_causal(rgb, audio, window=3)
    for t in (0, 4, 8):
        first = max(0, t - 2)
        assert causal.av[t] == scorer.score(rgb[first : t + 1], audio[first : t + 1]).av[-1]
    last = scorer.score_causal(rgb, audio, window=3, last=2)
    assert np.isnan(last.av[:-2]).all() and np.array_equal(last.av[-2:], causal.av[-2:])


# --- detect: pipeline, outputs ----------------------------------------------------------------


@pytest.fixture(scope="module")
def hyper_result(fake, ckpts, clip):
    detector = Detector(
        model="hypervd",
        checkpoint=[ckpts["hypervd"]],
        i3d_weights=fake["i3d_rgb_imagenet"],
        vggish_weights=fake["vggish"],
        crops=1,
        device="cpu",
        download=False,
    )
    return detector, detector.detect(clip, threshold=0.0)


def test_detector_scores_with_hypervd(hyper_result, ckpts) -> None:
    detector, result = hyper_result
    assert [w.name for w in result.weights] == ["i3d_rgb_imagenet", "vggish", "hypervd"]
    assert result.weights[-1].verified  # the published HyperVD file
    features = detector.features(result.video.path)
    np.testing.assert_array_equal(
        [s.score for s in result.snippets], load_scorer("hypervd", ckpts).score(features.rgb, features.audio).av
    )
    doc = result.to_dict()
    assert doc["params"]["model"] == "hypervd"
    assert doc["scores_note"] == NO_HEADS["hypervd"]
    assert all(s["audio_score"] is None and s["visual_score"] is None for s in doc["snippets"])
    assert json.loads(json.dumps(doc))["snippets"][0]["audio_score"] is None  # null in JSON


def test_exports_say_why_there_are_no_audio_visual_scores(hyper_result, tmp_path: Path) -> None:
    _, result = hyper_result
    rows = get_writer("csv").write(result, tmp_path / "s.csv").read_text().splitlines()
    assert rows[0] == f"# audio_score and visual_score are empty: {NO_HEADS['hypervd']}"
    table = list(csv.DictReader(rows[1:]))
    assert len(table) == len(result.snippets) and all(r["audio_score"] == r["visual_score"] == "" for r in table)
    page = get_writer("html").write(result, tmp_path / "r.html").read_text()
    assert 'id="no-heads"' in page and NO_HEADS["hypervd"] in page
    assert 'id="show-audio"' not in page and "HyperVD over I3D + VGGish" in page
    assert get_writer("json").write(result, tmp_path / "r.json").is_file()
    from violence_cli.plot import plot_timeline

    assert plot_timeline(result, tmp_path / "t.png").stat().st_size > 0


def test_macil_results_keep_their_three_scores(fake, ckpts, clip, tmp_path: Path) -> None:
    detector = Detector(
        checkpoint=ckpts["macil_sd"],
        i3d_weights=fake["i3d_rgb_imagenet"],
        vggish_weights=fake["vggish"],
        crops=1,
        device="cpu",
        download=False,
    )
    result = detector.detect(clip)
    assert result.params.model == "macil-sd" and result.scores_note is None
    assert "scores_note" not in result.to_dict()
    assert all(s.audio_score is not None for s in result.snippets)
    assert not get_writer("csv").write(result, tmp_path / "m.csv").read_text().startswith("#")


def _cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def test_cli_detect_model_ensemble(fake, ckpts, clip) -> None:
    common = ["--i3d-weights", fake["i3d_rgb_imagenet"], "--vggish-weights", fake["vggish"], "--crops", "1"]
    common += ["--device", "cpu", "--no-download", "--json"]
    result = _cli(
        "detect",
        clip,
        "--model",
        "ensemble",
        "--checkpoint",
        ckpts["macil_sd"],
        "--checkpoint",
        ckpts["hypervd"],
        *common,
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["params"]["model"] == "ensemble" and doc["scores_note"] == NO_HEADS["ensemble"]
    assert [w["name"] for w in doc["weights"]] == ["i3d_rgb_imagenet", "vggish", "macil_sd", "hypervd"]
    too_many = _cli("detect", clip, "--model", "hypervd", "--checkpoint", "a.pkl", "--checkpoint", "b.pkl", *common)
    assert too_many.exit_code == 2
    assert "--checkpoint: given 2 times; --model hypervd takes at most 1 (hypervd)" in too_many.output
    assert "Traceback" not in too_many.output
    bad = _cli("detect", clip, "--model", "resnet", *common)
    assert bad.exit_code == 2 and "--model" in bad.output


# --- eval -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def xd(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("xd")
    rs = np.random.RandomState(0)
    videos = [("v=aaa__#1_label_B1-0-0", 12), ("News.2010__#1_label_A", 7), ("v=bbb__#1_label_G-0-0", 1)]
    for name, t in videos:
        for c in range(5):
            np.save(root / f"{name}__{c}.npy", rs.standard_normal((t, 1024)).astype(np.float32))
        np.save(root / f"{name}__vggish.npy", rs.standard_normal((t, 128)).astype(np.float32))
    (root / "annotations.txt").write_text("v=aaa__#1_label_B1-0-0 0 64\nv=bbb__#1_label_G-0-0 0 16\n")
    return {"feats": root, "ann": root / "annotations.txt"}


def test_eval_ensemble_reports_ap_and_saves_each_models_scores(xd, ckpts, tmp_path: Path) -> None:
    entries = discover_folder(xd["feats"])
    ens = evaluate(entries, annotations=xd["ann"], model="ensemble", checkpoint=[ckpts["macil_sd"], ckpts["hypervd"]])
    macil = evaluate(entries, annotations=xd["ann"], checkpoint=ckpts["macil_sd"])
    hyper = evaluate(entries, annotations=xd["ann"], model="hypervd", checkpoint=[ckpts["hypervd"]])
    assert ens.model == "ensemble" and hyper.model == "hypervd" and macil.model == "macil-sd"
    assert 0.0 <= ens.ap <= 1.0 and ens.to_dict()["model"] == "ensemble"
    for name in ens.scores:
        mean = ((macil.scores[name].av.astype(np.float64) + hyper.scores[name].av) / 2).astype(np.float32)
        np.testing.assert_array_equal(ens.scores[name].av, mean)
    out = save_scores(ens, tmp_path / "ens.npz")
    with np.load(out) as saved:
        names = sorted(ens.scores)
        assert sorted(saved.files) == sorted(names + [f"macil-sd/{n}" for n in names] + [f"hypervd/{n}" for n in names])
        for n in names:
            np.testing.assert_array_equal(saved[f"hypervd/{n}"], hyper.scores[n].av)
            np.testing.assert_array_equal(saved[n], ens.scores[n].av)


def test_cli_eval_model_hypervd_json(xd, ckpts, monkeypatch: pytest.MonkeyPatch, shared_dir: Path) -> None:
    monkeypatch.setenv("VIOLENCE_DETECT_WEIGHTS", str(shared_dir / "weights"))  # the registry finds both files
    result = _cli(
        "eval",
        "--features",
        xd["feats"],
        "--annotations",
        xd["ann"],
        "--model",
        "ensemble",
        "--json",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["model"] == "ensemble" and [w["name"] for w in doc["weights"]] == ["macil_sd", "hypervd"]
    assert all(w["verified"] for w in doc["weights"])
    text = _cli("eval", "--features", xd["feats"], "--annotations", xd["ann"], "--model", "hypervd", "--device", "cpu")
    assert text.exit_code == 0, text.output
    assert "model    hypervd" in text.stdout and "hypervd.pkl" in text.stdout
