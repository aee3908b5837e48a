"""Every protocol and product constant, defined once, with its unit.

The XD-Violence feature protocol (the dataset's documentation and the MACIL-SD repository) fixes the frame rate, the snippet grid,
the crops and the feature sizes; the product adds the registry names of its weights files
and the crop choices it offers. Modules import these names instead of retyping the
numbers, and the CLI builds its choices (Enums) from the tables here and in
:mod:`violence_cli.writers` (export formats, one writer class per format).
"""

from __future__ import annotations

from .errors import UsageError

# --- time -------------------------------------------------------------------------------
VIDEO_FPS = 24  # frames per second: the protocol's fixed frame rate (frames are resampled)
AUDIO_RATE = 16000  # samples per second: VGGish's input rate
SNIPPET_FRAMES = 16  # frames per snippet: one score, one I3D clip, one VGGish example
SNIPPET_SECONDS = SNIPPET_FRAMES / VIDEO_FPS  # s per snippet (~0.667)
MIN_FRAMES = SNIPPET_FRAMES + 1  # frames a video needs for one snippet: T = floor((N - 1) / 16) >= 1

# --- pictures ---------------------------------------------------------------------------
RESIZE_SHORT = 256  # pixels: the shorter side after resizing
CROP_SIZE = 224  # pixels: I3D input height and width
CROP_NAMES = ("centre", "top-left", "top-right", "bottom-left", "bottom-right")  # files __0 .. __4
CROP_CHOICES = (5, 1)  # 5: centre + 4 corners (the published protocol); 1: centre only (5x cheaper)
DEFAULT_CROPS = 5

# --- limits on hostile input ------------------------------------------------------------
MAX_FRAME_GAP = 10.0  # s: a longer jump between frame timestamps is a discontinuity, not repeated frames
MAX_FRAME_SIDE = 16384  # pixels: frames wider or taller than this are refused (one RGB frame: 768 MiB)

# --- segments ---------------------------------------------------------------------------
DEFAULT_THRESHOLD = 0.5  # probability at or above which a snippet is violent (every command's default)

# --- features ---------------------------------------------------------------------------
RGB_DIM = 1024  # I3D RGB feature size (channels of Mixed_5c)
AUDIO_DIM = 128  # VGGish embedding size

# --- weights registry names (weights/manifest.json) ----------------------------------------
I3D_WEIGHTS = "i3d_rgb_imagenet"
VGGISH_WEIGHTS = "vggish"
VGGISH_PCA_WEIGHTS = "vggish_pca"
MACIL_WEIGHTS = "macil_sd"
HYPERVD_WEIGHTS = "hypervd"
DETECT_WEIGHTS = (I3D_WEIGHTS, VGGISH_WEIGHTS, MACIL_WEIGHTS)  # what `detect` loads, in report order
EXTRACT_WEIGHTS = (I3D_WEIGHTS, VGGISH_WEIGHTS)  # what `extract` loads


def check_crops(crops: int) -> int:
    """``crops`` if it is one of :data:`CROP_CHOICES`; else a :class:`UsageError` naming the choices."""
    if crops not in CROP_CHOICES:
        raise UsageError(f"crops {crops}: expected {' or '.join(map(str, CROP_CHOICES))}")
    return crops
