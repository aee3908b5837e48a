"""A small Chrome DevTools Protocol client over ``--remote-debugging-pipe`` (standard library only).

Chromium reads JSON commands from its fd 3 and writes replies and events to its fd 4, each
message ended by a NUL byte. One browser process serves many pages (``new_page``); each
page is a target attached in "flat" mode, so its commands carry a ``sessionId``.

Used by the browser tests and, as ``python tests/cdp.py PAGE.html OUT.png``, to take a
screenshot of a report for the README.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_browser() -> str | None:
    """The system Chromium (``$CHROMIUM`` first), or None."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


class CDPError(RuntimeError):
    pass


class Browser:
    """A headless Chromium driven through a pipe. Use as a context manager (it is killed on exit)."""

    def __init__(self, executable: str, width: int = 1200, height: int = 900) -> None:
        self.profile = tempfile.mkdtemp(prefix="vd-chromium-")
        cmd_r, cmd_w = os.pipe()  # we write commands, the browser reads fd 3
        res_r, res_w = os.pipe()  # the browser writes fd 4, we read
        # move the child's ends above 10 so dup2 onto 3 and 4 cannot clobber one of them
        child_in = fcntl.fcntl(cmd_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(res_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(cmd_r)
        os.close(res_w)

        def wire() -> None:  # in the child, before exec: dup2 clears close-on-exec on 3 and 4
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        args = [
            executable,
            "--headless=new",
            "--remote-debugging-pipe",
            f"--user-data-dir={self.profile}",
            f"--window-size={width},{height}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--mute-audio",
            "--autoplay-policy=no-user-gesture-required",
            "--hide-scrollbars",
            "about:blank",
        ]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire,
            close_fds=False,
        )
        os.close(child_in)
        os.close(child_out)
        self._out = os.fdopen(cmd_w, "wb", buffering=0)
        self._in = os.fdopen(res_r, "rb", buffering=0)
        self._next_id = 0
        self._lock = threading.Condition()
        self._replies: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buffer = b""
        while True:
            chunk = self._in.read(65536)
            if not chunk:
                break
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                with self._lock:
                    if "id" in message:
                        self._replies[message["id"]] = message
                    else:
                        self.events.append(message)
                    self._lock.notify_all()
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None, timeout: float = 30
    ) -> dict:
        with self._lock:
            self._next_id += 1
            msg_id = self._next_id
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._out.write(json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._lock:
            while msg_id not in self._replies:
                if self._closed:
                    raise CDPError(f"{method}: the browser closed the pipe")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CDPError(f"{method}: no reply in {timeout} s")
                self._lock.wait(left)
            reply = self._replies.pop(msg_id)
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def new_page(self) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        return Page(self, target, session)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except CDPError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._out.close()
        self._in.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Page:
    """One tab: navigate, evaluate JavaScript, click, screenshot; its events are kept."""

    def __init__(self, browser: Browser, target: str, session: str) -> None:
        self.browser, self.target, self.session = browser, target, session
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30) -> dict:
        return self.browser.send(method, params, self.session, timeout)

    def events(self, method: str | None = None) -> list[dict[str, Any]]:
        with self.browser._lock:
            mine = [e for e in self.browser.events if e.get("sessionId") == self.session]
        return [e for e in mine if method is None or e["method"] == method]

    def goto(self, url: str, timeout: float = 30) -> None:
        self.send("Page.navigate", {"url": url})
        self.wait_for(
            "document.readyState === 'complete' && document.body && document.body.dataset.ready === '1'", timeout
        )

    def evaluate(self, expression: str, await_promise: bool = False) -> Any:
        reply = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": await_promise}
        )
        if "exceptionDetails" in reply:
            raise CDPError(f"{expression!r}: {reply['exceptionDetails'].get('exception', reply['exceptionDetails'])}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 15) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(expression)
            except CDPError:
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise CDPError(f"timed out after {timeout} s waiting for {expression}")
            time.sleep(0.05)

    def click(self, x: float, y: float) -> None:
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def key(self, key: str, code: str | None = None) -> None:
        text = key if len(key) == 1 else ""
        for kind in ("keyDown", "keyUp"):
            params = {"type": kind, "key": key, "code": code or key}
            if text and kind == "keyDown":
                params["text"] = text
            self.send("Input.dispatchKeyEvent", params)

    def screenshot(
        self, path: str | os.PathLike[str], fmt: str = "png", quality: int = 80, full_page: bool = False
    ) -> Path:
        params: dict[str, Any] = {"format": fmt, "captureBeyondViewport": full_page}
        if fmt == "jpeg":
            params["quality"] = quality
        data = self.send("Page.captureScreenshot", params)["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)

    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors (CSP, failed loads)."""
        out = []
        for e in self.events("Runtime.consoleAPICalled"):
            if e["params"]["type"] in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description"))) for a in e["params"]["args"]))
        for e in self.events("Runtime.exceptionThrown"):
            details = e["params"]["exceptionDetails"]
            out.append(str(details.get("exception", {}).get("description") or details.get("text")))
        for e in self.events("Log.entryAdded"):
            if e["params"]["entry"]["level"] == "error":
                out.append(f"{e['params']['entry'].get('url', '')}: {e['params']['entry']['text']}")
        return out

    def requested_urls(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events("Network.requestWillBeSent")]

    def close(self) -> None:
        self.browser.send("Target.closeTarget", {"targetId": self.target})


def main(argv: list[str]) -> int:
    """``python tests/cdp.py PAGE.html OUT.(png|jpg) [--size 1100x820] [--seek SECONDS]``: a screenshot."""
    import argparse

    parser = argparse.ArgumentParser(description="Screenshot an HTML report with headless Chromium.")
    parser.add_argument("page", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", default="1100x820", help="viewport WIDTHxHEIGHT in px")
    parser.add_argument("--seek", type=float, default=None, help="move the video (and playhead) here first")
    args = parser.parse_args(argv)
    width, height = (int(x) for x in args.size.split("x"))
    executable = find_browser()
    if executable is None:
        print("no chromium found (install Debian's chromium package)", file=sys.stderr)
        return 1
    with Browser(executable, width, height) as browser:
        page = browser.new_page()
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        page.send("Emulation.setDeviceMetricsOverride", metrics)
        page.goto(args.page.resolve().as_uri())
        video = "document.getElementById('video')"
        if page.evaluate(f"{video} !== null"):
            page.wait_for(f"{video}.readyState >= 2 || {video}.error")
            if args.seek is not None:
                page.evaluate(f"{video}.currentTime = {args.seek}")
                page.wait_for(f"!{video}.seeking && {video}.readyState >= 3")
            time.sleep(1.0)  # let the player's own loading indicator fade
        fmt = "jpeg" if args.out.suffix.lower() in (".jpg", ".jpeg") else "png"
        page.screenshot(args.out, fmt=fmt)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
