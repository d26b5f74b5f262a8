"""The local journal of a tracked study: every write meant for its MLflow runs, on local disk first.

A study's outcome must never depend on the tracking store being up. The tracker appends each write (a
batch of metrics, params and tags for one run, a run to create, a status to set, an artifact) to the
journal and flushes it to disk before anything is sent; a background thread (`hpt.store_sync`) then
brings the store up to date, retrying while the store is away. The journal also holds a snapshot of
each trial as it starts and finishes, so a study whose store missed writes resumes from it.

Layout, one folder per study under `$HPT_HOME/journal` (default `~/.hpt/journal`):

    <parent run id>/
        writes.jsonl    one JSON record a line, appended and fsync'd; a torn last line is ignored
        synced          how many records of writes.jsonl the store is known to hold
        lock            held (fcntl) by the process running the study
        files/          copies of artifacts (model, plots) until the store has them

The folder is deleted when its study ends with everything in the store; otherwise it stays until
`hpt sync` or a resume has sent the rest.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hpt.errors import HptError

HOME_ENV = "HPT_HOME"
WRITES, SYNCED, LOCK, FILES = "writes.jsonl", "synced", "lock", "files"


class JournalError(HptError):
    """The journal cannot be written (a full disk, a read-only folder): the study must stop."""


class JournalLocked(HptError):
    """Another process on this machine holds the study's journal."""


def hpt_home() -> Path:
    """hpt's own folder on this machine: `$HPT_HOME`, by default `~/.hpt`."""
    home = os.environ.get(HOME_ENV)
    return Path(home) if home else Path.home() / ".hpt"


def journal_root() -> Path:
    """Where journals live: `$HPT_HOME/journal`."""
    return hpt_home() / "journal"


class Journal:
    """The append-only journal of one study (its parent run id names it)."""

    def __init__(self, run_id: str, root: Path | None = None) -> None:
        self.run_id = run_id
        self.directory = (root or journal_root()) / run_id
        self.records: list[dict[str, Any]] = []
        self._fd: int | None = None
        self._lock: Any = None

    # Opening
    @classmethod
    def open(cls, run_id: str, root: Path | None = None) -> Journal:
        """The study's journal, created if it is new, with the records it already holds."""
        journal = cls(run_id, root)
        try:
            journal.directory.mkdir(parents=True, exist_ok=True)
            journal.records = list(journal._read())
            journal._fd = os.open(journal.directory / WRITES, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise JournalError(f"cannot write the journal in {journal.directory}: {exc.strerror}") from None
        return journal

    @classmethod
    def existing(cls, run_id: str, root: Path | None = None) -> Journal | None:
        """The study's journal if this machine has one (read only: nothing is created)."""
        journal = cls(run_id, root)
        if not (journal.directory / WRITES).is_file():
            return None
        journal.records = list(journal._read())
        return journal

    @classmethod
    def all(cls, root: Path | None = None) -> list[Journal]:
        """Every journal on this machine, oldest first."""
        base = root or journal_root()
        if not base.is_dir():
            return []
        folders = sorted((p for p in base.iterdir() if (p / WRITES).is_file()), key=lambda p: p.stat().st_mtime)
        return [j for j in (cls.existing(p.name, base) for p in folders) if j is not None]

    def _read(self) -> Iterator[dict[str, Any]]:
        path = self.directory / WRITES
        if not path.is_file():
            return
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.endswith("\n"):
                    return  # torn by a crash mid-write: that record never reached the store either
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    return

    # Writing
    def append(self, record: dict[str, Any]) -> int:
        """Write one record durably (one append, fsync'd) and return its index. A record is written whole
        or not at all as far as a signal goes: a Ctrl-C lands between bytecodes, not inside `os.write`."""
        if self._fd is None:
            raise JournalError(f"the journal in {self.directory} is closed")
        line = (json.dumps(record, default=str, allow_nan=True) + "\n").encode()
        try:
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, "short write")
            os.fsync(self._fd)
        except OSError as exc:
            reason = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT) else exc.strerror
            raise JournalError(f"cannot write the journal in {self.directory}: {reason}") from None
        self.records.append(record)
        return len(self.records) - 1

    def keep_files(self, source: Path, name: str) -> Path:
        """Move a file or folder (a model, plots) into the journal until the store has it; its new path."""
        target = self.directory / FILES / name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(target, ignore_errors=True)
            shutil.move(str(source), target)
        except OSError as exc:
            raise JournalError(f"cannot keep {name} in the journal {self.directory}: {exc.strerror}") from None
        return target

    # How far the store has caught up
    def synced(self) -> int:
        """How many records the store is known to hold (they are applied in order)."""
        try:
            return int((self.directory / SYNCED).read_text() or 0)
        except (OSError, ValueError):
            return 0

    def mark_synced(self, count: int) -> None:
        """Record that the first `count` records are in the store (atomically: a crash keeps the old mark)."""
        tmp = self.directory / (SYNCED + ".tmp")
        try:
            tmp.write_text(str(count))
            os.replace(tmp, self.directory / SYNCED)
        except OSError:
            pass  # the mark only saves work: records sent again are written again, harmlessly

    def pending(self) -> int:
        """Records the store does not hold yet."""
        return len(self.records) - self.synced()

    # Trials, as the journal last saw them
    def trials(self) -> dict[int, dict[str, Any]]:
        """The newest snapshot of each trial (what resume merges with what the store holds)."""
        out: dict[int, dict[str, Any]] = {}
        for record in self.records:
            if record.get("op") == "trial":
                out[int(record["trial"]["number"])] = record["trial"]
        return out

    def header(self) -> dict[str, Any] | None:
        """The study record written first (tracking URI, experiment, config, space)."""
        return next((r for r in self.records if r.get("op") == "study"), None)

    # One process at a time
    def lock(self) -> None:
        """Take the study's lock on this machine; JournalLocked if another process holds it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        handle = open(self.directory / LOCK, "a+")  # noqa: SIM115 - held until unlock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise JournalLocked(f"study {self.run_id} is being run by {holder} on this machine") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        self._lock = handle

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def remove(self) -> None:
        """Delete the journal (the store holds everything in it)."""
        self.close()
        shutil.rmtree(self.directory, ignore_errors=True)
        self.unlock()


__all__ = ["Journal", "JournalError", "JournalLocked", "hpt_home", "journal_root"]
