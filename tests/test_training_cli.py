"""`violence-detect train` through the CLI: help, JSON summary, resume, errors, and the
round trip train -> eval -> detect with the produced checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from violence_cli.cli import app
from violence_cli.training.synthetic import make_synthetic_xd

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("tiny")
    tr = make_synthetic_xd(root / "train", 5, 5, crops=1, min_len=16, max_len=40, seed=11)
    va = make_synthetic_xd(root / "val", 3, 3, crops=1, min_len=16, max_len=40, seed=12)
    return tr, va


def _train(*args: str):
    return runner.invoke(app, ["train", *args])


def test_help_tells_small_data_users_about_batch_size() -> None:
    result = runner.invoke(app, ["train", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "collapsed to 0.07" in text and "--batch-size 16" in text
    assert "violence-detect train --features" in text and "--resume" in text


def test_train_eval_detect_round_trip(tiny, tmp_path: Path) -> None:
    tr, va = tiny
    out = tmp_path / "run"
    result = _train(
        "--features", str(tr.root), "--val-features", str(va.root), "--val-annotations", str(va.annotations),
        "--out", str(out), "--epochs", "2", "--batch-size", "4", "--device", "cpu", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["epochs_done"] == 2 and summary["train_bags"] == 10 and summary["val_videos"] == 6
    assert summary["best_epoch"] in (0, 1) and 0.0 <= summary["best_ap"] <= 1.0
    for key in ("best", "last", "state", "log"):
        assert Path(summary[key]).is_file()
    assert len(Path(summary["log"]).read_text().splitlines()) == 2
    assert summary["schema_version"] == 1 and summary["version"] and summary["weights"][0]["path"] == summary["best"]
    # each checkpoint has the sidecar that names it as the user's own model (data, epochs, AP)
    from violence_cli.weights import trained_metadata

    meta = trained_metadata(summary["best"])
    assert meta["epoch"] == summary["best_epoch"] and meta["ap"] == summary["best_ap"] and meta["epochs"] == 2
    assert meta["train_videos"] == 10 and meta["data"] == [str(tr.root.resolve())]
    assert summary["weights"][0]["trained"] == meta

    # eval (engineer E's command) on the same held-out set reproduces the best AP
    ev = runner.invoke(app, [
        "eval", "--features", str(va.root), "--annotations", str(va.annotations),
        "--checkpoint", summary["best"], "--device", "cpu", "--json",
    ])  # fmt: skip
    assert ev.exit_code == 0, ev.output
    assert json.loads(ev.stdout)["ap"] == pytest.approx(summary["best_ap"], abs=1e-6)

    # a second run into the same folder is refused (it would overwrite this one)
    again = _train("--features", str(tr.root), "--out", str(out), "--epochs", "1")
    assert again.exit_code == 2 and "--resume" in again.output

    # resume with only --epochs: data sources and recipe come from the state
    more = _train("--resume", str(out), "--epochs", "3", "--json")
    assert more.exit_code == 0, more.output
    assert json.loads(more.stdout)["resumed_from"] == 2 and json.loads(more.stdout)["epochs_done"] == 3

    # detect (engineer D's pipeline) runs with the trained checkpoint
    from fakeweights import save_fake_weights
    from mediagen import make_clip

    weights = save_fake_weights(tmp_path / "w")
    clip = make_clip(tmp_path / "clip.mp4", seconds=40 / 24, fps=24)
    det = runner.invoke(app, [
        str(clip), "--checkpoint", summary["last"], "--i3d-weights", str(weights["i3d_rgb_imagenet"]),
        "--vggish-weights", str(weights["vggish"]), "--crops", "1", "--device", "cpu", "--no-download", "--json",
    ])  # fmt: skip
    assert det.exit_code == 0, det.output
    assert summary["last"] in det.stdout  # the result names the weights it used
    doc = json.loads(det.stdout)
    assert [w["trained"] is not None for w in doc["weights"]] == [False, False, True]
    assert det.stderr.count("using your own model") == 1 and "macil_sd weights" not in det.stderr


def _last_error_line(output: str) -> str:
    return [line for line in output.splitlines() if line.strip()][-1]


def test_bad_inputs_are_one_line_errors(tiny, tmp_path: Path) -> None:
    tr, va = tiny
    data = make_synthetic_xd(tmp_path / "bad", 2, 2, crops=1, seed=13)
    victim = tmp_path / "bad" / f"{data.videos[1].name}__0.npy"
    arr = np.load(victim)
    arr[0, 0] = np.inf
    np.save(victim, arr)
    result = _train("--features", str(tmp_path / "bad"), "--out", str(tmp_path / "o"), "--epochs", "1")
    assert result.exit_code == 1
    assert victim.name in result.output and "NaN or infinite" in result.output
    assert "Traceback" not in result.output

    only_normal = make_synthetic_xd(tmp_path / "normal", 0, 2, crops=1, seed=14)
    result = _train("--features", str(only_normal.root), "--out", str(tmp_path / "o2"))
    assert result.exit_code == 1 and "no violent video" in result.output

    result = _train("--features", str(tr.root))
    assert result.exit_code == 2 and "--out" in result.output

    result = _train("--features", str(tr.root), "--val-features", str(va.root), "--out", str(tmp_path / "o3"))
    assert result.exit_code == 2 and "--val-annotations" in result.output

    result = _train("--resume", str(tmp_path / "nothing"))
    assert result.exit_code == 1 and "no training state" in result.output

    result = _train("--features", str(tr.root), "--out", str(tmp_path / "o4"), "--device", "tpu")
    assert result.exit_code == 2

    result = _train("--features", str(tr.root), "--out", str(tmp_path / "o5"), "--threads", "0")
    assert result.exit_code == 2 and "--threads" in result.output

    result = _train("--features", str(tr.root), "--out", str(tmp_path / "o6"), "--batch-size", "0")
    assert result.exit_code == 2 and "--batch-size" in result.output


def test_list_files_and_labels_csv(tmp_path: Path) -> None:
    data = make_synthetic_xd(tmp_path / "f", 3, 3, crops=2, seed=15, prefix="own")
    renamed = {}
    for v in data.videos:  # own videos: names say nothing about the label
        new = v.name.split("_label_")[0]
        renamed[new] = v.violent
        for f in (tmp_path / "f").glob(f"{v.name}__*.npy"):
            f.rename(f.with_name(f.name.replace(v.name, new)))
    names = sorted(renamed)
    rgb = tmp_path / "rgb.list"
    rgb.write_text("".join(f"{tmp_path / 'f' / f'{n}__{c}.npy'}\n" for n in names for c in range(2)))
    audio = tmp_path / "audio.list"
    audio.write_text("".join(f"{tmp_path / 'f' / f'{n}__vggish.npy'}\n" for n in names))
    result = _train("--rgb-list", str(rgb), "--audio-list", str(audio), "--out", str(tmp_path / "o"), "--epochs", "1")
    assert result.exit_code == 1 and "no normal video" in result.output and "--labels" in result.output
    labels = tmp_path / "labels.csv"
    labels.write_text("video,label\n" + "".join(f"{n},{'violent' if renamed[n] else 'normal'}\n" for n in names))
    result = _train(
        "--rgb-list", str(rgb), "--audio-list", str(audio), "--labels", str(labels),
        "--out", str(tmp_path / "o"), "--epochs", "1", "--batch-size", "4", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["train_bags"] == 12 and summary["best_ap"] is None
