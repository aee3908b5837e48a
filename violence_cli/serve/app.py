"""The HTTP API of ``serve`` (FastAPI on Starlette, run by uvicorn).

Every answer is JSON (errors as ``{"error": {"code", "message"}}``) except the exports, the
report, ``/metrics`` and the page. :class:`Gate` (a plain ASGI layer in front of the app)
checks the token of every request but ``/healthz`` and ``/`` (the page, which holds no
data); without tokens it refuses (403) a ``Host`` that is not the server's own name (DNS
rebinding, see :mod:`.security`); it refuses a body whose declared length is past the limit before it is read. An
upload is streamed straight into its job's folder through python-multipart's parser,
counting bytes: past the limit the request ends with ``413`` and the partial file is
removed. Library errors (they name parameters: ``params.threshold 2: expected ...``) come
back as ``400``; refusals by the server's settings as ``403``.
"""

from __future__ import annotations

import json
import mimetypes
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._version import __version__
from ..errors import ViolenceDetectError
from . import security
from .config import MAX_JSON_BYTES, ServeConfig, job_params
from .store import FINISHED, LATENCY_BUCKETS, QUEUED, RUNNING, STATUSES, JobRow, JobStore, QueueFull
from .workers import INPUT_DIR, Metrics, WorkerPool, input_file, place_input, remove_input, result_file

PUBLIC_PATHS = ("/healthz", "/", "/favicon.ico")  # no token needed: the health check, the page (it holds no data)
TOKEN_COOKIE = "vd_token"  # the page keeps its token here so that reports and their video load (GET only)
EXPORTS = {"csv": ("csv", "text/csv"), "vtt": ("vtt", "text/vtt"), "srt": ("srt", "application/x-subrip")}
MULTIPART_SLACK = 64 * 1024  # bytes of a multipart body that are not the file (boundaries, headers, fields)
LIST_LIMIT, LIST_MAX = 20, 100


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode("utf-8")


_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          409: "not_ready", 413: "too_large", 415: "unsupported_media_type", 429: "queue_full"}


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Gate:
    """ASGI layer: the Host check (without tokens), the token check (``request.state.owner``)
    and the declared body size."""

    def __init__(self, app: Any, config: ServeConfig) -> None:
        self.app, self.config = app, config
        self.host_names = config.host_names()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.config.tokens is None and not security.host_allowed(headers.get("host"), self.host_names):
            name = security.host_name(headers["host"])
            known = ", ".join(dict.fromkeys(self.host_names))
            await _send_error(send, 403, f"Host {name}: not a name of this server ({known}); start it with "
                                         f"--allow-host {name} to accept that name, or with --token-file")
            return
        owner = "" if self.config.tokens is None else self._owner(scope, headers)
        if owner is None and scope["path"] not in PUBLIC_PATHS:
            await _send_error(send, 401, "a valid token is needed: Authorization: Bearer TOKEN",
                              {"www-authenticate": "Bearer"})
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.config.max_upload_bytes + MULTIPART_SLACK:
            await _send_error(send, 413, f"the body ({int(declared)} bytes) is past the upload limit "
                                         f"({self.config.max_upload_bytes} bytes)")
            return
        scope.setdefault("state", {})["owner"] = owner
        await self.app(scope, receive, send)

    def _owner(self, scope: dict[str, Any], headers: dict[str, str]) -> str | None:
        assert self.config.tokens is not None
        owner = security.match_token(self.config.tokens, headers.get("authorization"))
        if owner is None and scope["method"] in ("GET", "HEAD"):  # a browser's report and video: the page's cookie
            for part in headers.get("cookie", "").split(";"):
                name, _, value = part.strip().partition("=")
                if name == TOKEN_COOKIE and value:
                    from urllib.parse import unquote

                    owner = security.match_token(self.config.tokens, f"Bearer {unquote(value)}")
        return owner


