"""`violence-detect weights list | download | verify | path`: the pretrained files on this machine."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from .. import console
from .. import weights as registry
from ..errors import WeightsError
from ._app import app, cli_errors, exit_code

# The registry's names as a str Enum, so Typer validates them and lists them in --help.
WeightsName = Enum("WeightsName", {name: name for name in registry.weight_names()}, type=str)  # type: ignore[misc]

weights_app = typer.Typer(
    name="weights",
    help=(
        "List, download, verify and locate the pretrained weights (MACIL-SD, I3D, VGGish).\n\n"
        "Files are looked for in --weights-dir, then $VIOLENCE_DETECT_WEIGHTS, then the cache "
        "($XDG_CACHE_HOME/violence-detect or ~/.cache/violence-detect); missing ones are "
        "downloaded (from $VIOLENCE_DETECT_WEIGHTS_URL when set) and verified.\n\n"
        "Examples:\n\n"
        "  violence-detect weights list\n\n"
        "  violence-detect weights download                      # all of them, into the cache\n\n"
        "  violence-detect weights download macil_sd --weights-dir ./w   # for an offline machine\n\n"
        "  violence-detect weights verify\n\n"
        "  violence-detect weights path macil_sd"
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(weights_app, name="weights")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
DirOpt = Annotated[
    Path | None,
    typer.Option("--weights-dir", help="A folder holding weight files under their registry file names."),
]
NamesArg = Annotated[
    list[WeightsName] | None,
    typer.Argument(help="Which files (default: all).", metavar="NAME", show_default=False),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
_ORIGIN_LABEL = {"weights_dir": "in --weights-dir", "env": "in $VIOLENCE_DETECT_WEIGHTS", "cache": "cached"}


@weights_app.command("list")
@cli_errors
def list_command(json_mode: JsonOpt = False, weights_dir: DirOpt = None) -> None:
    """Show each registry file: where it is on disk (if anywhere), its size, licence and source.

    Example: violence-detect weights list --json
    """
    located = [registry.locate_weights(e.name, weights_dir=weights_dir) for e in registry.available_weights()]
    if json_mode:
        items = [_entry_json(loc) for loc in located]
        typer.echo(json.dumps({"cache_dir": str(registry.cache_dir()), "weights": items}, indent=2))
        return
    rows = [("NAME", "STATUS", "SIZE", "LICENCE", "SOURCE")]
    for loc in located:
        size = loc.path.stat().st_size if loc.path else loc.entry.size
        status = _ORIGIN_LABEL[loc.origin] if loc.origin else "missing"
        rows.append((loc.entry.name, status, _human_size(size), loc.entry.license, loc.entry.source))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
    console.info(f"cache: {registry.cache_dir()}")


@weights_app.command("download")
@cli_errors
def download_command(
    names: NamesArg = None,
    weights_dir: Annotated[
        Path | None,
        typer.Option("--weights-dir", help="Download into this folder instead of the cache."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Download again even when a verified copy exists.")] = False,
    quiet: QuietOpt = False,
    json_mode: JsonOpt = False,
) -> None:
    """Download weights into the cache (or --weights-dir), verify them, keep verified copies.

    Example: violence-detect weights download macil_sd vggish
    """
    chosen = [n.value for n in names] if names else registry.weight_names()
    results, failed = [], 0
    with _download_bar(console.progress_enabled(quiet, json_mode)) as make_callback:
        for name in chosen:
            try:
                got = registry.download_weights(
                    name, weights_dir, force=force, progress=make_callback(name) if make_callback else None
                )
            except WeightsError as exc:
                failed += 1
                console.error(exc.message, exc.hint)
                results.append({"name": name, "path": None, "status": "failed", "error": exc.message})
                continue
            status = "downloaded" if got.downloaded else "present"
            results.append({"name": name, "path": str(got.path), "status": status, "error": None})
            if not json_mode:
                typer.echo(f"{name}  {status}  {got.path}")
    if json_mode:
        typer.echo(json.dumps({"weights": results}, indent=2))
    exit_code(failed)


@weights_app.command("verify")
@cli_errors
def verify_command(
    names: NamesArg = None,
    weights_dir: DirOpt = None,
    json_mode: JsonOpt = False,
) -> None:
    """Check every weight file on disk against the manifest's hashes; exit 1 on a mismatch.

    Looks in --weights-dir, $VIOLENCE_DETECT_WEIGHTS and the cache.
    Example: violence-detect weights verify
    """
    checks = registry.verify_weights([n.value for n in names] if names else None, weights_dir=weights_dir)
    if json_mode:
        items = [
            {
                "name": c.name,
                "path": str(c.path),
                "origin": c.origin,
                "sha256": c.sha256,
                "verified": c.verified,
                "problem": c.problem,
            }
            for c in checks
        ]
        typer.echo(json.dumps({"weights": items}, indent=2))
    else:
        for c in checks:
            typer.echo(f"{'ok' if c.verified else 'MISMATCH'}  {c.name}  {c.path}")
            if c.problem:
                console.error(f"{c.path}: {c.problem}")
        if not checks:
            console.info("no weight files on disk yet (violence-detect weights download)")
    exit_code(sum(not c.verified for c in checks))


@weights_app.command("path")
@cli_errors
def path_command(
    name: Annotated[WeightsName, typer.Argument(help="A registry name (see `weights list`).", metavar="NAME")],
    weights_dir: DirOpt = None,
    download: Annotated[bool, typer.Option("--download", help="Download the file when it is missing.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Print the file that would be loaded for NAME (exit 1 when missing, unless --download).

    Example: violence-detect weights path macil_sd
    """
    with _download_bar(console.progress_enabled(quiet)) as make_callback:
        path = registry.resolve_weights(
            name.value,
            weights_dir=weights_dir,
            download=download,
            progress=make_callback(name.value) if make_callback else None,
        )
    typer.echo(str(path))


def _entry_json(loc: registry.LocatedWeights) -> dict[str, object]:
    e = loc.entry
    return {
        "name": e.name,
        "filename": e.filename,
        "url": e.download_url(),
        "size": e.size,
        "sha256": e.sha256,
        "sha256_prefix": e.sha256_prefix,
        "git_blob_sha1": e.git_blob_sha1,
        "source": e.source,
        "license": e.license,
        "metadata": e.metadata,
        "path": str(loc.path) if loc.path else None,
        "location": loc.origin,
    }


def _human_size(size: int | None) -> str:
    if size is None:
        return "unknown"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover


@contextmanager
def _download_bar(enabled: bool) -> Iterator[Callable[[str], registry.ProgressCallback] | None]:
    """Yield a factory name -> progress callback drawing a Rich byte bar on stderr, or None."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console.stderr,
        transient=True,
    )

    def make_callback(name: str) -> registry.ProgressCallback:
        task = bar.add_task(name, total=None, visible=False)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total, visible=True)

        return update

    with bar:
        yield make_callback
