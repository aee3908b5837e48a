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
from ..schema import document_header
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
        "\b\n"
        "  violence-detect weights list\n"
        "  violence-detect weights download            # all of them, into the cache\n"
        "  violence-detect weights download macil_sd --weights-dir ./w\n"
        "  violence-detect weights verify\n"
        "  violence-detect weights path macil_sd"
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(weights_app, name="weights")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
DirOpt = Annotated[
    Path | None,
    typer.Option("--weights-dir", metavar="DIR", help="A folder holding weight files under their registry file names."),
]
NamesArg = Annotated[
    list[WeightsName] | None,
    typer.Argument(help="Which files (default: all).", metavar="NAME...", show_default=False),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no information lines.")]
_ORIGIN_LABEL = {"weights_dir": "--weights-dir", "env": "$" + registry.WEIGHTS_ENV, "cache": "cache"}
LINE_WIDTH = 100  # columns the table of `weights list` fits in
OFFLINE_HINT = (
    "offline? on a machine with internet run `violence-detect weights download --weights-dir DIR` there, "
    f"copy DIR here and set {registry.WEIGHTS_ENV}=DIR; or set {registry.WEIGHTS_URL_ENV} to a folder URL "
    "that mirrors the files"
)


def _check_label(loc: registry.LocatedWeights, check: bool) -> tuple[str, str | None]:
    """(the CHECK column, the problem) of one located file."""
    if loc.path is None:
        return "-", None
    if not check:
        return "not checked", None
    problem = registry.integrity_problem(loc.path, loc.entry)
    if problem is None:
        return "ok", None
    if registry.trained_metadata(loc.path) is not None:
        return "own model", None
    return "MISMATCH", problem


@weights_app.command("list")
@cli_errors
def list_command(
    json_mode: JsonOpt = False,
    weights_dir: DirOpt = None,
    check: Annotated[
        bool,
        typer.Option("--check/--no-check", help="Compare the files on disk with the manifest (hashes them)."),
    ] = True,
    quiet: QuietOpt = False,
) -> None:
    """Show each registry file: its size, whether it verifies, and where it is.

    Example: violence-detect weights list --json
    """
    located = [registry.locate_weights(e.name, weights_dir=weights_dir) for e in registry.available_weights()]
    checks = [_check_label(loc, check) for loc in located]
    if json_mode:
        items = [_entry_json(loc, label, problem) for loc, (label, problem) in zip(located, checks)]
        typer.echo(
            json.dumps({**document_header(), "cache_dir": str(registry.cache_dir()), "weights": items}, indent=2)
        )
        return
    rows = [("NAME", "SIZE", "CHECK", "WHERE")]
    for loc, (label, _) in zip(located, checks):
        if loc.path is not None:
            size = _human_size(loc.path.stat().st_size)
        else:
            shown, exact = loc.entry.shown_size
            size = _human_size(shown) if exact or shown is None else "~" + _human_size(shown)
        where = _ORIGIN_LABEL[loc.origin] if loc.origin else "missing (downloaded on first use)"
        rows.append((loc.entry.name, size, label, where))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
    # Paths print whole (one to copy must not be cut); the table above fits LINE_WIDTH columns.
    for (label, problem), loc in zip(checks, located):
        if problem is not None:
            console.warn(f"{loc.entry.name} {loc.path}: {problem}")
    folders = [
        ("--weights-dir", weights_dir),
        ("$" + registry.WEIGHTS_ENV, _env_folder()),
        ("cache", registry.cache_dir()),
    ]
    for label, folder in folders:
        if folder is not None:
            console.info(f"{label}: {folder}", quiet=quiet)
    if any(label == "not checked" for label, _ in checks):
        console.info("not checked: `violence-detect weights verify` compares them with the manifest", quiet=quiet)


def _env_folder() -> Path | None:
    import os

    value = os.environ.get(registry.WEIGHTS_ENV, "").strip()
    return Path(value).expanduser() if value else None


@weights_app.command("download")
@cli_errors
def download_command(
    names: NamesArg = None,
    weights_dir: Annotated[
        Path | None,
        typer.Option("--weights-dir", metavar="DIR", help="Download into this folder instead of the cache."),
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
                console.error(exc.message)  # one hint for all of them, below
                results.append({"name": name, "path": None, "status": "failed", "error": exc.message})
                continue
            status = "downloaded" if got.downloaded else "present"
            results.append({"name": name, "path": str(got.path), "status": status, "error": None})
            if not json_mode:
                typer.echo(f"{name}  {status}  {got.path}")
    if json_mode:
        typer.echo(json.dumps({**document_header(), "weights": results}, indent=2))
    if failed:
        console.stderr.print(f"[dim]hint:[/] {OFFLINE_HINT}", markup=True, highlight=False)
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
    checks = registry.verify_weights(
        [n.value for n in names] if names else None, weights_dir=weights_dir, on_warning=console.warn
    )
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
        typer.echo(json.dumps({**document_header(), "weights": items}, indent=2))
    else:
        for c in checks:
            typer.echo(
                f"{'ok' if c.verified else 'MISMATCH'}  {c.name}  {c.path}  (sha256 {registry.short_hash(c.sha256)})"
            )
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
    if not download:  # not fetched unless asked: say so, and how to ask
        located = registry.locate_weights(name.value, weights_dir=weights_dir)
        if located.path is None:
            where = ", ".join(str(folder) for folder in located.searched)
            raise WeightsError(
                f"{name.value} weights not found: {located.entry.filename} is not in {where}",
                hint=f"`violence-detect weights path {name.value} --download` fetches it "
                f"(or `violence-detect weights download {name.value}`)",
            )
    with _download_bar(console.progress_enabled(quiet)) as make_callback:
        path = registry.resolve_weights(
            name.value,
            weights_dir=weights_dir,
            download=download,
            progress=make_callback(name.value) if make_callback else None,
        )
    typer.echo(str(path))


def _entry_json(loc: registry.LocatedWeights, check: str, problem: str | None) -> dict[str, object]:
    e = loc.entry
    on_disk = registry.file_digest(loc.path) if loc.path is not None and check != "not checked" else None
    return {
        "name": e.name,
        "filename": e.filename,
        "url": e.download_url(),
        "size": e.size,
        "approx_size": e.approx_size,
        "sha256": e.sha256,
        "sha256_prefix": e.sha256_prefix,
        "git_blob_sha1": e.git_blob_sha1,
        "source": e.source,
        "license": e.license,
        "metadata": e.metadata,
        "path": str(loc.path) if loc.path else None,
        "location": loc.origin,
        "file_size": loc.path.stat().st_size if loc.path else None,
        "file_sha256": on_disk.sha256 if on_disk else None,
        "check": {"-": None, "ok": "ok", "MISMATCH": "mismatch"}.get(check, check.replace(" ", "_")),
        "verified": None if on_disk is None else problem is None and check == "ok",
        "problem": problem,
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
