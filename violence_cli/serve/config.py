"""The settings of one ``serve`` process and the job parameters a request may set.

:class:`ServeConfig` is filled once at the edge (the CLI, or a program calling
:func:`violence_cli.serve.serve`): the device and precision resolved, the weights files
resolved and checked, the tokens read and hashed. :func:`job_params` checks a request's
``params`` against the server's defaults and names the parameter that is wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..models import DEFAULT_MODEL, MODEL_NAMES, MODEL_WEIGHTS
from ..protocol import CROP_CHOICES, DEFAULT_CROPS
from ..segments import DEFAULT_THRESHOLD, check_params

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8750
DEFAULT_MAX_UPLOAD_MB = 2048.0
DEFAULT_MAX_DURATION_MIN = 240.0
DEFAULT_MAX_QUEUE = 1000
MAX_JSON_BYTES = 64 * 1024  # a JSON body, or a multipart form's text fields, at most this long
FETCH_TIMEOUT = 600.0  # s: a URL's whole download
WEBHOOK_TIMEOUT = 10.0  # s per delivery attempt
WEBHOOK_ATTEMPTS = 6  # deliveries tried before giving up
WEBHOOK_BACKOFF = 2.0  # s before the second attempt, doubling after each failure
# The models a job may name (violence_cli.models); a job may use one whose weights the server resolved at start.
MODELS = MODEL_NAMES
JOB_PARAMS = ("threshold", "min_duration", "merge_gap", "crops", "model", "start", "end")


@dataclass
class ServeConfig:
    data: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    workers: int = 1
    tokens: list[str] | None = None  # sha256 digests; None: no tokens (127.0.0.1 only)
    max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 1024 * 1024)
    max_duration: float = DEFAULT_MAX_DURATION_MIN * 60  # s of video a job may have
    max_queue: int = DEFAULT_MAX_QUEUE
    allow_urls: bool = False
    allow_private_urls: bool = False
    allow_paths: list[Path] = field(default_factory=list)
    allow_hosts: list[str] = field(default_factory=list)  # Host names accepted without tokens, beside host and localhost
    engine: str = "local"
    ray_address: str | None = None
    device: Any = "cpu"  # resolved (a torch.device) at the edge
    precision: str = "fp32"  # resolved
    crops: int = DEFAULT_CROPS
    batch_size: int | None = None
    model: str = DEFAULT_MODEL
    weights: dict[str, Any] = field(default_factory=dict)  # registry name -> ResolvedWeights
    fetch_timeout: float = FETCH_TIMEOUT
    webhook_attempts: int = WEBHOOK_ATTEMPTS
    webhook_backoff: float = WEBHOOK_BACKOFF
    webhook_timeout: float = WEBHOOK_TIMEOUT

    def host_names(self) -> tuple[str, ...]:
        """The ``Host`` names a request without tokens may give: the bound address, localhost, ``allow_hosts``."""
        from .security import LOOPBACK_HOSTS

        return (self.host, *LOOPBACK_HOSTS, *self.allow_hosts)

    def defaults(self) -> dict[str, Any]:
        """The parameters of a job that sets none."""
        return {
            "threshold": DEFAULT_THRESHOLD,
            "min_duration": 0.0,
            "merge_gap": 0.0,
            "crops": self.crops,
            "model": self.model,
            "start": 0.0,
            "end": None,
        }


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"params.{name} {value!r}: expected a finite number")
    return float(value)


def job_params(given: Any, config: ServeConfig) -> dict[str, Any]:
    """The full parameters of a job: the server's defaults overridden by ``given`` (a dict)."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise UsageError("params: expected a JSON object")
    unknown = sorted(set(given) - set(JOB_PARAMS))
    if unknown:
        raise UsageError(f"params.{unknown[0]}: unknown parameter; expected {', '.join(JOB_PARAMS)}")
    params = config.defaults()
    for name in ("threshold", "min_duration", "merge_gap", "start"):
        if given.get(name) is not None:
            params[name] = _number(name, given[name])
    if given.get("end") is not None:
        params["end"] = _number("end", given["end"])
    try:
        check_params(params["threshold"], params["min_duration"], params["merge_gap"])
    except ValueError as exc:
        raise UsageError(f"params.{exc}") from None
    if given.get("crops") is not None:
        if given["crops"] not in CROP_CHOICES or isinstance(given["crops"], bool):
            raise UsageError(f"params.crops {given['crops']!r}: expected {' or '.join(map(str, CROP_CHOICES))}")
        params["crops"] = int(given["crops"])
    if given.get("model") is not None:
        if given["model"] not in MODELS:
            raise UsageError(f"params.model {given['model']!r}: expected one of {', '.join(MODELS)}")
        if config.weights and not all(name in config.weights for name in MODEL_WEIGHTS[given["model"]]):
            raise UsageError(f"params.model {given['model']}: its weights are not loaded by this server (its model: {config.model})")
        params["model"] = given["model"]
    if params["start"] < 0:
        raise UsageError(f"params.start {params['start']:g}: expected seconds >= 0")
    if params["end"] is not None and params["end"] <= params["start"]:
        raise UsageError(f"params.end {params['end']:g}: expected a time after params.start ({params['start']:g})")
    return params


__all__ = ["JOB_PARAMS", "MODELS", "ServeConfig", "job_params"]
