"""`violence-detect eval`: the paper's AP on features in the XD-Violence layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .. import console
from ..errors import UsageError
from ..messages import own_model_notes, unpublished_warnings
from ._app import app, cli_errors
from .options import (
    DEFAULT_MODEL_CHOICE,
    CheckpointOpt,
    DeviceOpt,
    DownloadOpt,
    ModelOpt,
    WeightsDirOpt,
    model_checkpoints,
)

EXAMPLES = (
    "Examples:\n\n"
    "\b\n"
    "  violence-detect eval --features feats/ --annotations annotations.txt\n"
    "  violence-detect eval --features RGBTest --features vggish-features/Test \\\n"
    "      --annotations annotations.txt\n"
    "  violence-detect eval --rgb-list rgb_test.list --audio-list audio_test.list \\\n"
    "      --gt gt.npy --json\n"
    "  violence-detect eval --features feats/ --gt gt.npy --checkpoint my.pkl \\\n"
    "      --save-scores scores.npz\n"
    "  violence-detect eval --features feats/ --annotations annotations.txt \\\n"
    "      --window 64                # the live mode's AP\n"
    "  violence-detect eval --features RGBTest --features vggish-features/Test \\\n"
    "      --annotations annotations.txt --model ensemble --save-scores ens.npz\n"
)

FileOpt = Path | None


HELP = (
    "Evaluate a model (--model: MACIL-SD by default, HyperVD, or their ensemble) on I3D + VGGish "
    "features in the XD-Violence layout, as the papers do.\n\n"
    "Score per snippet = mean over crops of sigmoid(the model's logit), repeated for its 16 "
    "frames; AP = area under the frame-level precision-recall curve (ROC-AUC beside it).\n\n"
    "Features: --features DIR (NAME__0.npy .. NAME__4.npy + NAME__vggish.npy, 1 to 10 crops) "
    "or the official --rgb-list (one crop file per line, the crops of a video consecutive) "
    "and --audio-list (one NAME__vggish.npy per video, same order). Ground truth: --gt gt.npy "
    "(16 frames per snippet, list order) or --annotations annotations.txt (XD format).\n\n" + EXAMPLES
)


@app.command("eval", help=HELP)
@cli_errors
def eval_command(
    features: Annotated[
        list[Path] | None,
        typer.Option(
            "--features",
            metavar="DIR",
            help="Folder of NAME__<crop>.npy and/or NAME__vggish.npy files; repeat it for features split "
            "over folders (XD-Violence: --features RGBTest --features vggish-features/Test).",
        ),
    ] = None,
    rgb_list: Annotated[
        FileOpt, typer.Option("--rgb-list", metavar="FILE", help="Official RGB list: one crop file per line.")
    ] = None,
    audio_list: Annotated[
        FileOpt,
        typer.Option("--audio-list", metavar="FILE", help="Official audio list: one NAME__vggish.npy per video."),
    ] = None,
    gt: Annotated[
        FileOpt, typer.Option("--gt", metavar="FILE", help="Frame-level ground truth (.npy, 16 frames per snippet).")
    ] = None,
    annotations: Annotated[
        FileOpt, typer.Option("--annotations", metavar="FILE", help="XD-Violence annotations.txt (NAME s1 e1 ...).")
    ] = None,
    model: ModelOpt = DEFAULT_MODEL_CHOICE,
    checkpoint: CheckpointOpt = None,
    weights_dir: WeightsDirOpt = None,
    download: DownloadOpt = True,
    device: DeviceOpt = "auto",
    json_mode: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")] = False,
    save_scores: Annotated[
        FileOpt,
        typer.Option(
            "--save-scores",
            metavar="FILE",
            help="Write per-video snippet scores to this .npz (keys: video names; an ensemble also "
            "writes each model's as MODEL/NAME).",
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or information (warnings and errors still show).")
    ] = False,
    window: Annotated[
        int | None,
        typer.Option(
            "--window",
            min=1,
            metavar="N",
            help="Score each snippet with only the N snippets up to it, as `watch` does live (default: whole video).",
        ),
    ] = None,
) -> None:
    from ..devices import resolve_device
    from ..evaluate import evaluate
    from ..evaluate import save_scores as write_scores
    from ..provenance import describe, read_provenance, unverified_warning
    from ..schema import WeightsUsed, document_header
    from ..weights import describe_weights, resolve_weights, short_hash
    from ..xdfeatures import discover_folder, read_lists

    if features and (rgb_list is not None or audio_list is not None):
        raise UsageError("--features: use either --features or --rgb-list/--audio-list, not both")
    if not features and (rgb_list is None or audio_list is None):
        raise UsageError(
            "--features: missing; expected --features DIR, or both --rgb-list and --audio-list",
            hint=EXAMPLES.splitlines()[3].strip(),
        )
    if (gt is None) == (annotations is None):
        raise UsageError("--gt/--annotations: expected exactly one of them")
    if save_scores is not None and save_scores.suffix != ".npz":
        raise UsageError(f"--save-scores {save_scores}: expected a file name ending in .npz")
    torch_device = resolve_device(device)
    explicit = model_checkpoints(model.value, checkpoint)

    entries = discover_folder(features) if features else read_lists(rgb_list, audio_list)  # type: ignore[arg-type]
    provenance = read_provenance(features, console.warn)  # None: no manifest (e.g. XD-Violence's downloads)
    if provenance is not None and (message := unverified_warning(provenance)):
        console.warn(message)
    files = {name: resolve_weights(name, path, weights_dir=weights_dir, download=download) for name, path in explicit.items()}
    described = {name: describe_weights(path, name) for name, path in files.items()}
    used = [
        WeightsUsed(name, str(files[name]), d["sha256"], d["verified"], d["trained"]) for name, d in described.items()
    ]
    with console.progress_bar(console.progress_enabled(quiet, json_mode)) as bar:
        task = bar.add_task("scoring", total=len(entries)) if bar is not None else None

        def progress(done: int, total: int) -> None:
            if bar is not None:
                bar.update(task, completed=done, total=total)

        result = evaluate(
            entries,
            gt=gt,
            annotations=annotations,
            checkpoint=list(files.values()),
            model=model.value,
            device=str(torch_device),
            progress=progress,
            on_warning=console.warn,
            window=window,
        )
    for note in own_model_notes(used):
        console.info(note, quiet=quiet)
    for warning in unpublished_warnings(used, {name: d["problem"] for name, d in described.items()}):
        console.warn(warning)
    if save_scores is not None:
        save_scores.parent.mkdir(parents=True, exist_ok=True)
        write_scores(result, save_scores)
    if json_mode:
        doc = {**document_header(used), **result.to_dict(), "device": str(torch_device)}
        doc["features_provenance"] = provenance.to_dict() if provenance is not None else None
        if save_scores is not None:
            doc["scores_file"] = str(save_scores)
        typer.echo(json.dumps(doc, indent=2))
        return
    typer.echo(f"AP       {result.ap:.4f}   (area under the frame-level precision-recall curve)")
    typer.echo(f"ROC-AUC  {result.auc:.4f}")
    typer.echo(f"videos   {result.n_videos}   snippets {result.n_snippets}   frames {result.n_frames}")
    typer.echo(f"window   {'whole video' if window is None else f'{window} snippets, causal'}")
    typer.echo(f"model    {result.model}")
    for w in used:
        kind = "your model" if w.own_model else ("published" if w.verified else "unverified")
        typer.echo(f"weights  {w.path}  ({kind}, sha256 {short_hash(w.sha256)})")
    if provenance is not None:
        typer.echo(f"features {describe(provenance)}")
    if save_scores is not None:
        typer.echo(f"scores   {save_scores}")
