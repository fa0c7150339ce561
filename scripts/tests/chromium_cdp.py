"""A minimal Chrome DevTools Protocol client over --remote-debugging-pipe (stdlib only): opens a
page in headless Chromium and reports what a person's browser would have done with it: console
errors and uncaught exceptions, every network request, the result of a script evaluated in the
page, and a full-page screenshot.

The pipe protocol: Chromium reads JSON commands from fd 3 and writes JSON replies and events to
fd 4, each message terminated by a NUL byte.
"""
import base64
import fcntl
import json
import os
import signal
import select
import shutil
import subprocess
import time


class CdpError(RuntimeError):
    pass


def chromium_binary():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    def __init__(self, user_data_dir, timeout=20.0):
        self.timeout = timeout
        cmd_r, self._cmd_w = os.pipe()
        self._resp_r, resp_w = os.pipe()
        # Lift the child's ends above 9, so that moving them to 3 and 4 never closes one of them.
        cmd_r, resp_w = self._above_nine(cmd_r), self._above_nine(resp_w)
        # bash (dash takes single-digit fds only) moves the pipe ends to fds 3 and 4, where Chromium expects them, then execs it.
        move_fds = f'exec "$0" "$@" 3<&{cmd_r} {cmd_r}<&- 4>&{resp_w} {resp_w}>&-'
        self.proc = subprocess.Popen(
            ["/bin/bash", "-c", move_fds, chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
             "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
             "--disable-dev-shm-usage", f"--user-data-dir={user_data_dir}", "--window-size=1280,1000", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(cmd_r, resp_w),
            start_new_session=True)  # its own process group: close() ends its helper processes too
        os.close(cmd_r)
        os.close(resp_w)
        self._buf = b""
        self._next_id = 0
        self.events = []

    @staticmethod
    def _above_nine(fd):
        high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
        os.close(fd)
        return high

    def close(self):
        """Ends Chromium and every helper process it started (zygote, renderer, utility: its process
        group), and waits until they are all gone, so that nothing still writes into the profile
        directory when the caller removes it."""
        try:
            os.close(self._cmd_w)
        except OSError:
            pass
        group = self.proc.pid  # start_new_session: the group's id is the leader's pid
        self._signal_group(group, signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._signal_group(group, signal.SIGKILL)
            self.proc.wait()
        deadline = time.monotonic() + 5
        while self._signal_group(group, 0):  # helpers still running
            if time.monotonic() > deadline:
                self._signal_group(group, signal.SIGKILL)
                deadline = time.monotonic() + 5
            time.sleep(0.02)
        os.close(self._resp_r)

    @staticmethod
    def _signal_group(group, sig):
        """Sends sig to the group; False when no process of it is left."""
        try:
            os.killpg(group, sig)
            return True
        except ProcessLookupError:
            return False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read_message(self, deadline):
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CdpError("timed out waiting for Chromium")
            ready, _, _ = select.select([self._resp_r], [], [], left)
            if ready:
                chunk = os.read(self._resp_r, 1 << 20)
                if not chunk:
                    raise CdpError(f"Chromium closed the pipe (exit code {self.proc.poll()})")
                self._buf += chunk
        msg, _, self._buf = self._buf.partition(b"\0")
        return json.loads(msg)

    def send(self, method, params=None, session=None):
        self._next_id += 1
        mid = self._next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == mid:
                if "error" in reply:
                    raise CdpError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method, session=None):
        deadline = time.monotonic() + self.timeout
        for e in self.events:
            if e.get("method") == method and e.get("sessionId") == session:
                return e
        while True:
            e = self._read_message(deadline)
            self.events.append(e)
            if e.get("method") == method and e.get("sessionId") == session:
                return e

    def open_page(self, url, settle_seconds=0.3):
        """Navigates a new page (its own target: nothing carries over from an earlier page) to url
        with the console, log and network domains on; returns the session id once the load event
        fired and a short settle time passed."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.send(f"{domain}.enable", session=session)
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_for("Page.loadEventFired", session=session)
        end = time.monotonic() + settle_seconds
        while time.monotonic() < end:
            self.send("Runtime.evaluate", {"expression": "1"}, session=session)  # drains pending events
            time.sleep(0.05)
        return session

    def evaluate(self, session, expression):
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session)
        if "exceptionDetails" in r:
            raise CdpError(f"evaluate: {r['exceptionDetails']}")
        return r["result"].get("value")

    def screenshot(self, session, path):
        r = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=session)
        data = base64.b64decode(r["data"])
        with open(path, "wb") as f:
            f.write(data)
        return len(data)

    def console_errors(self, session):
        """Console errors, uncaught exceptions and browser log errors (CSP violations land here)."""
        out = []
        for e in self.events:
            if e.get("sessionId") != session:
                continue
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                out.append("exception: " + str(p.get("exceptionDetails", {}).get("text")))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append("log: " + str(p["entry"].get("text")))
        return out

    def requests(self, session):
        return [e["params"]["request"]["url"] for e in self.events
                if e.get("sessionId") == session and e.get("method") == "Network.requestWillBeSent"]
