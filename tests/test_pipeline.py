"""Detector / detect(): media -> features -> MACIL-SD -> DetectionResult, with random weights.

Random weights come as FILES (tests/fakeweights.py) passed by explicit path, so every result
here must say verified=False; clips are tiny (tests/mediagen.py) and use one crop.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from fakeweights import fake_weights_folder
from mediagen import make_clip

from violence_cli.devices import resolve_device
from violence_cli.errors import InputError, UsageError, WeightsError
from violence_cli.pipeline import SNIPPET_SECONDS, Detector, detect
from violence_cli.precision import resolve_precision
from violence_cli.runner.inputs import discover
from violence_cli.schema import SCHEMA_VERSION
from violence_cli.segments import find_segments
from violence_cli.weights import file_sha256


@pytest.fixture(scope="module")
def fake_weights(tmp_path_factory: pytest.TempPathFactory):
    with fake_weights_folder(tmp_path_factory, "fake-weights") as w:
        yield w


@pytest.fixture(scope="module")
def detector(fake_weights) -> Detector:
    return Detector(
        device="cpu",
        crops=1,
        batch_size=2,
        checkpoint=fake_weights["macil_sd"],
        i3d_weights=fake_weights["i3d_rgb_imagenet"],
        vggish_weights=fake_weights["vggish"],
        download=False,
    )


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    return {
        # 40 frames at 24 fps -> floor(39 / 16) = 2 snippets
        "av": make_clip(d / "av.mp4", seconds=40 / 24, fps=24, channels=2, audio_rate=44100),
        "mute": make_clip(d / "mute.mp4", seconds=1.0, fps=30, audio=False),
        "short": make_clip(d / "short.mp4", seconds=10 / 24, fps=24),
        "audio_only": make_clip(d / "sound.m4a", seconds=1.0, audio_only=True),
    }


@pytest.fixture(scope="module")
def av_result(detector, clips):
    return detector.detect(clips["av"], threshold=0.5)


def test_result_has_snippets_on_the_16_frame_grid(av_result) -> None:
    r = av_result
    assert r.video.n_snippets == len(r.snippets) == 2
    for k, s in enumerate(r.snippets):
        assert s.index == k
        assert s.start == pytest.approx(16 * k / 24)
        assert s.end == pytest.approx(16 * (k + 1) / 24)
        for value in (s.score, s.audio_score, s.visual_score):
            assert 0.0 <= value <= 1.0 and not math.isnan(value)
    assert r.video.scored_duration == pytest.approx(2 * SNIPPET_SECONDS)


def test_result_video_facts_and_params(av_result, clips) -> None:
    v = av_result.video
    assert v.path == str(clips["av"])
    assert (v.width, v.height) == (64, 48)
    assert v.fps == pytest.approx(24.0)
    assert v.has_audio is True and v.audio_stream is not None and v.video_stream is not None
    assert v.duration == pytest.approx(40 / 24, abs=0.1)
    p = av_result.params
    assert (p.crops, p.device, p.threshold, p.batch_size) == (1, "cpu", 0.5, 2)
    assert p.precision == resolve_precision("auto", "cpu")  # the Detector's default: auto


def test_weights_recorded_with_sha256_and_unverified(av_result, fake_weights) -> None:
    used = {w.name: w for w in av_result.weights}
    assert set(used) == {"macil_sd", "i3d_rgb_imagenet", "vggish"}
    for name, w in used.items():
        assert w.sha256 == file_sha256(fake_weights[name])
        assert w.verified is False
    assert av_result.weights_verified is False
    assert sum("not the published file" in w for w in av_result.warnings) == 3
    data = av_result.to_dict()
    assert data["schema_version"] == SCHEMA_VERSION and data["weights_verified"] is False


@pytest.fixture(scope="module")
def mute_result(detector, clips):
    return detector.detect(clips["mute"])


def test_segments_follow_the_threshold(detector, clips, av_result, mute_result) -> None:
    assert av_result.segments == find_segments(av_result.snippets, 0.5)
    everything = detector.detect(clips["mute"], threshold=0.0)
    # the same weights and file give the same scores
    assert [s.score for s in everything.snippets] == pytest.approx([s.score for s in mute_result.snippets], abs=1e-6)
    (seg,) = everything.segments
    assert (seg.start, seg.end) == (0.0, pytest.approx(SNIPPET_SECONDS))
    assert everything.verdict == "violent"
    assert detector.detect(clips["mute"], threshold=1.0).verdict == "non-violent"


def test_score_of_features_equals_detect_and_never_decodes(detector, clips, av_result, monkeypatch) -> None:
    features = detector.features(clips["av"])
    from violence_cli import media

    def no_decoding(*args, **kwargs):
        raise AssertionError("score() decoded the video")

    monkeypatch.setattr(media, "iter_frames", no_decoding)
    monkeypatch.setattr(media, "probe", no_decoding)
    rescored = detector.score(features, threshold=0.5)
    assert rescored.to_dict() == av_result.to_dict()
    lower = detector.score(features, threshold=0.0)
    assert [s.score for s in lower.snippets] == [s.score for s in av_result.snippets]
    assert lower.segments == find_segments(av_result.snippets, 0.0)
    with pytest.raises(UsageError):
        detector.score(features, threshold=-0.1)


def test_video_without_audio_is_flagged(mute_result) -> None:
    r = mute_result
    assert r.video.has_audio is False and r.video.audio_stream is None
    assert any("no audio" in w for w in r.warnings)
    assert sum("no audio" in w for w in r.warnings) == 1  # said once, not by every layer
    assert r.video.n_snippets == 1  # 30 fps for 1 s -> 24 frames at 24 fps -> floor(23 / 16)


def test_too_short_video_names_the_minimum(detector, clips) -> None:
    with pytest.raises(InputError, match="17"):
        detector.detect(clips["short"])


def test_audio_only_file_has_no_video_stream(detector, clips) -> None:
    with pytest.raises(InputError, match="no video stream"):
        detector.detect(clips["audio_only"])


def test_bad_segment_options_are_usage_errors(detector, clips) -> None:
    with pytest.raises(UsageError):
        detector.detect(clips["av"], threshold=1.5)
    with pytest.raises(UsageError):
        detector.detect(clips["av"], merge_gap=-1)


def test_one_shot_detect_splits_options_and_verifies_the_published_checkpoint(
    fake_weights, clips, macil_checkpoint
) -> None:
    # the real MACIL-SD file (verified) with random I3D/VGGish found through weights_dir
    r = detect(
        clips["mute"],
        device="cpu",
        crops=1,
        checkpoint=macil_checkpoint,
        weights_dir=fake_weights["i3d_rgb_imagenet"].parent,
        download=False,
        threshold=0.0,
        min_duration=0.5,
    )
    assert r.params.threshold == 0.0 and r.params.min_duration == 0.5 and r.params.crops == 1
    assert len(r.segments) == 1
    verified = {w.name: w.verified for w in r.weights}
    assert verified == {"i3d_rgb_imagenet": False, "vggish": False, "macil_sd": True}
    published = next(w for w in r.weights if w.name == "macil_sd")
    assert published.sha256 == "155c802b42a5f17f205830c6a2028a37271b656ae31d4a060323c16e7e48cd30"
    assert not any("macil_sd weights" in w for w in r.warnings)
    assert r.weights_verified is False  # one unverified file is enough to flag the result


def test_missing_weights_is_one_clear_error(tmp_path) -> None:
    with pytest.raises(WeightsError) as info:
        Detector(device="cpu", crops=1, weights_dir=tmp_path, download=False)
    text = f"{info.value.message} {info.value.hint or ''}"
    assert "violence-detect weights download" in text and "VIOLENCE_DETECT_WEIGHTS" in text
    assert "\n" not in info.value.message


def test_bad_detector_options(fake_weights) -> None:
    with pytest.raises(UsageError):
        Detector(crops=3, checkpoint=fake_weights["macil_sd"])
    with pytest.raises(UsageError):
        Detector(batch_size=0, checkpoint=fake_weights["macil_sd"])


def test_resolve_device(monkeypatch) -> None:
    import torch

    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    for bad in ("cuda:0", "gpu", "cuda:x"):
        with pytest.raises(UsageError):
            resolve_device(bad)


def test_discover_videos(tmp_path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("b.mp4", "a.MKV", "notes.txt", "._b.mp4"):  # ._b.mp4: a macOS resource fork
        (folder / name).write_bytes(b"x")
    (folder / "sub").mkdir()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("hi")
    found = discover([folder, tmp_path / "missing.mp4", empty, folder / "notes.txt"])
    videos, failures = [v.path for v in found.videos], found.failures
    assert [p.name for p in videos] == ["a.MKV", "b.mp4", "notes.txt"]  # a named file is always tried
    assert [(Path(p).name, type(e)) for p, e in failures] == [("missing.mp4", InputError), ("empty", InputError)]
    assert "no such file" in failures[0][1].message and "no video files" in failures[1][1].message
