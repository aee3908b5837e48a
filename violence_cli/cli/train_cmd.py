"""``violence-detect train``: the MACIL-SD training recipe on XD-Violence-layout features.

A thin layer over :func:`violence_cli.training.train`: find and check the data, build the
config from the options, show one progress bar per epoch on stderr, print a summary.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import console
from ..errors import UsageError
from ._app import app, cli_errors
from .options import given as _given

HELP = """Train MACIL-SD on I3D + VGGish features in the XD-Violence layout.

Training data: a folder of NAME__0.npy .. NAME__4.npy + NAME__vggish.npy files (what
'violence-detect extract' writes), or the official XD-Violence list files. Each crop file is
one training bag. Labels come from the names (XD-Violence: '_label_A' = normal, anything
else violent) or from --labels labels.csv with 'video,label' rows (1/violent, 0/normal).
The model is scored after every epoch on the validation set with the paper's metric
(frame-level PR-AUC "AP", ROC-AUC beside it); the best epoch is kept.

Writes into --out: best.pt and last.pt (plain state dicts in the published layout: use them
with 'detect --checkpoint' and 'eval --checkpoint'; best.pt.json and last.pt.json beside them
record the data, epoch and AP), train_log.jsonl (one line per epoch)
and state.pt (everything --resume needs; written after every epoch, so Ctrl-C keeps the
last complete epoch). Epochs count from 0, as in the published log.

The defaults are the paper's recipe for XD-Violence (3,954 videos, 19,770 bags): batch 128,
50 epochs, lr 4e-4, contrastive weight min(1.5, 0.1 x epoch). SMALL DATA SETS: with the
published code on 100 videos (500 bags) at batch 128 (4 steps per epoch), held-out AP
reached 0.68 and then collapsed to 0.07 once the contrastive weight ramped up; with
--batch-size 16 (32 steps per epoch) it reached 0.98-1.0 by epoch 5. With a few hundred
videos use --batch-size 16 (or --lambda-step 0 to switch the contrastive terms off) and
watch AP in train_log.jsonl.

Examples:

\b
  violence-detect train --features feats/train --out runs/xd \\
      --val-features feats/test --val-annotations annotations.txt
  violence-detect train --features RGB --features vggish-features/Train \\
      --labels labels.csv --batch-size 16 --epochs 20 --out runs/mine
  violence-detect train --resume runs/mine --epochs 30