async def _send_error(send: Any, status: int, message: str, extra: dict[str, str] | None = None) -> None:
    body = error_body(_CODES.get(status, "error"), message)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app(config: ServeConfig, store: JobStore, pool: WorkerPool | None, metrics: Metrics) -> Any:
    """The ASGI application (the FastAPI app behind :class:`Gate`); ``pool`` is woken for each new job."""
    from .page import PAGE

    api = FastAPI(
        title="violence-detect",
        version=__version__,
        description="Violence detection jobs (MACIL-SD over I3D + VGGish features): upload a video, get its scores.",
    )

    @api.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=exc.status)

    @api.exception_handler(security.Refused)
    async def _refused(request: Request, exc: security.Refused) -> Response:
        return JSONResponse({"error": {"code": "forbidden", "message": exc.message}}, status_code=403)

    @api.exception_handler(ViolenceDetectError)
    async def _bad(request: Request, exc: ViolenceDetectError) -> Response:
        return JSONResponse({"error": {"code": "bad_request", "message": exc.message}}, status_code=400)

    @api.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = _CODES.get(exc.status_code, "error")
        return JSONResponse({"error": {"code": code, "message": str(exc.detail)}}, status_code=exc.status_code)

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("query", "path", "body"))
        message = f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid request"))
        return JSONResponse({"error": {"code": "bad_request", "message": message}}, status_code=400)

    def owner_of(request: Request) -> str:
        return request.scope["state"]["owner"]

    def own_job(request: Request, job_id: str) -> JobRow:
        row = store.get(job_id, owner_of(request))
        if row is None:  # another token's job is not found either: nothing is learnt about it
            raise ApiError(404, "not_found", f"job {job_id}: no such job")
        return row

    def document(row: JobRow, with_result: bool = True) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": row.id,
            "status": row.status,
            "source": {"kind": row.source_kind, "name": row.source},
            "params": row.params,
            "progress": round(row.progress, 3),
            "duration": row.duration,
            "created": _iso(row.created),
            "started": _iso(row.started),
            "finished": _iso(row.finished),
            "attempts": row.attempts,
            "error": row.error,
            "webhook": {"url": row.webhook, "state": row.hook_state, "attempts": row.hook_attempts}
            if row.webhook
            else None,
        }
        if row.status == "done":
            base = f"/v1/jobs/{row.id}"
            doc["links"] = {"report": f"{base}/report", **{k: f"{base}/{k}" for k in EXPORTS}}
            if with_result:
                doc["result"] = json.loads(result_file(store.job_dir(row.id)).read_text(encoding="utf-8"))
        return doc

    def queue_room() -> None:
        counts = store.counts()
        if counts[QUEUED] + counts[RUNNING] >= config.max_queue:
            raise ApiError(429, "queue_full", f"the queue is full ({config.max_queue} jobs); try again later")

    @api.post(
        "/v1/jobs",
        status_code=202,
        summary="Submit a video: a multipart upload (field file), or JSON {url} / {path}",
        openapi_extra={
            "requestBody": {
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "file": {"type": "string", "format": "binary"},
                                "params": {"type": "string", "description": "JSON object of job parameters"},
                                "webhook": {"type": "string"},
                            },
                            "required": ["file"],
                        }
                    },
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "url": {"type": "string"},
                                "path": {"type": "string"},
                                "params": {"type": "object"},
                                "webhook": {"type": "string"},
                            },
                        }
                    },
                }
            }
        },
    )
    async def submit(request: Request) -> JSONResponse:
        owner = owner_of(request)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        queue_room()
        job_id = store.new_id()
        job_dir = store.job_dir(job_id)
        try:
            if kind == "multipart/form-data":
                fields, saved, filename = await _receive_upload(request, job_dir / INPUT_DIR, config.max_upload_bytes)
                if saved is None:
                    raise ApiError(400, "bad_request", "file: missing; expected a multipart field named file")
                params, webhook = _form_json(fields.get("params")), fields.get("webhook") or None
                source_kind, source = "upload", filename or "upload"
                input_path = str(await run_in_threadpool(place_input, saved))
            elif kind == "application/json":
                body = await _read_json(request)
                params, webhook = body.get("params"), body.get("webhook")
                if ("url" in body) == ("path" in body):
                    raise ApiError(400, "bad_request", "expected one of url or path (or a multipart upload)")
                if "url" in body:
                    if not config.allow_urls:
                        raise security.Refused("url: fetching URLs is off (start the server with --allow-urls)")
                    source_kind, source, input_path = "url", str(body["url"]), None
                    await run_in_threadpool(security.check_url, source, config.allow_private_urls)
                else:
                    source_kind, source = "path", str(body["path"])
                    input_path = str(security.check_path(source, config.allow_paths))
            else:
                raise ApiError(415, "unsupported_media_type", "expected multipart/form-data or application/json")
            checked = job_params(params, config)
            if webhook is not None:
                if not isinstance(webhook, str):
                    raise ApiError(400, "bad_request", "webhook: expected an http(s) URL")
                await run_in_threadpool(security.check_url, webhook, config.allow_private_urls, "webhook")
            row = store.add(job_id, owner, source_kind, source, input_path, checked, webhook, config.max_queue)
        except QueueFull:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise ApiError(429, "queue_full", f"the queue is full ({config.max_queue} jobs); try again later") from None
        except BaseException:
            shutil.rmtree(job_dir, ignore_errors=True)  # nothing kept of a refused request
            raise
        if pool is not None:
            pool.wake()
        return JSONResponse(document(row), status_code=202, headers={"Location": f"/v1/jobs/{row.id}"})

    @api.get("/v1/jobs", summary="List this token's jobs, newest first")
    async def list_jobs(request: Request, status: str | None = None, limit: int = LIST_LIMIT, cursor: str | None = None):
        if status is not None and status not in STATUSES:
            raise ApiError(400, "bad_request", f"status {status}: expected one of {', '.join(STATUSES)}")
        if not 1 <= limit <= LIST_MAX:
            raise ApiError(400, "bad_request", f"limit {limit}: expected 1 to {LIST_MAX}")
        try:
            rows, following = store.list(owner_of(request), status, limit, cursor)
        except ValueError:
            raise ApiError(400, "bad_request", f"cursor {cursor}: not a cursor this server gave") from None
        return {"jobs": [document(r, with_result=False) for r in rows], "next_cursor": following}

    @api.get("/v1/jobs/{job_id}", summary="A job: status, progress, timestamps; its result when done")
    async def get_job(request: Request, job_id: str):
        return document(own_job(request, job_id))

    @api.delete("/v1/jobs/{job_id}", summary="Cancel a queued or running job (its upload is removed); "
                "a finished job is deleted with its files")
    async def delete_job(request: Request, job_id: str):
        row = own_job(request, job_id)
        job_dir = store.job_dir(job_id)
        if row.status in FINISHED:
            store.delete(job_id, owner_of(request))
            shutil.rmtree(job_dir, ignore_errors=True)
            return {"id": job_id, "status": row.status, "deleted": True}
        row = store.cancel(job_id, owner_of(request)) or row
        remove_input(job_dir)
        return document(row, with_result=False)

    def finished_result(request: Request, job_id: str) -> tuple[JobRow, Any]:
        from ..schema import DetectionResult

        row = own_job(request, job_id)
        if row.status != "done":
            raise ApiError(409, "not_ready", f"job {job_id} is {row.status}; its results come when it is done")
        doc = json.loads(result_file(store.job_dir(job_id)).read_text(encoding="utf-8"))
        return row, DetectionResult.from_dict(doc)

    @api.get("/v1/jobs/{job_id}/report", summary="The HTML report (the video beside its score timeline)")
    async def report(request: Request, job_id: str):
        row, result = finished_result(request, job_id)
        html = await run_in_threadpool(_render_report, store.job_dir(job_id), row, result)
        return HTMLResponse(html)

    @api.get("/v1/jobs/{job_id}/input/{name}", summary="The job's video, as the report plays it")
    async def media(request: Request, job_id: str, name: str):
        row = own_job(request, job_id)
        path = input_file(store.job_dir(job_id)) or (Path(row.input_path) if row.input_path else None)
        if path is None or not path.is_file():
            raise ApiError(404, "not_found", f"job {job_id}: its video is not kept")
        return FileResponse(path, media_type=mimetypes.guess_type(f"x{path.suffix}")[0] or "application/octet-stream")

    for export, (fmt, media_type) in EXPORTS.items():

        def make(fmt: str = fmt, media_type: str = media_type):
            async def exported(request: Request, job_id: str):
                from ..writers import get_writer

                _, result = finished_result(request, job_id)
                return Response(get_writer(fmt).to_string(result), media_type=f"{media_type}; charset=utf-8")

            return exported

        api.get(f"/v1/jobs/{{job_id}}/{export}", summary=f"The {export.upper()} export")(make())

    @api.get("/healthz", summary="Liveness (no token needed)")
    async def healthz():
        return {"status": "ok", "version": __version__}

    @api.get("/metrics", summary="Prometheus text format", response_class=PlainTextResponse)
    async def prometheus():
        return PlainTextResponse(metrics_text(store, metrics), media_type="text/plain; version=0.0.4; charset=utf-8")

    @api.get("/favicon.ico", include_in_schema=False)
    async def favicon():
        return Response(status_code=204)  # no icon: browsers ask for one with every page

    @api.get("/", summary="A page to upload a video and follow its job", response_class=HTMLResponse)
    async def page():
        return HTMLResponse(PAGE, headers={"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'unsafe-inline'; "
                                           "script-src 'unsafe-inline'; frame-ancestors 'none'"})

    api.state.document = lambda row: document(row, with_result=False)  # what a webhook carries
    return Gate(api, config)


