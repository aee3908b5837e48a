"""`violence-detect eval`: the paper's AP on features in the XD-Violence layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .. import console
from ..errors import UsageError
from ._app import app, cli_errors

EXAMPLES = (
    "Examples:\n\n"
    "  violence-detect eval --features feats/ --annotations annotations.txt\n\n"
    "  violence-detect eval --rgb-list rgb_test.list --audio-list audio_test.list --gt gt.npy --json\n\n"
    "  violence-detect eval --features feats/ --gt gt.npy --checkpoint my.pkl --save-scores scores.npz\n\n"
    "  violence-detect eval --features feats/ --annotations annotations.txt --window 64   # the live mode's AP"
)

FileOpt = Path | None


HELP = (
    "Evaluate MACIL-SD on I3D + VGGish features in the XD-Violence layout, as the paper does.\n\n"
    "Score per snippet = mean over crops of sigmoid(audio-visual logit), repeated for its 16 "
    "frames; AP = area under the frame-level precision-recall curve (ROC-AUC beside it).\n\n"
    "Features: --features DIR (NAME__0.npy .. NAME__4.npy + NAME__vggish.npy, 1 to 10 crops) "
    "or the official --rgb-list (one crop file per line, the crops of a video consecutive) "
    "and --audio-list (one NAME__vggish.npy per video, same order). Ground truth: --gt gt.npy "
    "(16 frames per snippet, list order) or --annotations annotations.txt (XD format).\n\n" + EXAMPLES
)


@app.command("eval", help=HELP)
@cli_errors
def eval_command(
    features: Annotated[FileOpt, typer.Option("--features", help="Folder of NAME__<crop>.npy + NAME__vggish.npy files.")] = None,
    rgb_list: Annotated[FileOpt, typer.Option("--rgb-list", help="Official RGB list: one crop file per line.")] = None,
    audio_list: Annotated[FileOpt, typer.Option("--audio-list", help="Official audio list: one NAME__vggish.npy per video.")] = None,
    gt: Annotated[FileOpt, typer.Option("--gt", help="Frame-level ground truth (.npy, 16 frames per snippet).")] = None,
    annotations: Annotated[FileOpt, typer.Option("--annotations", help="XD-Violence annotations.txt (NAME s1 e1 ...).")] = None,
    checkpoint: Annotated[
        FileOpt, typer.Option("--checkpoint", help="MACIL-SD state dict (default: the published weights, downloaded once).")
    ] = None,
    weights_dir: Annotated[FileOpt, typer.Option("--weights-dir", help="Folder to look for the default weights in.")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    json_mode: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")] = False,
    save_scores: Annotated[
        FileOpt, typer.Option("--save-scores", help="Write per-video snippet scores to this .npz (keys: video names).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no warnings.")] = False,
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
    from ..xdfeatures import discover_folder, read_lists

    if features is not None and (rgb_list is not None or audio_list is not None):
        raise UsageError("use either --features or --rgb-list/--audio-list, not both")
    if features is None and (rgb_list is None or audio_list is None):
        raise UsageError("give --features DIR, or both --rgb-list and --audio-list", hint=EXAMPLES.splitlines()[2].strip())
    if (gt is None) == (annotations is None):
        raise UsageError("give exactly one of --gt and --annotations")
    if save_scores is not None and save_scores.suffix != ".npz":
        raise UsageError(f"--save-scores {save_scores}: the file name must end in .npz")
    torch_device = resolve_device(device)

    entries = discover_folder(features) if features is not None else read_lists(rgb_list, audio_list)  # type: ignore[arg-type]
    on_warning = None if quiet else console.warn
    with console.progress_bar(console.progress_enabled(quiet, json_mode)) as bar:
        task = bar.add_task("scoring", total=len(entries)) if bar is not None else None

        def progress(done: int, total: int) -> None:
            if bar is not None:
                bar.update(task, completed=done, total=total)

        result = evaluate(
            entries,
            gt=gt,
            annotations=annotations,
            checkpoint=checkpoint,
            device=str(torch_device),
            weights_dir=weights_dir,
            progress=progress,
            on_warning=on_warning,
            window=window,
        )
    if save_scores is not None:
        write_scores(result, save_scores)
    if json_mode:
        doc = {**result.to_dict(), "device": str(torch_device)}
        if save_scores is not None:
            doc["scores_file"] = str(save_scores)
        typer.echo(json.dumps(doc, indent=2))
        return
    typer.echo(f"AP       {result.ap:.4f}   (area under the frame-level precision-recall curve)")
    typer.echo(f"ROC-AUC  {result.auc:.4f}")
    typer.echo(f"videos   {result.n_videos}   snippets {result.n_snippets}   frames {result.n_frames}")
    typer.echo(f"window   {'whole video' if window is None else f'{window} snippets, causal'}")
    if result.checkpoint is not None:
        typer.echo(f"weights  {result.checkpoint}  (sha256 {result.checkpoint_sha256})")
    if save_scores is not None:
        typer.echo(f"scores   {save_scores}")
