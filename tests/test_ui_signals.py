"""`hpt ui` stops the MLflow server it started when it is told to stop with SIGTERM (a plain `kill`, a
service manager), as it does on Ctrl-C: no server is left behind holding the port."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # end to end: real CLI processes, servers or clusters

STARTUP_LIMIT = 120.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def test_sigterm_stops_the_server(tmp_path: Path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    ui = subprocess.Popen(
        [sys.executable, "-c", "from hpt_reports.commands import ui; ui()", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + STARTUP_LIMIT
        while not _answers(base):
            assert ui.poll() is None, f"hpt ui exited with status {ui.returncode}"
            if time.monotonic() > deadline:
                pytest.fail(f"no MLflow server answered on {base} within {STARTUP_LIMIT:.0f} s")
            time.sleep(0.3)
        ui.send_signal(signal.SIGTERM)  # to hpt ui only: the server runs in a process group of its own
        assert ui.wait(timeout=30) == 0
        deadline = time.monotonic() + 15
        while _answers(base) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert not _answers(base), "the MLflow server outlived hpt ui"
    finally:
        if ui.poll() is None:
            ui.kill()
            ui.wait()
