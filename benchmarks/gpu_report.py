"""gpu_check's report framework: sections with caps, figures and checks printed and kept as JSON,
and the small timing tools every section uses (benchmarks/gpu_check.py runs them)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

SCHEMA = "violence-detect-gpu-check/1"
EXIT_FAILED_CHECKS = 10
COSINE_MIN = 0.999
CPU_NOTE = (
    "device is the CPU: every comparison is CPU against CPU and proves nothing about CUDA; "
    "this run only shows the script works"
)
SECTIONS = ("environment", "correctness", "speed", "many_videos", "acceptance")

T0 = time.perf_counter()


def log(message: str) -> None:
    """Progress on stderr with the seconds since start."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%H:%M:%S")
    print(f"[{stamp} +{time.perf_counter() - T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def out(line: str = "") -> None:
    print(line, flush=True)


# --------------------------------------------------------------------------- report


class SectionTimeout(BaseException):
    """Raised in the main thread when a section runs past its cap (BaseException: library
    code that catches Exception must not swallow it)."""


class Report:
    """The figures and checks, printed as they come and kept for the JSON file."""

    def __init__(self, device_label: str, args: argparse.Namespace, json_paths: list[Path]) -> None:
        self.device_label = device_label
        self.json_paths = json_paths
        cpu = device_label.startswith("cpu")
        self.data: dict[str, Any] = {
            "schema": SCHEMA,
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "argv": sys.argv[1:],
            "device": device_label,
            "reference_device": "cpu (fp32)",
            "quick": bool(args.quick),
            "cpu_vs_cpu": cpu,
            "note": CPU_NOTE if cpu else "device figures come from the GPU; 'host' figures from its CPU",
            "sections_asked": list(getattr(args, "sections", SECTIONS)),
            "sections": {},
            "summary": {},
        }
        self.section: dict[str, Any] | None = None

    # -- sections
    def begin(self, key: str, title: str, budget: float | None) -> None:
        self.section = {
            "title": title,
            "status": "running",
            "seconds": None,
            "budget_seconds": budget,
            "figures": {},
            "checks": [],
            "notes": [],
            "error": None,
        }
        self.data["sections"][key] = self.section
        out(f"\n== {title} " + (f"(cap {budget:.0f} s)" if budget is not None else "(no cap)"))
        log(f"{key}: start")

    def end(self, status: str, seconds: float, error: str | None = None) -> None:
        assert self.section is not None
        self.section.update(status=status, seconds=round(seconds, 2), error=error)
        if error:
            out(f"  !! section {status}: {error}")
        log(f"{self.section['title']}: {status} in {seconds:.1f} s")
        self.section = None
        self.write()

    # -- content
    def figure(self, key: str, value: Any, unit: str = "", device: str | None = None, note: str = "") -> None:
        device = device or self.device_label
        assert self.section is not None
        self.section["figures"][key] = {"value": _plain(value), "unit": unit, "device": device, "note": note}
        if isinstance(value, dict):
            out(f"  {key} ({unit or 'values'}) [{device}]" + (f"  {note}" if note else ""))
            for k, v in value.items():
                out(f"      {k:56s} {_fmt(v):>12s}")
            return
        out(f"  {key:46s} {_fmt(value):>12s} {unit:12s} [{device}]" + (f"  {note}" if note else ""))

    def check(
        self, name: str, passed: bool, value: Any, bound: str, device: str | None = None, detail: str = ""
    ) -> bool:
        device = device or self.device_label
        entry = {
            "name": name,
            "passed": bool(passed),
            "value": _plain(value),
            "bound": bound,
            "device": device,
            "reference": self.data["reference_device"],
            "detail": detail,
        }
        assert self.section is not None
        self.section["checks"].append(entry)
        mark = "PASS" if passed else "FAIL"
        out(
            f"  {mark}  {name}: {_fmt(value)} (bound {bound}) [{device} vs cpu fp32]"
            + (f"  {detail}" if detail else "")
        )
        return bool(passed)

    def note(self, text: str) -> None:
        assert self.section is not None
        self.section["notes"].append(text)
        out(f"  note: {text}")

    # -- output
    def summarise(self) -> int:
        checks = [c for s in self.data["sections"].values() for c in s["checks"]]
        failed = [c["name"] for c in checks if not c["passed"]]
        unfinished = [k for k, s in self.data["sections"].items() if s["status"] != "ok"]
        missing = [k for k in self.data["sections_asked"] if k not in self.data["sections"]]
        self.data["summary"] = {
            "checks": len(checks),
            "passed": len(checks) - len(failed),
            "failed": failed,
            "sections_not_ok": unfinished,
            "sections_not_run": missing,
            "seconds": round(time.perf_counter() - T0, 1),
        }
        self.write()
        out("\n== Summary")
        out(f"  device {self.device_label}; {self.data['note']}")
        for key, sec in self.data["sections"].items():
            n_fail = sum(not c["passed"] for c in sec["checks"])
            out(
                f"  {key:14s} {sec['status']:8s} {sec['seconds'] or 0:6.1f} s   "
                f"checks {len(sec['checks']) - n_fail}/{len(sec['checks'])} passed"
            )
        for name in failed:
            out(f"  FAILED: {name}")
        out(
            f"  total {self.data['summary']['seconds']:.1f} s; JSON: {', '.join(map(str, self.json_paths)) or '(none)'}"
        )
        return 0 if not failed and not unfinished and not missing else EXIT_FAILED_CHECKS

    def write(self) -> None:
        for path in self.json_paths:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                tmp.write_text(json.dumps(self.data, indent=1, default=_plain) + "\n")
                os.replace(tmp, path)
            except OSError as exc:
                log(f"could not write {path}: {exc}")


def _plain(value: Any) -> Any:
    """JSON-able: numpy scalars and arrays, paths, tuples."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _fmt(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if v == 0 or not math.isfinite(v):
            return f"{v:g}"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 1:
            return f"{v:.2f}"
        return f"{v:.3g}"
    if isinstance(value, (list, tuple)) and len(value) > 6:
        return f"[{len(value)} values]"
    return str(value)


@contextlib.contextmanager
def time_cap(seconds: float) -> Iterator[None]:
    """Raise SectionTimeout in the main thread after ``seconds`` (POSIX; a no-op elsewhere)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise SectionTimeout(f"ran past its {seconds:.0f} s cap")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Deadline:
    """Soft time left in a section, so optional steps are skipped rather than cut."""

    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


# --------------------------------------------------------------------------- small tools


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(
    fn: Callable[[], object],
    device: torch.device,
    min_time: float,
    warmup: int = 1,
    min_reps: int = 3,
    max_reps: int = 50,
) -> float:
    """Median wall time of ``fn`` (device synchronised): at least ``min_reps`` runs and ``min_time`` s."""
    for _ in range(warmup):
        fn()
    sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < min_time):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of (..., D) arrays (1 where both rows are zero)."""
    a = a.reshape(-1, a.shape[-1]).astype(np.float64)
    b = b.reshape(-1, b.shape[-1]).astype(np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dot = (a * b).sum(1)
    both_zero = (na == 0) & (nb == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(both_zero, 1.0, dot / np.maximum(na * nb, 1e-300))
    return cos


def compare_features(rep: Report, name: str, got: np.ndarray, ref: np.ndarray, device: str) -> None:
    cos = cosines(got, ref)
    err = np.abs(got.astype(np.float64) - ref)
    rel = float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-30))
    rep.figure(f"{name}: features compared", int(cos.size), device=device)
    rep.figure(f"{name}: max abs error", float(err.max()), device=device, note=f"|ref| mean {np.abs(ref).mean():.3g}")
    rep.figure(f"{name}: relative L2 error", rel, device=device)
    rep.check(
        f"{name}: cosine per feature", float(cos.min()) >= COSINE_MIN, float(cos.min()), f">= {COSINE_MIN}", device
    )


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return float("nan")


class Sampler:
    """GPU utilisation (NVML through torch, else nvidia-smi) and host RSS, sampled in a thread."""

    def __init__(self, device: torch.device, period: float = 0.1) -> None:
        self.device, self.period = device, period
        self.gpu: list[float] = []
        self.rss: list[float] = []
        self.source = "none"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._smi: subprocess.Popen | None = None

    def __enter__(self) -> Sampler:
        if self.device.type == "cuda":
            try:
                torch.cuda.utilization(self.device)
                self.source = "nvml"
            except Exception:  # noqa: BLE001 - no pynvml: fall back to nvidia-smi
                self._start_smi()
        self._thread.start()
        return self

    def _start_smi(self) -> None:
        exe = shutil.which("nvidia-smi")
        if exe is None:
            return
        index = str(self.device.index or 0)
        cmd = [exe, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "100", "-i", index]
        try:
            self._smi = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.source = "nvidia-smi"
            threading.Thread(target=self._read_smi, daemon=True).start()
        except OSError:
            self._smi = None

    def _read_smi(self) -> None:
        assert self._smi is not None and self._smi.stdout is not None
        for line in self._smi.stdout:
            try:
                self.gpu.append(float(line.strip()))
            except ValueError:
                continue

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.rss.append(rss_mb())
            if self.source == "nvml":
                try:
                    self.gpu.append(float(torch.cuda.utilization(self.device)))
                except Exception:  # noqa: BLE001 - stop sampling, keep what was read
                    self.source = "nvml (failed mid-way)"

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        if self._smi is not None:
            self._smi.terminate()
            try:
                self._smi.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._smi.kill()

    def summary(self) -> dict[str, Any]:
        gpu = np.asarray(self.gpu, float)
        return {
            "gpu_util_mean": float(gpu.mean()) if gpu.size else None,
            "gpu_util_max": float(gpu.max()) if gpu.size else None,
            "gpu_util_samples": int(gpu.size),
            "gpu_util_source": self.source,
            "host_rss_peak_mb": float(max(self.rss)) if self.rss else rss_mb(),
        }
