"""A trial's script as a process: started in a session (and so a process group) of its own, read line
by line as it prints, and stopped as a whole (SIGTERM, then SIGKILL after a grace period).

Nothing the script starts outlives its trial: stopping or closing signals the whole group, and a
watchdog (a tiny `sh` reading a pipe only this process writes to) stops the group when the process
that started the script dies without closing it, as a worker killed for a trial timeout does.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

SHELL = "/bin/sh"
_WATCHDOG = 'read _ || { kill -TERM "-$1"; sleep "$2"; kill -KILL "-$1"; } 2>/dev/null'
"""Reads one line: a line means the script was dealt with; end of file means its starter died."""


class Script:
    """One run of a shell command; its stdout and stderr are kept in `log_dir` (stdout.txt, stderr.txt)."""

    def __init__(self, command: str, env: Mapping[str, str], cwd: str | None, log_dir: Path, grace: float) -> None:
        self.grace = grace
        self.stdout_path = log_dir / "stdout.txt"
        self.stderr_path = log_dir / "stderr.txt"
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [SHELL, "-c", command],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        self.pgid = self.process.pid
        self._watchdog = subprocess.Popen(
            [SHELL, "-c", _WATCHDOG, "hpt-watchdog", str(self.pgid), f"{grace:g}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name=f"hpt-script-{self.pgid}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with open(self.stdout_path, "wb") as kept:
            for raw in self.process.stdout:
                kept.write(raw)
                self._lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
        self._lines.put(None)

    def lines(self, tick: float) -> Iterator[str | None]:
        """Each line of stdout as it is printed, and None every `tick` seconds without one; ends when the
        script has exited (anything it left running is stopped then, so its output ends too)."""
        while True:
            try:
                line = self._lines.get(timeout=tick)
            except queue.Empty:
                if self.process.poll() is not None:
                    self._signal(signal.SIGKILL)  # the script is done; what it left behind holds stdout open
                yield None
                continue
            if line is None:
                return
            yield line

    def wait(self) -> int:
        """The script's exit status (negative: the signal that killed it)."""
        return self.process.wait()

    def stop(self) -> None:
        """SIGTERM to the whole group, SIGKILL to what is left after the grace period."""
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=self.grace)
        self._signal(signal.SIGKILL)
        self.process.wait()

    def close(self) -> None:
        """Stop whatever still runs, stand the watchdog down and close the pipes; safe to call twice."""
        self.stop()
        if self._watchdog.poll() is None:
            with contextlib.suppress(OSError):
                self._watchdog.communicate(b"done\n", timeout=5)
        self._reader.join(timeout=5)
        with contextlib.suppress(OSError):
            self.process.stdout.close()

    def stderr_tail(self, lines: int = 15, limit: int = 2000) -> str:
        """The last lines of stderr, at most `limit` characters."""
        with open(self.stderr_path, "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - 8 * limit))
            text = handle.read().decode("utf-8", "replace")
        tail = "\n".join(text.rstrip().splitlines()[-lines:])
        return tail[-limit:]

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signum)
