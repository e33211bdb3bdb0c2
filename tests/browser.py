"""A headless Chromium driven over the DevTools protocol, for tests of poisonlab's HTML reports.

Debian's ``chromium`` package is the browser (``.ci/run`` installs it when missing);
the protocol is spoken over one WebSocket with the ``websockets`` package, so no
browser driver or Node.js is needed. :func:`open_page` loads a file and returns what
a reader would see: console errors, each figure's rendered size and pixels, and a
screenshot of the whole page.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Flags for a browser in a sandboxed machine with no network: no GPU, no first-run
#: dialogs, no background connections (refused here, and each one logged as an error).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1200,900",
)


def chromium() -> str | None:
    """The browser's path, or None where none is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class Rendered:
    """What the browser showed: console errors, figures (size and pixels), a screenshot."""

    errors: list[str] = field(default_factory=list)
    figures: list[dict[str, Any]] = field(default_factory=list)
    screenshot: np.ndarray | None = None  # H×W×3 uint8


class _Session:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, session: str | None = None, timeout: float = 30, **params: Any) -> Any:
        message_id = next(self.ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, event: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            self.events.append(json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))))


def _png(data: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


_FIGURES_JS = """
JSON.stringify(Array.from(document.querySelectorAll('figure svg')).map(svg => {
  const r = svg.getBoundingClientRect();
  return {x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height,
          shapes: svg.querySelectorAll('path, image, use, text, rect, line').length};
}))
"""


def open_page(path: Path) -> Rendered:
    """Load ``path`` in headless Chromium and report what it rendered."""
    from websockets.sync.client import connect

    browser = chromium()
    if browser is None:
        raise RuntimeError("no chromium on this machine")
    with tempfile.TemporaryDirectory() as profile:
        drain: threading.Thread | None = None
        process = subprocess.Popen(
            [browser, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": "disabled:"},
        )
        try:
            assert process.stderr is not None
            url = None
            for line in process.stderr:  # Chromium names its DevTools socket on stderr
                found = re.search(r"DevTools listening on (ws://\S+)", line)
                if found:
                    url = found.group(1)
                    break
            if url is None:
                raise RuntimeError("chromium started without a DevTools socket")
            # keep reading its log, or a full pipe would stall the browser
            drain = threading.Thread(target=process.stderr.read, daemon=True)
            drain.start()
            with connect(url, max_size=2**28, open_timeout=30) as ws:
                return _render(_Session(ws), path)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if drain is not None:
                drain.join(timeout=10)  # the browser exited: its log ends
            if process.stderr is not None:
                process.stderr.close()


def _render(cdp: _Session, path: Path) -> Rendered:
    target = cdp.call("Target.createTarget", url="about:blank")["targetId"]
    session = cdp.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Page", "Runtime", "Log"):
        cdp.call(f"{domain}.enable", session)
    cdp.events.clear()
    cdp.call("Page.navigate", session, url=path.resolve().as_uri())
    cdp.wait_for("Page.loadEventFired")
    rendered = Rendered()
    for event in cdp.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            rendered.errors.append(json.dumps(params.get("args")))
        elif method == "Runtime.exceptionThrown":
            rendered.errors.append(json.dumps(params.get("exceptionDetails")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            rendered.errors.append(params["entry"].get("text", ""))
    found = cdp.call("Runtime.evaluate", session, expression=_FIGURES_JS, returnByValue=True)
    for box in json.loads(found["result"]["value"]):
        pixels = None
        if box["width"] > 0 and box["height"] > 0:
            clip = {k: box[k] for k in ("x", "y", "width", "height")} | {"scale": 1}
            shot = cdp.call("Page.captureScreenshot", session, clip=clip, captureBeyondViewport=True)
            pixels = _png(shot["data"])
        rendered.figures.append(box | {"pixels": pixels})
    shot = cdp.call("Page.captureScreenshot", session, captureBeyondViewport=True, timeout=60)
    rendered.screenshot = _png(shot["data"])
    return rendered
