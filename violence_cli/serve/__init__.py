"""``violence-detect serve``: an HTTP job API over the detector (optional extra ``serve``).

- :mod:`.config`: :class:`ServeConfig` (the server's settings) and the job parameters;
- :mod:`.store`: the durable SQLite (WAL) job store;
- :mod:`.workers`: the worker threads (networks loaded once each) and the webhook sender;
- :mod:`.security`: tokens, allowed paths, URL checks, webhook signatures;
- :mod:`.app`: the FastAPI application; :mod:`.page`: the upload page at ``/``.

:func:`serve` runs it all until SIGINT/SIGTERM; the CLI only fills a :class:`ServeConfig`.
"""

from __future__ import annotations

import shutil
import signal
import socket
import threading
from collections.abc import Callable

from ..errors import UsageError, ViolenceDetectError
from .config import DEFAULT_HOST, ServeConfig, job_params
from .security import LOOPBACK_HOSTS

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _check_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ViolenceDetectError(
            f"serve needs the 'serve' extra ({exc.name} is missing)", hint="pip install 'violence-detect[serve]'"
        ) from None


def check_config(config: ServeConfig) -> None:
    """Refuse settings that would expose the server: another host than loopback without tokens."""
    if config.host not in LOOPBACK_HOSTS and config.tokens is None:
        raise UsageError(
            f"host {config.host}: serving beyond this machine needs tokens",
            hint="give tokens (a token file), or keep host 127.0.0.1",
        )
    if config.workers < 1:
        raise UsageError(f"workers {config.workers}: expected a positive number")
    if config.max_queue < 1:
        raise UsageError(f"max_queue {config.max_queue}: expected a positive number")
    if config.max_upload_bytes <= 0:
        raise UsageError("max_upload_mb: expected a positive number of MiB")
    if config.max_duration <= 0:
        raise UsageError("max_duration_min: expected a positive number of minutes")
    for folder in config.allow_paths:
        if not folder.is_dir():
            raise UsageError(f"allow_path {folder}: not a folder")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ViolenceDetectError(f"{host}:{port}: cannot listen there ({exc.strerror or exc})") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(config: ServeConfig, on_ready: Callable[[str, int, int], None] | None = None) -> None:
    """Run the server until SIGINT/SIGTERM. ``on_ready(host, port, requeued)`` once it listens
    (``requeued``: running jobs of a previous process put back in the queue)."""
    _check_extra()
    check_config(config)
    import uvicorn

    from .app import create_app
    from .store import JOBS_DIR, JobStore
    from .workers import Metrics, WebhookSender, WorkerPool

    sock = bind(config.host, config.port)
    store = JobStore(config.data)
    requeued = store.recover()
    known = store.ids()
    for leftover in (config.data / JOBS_DIR).iterdir():  # an upload cut short by a kill: never accepted
        if leftover.is_dir() and leftover.name not in known:
            shutil.rmtree(leftover, ignore_errors=True)
    metrics = Metrics()
    pool = WorkerPool(store, config, metrics)
    asgi = create_app(config, store, pool, metrics)
    hooks = WebhookSender(store, config, asgi.app.state.document)
    server = uvicorn.Server(
        uvicorn.Config(asgi, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=5)
    )
    pool.start()
    hooks.start()
    if on_ready is not None:
        on_ready(config.host, sock.getsockname()[1], requeued)
    # uvicorn stops gracefully on SIGINT/SIGTERM, then raises the signal again for the handler it
    # found: let that handler only note it, so a requested stop ends serve() normally
    stops: list[int] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, lambda signum, frame: stops.append(signum)) for sig in STOP_SIGNALS}
    try:
        server.run(sockets=[sock])
    finally:
        pool.stop()  # a running job goes back to the queue
        hooks.stop()
        store.close()
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


__all__ = ["DEFAULT_HOST", "ServeConfig", "check_config", "job_params", "serve"]
