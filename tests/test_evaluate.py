"""Evaluation: the paper's metric, ground truth from gt.npy or annotations, the eval command."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import auc, precision_recall_curve, roc_auc_score
from typer.testing import CliRunner

from violence_cli import __version__
from violence_cli.cli import app
from violence_cli.errors import InputError
from violence_cli.evaluate import (
    evaluate,
    gt_from_annotations,
    load_gt,
    paper_metrics,
    read_annotations,
    save_scores,
)
from violence_cli.model import MacilSD
from violence_cli.models import MacilScorer
from violence_cli.xdfeatures import discover_folder

runner = CliRunner()

# (name, T): violent and normal names in the XD style, T = 1 included
VIDEOS = [
    ("v=aaa__#1_label_B1-0-0", 40),
    ("v=bbb__#00-00-00_00-01-00_label_G-0-0", 23),
    ("Movie.2001__#00-01-45_00-02-50_label_A", 31),
    ("v=ccc__#1_label_B4-0-0", 1),
    ("News.2010__#1_label_A", 12),
]
TOTAL_T = sum(t for _, t in VIDEOS)
ANNOTATIONS = (
    "v=aaa__#1_label_B1-0-0 0 50 300 420\n"
    "v=bbb__#00-00-00_00-01-00_label_G-0-0 100 250\n"
    "v=ccc__#1_label_B4-0-0 3 12\n"
    "v=not_in_the_set__#1_label_B2-0-0 7 9"  # no trailing newline, like the real file
)


def _write_features(folder: Path, videos: list[tuple[str, int]], crops: int = 5, seed: int = 0) -> None:
    rs = np.random.RandomState(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, t in videos:
        for c in range(crops):
            np.save(folder / f"{name}__{c}.npy", np.abs(rs.standard_normal((t, 1024))).astype(np.float32))
        np.save(folder / f"{name}__vggish.npy", np.maximum(rs.standard_normal((t, 128)) * 0.3, 0).astype(np.float32))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("xd")
    _write_features(root / "feats", VIDEOS)
    (root / "annotations.txt").write_text(ANNOTATIONS)
    torch.manual_seed(7)
    model = MacilSD()
    with torch.no_grad():  # a random net whose scores spread over (0, 1)
        model.att_mmil.fc.weight.mul_(20)
    torch.save(model.state_dict(), root / "random.pkl")
    entries = discover_folder(root / "feats")
    (root / "rgb.list").write_text("".join(f"{p}\n" for e in entries for p in e.crop_paths))
    (root / "audio.list").write_text("".join(f"{e.audio_path}\n" for e in entries))
    return {"root": root, "feats": root / "feats", "ann": root / "annotations.txt", "ckpt": root / "random.pkl",
            "rgb": root / "rgb.list", "audio": root / "audio.list"}


def _reference_gt(names_t: list[tuple[str, int]], annotation_text: str) -> np.ndarray:
    """Frame by frame, independently of the library: 1 inside any annotated [s, e)."""
    intervals: dict[str, list[tuple[int, int]]] = {}
    for line in annotation_text.splitlines():
        name, *bounds = line.split()
        intervals[name] = [(int(bounds[i]), int(bounds[i + 1])) for i in range(0, len(bounds), 2)]
    frames = []
    for name, t in names_t:
        for f in range(16 * t):
            frames.append(1.0 if any(s <= f < e for s, e in intervals.get(name, [])) else 0.0)
    return np.array(frames)


def _published_test_logic(feats: Path, names: list[str], ckpt: Path, gt: np.ndarray) -> tuple[float, float]:
    """The published test.py, re-implemented plainly: a batch of the 5 crops with the same
    audio, sigmoid of the av logits, mean over crops, concatenated, repeated 16 times."""
    model = MacilSD()
    model.load_state_dict(torch.load(ckpt, weights_only=True))
    model.eval()
    pred = []
    with torch.no_grad():
        for name in names:
            f_v = torch.stack([torch.from_numpy(np.load(feats / f"{name}__{c}.npy")) for c in range(5)])
            f_a = torch.from_numpy(np.load(feats / f"{name}__vggish.npy"))[None].repeat(5, 1, 1)
            av_logits = model(f_v, f_a).av_logits  # (5, T)
            pred.extend(torch.sigmoid(av_logits).mean(0).numpy().tolist())
    frame_scores = np.repeat(np.array(pred, dtype=np.float32), 16)
    precision, recall, _ = precision_recall_curve(list(gt), frame_scores)
    return auc(recall, precision), roc_auc_score(gt, frame_scores)


def test_xd_annotations_parse(xd_annotations: Path) -> None:
    ann = read_annotations(xd_annotations)
    lines = [line for line in xd_annotations.read_text().splitlines() if line.strip()]
    assert len(ann) == len({line.split()[0] for line in lines}) > 400
    for name, intervals in ann.items():
        assert "_label_A" not in name and intervals
        assert all(0 <= s <= e for s, e in intervals)


@pytest.mark.parametrize(
    "text, message",
    [
        ("a 1 2 3\n", "odd number"),
        ("a 1 x\n", "must be integers"),
        ("a 5 2\n", "bad interval"),
        ("a -1 5\n", "bad interval"),
        ("\n\n", "no annotations"),
    ],
)
def test_bad_annotations(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "ann.txt"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_annotations(path)


def test_annotations_keep_empty_intervals_and_join_repeated_names(tmp_path: Path) -> None:
    path = tmp_path / "ann.txt"
    path.write_text("a 5 5\nb 0 16\n\na 20 30 40 48\n")
    assert read_annotations(path) == {"a": [(5, 5), (20, 30), (40, 48)], "b": [(0, 16)]}


def test_bad_annotation_message_names_the_line_counting_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "ann.txt"
    path.write_text("a 0 16\n\nb 5 2\n")
    with pytest.raises(InputError) as info:
        read_annotations(path)
    assert str(info.value) == f"{path}:3: bad interval 5 2 for 'b' (need 0 <= start <= end)"


def test_a_violent_video_listed_without_intervals_counts_as_annotated() -> None:
    gt, unannotated = gt_from_annotations([("v=zzz_label_B1", 2)], {"v=zzz_label_B1": []})
    np.testing.assert_array_equal(gt, np.zeros(32, np.float32))
    assert unannotated == []


def test_gt_from_annotations_matches_frame_by_frame(tmp_path: Path) -> None:
    names_t = [(n, t) for n, t in VIDEOS]
    path = tmp_path / "ann.txt"
    path.write_text(ANNOTATIONS)
    gt, unannotated = gt_from_annotations(names_t, read_annotations(path))
    np.testing.assert_array_equal(gt, _reference_gt(names_t, ANNOTATIONS))
    assert unannotated == []
    _, unannotated = gt_from_annotations([("v=zzz_label_B1", 2), ("x_label_A", 2)], {})
    assert unannotated == ["v=zzz_label_B1"]


def test_metric_equals_published_test_logic(dataset) -> None:
    entries = discover_folder(dataset["feats"])
    names_t = [(e.name, dict(VIDEOS)[e.name]) for e in entries if dict(VIDEOS)[e.name] > 1]  # theirs crashes at T=1
    gt = _reference_gt(names_t, ANNOTATIONS)
    want_ap, want_auc = _published_test_logic(dataset["feats"], [n for n, _ in names_t], dataset["ckpt"], gt)
    kept = [e for e in entries if dict(VIDEOS)[e.name] > 1]
    result = evaluate(kept, gt=gt, checkpoint=dataset["ckpt"])
    assert 0.05 < want_ap < 0.99  # a non-trivial curve
    assert result.ap == pytest.approx(want_ap, abs=1e-9)
    assert result.auc == pytest.approx(want_auc, abs=1e-9)
    assert result.n_videos == len(kept) and result.n_snippets == sum(t for _, t in names_t)


def test_gt_file_and_annotations_agree_with_t1(dataset, tmp_path: Path) -> None:
    entries = discover_folder(dataset["feats"])
    gt = _reference_gt([(e.name, dict(VIDEOS)[e.name]) for e in entries], ANNOTATIONS)
    np.save(tmp_path / "gt.npy", gt)
    from_file = evaluate(entries, gt=tmp_path / "gt.npy", checkpoint=dataset["ckpt"])
    from_ann = evaluate(entries, annotations=dataset["ann"], checkpoint=dataset["ckpt"])
    assert from_file.ap == from_ann.ap and from_file.auc == from_ann.auc
    assert from_file.scores["v=ccc__#1_label_B4-0-0"].av.shape == (1,)
    assert from_file.checkpoint_sha256 == hashlib.sha256(dataset["ckpt"].read_bytes()).hexdigest()
    assert from_ann.warnings == []


def test_gt_wrong_length_fails_before_scoring(dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = 16 * TOTAL_T
    np.save(tmp_path / "gt.npy", np.zeros(frames + 16))
    np.save(tmp_path / "bad.npy", np.full(frames, 0.5))
    import violence_cli.model as model_module

    monkeypatch.setattr(model_module, "load_model", lambda *a, **k: pytest.fail("scored before checking the gt"))
    entries = discover_folder(dataset["feats"])
    with pytest.raises(InputError, match=rf"gt\.npy: ground truth has {frames + 16} frames; expected {frames}"):
        evaluate(entries, gt=tmp_path / "gt.npy", checkpoint=dataset["ckpt"])
    with pytest.raises(InputError, match="only 0 and 1"):
        load_gt(tmp_path / "bad.npy")


def test_gt_without_violence_is_an_error(dataset, tmp_path: Path) -> None:
    entries = discover_folder(dataset["feats"])
    np.save(tmp_path / "gt.npy", np.zeros(16 * TOTAL_T))
    with pytest.raises(InputError, match="no violent frames"):
        evaluate(entries, gt=tmp_path / "gt.npy", checkpoint=dataset["ckpt"])


def test_load_gt_refuses_what_is_not_a_1d_array_of_0_and_1(tmp_path: Path) -> None:
    np.save(tmp_path / "square.npy", np.zeros((4, 16)))
    with pytest.raises(InputError, match=r"square\.npy: ground truth of shape \(4, 16\).*expected a 1-D array"):
        load_gt(tmp_path / "square.npy")
    np.save(tmp_path / "mixed.npy", np.array([0.0, 1.0, 0.5, 1.0]))
    with pytest.raises(InputError, match="only 0 and 1"):
        load_gt(tmp_path / "mixed.npy")
    with pytest.raises(InputError, match=r"absent\.npy: no such ground-truth file"):
        load_gt(tmp_path / "absent.npy")


def test_load_gt_never_unpickles(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    np.save(tmp_path / "evil.npy", np.array([Payload()], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match=r"evil\.npy: not a readable \.npy file"):
        load_gt(tmp_path / "evil.npy")
    assert not marker.exists()


def test_load_gt_gives_float32(tmp_path: Path) -> None:
    np.save(tmp_path / "gt.npy", np.array([0, 1, 1, 0], dtype=np.int64))
    gt = load_gt(tmp_path / "gt.npy")
    assert gt.dtype == np.float32
    np.testing.assert_array_equal(gt, [0.0, 1.0, 1.0, 0.0])


def test_paper_metrics_refuses_one_class_and_mismatched_lengths() -> None:
    with pytest.raises(InputError, match="the ground truth has only violent frames"):
        paper_metrics(np.ones(32, np.float32), np.array([0.2, 0.8]))
    with pytest.raises(InputError, match="the ground truth has no violent frames"):
        paper_metrics(np.zeros(32, np.float32), np.array([0.2, 0.8]))
    with pytest.raises(InputError, match="^16 frame scores for 32 ground-truth frames$"):
        paper_metrics(np.r_[np.zeros(16), np.ones(16)].astype(np.float32), np.array([0.2]))


def test_evaluate_refuses_bad_arguments_before_loading_anything(dataset, tmp_path: Path) -> None:
    entries = discover_folder(dataset["feats"])
    gt = _reference_gt([(e.name, dict(VIDEOS)[e.name]) for e in entries], ANNOTATIONS)
    missing = tmp_path / "missing.pkl"
    with pytest.raises(ValueError, match="exactly one of gt and annotations"):
        evaluate(entries, checkpoint=missing)
    with pytest.raises(ValueError, match="exactly one of gt and annotations"):
        evaluate(entries, gt=gt, annotations=dataset["ann"], checkpoint=missing)
    with pytest.raises(InputError, match="no videos to evaluate"):
        evaluate([], gt=gt, checkpoint=missing)
    with pytest.raises(ValueError, match="window must be >= 1 snippet, got 0"):
        evaluate(entries, gt=gt, checkpoint=missing, window=0)


def test_violent_named_videos_without_annotation_are_named_in_one_warning(dataset, tmp_path: Path) -> None:
    names = [f"v=n{i}__#1_label_B1-0-0" for i in range(5)]
    _write_features(tmp_path / "feats", [(n, 2) for n in names] + [("News__#1_label_A", 2)])
    entries = discover_folder(tmp_path / "feats")
    heard: list[str] = []
    result = evaluate(entries, annotations={names[0]: [(0, 16)]}, checkpoint=dataset["ckpt"], on_warning=heard.append)
    want = (
        "4 of 6 videos are not named normal (_label_A) but have no annotation; their ground truth is all "
        f"normal: {names[1]!r}, {names[2]!r}, {names[3]!r} ..."
    )
    assert heard == [want] and result.warnings == [want] and result.to_dict()["warnings"] == [want]
    three = evaluate(entries[:5], annotations={names[0]: [(0, 16)]}, checkpoint=dataset["ckpt"])
    assert three.warnings[0].startswith("3 of 5 videos")
    assert three.warnings[0].endswith(f"all normal: {names[1]!r}, {names[2]!r}, {names[3]!r}")


def test_progress_reports_each_video_done(dataset) -> None:
    calls: list[tuple[int, int]] = []
    entries = discover_folder(dataset["feats"])
    evaluate(entries, annotations=dataset["ann"], checkpoint=dataset["ckpt"], progress=lambda *a: calls.append(a))
    assert calls == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]


def test_cpu_scoring_runs_on_one_thread_and_restores_the_count(dataset) -> None:
    model = MacilSD()
    model.load_state_dict(torch.load(dataset["ckpt"], weights_only=True))
    model.eval()
    seen: list[int] = []

    class Recording(MacilScorer):
        def score(self, rgb, audio):
            seen.append(torch.get_num_threads())
            return super().score(rgb, audio)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        entries = discover_folder(dataset["feats"])
        evaluate(entries, annotations=dataset["ann"], model=Recording(model, torch.device("cpu")))
        assert seen == [1] * 5
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_gt_array_fits_a_video_whose_visual_features_are_one_snippet_longer(dataset, tmp_path: Path) -> None:
    feats = tmp_path / "feats"
    _write_features(feats, [("v=eee__#1_label_B1-0-0", 6)])
    np.save(feats / "v=eee__#1_label_B1-0-0__vggish.npy", np.zeros((5, 128), np.float32))
    gt = np.r_[np.ones(32), np.zeros(48)].astype(np.float32)
    result = evaluate(discover_folder(feats), gt=gt, checkpoint=dataset["ckpt"])
    assert result.n_snippets == 5 and result.n_frames == 80
    assert result.warnings == ["video 'v=eee__#1_label_B1-0-0': 6 visual vs 5 audio snippets; trimmed to 5"]


def test_an_unreadable_feature_file_with_a_gt_is_named_by_the_loader(dataset, tmp_path: Path) -> None:
    feats = tmp_path / "feats"
    _write_features(feats, [("v=fff__#1_label_B1-0-0", 4)])
    (feats / "v=fff__#1_label_B1-0-0__0.npy").write_bytes(b"not a numpy file")
    gt = np.r_[np.ones(32), np.zeros(32)].astype(np.float32)
    with pytest.raises(InputError, match=r"v=fff__#1_label_B1-0-0__0\.npy: not a readable \.npy feature file"):
        evaluate(discover_folder(feats), gt=gt, checkpoint=dataset["ckpt"])


def test_save_scores_into_a_missing_folder_is_an_input_error(dataset, tmp_path: Path) -> None:
    result = evaluate(discover_folder(dataset["feats"]), annotations=dataset["ann"], checkpoint=dataset["ckpt"])
    target = tmp_path / "absent" / "scores.npz"
    with pytest.raises(InputError) as info:
        save_scores(result, target)
    assert str(info.value) == f"{target}: the folder {tmp_path / 'absent'} does not exist"
    assert list(tmp_path.iterdir()) == []


# --- the command -------------------------------------------------------------------------


def _run(*args: str):
    return runner.invoke(app, ["eval", *map(str, args)])


def test_cli_json(dataset, tmp_path: Path) -> None:
    out = tmp_path / "scores.npz"
    result = _run("--features", dataset["feats"], "--annotations", dataset["ann"], "--checkpoint", dataset["ckpt"],
                  "--json", "--save-scores", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    api = evaluate(discover_folder(dataset["feats"]), annotations=dataset["ann"], checkpoint=dataset["ckpt"])
    assert doc["ap"] == api.ap and doc["auc"] == api.auc
    assert doc["n_videos"] == 5 and doc["n_snippets"] == sum(t for _, t in VIDEOS)
    assert doc["checkpoint_sha256"] == hashlib.sha256(dataset["ckpt"].read_bytes()).hexdigest()
    with np.load(out) as saved:
        assert sorted(saved.files) == sorted(n for n, _ in VIDEOS)
        for name, scores in api.scores.items():
            np.testing.assert_array_equal(saved[name], scores.av)
    assert [p.name for p in tmp_path.iterdir()] == ["scores.npz"]  # no temporary left behind


def test_cli_lists_text_output_and_default_weights(dataset, shared_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIOLENCE_DETECT_WEIGHTS", str(shared_dir / "weights"))
    result = _run("--rgb-list", dataset["rgb"], "--audio-list", dataset["audio"], "--annotations", dataset["ann"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("AP ")
    assert "ROC-AUC" in result.stdout and "macil_sd.pkl" in result.stdout
    digest = hashlib.sha256((shared_dir / "weights" / "macil_sd.pkl").read_bytes()).hexdigest()
    assert f"(published, sha256 {digest[:12]})" in result.stdout and digest not in result.stdout  # short on the terminal
    doc = json.loads(
        _run("--rgb-list", dataset["rgb"], "--audio-list", dataset["audio"], "--annotations", dataset["ann"], "--json").stdout
    )
    assert doc["schema_version"] == 1 and doc["version"] == __version__
    assert doc["weights"] == [
        {"name": "macil_sd", "path": doc["checkpoint"], "sha256": digest, "verified": True, "trained": None}
    ]


def test_cli_warns_on_stderr_for_trimmed_lengths(dataset, tmp_path: Path) -> None:
    feats = tmp_path / "feats"
    _write_features(feats, [("v=ddd__#1_label_B1-0-0", 6), ("e_label_A", 5)])
    np.save(feats / "e_label_A__vggish.npy", np.zeros((6, 128), np.float32))
    (tmp_path / "ann.txt").write_text("v=ddd__#1_label_B1-0-0 0 40\n")
    result = _run("--features", feats, "--annotations", tmp_path / "ann.txt", "--checkpoint", dataset["ckpt"], "--json")
    assert result.exit_code == 0, result.output
    assert "trimmed to 5" in result.stderr
    assert json.loads(result.stdout)["n_snippets"] == 11


def _assert_one_line_error(result, *fragments: str, code: int = 1) -> None:
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith("error:")
    for fragment in fragments:
        assert fragment in first, first


def test_cli_bad_inputs(dataset, tmp_path: Path) -> None:
    ck = ("--checkpoint", dataset["ckpt"])
    ann = ("--annotations", dataset["ann"])
    _assert_one_line_error(_run("--features", tmp_path / "absent", *ann, *ck), "absent", "no such folder")

    bad_rgb = tmp_path / "rgb.list"
    lines = dataset["rgb"].read_text().splitlines()
    bad_rgb.write_text("\n".join([lines[0], lines[5], *lines[1:5], *lines[6:]]))
    _assert_one_line_error(_run("--rgb-list", bad_rgb, "--audio-list", dataset["audio"], *ann, *ck), "not on consecutive lines")

    _assert_one_line_error(_run("--rgb-list", tmp_path / "nope.list", "--audio-list", dataset["audio"], *ann, *ck), "nope.list")

    feats = tmp_path / "feats"
    _write_features(feats, [("v=x__#1_label_B1-0-0", 6)])
    np.save(feats / "v=x__#1_label_B1-0-0__vggish.npy", np.zeros((9, 128), np.float32))
    _assert_one_line_error(_run("--features", feats, *ann, *ck), "v=x__#1_label_B1-0-0", "6 visual", "9 audio")

    np.save(tmp_path / "gt.npy", np.zeros(100))
    _assert_one_line_error(_run("--features", dataset["feats"], "--gt", tmp_path / "gt.npy", *ck), "100 frames", f"expected {16 * TOTAL_T}")

    _assert_one_line_error(_run("--features", dataset["feats"], *ann, "--checkpoint", tmp_path / "none.pkl"), "none.pkl")
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"\x00junk")
    _assert_one_line_error(_run("--features", dataset["feats"], *ann, "--checkpoint", junk), "junk.pkl")


def test_cli_usage_errors(dataset) -> None:
    feats, ann = ("--features", dataset["feats"]), ("--annotations", dataset["ann"])
    _assert_one_line_error(_run(*feats), "--gt", code=2)
    _assert_one_line_error(_run(*feats, *ann, "--gt", dataset["ann"]), "exactly one", code=2)
    _assert_one_line_error(_run(*ann), "--features", code=2)
    _assert_one_line_error(_run(*feats, "--rgb-list", dataset["rgb"], *ann), "not both", code=2)
    _assert_one_line_error(_run(*feats, *ann, "--device", "tpu"), "tpu", code=2)
    _assert_one_line_error(_run(*feats, *ann, "--save-scores", "out.json"), ".npz", code=2)
