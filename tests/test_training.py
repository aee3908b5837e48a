"""Training: data checks, the recipe's schedules, learning a planted signal, exact resume.

Synthetic XD-layout datasets (violence_cli.training.synthetic) stand in for real features:
violent snippets move a few visual and audio channels, so a few epochs on CPU must find
them. Batches of 8 (the paper's 128 is for 20k bags; see `train --help`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from violence_cli import atomic
from violence_cli.errors import InputError
from violence_cli.model import MacilSD, VisualOnlyNet, load_model
from violence_cli.training import (
    TrainConfig,
    ValidationSet,
    build_training_set,
    read_labels_csv,
    read_state,
    subsample_indices,
    train,
)
from violence_cli.training.loop import (
    ema_update,
    lambda_at,
    momentum_at,
    shared_parameters,
)
from violence_cli.training.synthetic import make_synthetic_xd
from violence_cli.xdfeatures import discover_folder

SMALL = TrainConfig(epochs=2, batch_size=8)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("synthetic")
    train_set = make_synthetic_xd(root / "train", 16, 16, crops=2, min_len=16, max_len=48, seed=1)
    val_set = make_synthetic_xd(root / "val", 6, 6, crops=2, min_len=16, max_len=48, seed=2)
    return train_set, val_set


@pytest.fixture(scope="module")
def bags(synth):
    return build_training_set(discover_folder(synth[0].root))


@pytest.fixture(scope="module")
def held_out(synth):
    return ValidationSet(discover_folder(synth[1].root), annotations=synth[1].annotations)


# --------------------------------------------------------------------------- data


def test_subsampling_matches_the_published_rows() -> None:
    for n in (1, 17, 199, 200, 201, 333, 1000, 4097):
        rows = subsample_indices(n, 200)
        published = np.arange(n) if n <= 200 else np.linspace(0, n - 1, 200, dtype=np.uint16)
        assert rows.tolist() == published.tolist()
    assert subsample_indices(100_000, 200)[-1] == 99_999  # no uint16 wrap-around


def test_each_crop_is_a_bag_with_labels_lengths_and_padding(tmp_path: Path) -> None:
    data = make_synthetic_xd(tmp_path, 2, 1, crops=3, min_len=20, max_len=60, seed=5)
    ts = build_training_set(discover_folder(tmp_path), max_seqlen=32)
    assert len(ts) == 9 and ts.n_videos == 3 and ts.counts() == (2, 1)
    by_video = {v.name: v for v in data.videos}
    for i, bag in enumerate(ts.bags):
        video = by_video[bag.video]
        assert bag.label == float(video.violent)
        assert bag.length == min(video.length, 32)
        visual, audio = ts.load(i)
        full = np.load(tmp_path / f"{bag.video}__{bag.crop}.npy")
        np.testing.assert_array_equal(visual, full[subsample_indices(video.length, 32)])
        assert audio.shape == (bag.length, 128)
    batch = ts.collate([0, 3, 6])
    longest = int(batch.lengths.max())
    assert batch.visual.shape == (3, longest, 1024)
    for j, n in enumerate(batch.lengths.tolist()):
        assert torch.all(batch.visual[j, n:] == 0) and torch.all(batch.audio[j, n:] == 0)
    # with no room in the cache, the same rows are read back from disk per batch
    lazy = build_training_set(discover_folder(tmp_path), max_seqlen=32, cache_bytes=0)
    for i in range(len(ts)):
        np.testing.assert_array_equal(lazy.load(i)[0], ts.load(i)[0])
        np.testing.assert_array_equal(lazy.load(i)[1], ts.load(i)[1])


def test_labels_csv_overrides_the_names(tmp_path: Path) -> None:
    data = make_synthetic_xd(tmp_path / "f", 1, 2, crops=1, seed=6)
    names = [v.name for v in data.videos]
    csv = tmp_path / "labels.csv"
    csv.write_text("video,label\n" + f"{names[0]}.mp4,normal\n{names[1]},1\n{names[2]},violent\n")
    ts = build_training_set(discover_folder(data.root), read_labels_csv(csv), labels_path=csv)
    assert [b.label for b in ts.bags] == [0.0, 1.0, 1.0]
    csv.write_text(f"{names[0]},1\n{names[1]},0\n")
    with pytest.raises(InputError, match=f"no label for video '{names[2]}'"):
        build_training_set(discover_folder(data.root), read_labels_csv(csv), labels_path=csv)
    csv.write_text(f"video,label\n{names[0]},maybe\n")
    with pytest.raises(InputError, match="labels.csv:2"):
        read_labels_csv(csv)


def test_bad_training_data_is_one_line_error(tmp_path: Path) -> None:
    data = make_synthetic_xd(tmp_path, 2, 2, crops=2, seed=7)
    name = data.videos[0].name
    crop = tmp_path / f"{name}__1.npy"
    good = np.load(crop)

    bad = good.copy()
    bad[3, 5] = np.nan
    np.save(crop, bad)
    with pytest.raises(InputError, match=r"__1\.npy: features contain NaN"):
        build_training_set(discover_folder(tmp_path))

    crop.write_bytes(b"not a numpy file")
    with pytest.raises(InputError, match=r"__1\.npy: not a readable"):
        build_training_set(discover_folder(tmp_path))

    np.save(crop, good)
    np.save(tmp_path / f"{name}__vggish.npy", np.zeros((good.shape[0] + 5, 128), np.float32))
    with pytest.raises(InputError, match=f"video '{name}'.*must match"):
        build_training_set(discover_folder(tmp_path))

    with pytest.raises(InputError, match="empty"):
        build_training_set([])


def test_one_class_only_is_refused(tmp_path: Path) -> None:
    make_synthetic_xd(tmp_path / "v", 2, 0, crops=1, seed=8)
    with pytest.raises(InputError, match="no normal video.*needs both"):
        build_training_set(discover_folder(tmp_path / "v"))
    make_synthetic_xd(tmp_path / "n", 0, 2, crops=1, seed=8)
    with pytest.raises(InputError, match="no violent video"):
        build_training_set(discover_folder(tmp_path / "n"))


# --------------------------------------------------------------------------- the recipe


def test_schedules_are_the_published_ones() -> None:
    assert [lambda_at(e, 1.5, 0.1) for e in (0, 1, 5, 15, 40)] == pytest.approx([0, 0.1, 0.5, 1.5, 1.5])
    # the published log prints m=0.91, 0.9101, 0.9104, 0.9108 for epochs 0..3 and 0.9263 at 14
    got = [round(momentum_at(e, 0.91, 50), 4) for e in (0, 1, 2, 3, 14)]
    assert got == [0.91, 0.9101, 0.9104, 0.9108, 0.9263]
    assert momentum_at(50, 0.91, 50) == 1.0 and momentum_at(70, 0.91, 50) == 1.0


def test_ema_moves_every_shared_parameter_but_the_audio_projection() -> None:
    torch.manual_seed(0)
    model, teacher = MacilSD(), VisualOnlyNet()
    names = [name for name, _, _ in shared_parameters(model, teacher)]
    all_names = [n for n, _ in model.named_parameters()]
    assert sorted(set(all_names) - set(names)) == ["fc_a.bias", "fc_a.weight"]
    assert "att_mmil.fc.weight" in names and "cma.layer.self_attn.linears.0.weight" in names
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ema_update(model, teacher, 0.9)
    theirs = teacher.state_dict()
    for name, value in model.state_dict().items():
        if name.startswith("fc_a."):
            assert torch.equal(value, before[name])
        else:
            other = "fc." + name.split(".")[-1] if name.startswith("att_mmil.fc.") else name
            torch.testing.assert_close(value, 0.9 * before[name] + 0.1 * theirs[other])


# --------------------------------------------------------------------------- training


def test_training_learns_the_planted_signal(bags, held_out, tmp_path: Path) -> None:
    seen = []
    result = train(bags, tmp_path, SMALL, validate=held_out, progress=seen.append)
    assert result.best_ap is not None and result.best_ap >= 0.9
    assert result.initial_ap is not None and result.best_ap > result.initial_ap + 0.2  # random init: far lower
    assert [r.epoch for r in result.history] == [0, 1]
    lines = [json.loads(x) for x in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert len(lines) == 2
    for key in (
        "loss",
        "mil",
        "a2v_bgd",
        "v2a_nor",
        "teacher_loss",
        "ap",
        "auc",
        "lambda_bgd",
        "momentum",
        "lr",
        "seconds",
    ):
        assert all(isinstance(line[key], float) for line in lines), key
    assert [line["lambda_bgd"] for line in lines] == pytest.approx([0.0, 0.1])
    assert lines[1]["lr"] < lines[0]["lr"] == pytest.approx(4e-4)
    assert sum(p.record is not None for p in seen) == 2 and any(p.step == 1 for p in seen)
    # best.pt is a plain state dict in the published layout: our loader takes it strictly
    model = load_model(result.best_path)
    state = torch.load(result.best_path, weights_only=True)
    assert len(state) == 38 and set(state) == set(MacilSD().state_dict())
    assert held_out(model)[0] == pytest.approx(result.best_ap)


def test_resume_after_interrupt_equals_an_uninterrupted_run(synth, held_out, tmp_path: Path) -> None:
    entries = discover_folder(synth[0].root)[:8]  # 16 bags, both labels: a quick run
    bags = build_training_set(entries)
    assert bags.counts()[0] and bags.counts()[1]
    cfg = TrainConfig(epochs=2, batch_size=8)
    train(bags, tmp_path / "a", cfg, validate=held_out)

    def interrupt(p) -> None:
        if p.epoch == 1 and p.step == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(bags, tmp_path / "b", TrainConfig(epochs=2, batch_size=8), validate=held_out, progress=interrupt)
    state = read_state(tmp_path / "b")
    assert state["epoch"] == 1  # the last complete epoch survived
    assert len((tmp_path / "b" / "train_log.jsonl").read_text().splitlines()) == 1
    load_model(tmp_path / "b" / "last.pt")

    resumed = train(bags, tmp_path / "b", None, validate=held_out, resume=True)
    assert resumed.resumed_from == 1 and resumed.epochs_done == 2
    for name in ("last.pt", "best.pt"):
        a = torch.load(tmp_path / "a" / name, weights_only=True)
        b = torch.load(tmp_path / "b" / name, weights_only=True)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    sa, sb = read_state(tmp_path / "a"), read_state(tmp_path / "b")
    assert all(torch.equal(sa["teacher"][k], sb["teacher"][k]) for k in sa["teacher"])
    assert [r["loss"] for r in sa["history"]] == [r["loss"] for r in sb["history"]]
    assert [r["ap"] for r in sa["history"]] == [r["ap"] for r in sb["history"]]

    # extending a finished run continues with the saved recipe
    longer = train(bags, tmp_path / "b", TrainConfig(epochs=3, batch_size=999), resume=True)
    assert longer.epochs_done == 3 and read_state(tmp_path / "b")["config"]["batch_size"] == 8


def test_killed_while_renaming_state_pt_then_resume_redoes_that_epoch(synth, tmp_path: Path) -> None:
    """SIGKILL (the atomic writer's test hook) between writing epoch 1's state.pt and renaming
    it: the state still says epoch 0 is the last whole one, and a resume redoes exactly epoch 1."""
    root = synth[0].root
    script = textwrap.dedent(
        f"""
        import torch
        from violence_cli.training import TrainConfig, build_training_set, train
        from violence_cli.xdfeatures import discover_folder
        torch.set_num_threads(1)
        bags = build_training_set(discover_folder({str(root)!r})[:8])
        train(bags, {str(tmp_path / "b")!r}, TrainConfig(epochs=2, batch_size=8))
        """
    )
    env = {**os.environ, atomic.KILL_ENV: "*/state.pt@2", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    folder = tmp_path / "b"
    left = [p.name for p in folder.iterdir() if p.name.endswith(atomic.TMP_SUFFIX)]
    assert len(left) == 1 and left[0].startswith(".state.pt."), left  # killed holding epoch 1's state
    assert read_state(folder)["epoch"] == 1  # epoch 0's state is whole and says "next: 1"

    bags = build_training_set(discover_folder(root)[:8])
    resumed = train(bags, folder, None, resume=True)
    assert resumed.resumed_from == 1 and resumed.epochs_done == 2
    assert [p.name for p in folder.iterdir() if p.name.endswith(atomic.TMP_SUFFIX)] == []
    whole = train(bags, tmp_path / "a", TrainConfig(epochs=2, batch_size=8))
    a, b = torch.load(whole.last_path, weights_only=True), torch.load(resumed.last_path, weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)  # the redone epoch is the epoch an unbroken run does
    assert len((folder / "train_log.jsonl").read_text().splitlines()) == 2


def test_resume_needs_a_state(tmp_path: Path, bags) -> None:
    with pytest.raises(InputError, match="no training state"):
        train(bags, tmp_path, SMALL, resume=True)
    (tmp_path / "state.pt").write_bytes(b"garbage")
    with pytest.raises(InputError, match="unreadable training state"):
        train(bags, tmp_path, SMALL, resume=True)


def test_recipe_options_change_the_run(bags, tmp_path: Path) -> None:
    off = train(bags, tmp_path / "off", TrainConfig(epochs=2, batch_size=8, lambda_step=0.0))
    assert all(r.loss == pytest.approx(r.mil) for r in off.history)  # no contrastive weight
    assert off.best_ap is None and off.best_epoch == 1  # no validation: best = last
    on = train(bags, tmp_path / "on", TrainConfig(epochs=2, batch_size=8))
    assert on.history[1].loss != pytest.approx(on.history[1].mil)
    matched = train(bags, tmp_path / "m", TrainConfig(epochs=2, batch_size=8, pairing="matched"))
    assert matched.history[1].a2v_bgd != pytest.approx(on.history[1].a2v_bgd)
    assert on.history[0].loss == pytest.approx(matched.history[0].loss)  # epoch 0: lambda 0 either way
