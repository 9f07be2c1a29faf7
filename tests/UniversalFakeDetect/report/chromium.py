"""Load a page in headless Chromium and read what happened, over the DevTools protocol.

The protocol runs over a pipe (``--remote-debugging-pipe``: commands in on fd 3, replies and
events out on fd 4, each a JSON message ended by a NUL byte), so no port and no websocket
library are needed. Waiting is on events, never on time: the page's load event (which waits for
every image), then a final round trip after which all earlier events have arrived. The
timeout only guards against a hung browser.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT_S = 180.0  # a guard against a hung browser, not a measurement


def chromium_binary() -> str | None:
    """The first Chromium-like browser on PATH (None when there is none)."""
    for name in BINARIES:
        found = shutil.which(name)
        if found:
            return found
    return None


class DevTools:
    """A headless browser driven over the DevTools pipe."""

    def __init__(self, binary: str, profile: Path) -> None:
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        args = [
            binary, "--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--disable-background-networking", "--disable-sync",
            "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank",
        ]  # fmt: skip
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root

        def wire_pipes() -> None:  # in the child: the pipes become fds 3 and 4
            os.dup2(commands_read, 3)
            os.dup2(replies_write, 4)

        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, pass_fds=(3, 4), preexec_fn=wire_pipes,
        )  # fmt: skip
        os.close(commands_read)
        os.close(replies_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self._deadline = time.monotonic() + TIMEOUT_S

    def _message(self) -> dict[str, Any]:
        """The next message from the browser."""
        while b"\0" not in self._buffer:
            left = self._deadline - time.monotonic()
            ready, _, _ = select.select([self._replies], [], [], max(left, 0))
            if not ready:
                raise TimeoutError(f"no answer from the browser within {TIMEOUT_S:.0f} s")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise RuntimeError(f"the browser closed the pipe (exit {self.process.poll()})")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send a command and return its result; events met on the way are kept."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._message()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str, **params: Any) -> dict[str, Any]:
        """Wait for the event ``method`` of ``session`` whose parameters include ``params``
        (events are kept in ``events``, the ones met earlier included)."""

        def wanted(event: dict[str, Any]) -> bool:
            if event.get("method") != method or event.get("sessionId") != session:
                return False
            return all(event.get("params", {}).get(k) == v for k, v in params.items())

        for event in self.events:
            if wanted(event):
                return event
        while True:
            event = self._message()
            self.events.append(event)
            if wanted(event):
                return event

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            self.call("Browser.close")
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        os.close(self._replies)


PROBLEM_EVENTS = ("Runtime.exceptionThrown", "Network.loadingFailed")


def problems(events: list[dict[str, Any]]) -> list[str]:
    """Console errors and warnings, log errors (failed loads, blocked requests, CSP), uncaught
    exceptions and failed network loads among ``events``."""
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning"):
            found.append(f"console {params['type']}: {params.get('args')}")
        elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
            entry = params["entry"]
            found.append(f"log {entry['level']} ({entry.get('source')}): {entry.get('text')}")
        elif method in PROBLEM_EVENTS:
            found.append(f"{method}: {params}")
    return found


def load_page(binary: str, page: Path, expression: str) -> tuple[Any, list[str]]:
    """Open ``page`` in a fresh headless browser, wait for its load event, evaluate
    ``expression`` (JavaScript run by the test, not by the page) and return its JSON value
    with the problems the page met while loading."""
    with tempfile.TemporaryDirectory(prefix="rfd-chromium-") as profile:
        browser = DevTools(binary, Path(profile))
        try:
            target = browser.call("Target.createTarget", url="about:blank")["targetId"]
            session = browser.call("Target.attachToTarget", targetId=target, flatten=True)[
                "sessionId"
            ]
            for domain in ("Runtime", "Log", "Page", "Network"):
                browser.call(f"{domain}.enable", session)
            browser.call("Page.setLifecycleEventsEnabled", session, enabled=True)
            loader = browser.call("Page.navigate", session, url=page.resolve().as_uri())
            if "errorText" in loader:
                raise RuntimeError(f"{page}: {loader['errorText']}")
            # the load event of this navigation: it fires once every image has loaded
            browser.wait_for(
                "Page.lifecycleEvent", session, name="load", loaderId=loader["loaderId"]
            )
            result = browser.call(
                "Runtime.evaluate", session, expression=expression, returnByValue=True
            )
            browser.call("Runtime.evaluate", session, expression="0")  # later events are in
        finally:
            browser.close()
    if "exceptionDetails" in result:
        raise RuntimeError(f"the test's expression failed: {result['exceptionDetails']}")
    return result["result"]["value"], problems(browser.events)
