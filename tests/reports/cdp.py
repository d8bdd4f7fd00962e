"""A minimal Chrome DevTools Protocol client for the browser tests (headless Debian chromium).

Starts chromium with a fresh profile and a random debugging port, opens pages over the
websocket, records console errors, uncaught exceptions, failed loads and JavaScript dialogs
(an ``alert()`` would mean injected script ran), evaluates expressions and takes screenshots.

Its base headless flags come from the package's PDF export (``surveillance.reports.pdf``),
and conftest finds chromium with the package's ``find_chromium``, so the tests drive the browser
the package prints with and skip exactly when the package could not find one. The package only
runs chromium's one-shot ``--print-to-pdf``; it has no DevTools client (pages, events, evaluate,
screenshots), so that part stays here, test-only.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from websockets.sync.client import connect

from surveillance.reports.pdf import CHROMIUM_FLAGS as PDF_FLAGS

# The package's headless flags (minus its print-only one) plus what an interactive session needs.
CHROMIUM_FLAGS = (
    *(flag for flag in PDF_FLAGS if flag != "--no-pdf-header-footer"),
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
)


@dataclass
class PageReport:
    url: str
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    failed_loads: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return self.console_errors + self.exceptions + self.failed_loads + self.dialogs


class Browser:
    """One headless chromium process; :meth:`open` returns a :class:`Page`."""

    def __init__(self, executable: str, width: int = 1200, height: int = 900):
        self.profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
        self.proc = subprocess.Popen(
            [
                executable,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.is_file() or not port_file.read_text().strip():
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with code {self.proc.returncode}")
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError("chromium did not open a debugging port within 30 s")
            time.sleep(0.05)
        self.port = int(port_file.read_text().split()[0])

    def open(self) -> Page:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT"
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            target = json.loads(resp.read())
        return Page(target["webSocketDebuggerUrl"])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Page:
    """One tab: send commands, collect events."""

    def __init__(self, ws_url: str):
        self.ws = connect(ws_url, max_size=None, open_timeout=10)
        self._id = 0
        self.report = PageReport(url="about:blank")
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")

    def _handle_event(self, msg: dict) -> None:
        method, params = msg.get("method"), msg.get("params", {})
        r = self.report
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            r.console_errors.append(
                " ".join(
                    str(a.get("value", a.get("description", ""))) for a in params.get("args", [])
                )
            )
        elif method == "Runtime.exceptionThrown":
            d = params.get("exceptionDetails", {})
            r.exceptions.append(
                d.get("exception", {}).get("description") or d.get("text", "exception")
            )
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            e = params["entry"]
            r.console_errors.append(f"{e.get('source')}: {e.get('text')} {e.get('url', '')}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            r.failed_loads.append(f"{params.get('errorText')} ({params.get('type')})")
        elif method == "Page.javascriptDialogOpening":
            r.dialogs.append(f"{params.get('type')}: {params.get('message')}")
            self._send_nowait("Page.handleJavaScriptDialog", {"accept": True})

    def _send_nowait(self, method: str, params: dict | None = None) -> int:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params or {}}))
        return self._id

    def send(self, method: str, params: dict | None = None, timeout: float = 30) -> dict:
        msg_id = self._send_nowait(method, params)
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._handle_event(msg)

    def wait_for(self, event: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            self._handle_event(msg)
            if msg.get("method") == event:
                return msg.get("params", {})

    def goto(self, url: str) -> PageReport:
        self.report = PageReport(url=url)
        self.send("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")
        # Let queued console/log events arrive.
        self.evaluate("new Promise(r => setTimeout(r, 50))", await_promise=True)
        return self.report

    def evaluate(self, expression: str, await_promise: bool = False):
        res = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": await_promise},
        )
        if "exceptionDetails" in res:
            raise RuntimeError(f"evaluate failed: {res['exceptionDetails']}")
        return res.get("result", {}).get("value")

    def screenshot(self, path: Path) -> Path:
        res = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(res["data"]))
        return path

    def close(self) -> None:
        self.ws.close()