def _render_report(job_dir: Path, row: JobRow, result: Any) -> str:
    """The report, its player pointed at ``input/video.EXT`` (served by the input route)."""
    from ..report import check_playback
    from ..writers import HtmlWriter

    real = input_file(job_dir) or (Path(row.input_path) if row.input_path else None)
    playback = None
    if real is not None and real.is_file():
        try:
            playback = check_playback(real)
        except ViolenceDetectError:
            playback = None
    suffix = real.suffix if real is not None else ".mp4"
    return HtmlWriter(job_dir / INPUT_DIR / f"video{suffix}", playback).render(result, job_dir)


async def _read_json(request: Request) -> dict[str, Any]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise ApiError(413, "too_large", f"the JSON body is past {MAX_JSON_BYTES} bytes")
    try:
        doc = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "bad_request", "the body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "bad_request", "expected a JSON object")
    return doc


def _form_json(text: str | None) -> Any:
    if text is None or not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise ApiError(400, "bad_request", "params: not valid JSON") from None


async def _receive_upload(request: Request, folder: Path, limit: int) -> tuple[dict[str, str], Path | None, str | None]:
    """Stream a multipart body: the ``file`` part into ``folder`` (at most ``limit`` bytes, else
    413), text fields into a dict (at most :data:`MAX_JSON_BYTES` in all). Returns (fields,
    the file written, the client's file name)."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if not boundary:
        raise ApiError(400, "bad_request", "multipart/form-data without a boundary")
    folder.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {"headers": {}, "field": b"", "value": b"", "name": None, "file": None, "size": 0,
                             "text": 0, "buffer": bytearray()}
    fields: dict[str, str] = {}
    out = {"path": None, "filename": None}

    def on_part_begin() -> None:
        state["headers"], state["name"], state["buffer"] = {}, None, bytearray()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].decode("latin-1").lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(state["headers"].get("content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        state["name"] = name
        if name == "file" and out["path"] is None:
            filename = disposition.get(b"filename", b"").decode("utf-8", "replace")
            out["filename"] = Path(filename.replace("\\", "/")).name or "upload"
            out["path"] = folder / f".upload-{uuid.uuid4().hex}.part"
            state["file"] = open(out["path"], "wb")  # noqa: SIM115 - closed in on_part_end / below

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["file"] is not None and state["name"] == "file":
            state["size"] += end - start
            if state["size"] > limit:
                raise ApiError(413, "too_large", f"file: past the upload limit of {limit} bytes")
            state["file"].write(data[start:end])
        else:
            state["text"] += end - start
            if state["text"] > MAX_JSON_BYTES:
                raise ApiError(413, "too_large", f"the form's text fields are past {MAX_JSON_BYTES} bytes")
            state["buffer"] += data[start:end]

    def on_part_end() -> None:
        if state["file"] is not None and state["name"] == "file":
            state["file"].flush()
            os.fsync(state["file"].fileno())  # on disk before the job is committed
            state["file"].close()
            state["file"] = None
        elif state["name"]:
            fields[state["name"]] = state["buffer"].decode("utf-8", "replace")

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
        },
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except ApiError:
        raise
    except Exception as exc:  # noqa: BLE001 - python-multipart's own errors: a malformed body
        raise ApiError(400, "bad_request", f"the multipart body is malformed ({exc})") from None
    finally:
        if state["file"] is not None:
            state["file"].close()
    return fields, out["path"], out["filename"]


def metrics_text(store: JobStore, metrics: Metrics) -> str:
    """The Prometheus text exposition of the server's counters (from the store: they survive restarts)."""
    counts = store.counts()
    seconds, cumulative, latency_sum, done = store.done_stats()
    lines = [
        "# HELP violence_detect_jobs Jobs in the store by status.",
        "# TYPE violence_detect_jobs gauge",
        *(f'violence_detect_jobs{{status="{s}"}} {counts[s]}' for s in STATUSES),
        "# HELP violence_detect_queue_depth Jobs waiting for a worker.",
        "# TYPE violence_detect_queue_depth gauge",
        f"violence_detect_queue_depth {counts[QUEUED]}",
        "# HELP violence_detect_video_seconds_total Seconds of video scored by done jobs.",
        "# TYPE violence_detect_video_seconds_total counter",
        f"violence_detect_video_seconds_total {seconds:.3f}",
        "# HELP violence_detect_job_latency_seconds From submission to result, done jobs.",
        "# TYPE violence_detect_job_latency_seconds histogram",
        *(f'violence_detect_job_latency_seconds_bucket{{le="{edge:g}"}} {n}' for edge, n in zip(LATENCY_BUCKETS, cumulative)),
        f'violence_detect_job_latency_seconds_bucket{{le="+Inf"}} {done}',
        f"violence_detect_job_latency_seconds_sum {latency_sum:.3f}",
        f"violence_detect_job_latency_seconds_count {done}",
        "# HELP violence_detect_model_load_seconds Time to load the networks, per load (one per worker and model).",
        "# TYPE violence_detect_model_load_seconds summary",
    ]
    with metrics.lock:
        loads = list(metrics.load_seconds)
    lines += [f"violence_detect_model_load_seconds_sum {sum(loads):.3f}", f"violence_detect_model_load_seconds_count {len(loads)}"]
    return "\n".join(lines) + "\n"


__all__ = ["ApiError", "create_app", "metrics_text"]
