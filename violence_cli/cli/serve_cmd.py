"""``violence-detect serve``: the HTTP job API (:mod:`violence_cli.serve`), started from the CLI.

Thin: check the options, resolve the device, precision and weights once (as ``detect``
does), read the tokens, then hand a :class:`~violence_cli.serve.ServeConfig` to
:func:`violence_cli.serve.serve`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from .. import console
from ..errors import UsageError
from ..messages import count, own_model_notes, unpublished_warnings
from ._app import app, cli_errors
from .options import (
    DEFAULT_CROPS_CHOICE,
    DEFAULT_MODEL_CHOICE,
    BatchSizeOpt,
    CheckpointOpt,
    CropsOpt,
    DeviceOpt,
    DownloadOpt,
    Engine,
    EngineOpt,
    I3dWeightsOpt,
    ModelOpt,
    Precision,
    PrecisionOpt,
    RayAddressOpt,
    VggishWeightsOpt,
    WeightsDirOpt,
    model_checkpoints,
    resolve_precision_option,
    resolve_run_device,
)

PANEL_SERVER = "Server"
PANEL_LIMITS = "Limits and inputs"

HELP = """Serve an HTTP API of violence-detection jobs (pip install 'violence-detect[serve]').

POST a video to /v1/jobs (a multipart upload, or JSON {"url": ...} / {"path": ...}),
follow GET /v1/jobs/ID until it is done: its result is the document detect --json
prints; /report, /csv, /vtt, /srt give the exports. Jobs are kept in a SQLite store under
--data and survive a restart. The page at / uploads from a browser; /docs is the OpenAPI
reference. Binds 127.0.0.1 unless --host says otherwise, which needs --token-file.

Examples:

\b
  violence-detect serve --data jobs/ --crops 1
  curl -F file=@clip.mp4 http://127.0.0.1:8750/v1/jobs
  curl http://127.0.0.1:8750/v1/jobs/ID
  violence-detect serve --host 0.0.0.0 --token-file tokens.txt --workers 2
