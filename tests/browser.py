"""A page in a real headless Chromium, driven over the DevTools protocol on a pipe.

Chromium started with ``--remote-debugging-pipe`` reads protocol commands on its fd 3 and
writes replies and events on its fd 4, each a JSON message ending in a NUL byte: no websocket,
no port, nothing but the standard library. ``render`` opens one file at a given window width and
returns what a person would see: the console's errors, the rendered size of every chart, the
page's width, and a PNG of the whole page.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

# Debian's package installs /usr/bin/chromium; other systems name it otherwise
BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--remote-debugging-pipe",
]

# Measured in the page once it has loaded: every chart (inline SVG or image) as laid out
MEASURE = """JSON.stringify({
  viewport: window.innerWidth,
  scrollWidth: document.documentElement.scrollWidth,
  height: document.documentElement.scrollHeight,
  sections: [...document.querySelectorAll("section[id]")].map(s => s.id),
  charts: [...document.querySelectorAll("svg, img")].map(el => {
    const box = el.getBoundingClientRect();
    // an SVG's text is sized in its viewBox's units: on screen it scales with the SVG
    const view = el.viewBox && el.viewBox.baseVal && el.viewBox.baseVal.width;
    const scale = view ? box.width / view : 1;
    const texts = [...el.querySelectorAll("text")].map(
      t => parseFloat(getComputedStyle(t).fontSize) * scale);
    return {id: el.id || el.tagName, width: box.width, height: box.height,
            smallestFontPx: texts.length ? Math.min(...texts) : null};
  }),
})"""


def find_chromium() -> str | None:
    """The path of a Chromium binary on PATH, or None."""
    for name in BINARIES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class Rendered:
    """What a page looked like in the browser."""

    errors: list[str]  # console errors, uncaught exceptions, failed loads
    viewport: int
    scroll_width: int  # wider than viewport: the page scrolls sideways
    height: int
    sections: list[str]
    charts: list[dict[str, Any]]  # id, width, height, smallestFontPx (CSS pixels)
    png: bytes = field(repr=False)


class _Pipe:
    """The protocol's two pipes: commands out, replies and events in."""

    def __init__(self, read_fd: int, write_fd: int, timeout: float) -> None:
        self.read_fd, self.write_fd, self.timeout = read_fd, write_fd, timeout
        self.buffer = b""
        self.events: list[dict[str, Any]] = []
        self.next_id = 0

    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.read_fd], [], [], max(left, 0))
            if not ready:
                raise TimeoutError(f"Chromium did not answer within {self.timeout} s")
            chunk = os.read(self.read_fd, 1 << 20)
            if not chunk:
                raise ConnectionError("Chromium closed its DevTools pipe")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its reply (events meanwhile are kept in order)."""
        self.next_id += 1
        command: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            command["sessionId"] = session
        os.write(self.write_fd, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._message(deadline)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    def wait_for(self, method: str) -> dict[str, Any]:
        """The first event named method (already received, or the next to come)."""
        deadline = time.monotonic() + self.timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method:
                    return event
            seen = len(self.events)
            self.events.append(self._message(deadline))


def _errors(events: list[dict[str, Any]]) -> list[str]:
    errors = []
    for event in events:
        params = event.get("params", {})
        if event.get("method") == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(f"{params['entry'].get('url', '')}: {params['entry']['text']}")
        elif event.get("method") == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            errors.append(details.get("exception", {}).get("description") or details["text"])
        elif event.get("method") == "Runtime.consoleAPICalled" and params["type"] == "error":
            errors.append(" ".join(str(a.get("value", "")) for a in params["args"]))
    return errors


def _first_target(pipe: _Pipe, log: IO[bytes]) -> str:
    """The id of a new page; if Chromium died on the way, its own last words."""
    try:
        target: str = pipe.send("Target.createTarget", url="about:blank")["targetId"]
    except (ConnectionError, BrokenPipeError, TimeoutError) as e:
        log.seek(0)
        said = log.read().decode(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"Chromium did not start ({e}): {' | '.join(said)}") from e
    return target


def render(binary: str, page: Path, width: int = 1366, height: int = 900) -> Rendered:
    """Open page in headless Chromium at width × height CSS pixels and report what rendered."""
    with (
        tempfile.TemporaryDirectory(prefix="autotune-chromium-") as profile,
        tempfile.TemporaryFile() as log,
    ):
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        # a small Python puts the two pipes on the fds Chromium expects, then becomes Chromium
        argv = [
            sys.executable,
            "-c",
            f"import os, sys; os.dup2({to_browser_r}, 3); os.dup2({from_browser_w}, 4); "
            "os.execv(sys.argv[1], sys.argv[1:])",
            binary,
            *FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
        ]
        proc = subprocess.Popen(
            argv,
            pass_fds=(to_browser_r, from_browser_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        pipe = _Pipe(from_browser_r, to_browser_w, timeout=60.0)
        try:
            target = _first_target(pipe, log)
            session = pipe.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                pipe.send(f"{domain}.enable", session)
            pipe.send(
                "Emulation.setDeviceMetricsOverride",
                session,
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            pipe.events.clear()
            pipe.send("Page.navigate", session, url=page.resolve().as_uri())
            pipe.wait_for("Page.loadEventFired")
            measured = pipe.send("Runtime.evaluate", session, expression=MEASURE)
            found = json.loads(measured["result"]["value"])
            shot = pipe.send(
                "Page.captureScreenshot",
                session,
                format="png",
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": width, "height": found["height"], "scale": 1},
            )
            with contextlib.suppress(ConnectionError):  # it may close before it replies
                pipe.send("Browser.close")
        finally:
            os.close(from_browser_r)
            os.close(to_browser_w)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return Rendered(
        errors=_errors(pipe.events),
        viewport=found["viewport"],
        scroll_width=found["scrollWidth"],
        height=found["height"],
        sections=found["sections"],
        charts=found["charts"],
        png=base64.b64decode(shot["data"]),
    )