"""

PANEL_DATA = "Data"
PANEL_RUN = "Run"
PANEL_RECIPE = "Recipe (defaults: the paper's)"


class Pairing(str, Enum):
    published = "published"
    matched = "matched"


_RECIPE = (
    "epochs", "batch_size", "lr", "teacher_lr_divisor", "weight_decay", "t_max", "lambda_bgd",
    "lambda_nor", "lambda_step", "temperature", "ema_start", "ema_epochs", "max_seqlen", "seed", "pairing",
)  # fmt: skip
_SOURCES = (
    "features", "rgb_list", "audio_list", "labels", "val_features", "val_rgb_list", "val_audio_list",
    "val_gt", "val_annotations",
)  # fmt: skip


@app.command("train", help=HELP, no_args_is_help=True)
@cli_errors
def train_command(
    ctx: typer.Context,
    features: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="DIR",
            help="Training features folder (NAME__0.npy .. + NAME__vggish.npy); repeat it for features split "
            "over folders (XD-Violence: --features RGB --features vggish-features/Train).",
            rich_help_panel=PANEL_DATA,
        ),
    ] = None,
    rgb_list: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Official RGB list file (one crop file per line), with --audio-list.",
            rich_help_panel=PANEL_DATA,
        ),
    ] = None,
    audio_list: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Official audio list file (one NAME__vggish.npy per video).",
            rich_help_panel=PANEL_DATA,
        ),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="CSV of video,label (1/violent or 0/normal); default: '_label_A' in the name = normal.",
            rich_help_panel=PANEL_DATA,
        ),
    ] = None,
    val_features: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="DIR", help="Validation features folder (repeatable, like --features).", rich_help_panel=PANEL_DATA
        ),
    ] = None,
    val_rgb_list: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="Validation RGB list file, with --val-audio-list.", rich_help_panel=PANEL_DATA
        ),
    ] = None,
    val_audio_list: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Validation audio list file.", rich_help_panel=PANEL_DATA)
    ] = None,
    val_gt: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Frame-level ground truth gt.npy of the validation videos, in their order.",
            rich_help_panel=PANEL_DATA,
        ),
    ] = None,
    val_annotations: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="XD-format annotations of the validation videos (NAME s1 e1 ...; frames).",
            rich_help_panel=PANEL_DATA,
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Output folder (created).", rich_help_panel=PANEL_RUN)
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Continue the run in this folder from its last complete epoch (same data and recipe unless given again; --epochs may extend it).",
            rich_help_panel=PANEL_RUN,
        ),
    ] = None,
    device: Annotated[
        str, typer.Option(metavar="DEVICE", help="auto, cpu, cuda or cuda:N.", rich_help_panel=PANEL_RUN)
    ] = "auto",
    threads: Annotated[
        int | None,
        typer.Option(
            help="CPU threads for torch (default: torch's choice; on small CPUs 1 can be faster).",
            rich_help_panel=PANEL_RUN,
        ),
    ] = None,
    cache_gb: Annotated[
        float,
        typer.Option(
            help="Keep up to this many GiB of (subsampled) training features in RAM; the rest is re-read every epoch.",
            rich_help_panel=PANEL_RUN,
        ),
    ] = 8.0,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON summary on stdout (no progress).", rich_help_panel=PANEL_RUN)
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress or per-epoch lines.", rich_help_panel=PANEL_RUN)
    ] = False,
    epochs: Annotated[int, typer.Option(help="Number of epochs.", rich_help_panel=PANEL_RECIPE)] = 50,
    batch_size: Annotated[
        int, typer.Option(help="Bags per step (use ~16 for a few hundred videos).", rich_help_panel=PANEL_RECIPE)
    ] = 128,
    lr: Annotated[
        float, typer.Option(help="Adam learning rate of the audio-visual model.", rich_help_panel=PANEL_RECIPE)
    ] = 4e-4,
    teacher_lr_divisor: Annotated[
        float, typer.Option(help="Teacher learning rate = lr / this.", rich_help_panel=PANEL_RECIPE)
    ] = 5.0,
    weight_decay: Annotated[
        float, typer.Option(help="Adam weight decay (both models).", rich_help_panel=PANEL_RECIPE)
    ] = 0.0,
    t_max: Annotated[int, typer.Option(help="Cosine annealing period in epochs.", rich_help_panel=PANEL_RECIPE)] = 60,
    lambda_bgd: Annotated[
        float,
        typer.Option(help="Max weight of the two background-negative InfoNCE terms.", rich_help_panel=PANEL_RECIPE),
    ] = 1.5,
    lambda_nor: Annotated[
        float, typer.Option(help="Max weight of the two normal-negative InfoNCE terms.", rich_help_panel=PANEL_RECIPE)
    ] = 1.5,
    lambda_step: Annotated[
        float,
        typer.Option(
            help="Contrastive weight = min(max, this x epoch); 0 disables the contrastive terms.",
            rich_help_panel=PANEL_RECIPE,
        ),
    ] = 0.1,
    temperature: Annotated[float, typer.Option(help="InfoNCE temperature.", rich_help_panel=PANEL_RECIPE)] = 0.1,
    ema_start: Annotated[
        float, typer.Option(help="Self-distillation momentum at epoch 0 (cosine to 1).", rich_help_panel=PANEL_RECIPE)
    ] = 0.91,
    ema_epochs: Annotated[
        int, typer.Option(help="Epochs over which the momentum reaches 1.", rich_help_panel=PANEL_RECIPE)
    ] = 50,
    max_seqlen: Annotated[
        int,
        typer.Option(help="Longer bags are uniformly subsampled to this many snippets.", rich_help_panel=PANEL_RECIPE),
    ] = 200,
    seed: Annotated[
        int, typer.Option(help="Random seed (initialisation, shuffling, dropout).", rich_help_panel=PANEL_RECIPE)
    ] = 2333,
    pairing: Annotated[
        Pairing,
        typer.Option(
            help="Representations the contrastive terms pick: 'published' reproduces the published train.py (audio-picked snippets take the video-attended representations and vice versa); 'matched' takes each modality's own.",
            rich_help_panel=PANEL_RECIPE,
        ),
    ] = Pairing.published,
) -> None:
    from ..training import TrainConfig, read_state, resolve_device, train

    if cache_gb < 0:  # 0 is allowed: nothing kept, every bag read again each epoch
        raise UsageError(f"--cache-gb {cache_gb:g}: expected 0 or more")
    options = {name: ctx.params[name] for name in (*_RECIPE, *_SOURCES)}
    options["pairing"] = pairing.value
    state_extra: dict[str, Any] = {}
    state: dict[str, Any] = {}
    cfg: TrainConfig | None
    if resume is not None:
        if out is not None and out.resolve() != resume.resolve():
            raise UsageError(
                f"--out {out}: differs from --resume {resume}; expected no --out (a run continues in its own folder)"
            )
        out = resume
        state = read_state(resume)
        sources = dict(state.get("extra", {}).get("sources", {}))
        if any(_given(ctx, name) for name in _SOURCES):
            sources = {name: _abs(options[name]) for name in _SOURCES}
        ignored = [f"--{n.replace('_', '-')}" for n in _RECIPE if n != "epochs" and _given(ctx, n)]
        if ignored and not json_out:
            console.warn(f"resuming: {', '.join(ignored)} ignored (the run keeps its recipe; only --epochs may change)")
        cfg = TrainConfig(**{**state["config"], "epochs": epochs}) if _given(ctx, "epochs") else None
        options.update({name: _as_paths(v) for name, v in sources.items()})
    else:
        if out is None:
            raise UsageError("--out: missing; expected --out DIR (or --resume DIR)")
        if (out / "state.pt").exists():
            raise UsageError(
                f"{out} already holds a training run (state.pt)",
                hint=f"continue it with --resume {out}, or choose another --out",
            )
        cfg = TrainConfig(**{name: options[name] for name in _RECIPE})
        cfg.check()
        sources = {name: _abs(options[name]) for name in _SOURCES}
    state_extra["sources"] = sources

    dev = resolve_device(device)
    if threads is not None:
        if threads < 1:
            raise UsageError(f"--threads {threads}: expected a number >= 1")
        import torch

        torch.set_num_threads(threads)
    warnings: list[str] = []
    show = not quiet and not json_out

    def on_warning(message: str) -> None:
        warnings.append(message)
        if not json_out:
            console.warn(message)

    max_seqlen = (cfg or TrainConfig(**state["config"])).max_seqlen if resume is not None else cfg.max_seqlen
    train_set, val_set, n_val = _load_data(options, cache_gb, max_seqlen, on_warning, show)
    from ..provenance import describe, read_provenance, unverified_warning

    provenance = {
        key: read_provenance(_folders(options[key]), on_warning) for key in ("features", "val_features")
    }  # None where no folder has a manifest (e.g. XD-Violence's downloads)
    for message in dict.fromkeys(unverified_warning(p) for p in provenance.values() if p is not None):
        if message:  # once, even when training and validation features share the weights
            on_warning(message)
    if val_set is None and not json_out:
        console.warn(
            "no validation set (--val-features with --val-gt or --val-annotations): best.pt will be the last epoch"
        )

    try:
        with console.progress_bar(console.progress_enabled(quiet, json_out)) as bar:
            result = train(
                train_set, out, cfg, validate=val_set, device=dev, resume=resume is not None,
                extra_state=state_extra, progress=_progress(bar, show),
            )  # fmt: skip
    except KeyboardInterrupt:
        done = (out / "state.pt").is_file()
        console.error(
            "interrupted"
            + (f"; the last complete epoch is saved in {out}" if done else " before the first epoch ended"),
            hint=f"continue with: violence-detect train --resume {out}" if done else None,
        )
        raise typer.Exit(130) from None

    from ..schema import WeightsUsed, document_header
    from ..weights import file_sha256

    produced = [
        WeightsUsed("macil_sd", str(result.best_path), file_sha256(result.best_path), False, _trained(result.best_path))
    ]
    summary = {
        **document_header(produced),
        "best_epoch": result.best_epoch,
        "best_ap": result.best_ap,
        "best_auc": result.best_auc,
        "epochs_done": result.epochs_done,
        "initial_ap": result.initial_ap,
        "resumed_from": result.resumed_from,
        "device": str(dev),
        "train_videos": train_set.n_videos,
        "train_bags": len(train_set),
        "val_videos": n_val,
        "out_dir": str(result.out_dir),
        "best": str(result.best_path),
        "last": str(result.last_path),
        "state": str(result.state_path),
        "log": str(result.log_path),
        "warnings": warnings,
        **{f"{key}_provenance": None if p is None else p.to_dict() for key, p in provenance.items()},
    }
    if json_out:
        typer.echo(json.dumps(summary, indent=2))
        return
    ap = "n/a" if result.best_ap is None else f"{result.best_ap:.4f}"
    typer.echo(f"best epoch {result.best_epoch}: AP {ap}  ->  {result.best_path}")
    typer.echo(f"last epoch {result.epochs_done - 1}: {result.last_path}")
    typer.echo(f"log: {result.log_path}")
    for key, prov in provenance.items():
        if prov is not None:
            typer.echo(f"{key.replace('_', '-')}: {describe(prov)}")


def _trained(path: Path) -> dict[str, Any] | None:
    from ..weights import trained_metadata

    return trained_metadata(path)


def _abs(value: Path | list[Path] | None) -> str | list[str] | None:
    """Absolute path(s) as text (kept in the state so --resume works from any folder)."""
    if isinstance(value, (list, tuple)):
        return [str(Path(v).resolve()) for v in value] or None
    return None if value is None else str(Path(value).resolve())


def _folders(value: Path | list[Path] | None) -> list[Path]:
    """--features / --val-features as a list of folders (empty when not given)."""
    if value is None:
        return []
    return [Path(v) for v in value] if isinstance(value, (list, tuple)) else [Path(value)]


def _as_paths(value: str | list[str] | None) -> Path | list[Path] | None:
    """The inverse of :func:`_abs` (a state from before --features was repeatable holds one str)."""
    if isinstance(value, list):
        return [Path(v) for v in value]
    return Path(value) if value else None


def _entries(
    folder: Path | list[Path] | None, rgb: Path | None, audio: Path | None, what: str, flag: str
) -> list | None:
    from ..xdfeatures import discover_folder, read_lists

    if folder and (rgb is not None or audio is not None):
        raise UsageError(f"--{flag}features: expected either it or --{flag}rgb-list/--{flag}audio-list, not both")
    if folder:
        return discover_folder(folder)
    if rgb is not None or audio is not None:
        if rgb is None or audio is None:
            raise UsageError(f"--{flag}rgb-list/--{flag}audio-list: expected both of them together")
        return read_lists(rgb, audio)
    return None


def _load_data(options: dict[str, Any], cache_gb: float, max_seqlen: int, on_warning: Any, show: bool):
    from ..training import ValidationSet, build_training_set, read_labels_csv

    entries = _entries(options["features"], options["rgb_list"], options["audio_list"], "training", "")
    if entries is None:
        raise UsageError("--features: missing; expected --features DIR or --rgb-list/--audio-list (the training data)")
    label_map = read_labels_csv(options["labels"]) if options["labels"] is not None else None
    val_entries = _entries(
        options["val_features"], options["val_rgb_list"], options["val_audio_list"], "validation", "val-"
    )
    gt_file, ann_file = options["val_gt"], options["val_annotations"]
    if val_entries is not None and gt_file is None and ann_file is None:
        raise UsageError("--val-gt/--val-annotations: missing; the validation set needs one of them")
    if gt_file is not None and ann_file is not None:
        raise UsageError("--val-gt/--val-annotations: expected one of them, not both")
    if val_entries is None and (gt_file is not None or ann_file is not None):
        raise UsageError("--val-gt/--val-annotations: expected with --val-features or --val-rgb-list/--val-audio-list")

    if show:
        console.info(f"checking {len(entries)} training videos ...")
    train_set = build_training_set(
        entries, label_map, labels_path=options["labels"], max_seqlen=max_seqlen,
        cache_bytes=int(cache_gb * (1 << 30)), on_warning=on_warning,
    )  # fmt: skip
    val_set = None
    if val_entries is not None:
        if show:
            console.info(f"checking {len(val_entries)} validation videos ...")
        val_set = ValidationSet(val_entries, gt=gt_file, annotations=ann_file, on_warning=on_warning)
    violent, normal = train_set.counts()
    if show:
        console.info(
            f"training on {train_set.n_videos} videos ({violent} violent, {normal} normal), {len(train_set)} bags"
            + (f"; validating on {len(val_entries)} videos" if val_entries is not None else "")
        )
    return train_set, val_set, (len(val_entries) if val_entries is not None else 0)


def _progress(bar: Any, show: bool):
    state: dict[str, Any] = {"task": None, "epoch": None}

    def update(p: Any) -> None:
        if bar is not None:
            if state["task"] is None:
                state["task"] = bar.add_task("", total=None)
            if p.stage == "train" and p.epoch != state["epoch"]:
                bar.reset(state["task"])  # the clock restarts with every epoch
                state["epoch"] = p.epoch
            desc = (
                f"epoch {p.epoch} ({p.epoch + 1}/{p.epochs})" if p.stage != "initial" else "scoring the untrained model"
            )
            if p.stage == "validate":
                desc += " (validating)"
            bar.update(state["task"], description=desc, completed=p.step, total=p.steps or None)
        if p.record is not None and show:
            r = p.record
            ap = "" if r.ap is None else f"  AP {r.ap:.4f}  AUC {r.auc:.4f}"
            console.info(
                f"epoch {r.epoch}: loss {r.loss:.4f} (MIL {r.mil:.4f}, teacher {r.teacher_loss:.4f}){ap}  "
                f"lambda {r.lambda_bgd:.2f}  m {r.momentum:.4f}  lr {r.lr:.2e}  {r.seconds:.1f} s"
                + ("  *best" if r.best else "")
            )

    return update
