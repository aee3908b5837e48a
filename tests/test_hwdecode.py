"""NVDEC decoding and its fallback (violence_cli.hwdecode), on the CPU.

This machine has no NVIDIA driver, but PyAV's FFmpeg has the CUDA hardware device: asking
it to decode on NVDEC fails for real here, which is the fallback path the tests take. The
per-file failure (a codec this GPU's NVDEC cannot decode, e.g. AV1 on Hopper) is injected.
Frames decoded on NVDEC against software frames (within one grey level) need a GPU:
benchmarks/gpu_check.py measures them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mediagen import make_clip

from violence_cli import hwdecode, media
from violence_cli.hwdecode import DECODE, OPEN, Nvdec, first_frame_problem, nvdec_accel

av_hw = pytest.importorskip("av.codec.hwaccel")
HAS_CUDA_DEVICE_TYPE = "cuda" in av_hw.hwdevices_available()


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("hw")
    return [make_clip(folder / f"c{i}.mp4", seconds=1.0, fps=24, size=(64, 48), tone_hz=300.0 + 50 * i) for i in (0, 1)]


def test_no_hwaccel_off_cuda_or_when_asked_for_cpu() -> None:
    assert nvdec_accel("cpu") is None and nvdec_accel(torch.device("cpu")) is None
    assert Nvdec("cpu").accel is None and not Nvdec("cpu").enabled
    assert Nvdec(torch.device("cuda", 0), mode="cpu").accel is None
    with pytest.raises(ValueError, match="hw_decode 'gpu'"):
        Nvdec("cpu", mode="gpu")


@pytest.mark.skipif(not HAS_CUDA_DEVICE_TYPE, reason="this PyAV's FFmpeg has no CUDA hardware device")
def test_cuda_gets_an_nvdec_hwaccel_that_keeps_the_index() -> None:
    accel = nvdec_accel(torch.device("cuda", 1))
    assert accel is not None and Nvdec(torch.device("cuda", 1)).accel is not None


@pytest.mark.skipif(torch.cuda.is_available() or not HAS_CUDA_DEVICE_TYPE, reason="needs a machine without CUDA")
def test_without_a_driver_the_file_falls_back_to_software_with_one_warning(clips: list[Path]) -> None:
    accel = av_hw.HWAccel(device_type="cuda", allow_software_fallback=False)
    found = first_frame_problem(clips[0], None, accel)
    assert found is not None and found[0] == OPEN  # a real failure: no NVIDIA driver here
    nvdec = Nvdec("cpu")
    nvdec.accel = accel  # as on a CUDA machine whose driver lacks NVDEC
    warnings: list[str] = []
    got = [list(nvdec.frames(media.open_video(c), 24, warnings.append)) for c in clips]
    want = [list(media.iter_frames(c, 24)) for c in clips]
    assert all(len(g) == len(w) and all(np.array_equal(a, b) for a, b in zip(g, w)) for g, w in zip(got, want))
    assert len(warnings) == 1 and warnings[0].startswith("NVDEC not available here (")  # once, not per file
    assert "decoded on the CPU" in warnings[0] and not nvdec.enabled and nvdec.used == {str(clips[0]): False}


def test_a_file_nvdec_cannot_decode_falls_back_alone(clips: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """After a file decoded on NVDEC, one it cannot decode (AV1 on Hopper, say) goes to
    software with a warning naming it, and the next one is tried on NVDEC again."""
    accel = object()  # stands in for the HWAccel; iter_frames is watched, not run with it
    answers = {clips[0].name: None, clips[1].name: (DECODE, "AV1 is not supported by this NVDEC")}
    probed: list[str] = []

    def probe(path: Path, video_stream: int | None, given: object):
        assert given is accel
        probed.append(path.name)
        return answers[path.name]

    seen: list[object] = []
    real = media.iter_frames

    def watched(path, fps, video_stream=None, **kw):  # noqa: ANN001, ANN202 - NVDEC's own opening
        seen.append((Path(path).name, kw.pop("hwaccel")))
        return real(path, fps, video_stream, **kw)

    monkeypatch.setattr(media, "iter_frames", watched)
    nvdec = Nvdec("cpu", probe=probe)
    nvdec.accel = accel
    warnings: list[str] = []
    for clip in (clips[0], clips[1], clips[0]):
        with media.open_video(clip) as source:
            assert len(list(nvdec.frames(source, 24, warnings.append))) == 24
    assert probed == ["c0.mp4", "c1.mp4", "c0.mp4"]
    assert seen == [("c0.mp4", accel), ("c0.mp4", accel)]  # c1 from its own software opening
    assert warnings == [
        "c1.mp4: NVDEC cannot decode this video (AV1 is not supported by this NVDEC): decoded on the CPU"
    ]
    assert nvdec.enabled


@pytest.mark.skipif(torch.cuda.is_available() or not HAS_CUDA_DEVICE_TYPE, reason="needs a machine without CUDA")
def test_the_extractor_falls_back_with_the_same_features(clips: list[Path], tmp_path: Path) -> None:
    from fakeweights import save_fake_weights

    from violence_cli.features.extract import FeatureExtractor

    weights = save_fake_weights(tmp_path / "w")
    fx = FeatureExtractor(weights["i3d_rgb_imagenet"], weights["vggish"], device="cpu", crops=1)
    plain = [fx.extract(c) for c in clips]
    fx.nvdec = Nvdec("cpu")
    fx.nvdec.accel = av_hw.HWAccel(device_type="cuda", allow_software_fallback=False)
    tried = [fx.extract(c) for c in clips]
    for a, b in zip(plain, tried):
        assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.audio, b.audio)
    assert sum("NVDEC not available" in w for t in tried for w in t.warnings) == 1
    assert hwdecode.HW_DECODE_MODES == ("auto", "cpu")
