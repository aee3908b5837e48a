"""Each constant once: the CLI's choices come from the library's tables; devices resolve once."""

from __future__ import annotations

import pytest
import torch
from fakeweights import random_macil_state_dict

from violence_cli import protocol
from violence_cli.cli.options import Crops, OutputFormat
from violence_cli.errors import UsageError
from violence_cli.features.extract import crop_boxes
from violence_cli.writers import FORMATS


def test_cli_choices_are_built_from_the_tables() -> None:
    assert [int(c.value) for c in Crops] == list(protocol.CROP_CHOICES)
    assert [f.value for f in OutputFormat] == [*FORMATS, "all"]


def test_snippet_constants_agree() -> None:
    assert protocol.SNIPPET_SECONDS == pytest.approx(16 / 24)
    assert protocol.MIN_FRAMES == protocol.SNIPPET_FRAMES + 1
    with pytest.raises(UsageError, match="crops 3"):
        protocol.check_crops(3)
    with pytest.raises(UsageError):
        crop_boxes(256, 256, crops=2)


def test_constants_are_the_published_xd_violence_protocol() -> None:
    assert (protocol.VIDEO_FPS, protocol.SNIPPET_FRAMES, protocol.AUDIO_RATE) == (24, 16, 16000)
    assert (protocol.RESIZE_SHORT, protocol.CROP_SIZE) == (256, 224)
    assert (protocol.RGB_DIM, protocol.AUDIO_DIM) == (1024, 128)
    assert protocol.DEFAULT_CROPS == len(protocol.CROP_NAMES) == 5
    assert protocol.DEFAULT_THRESHOLD == 0.5


def test_crop_names_describe_crop_boxes_in_order() -> None:
    boxes = crop_boxes(256, 341)
    bottom, right = 256 - 224, 341 - 224
    for name, (top, left) in zip(protocol.CROP_NAMES, boxes, strict=True):
        if name == "centre":
            assert (top, left) == (bottom // 2, right // 2)
        else:
            vertical, horizontal = name.split("-")
            assert top == {"top": 0, "bottom": bottom}[vertical]
            assert left == {"left": 0, "right": right}[horizontal]


def test_check_crops_returns_the_choice() -> None:
    assert [protocol.check_crops(c) for c in (5, 1)] == [5, 1]


def test_load_model_accepts_auto_and_torch_devices(tmp_path) -> None:
    from violence_cli.model import load_model

    path = tmp_path / "m.pkl"
    torch.save(random_macil_state_dict(), path)
    expected = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert next(load_model(path, device="auto").parameters()).device.type == expected.type
    assert next(load_model(path, device=torch.device("cpu")).parameters()).device.type == "cpu"
    with pytest.raises(UsageError):
        load_model(path, device="tpu")