"""


def _default_data() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "violence-detect" / "serve"


@app.command("serve", help=HELP)
@cli_errors
def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.", rich_help_panel=PANEL_SERVER)] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            min=0, max=65535, metavar="N", help="Port to listen on (0: any free port).", rich_help_panel=PANEL_SERVER
        ),
    ] = 8750,
    data: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Folder of the job store, uploads and results (default: $XDG_DATA_HOME/violence-detect/serve).",
            rich_help_panel=PANEL_SERVER,
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Jobs run at once (each worker loads the networks once).", rich_help_panel=PANEL_SERVER)
    ] = 1,
    token_file: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Tokens, one per line (at least 16 characters): every request but /healthz then needs "
            "'Authorization: Bearer TOKEN', and each token sees only its own jobs.",
            rich_help_panel=PANEL_SERVER,
        ),
    ] = None,
    max_upload_mb: Annotated[
        float, typer.Option(metavar="MB", help="Largest upload or download, in MiB.", rich_help_panel=PANEL_LIMITS)
    ] = 2048.0,
    max_duration_min: Annotated[
        float,
        typer.Option(metavar="MIN", help="Longest video a job may have, in minutes.", rich_help_panel=PANEL_LIMITS),
    ] = 240.0,
    max_queue: Annotated[
        int, typer.Option(help="Jobs queued or running at most; more are refused (429).", rich_help_panel=PANEL_LIMITS)
    ] = 1000,
    allow_urls: Annotated[
        bool, typer.Option("--allow-urls", help='Accept {"url": ...} jobs (http/https).', rich_help_panel=PANEL_LIMITS)
    ] = False,
    allow_private_urls: Annotated[
        bool,
        typer.Option(
            "--allow-private-urls",
            help="Let URLs and webhooks reach loopback, private and link-local addresses (refused by default).",
            rich_help_panel=PANEL_LIMITS,
        ),
    ] = False,
    allow_path: Annotated[
        list[Path] | None,
        typer.Option(
            "--allow-path",
            metavar="DIR",
            help='Accept {"path": ...} jobs for files under DIR (repeatable).',
            rich_help_panel=PANEL_LIMITS,
        ),
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            metavar="NAME",
            help="Without --token-file, also answer requests whose Host header is NAME (repeatable; e.g. the "
            "name a reverse proxy passes on). Other names than the bound address and localhost are refused, "
            "which stops DNS rebinding.",
            rich_help_panel=PANEL_LIMITS,
        ),
    ] = None,
    engine: EngineOpt = Engine("local"),
    ray_address: RayAddressOpt = None,
    device: DeviceOpt = "auto",
    model: ModelOpt = DEFAULT_MODEL_CHOICE,
    crops: CropsOpt = DEFAULT_CROPS_CHOICE,
    batch_size: BatchSizeOpt = None,
    precision: PrecisionOpt = Precision.auto,
    checkpoint: CheckpointOpt = None,
    i3d_weights: I3dWeightsOpt = None,
    vggish_weights: VggishWeightsOpt = None,
    weights_dir: WeightsDirOpt = None,
    download: DownloadOpt = True,
) -> None:
    from ..models import DEFAULT_MODEL  # serve scores with MACIL-SD
    from ..protocol import I3D_WEIGHTS, VGGISH_WEIGHTS
    from ..serve import ServeConfig, check_config, serve
    from ..serve.security import read_tokens
    from ..weights import resolve_weight_files

    if batch_size is not None and batch_size < 1:
        raise UsageError(f"--batch-size {batch_size}: expected a positive number")
    for name, value in (("--max-upload-mb", max_upload_mb), ("--max-duration-min", max_duration_min)):
        if value <= 0:
            raise UsageError(f"{name} {value:g}: expected a positive number")
    config = ServeConfig(
        data=data or _default_data(),
        host=host,
        port=port,
        workers=workers,
        tokens=read_tokens(token_file) if token_file is not None else None,
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        max_duration=max_duration_min * 60,
        max_queue=max_queue,
        allow_urls=allow_urls,
        allow_private_urls=allow_private_urls,
        allow_paths=[p.expanduser() for p in allow_path or []],
        allow_hosts=list(allow_host or []),
        engine=engine.value,
        ray_address=ray_address,
        crops=int(crops.value),
        model=model.value,
        batch_size=batch_size,
    )
    try:
        check_config(config)
    except UsageError as exc:  # "host 0.0.0.0: ..." / "workers 0: ..." -> the options' names
        first, _, rest = exc.message.partition(" ")
        hint = "give --token-file FILE (one token per line), or keep --host 127.0.0.1" if first == "host" else None
        raise UsageError(f"--{first.replace('_', '-')} {rest}", hint) from None
    config.device = resolve_run_device(device, engine, ray_address)
    config.precision = resolve_precision_option(precision, config.device)
    config.weights = resolve_weight_files(
        {I3D_WEIGHTS: i3d_weights, VGGISH_WEIGHTS: vggish_weights, **model_checkpoints(DEFAULT_MODEL, checkpoint)},
        weights_dir=weights_dir,
        download=download,
    )
    for note in own_model_notes(config.weights.values()):
        console.info(note)
    for warning in unpublished_warnings(config.weights.values()):
        console.warn(warning)

    def ready(bound: str, bound_port: int, requeued: int) -> None:
        where = f"[{bound}]" if ":" in bound else bound
        console.info(
            f"violence-detect serve: listening on http://{where}:{bound_port} (data {config.data}, "
            f"{count(config.workers, 'worker')}, {config.device} {config.precision}, "
            f"{count(config.crops, 'crop')}"
            f"{', tokens' if config.tokens is not None else ''})"
        )
        if requeued:
            console.info(f"requeued {count(requeued, 'job')} left running by the previous server")

    serve(config, on_ready=ready)
