"""Open a page in headless Chromium and report what loaded, through the DevTools protocol over a pipe.

Chromium's ``--remote-debugging-pipe`` reads NUL-terminated JSON commands on fd 3 and writes
replies and events on fd 4, so no port, websocket library or browser download is needed.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-pipe")

IMAGES_JS = "JSON.stringify(Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt]))"
# the page's width against the viewport's; the elements (tag#id.class) that stick out past the viewport, and
# the boxes that scroll sideways inside the page (a table too wide for its overflow-x:auto wrapper)
WIDTH_JS = """(() => {
  const vw = document.documentElement.clientWidth;
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className ? '.' + el.className : '');
  const all = Array.from(document.querySelectorAll('body *'));
  return JSON.stringify({scroll: document.documentElement.scrollWidth, client: vw,
    wide: all.filter(el => el.getBoundingClientRect().right > vw + 0.5).slice(0, 10).map(name),
    scrollers: all.filter(el => el.scrollWidth > el.clientWidth + 1
                                && ['auto', 'scroll'].includes(getComputedStyle(el).overflowX))
                  .map(el => [name(el), el.scrollWidth, el.clientWidth])});
})()"""
VIEWPORT = (1280, 900)  # a laptop's browser window, CSS pixels


def find_chromium() -> str | None:
    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser")) if p), None)


@dataclass
class PageResult:
    images: list[tuple[bool, int, str]]
    errors: list[str] = field(default_factory=list)
    title: str = ""
    scroll_width: int = 0  # document.documentElement.scrollWidth at the viewport's width
    client_width: int = 0  # document.documentElement.clientWidth: the viewport less its scroll bar
    too_wide: list[str] = field(default_factory=list)  # elements whose right edge is past the viewport
    scrollers: list[tuple[str, int, int]] = field(default_factory=list)  # (element, scrollWidth, clientWidth)


class _Pipe:
    """The two pipe ends of one DevTools session; `call` sends a command and waits for its reply."""

    def __init__(self, write_fd: int, read_fd: int, deadline: float) -> None:
        self.w, self.r, self.deadline = write_fd, read_fd, deadline
        self.buf = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> int:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        return self.next_id

    def read(self) -> dict[str, Any]:
        while b"\0" not in self.buf:
            if time.monotonic() > self.deadline:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self.r, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        want = self.send(method, params, session)
        while True:
            msg = self.read()
            if msg.get("id") == want:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method: str) -> dict[str, Any]:
        for i, ev in enumerate(self.events):
            if ev.get("method") == method:
                return self.events.pop(i)
        while True:
            msg = self.read()
            if msg.get("method") == method:
                return msg
            self.events.append(msg)


def load_page(chromium: str, page: Path, timeout_s: float = 60.0, viewport: tuple[int, int] = VIEWPORT,
              screenshot: Path | None = None) -> PageResult:
    """Load `page` (a file) in headless Chromium at `viewport` (CSS pixels); return its images' load state,
    every logged error and its width against the viewport's; write a full-page PNG to `screenshot` if given."""
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    # the child's ends move to fds >= 10, so that placing them on 3 and 4 cannot overwrite one another
    child_in = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
    child_out = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
    os.close(to_child_r)
    os.close(from_child_w)

    def child_fds() -> None:
        os.dup2(child_in, 3)
        os.dup2(child_out, 4)

    with tempfile.TemporaryDirectory(prefix="lepton-chromium-") as profile:
        proc = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                pass_fds=(3, 4), preexec_fn=child_fds)
        os.close(child_in)
        os.close(child_out)
        pipe = _Pipe(to_child_w, from_child_r, time.monotonic() + timeout_s)
        try:
            return _inspect(pipe, page, viewport, screenshot)
        finally:
            try:
                pipe.send("Browser.close")
            except OSError:
                pass
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            os.close(to_child_w)
            os.close(from_child_r)


def _inspect(pipe: _Pipe, page: Path, viewport: tuple[int, int], screenshot: Path | None) -> PageResult:
    target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        pipe.call(f"{domain}.enable", session=session)
    pipe.call("Emulation.setDeviceMetricsOverride", {"width": viewport[0], "height": viewport[1],
                                                     "deviceScaleFactor": 1, "mobile": False}, session=session)
    pipe.call("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
    pipe.wait_event("Page.loadEventFired")

    def evaluate(expression: str) -> Any:
        return pipe.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                         session=session)["result"]["value"]

    images = json.loads(evaluate(IMAGES_JS))
    title = evaluate("document.title")
    width = json.loads(evaluate(WIDTH_JS))
    if screenshot is not None:
        shot = pipe.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=session)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
    return PageResult([tuple(i) for i in images], _errors(pipe.events), title, width["scroll"], width["client"],
                      width["wide"], [tuple(x) for x in width["scrollers"]])


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for ev in events:
        method, params = ev.get("method"), ev.get("params", {})
        if method == "Runtime.exceptionThrown":
            out.append(f"exception: {params['exceptionDetails'].get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append(f"console.{params['type']}: {params.get('args')}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            out.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        elif method == "Network.loadingFailed":
            out.append(f"failed to load: {params.get('errorText')} (request {params.get('requestId')})")
    return out
