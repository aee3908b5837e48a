"""Feature files in the XD-Violence layout: folders, official lists, checked loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from violence_cli.errors import InputError
from violence_cli.xdfeatures import (
    VideoEntry,
    discover_folder,
    is_normal,
    load_entry,
    read_lists,
)

VIOLENT = "v=S-7rRLrxnVQ__#1_label_B4-0-0"  # real XD names contain "__" themselves
NORMAL = "A.Beautiful.Mind.2001__#00-01-45_00-02-50_label_A"


def write_video(folder: Path, name: str, t: int, crops: int = 5, t_audio: int | None = None, seed: int = 0) -> None:
    rs = np.random.RandomState(seed)
    for c in range(crops):
        np.save(folder / f"{name}__{c}.npy", rs.rand(t, 1024).astype(np.float32))
    np.save(folder / f"{name}__vggish.npy", rs.rand(t if t_audio is None else t_audio, 128).astype(np.float32))


def test_is_normal() -> None:
    assert is_normal(NORMAL) and not is_normal(VIOLENT)


def test_discover_folder_groups_and_sorts(tmp_path: Path) -> None:
    write_video(tmp_path, VIOLENT, 4)
    write_video(tmp_path, NORMAL, 1, crops=1)
    write_video(tmp_path, "ten", 2, crops=10)
    (tmp_path / "gt.npy").write_bytes(b"ignored")
    (tmp_path / "notes.txt").write_text("ignored")
    entries = discover_folder(tmp_path)
    assert [e.name for e in entries] == sorted([VIOLENT, NORMAL, "ten"])
    by_name = {e.name: e for e in entries}
    assert [p.name for p in by_name["ten"].crop_paths] == [f"ten__{i}.npy" for i in range(10)]  # 10 after 9
    assert by_name[VIOLENT].audio_path.name == f"{VIOLENT}__vggish.npy"
    assert len(by_name[NORMAL].crop_paths) == 1


@pytest.mark.parametrize(
    "remove, message",
    [("a__vggish.npy", "no a__vggish.npy"), ("a__1.npy", "expected __0 .. __1"), (None, "at most 10")],
)
def test_discover_folder_rejects_incomplete_videos(tmp_path: Path, remove: str | None, message: str) -> None:
    write_video(tmp_path, "a", 3, crops=3 if remove else 11)
    if remove:
        (tmp_path / remove).unlink()
    with pytest.raises(InputError, match=message.replace(".", r"\.")):
        discover_folder(tmp_path)


def test_discover_folder_audio_without_crops_and_empty(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no features found"):
        discover_folder(tmp_path)
    np.save(tmp_path / "b__vggish.npy", np.zeros((2, 128), np.float32))
    with pytest.raises(InputError, match="no crop files"):
        discover_folder(tmp_path)
    with pytest.raises(InputError, match="no such folder"):
        discover_folder(tmp_path / "absent")


def _lists(tmp_path: Path, entries: list[VideoEntry]) -> tuple[Path, Path]:
    rgb, audio = tmp_path / "rgb.list", tmp_path / "audio.list"
    rgb.write_text("".join(f"{p}\n" for e in entries for p in e.crop_paths))
    audio.write_text("".join(f"{e.audio_path}\n" for e in entries))
    return rgb, audio


def test_read_lists_keeps_list_order(tmp_path: Path) -> None:
    write_video(tmp_path, VIOLENT, 3)
    write_video(tmp_path, NORMAL, 2)
    entries = discover_folder(tmp_path)[::-1]
    assert read_lists(*_lists(tmp_path, entries)) == entries


def test_read_lists_relative_to_the_list_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    feats = tmp_path / "feats"
    feats.mkdir()
    write_video(feats, "a", 2, crops=2)
    (tmp_path / "rgb.list").write_text("feats/a__0.npy\nfeats/a__1.npy\n\n")
    (tmp_path / "audio.list").write_text("feats/a__vggish.npy")
    monkeypatch.chdir(tmp_path.parent)
    (entry,) = read_lists(tmp_path / "rgb.list", tmp_path / "audio.list")
    assert entry.crop_paths == [feats / "a__0.npy", feats / "a__1.npy"]


def test_read_lists_errors(tmp_path: Path) -> None:
    write_video(tmp_path, "a", 2, crops=2)
    write_video(tmp_path, "b", 2, crops=2)
    a, b = discover_folder(tmp_path)
    rgb, audio = tmp_path / "rgb.list", tmp_path / "audio.list"

    rgb.write_text("\n".join(map(str, [a.crop_paths[0], b.crop_paths[0], a.crop_paths[1], b.crop_paths[1]])))
    audio.write_text(f"{a.audio_path}\n{b.audio_path}\n")
    with pytest.raises(InputError, match=r"rgb\.list:3: the crops of video 'a' are not on consecutive lines"):
        read_lists(rgb, audio)

    rgb.write_text("\n".join(map(str, [*a.crop_paths, *b.crop_paths])))
    audio.write_text(f"{a.audio_path}\n")
    with pytest.raises(InputError, match="1 audio files for 2 videos"):
        read_lists(rgb, audio)

    audio.write_text(f"{b.audio_path}\n{a.audio_path}\n")
    with pytest.raises(InputError, match=r"audio\.list:1: audio of 'b' where the RGB list has video 'a'"):
        read_lists(rgb, audio)

    rgb.write_text("\n".join(map(str, [a.crop_paths[1], a.crop_paths[0]])))
    audio.write_text(f"{a.audio_path}\n")
    with pytest.raises(InputError, match="expected __0"):
        read_lists(rgb, audio)

    rgb.write_text(f"{tmp_path / 'features.npy'}\n")
    with pytest.raises(InputError, match="not a crop file"):
        read_lists(rgb, audio)

    a.crop_paths[1].unlink()
    rgb.write_text("\n".join(map(str, a.crop_paths)))
    with pytest.raises(InputError, match=r"a__1\.npy: no such feature file"):
        read_lists(rgb, audio)

    with pytest.raises(InputError, match="no such file"):
        read_lists(tmp_path / "absent.list", audio)
    rgb.write_text("\n\n")
    with pytest.raises(InputError, match="empty"):
        read_lists(rgb, audio)


def test_load_entry_shapes_and_t1(tmp_path: Path) -> None:
    write_video(tmp_path, "a", 1, crops=3)
    (entry,) = discover_folder(tmp_path)
    rgb, audio = load_entry(entry)
    assert rgb.shape == (3, 1, 1024) and audio.shape == (1, 128)
    assert rgb.dtype == audio.dtype == np.float32
    np.testing.assert_array_equal(rgb[2], np.load(entry.crop_paths[2]))


@pytest.mark.parametrize("t_audio", [4, 6])
def test_load_entry_trims_a_difference_of_one(tmp_path: Path, t_audio: int) -> None:
    write_video(tmp_path, "a", 5, crops=2, t_audio=t_audio)
    (entry,) = discover_folder(tmp_path)
    warnings: list[str] = []
    rgb, audio = load_entry(entry, warnings.append)
    t = min(5, t_audio)
    assert rgb.shape == (2, t, 1024) and audio.shape == (t, 128)
    assert len(warnings) == 1 and "'a'" in warnings[0] and f"trimmed to {t}" in warnings[0]


def test_load_entry_rejects_bad_features(tmp_path: Path) -> None:
    write_video(tmp_path, "a", 5, crops=2, t_audio=7)
    (entry,) = discover_folder(tmp_path)
    with pytest.raises(InputError, match="video 'a': 5 visual snippets but 7 audio snippets"):
        load_entry(entry)

    np.save(entry.audio_path, np.full((5, 128), np.nan, np.float32))
    with pytest.raises(InputError, match=r"a__vggish\.npy: features contain NaN"):
        load_entry(entry)

    np.save(entry.audio_path, np.zeros((5, 64), np.float32))
    with pytest.raises(InputError, match=r"a__vggish\.npy: features of shape \(5, 64\); expected \(T, 128\)"):
        load_entry(entry)

    np.save(entry.audio_path, np.zeros((5, 128), np.float32))
    np.save(entry.crop_paths[1], np.zeros((4, 1024), np.float32))
    with pytest.raises(InputError, match="crop files differ in shape"):
        load_entry(entry)

    entry.crop_paths[1].write_text("not numpy")
    with pytest.raises(InputError, match=r"a__1\.npy: not a readable \.npy"):
        load_entry(entry)

    np.save(entry.crop_paths[1], np.zeros((0, 1024), np.float32))
    with pytest.raises(InputError, match="T >= 1"):
        load_entry(entry)
