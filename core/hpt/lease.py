"""One study, one runner: a lease on the study's parent run, beside the journal's local lock.

The local lock (`Journal.lock`) keeps two processes of one machine apart at once and is freed by the
operating system when its holder dies. The lease, a parent-run tag naming the host, the process and an
expiry that the runner keeps pushing forward, does the same across machines: a resume refuses a study
whose lease is live, and takes over one whose runner was killed (its lease expired, or it was a process
of this machine that no longer exists); `--force` takes over at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from hpt.errors import HptError

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

LEASE_TAG = "hpt.lease"
TTL_ENV = "HPT_LEASE_TTL"


def lease_ttl() -> float:
    """Seconds a lease lasts without being renewed (`HPT_LEASE_TTL`, default 60); renewed every third of it."""
    return float(os.environ.get(TTL_ENV, "60"))


class LeaseHeld(HptError):
    """The study is being run by another live process."""


@dataclass
class Lease:
    host: str
    pid: int
    expires: float

    @classmethod
    def mine(cls) -> Lease:
        return cls(socket.gethostname(), os.getpid(), time.time() + lease_ttl())

    @classmethod
    def parse(cls, text: str | None) -> Lease | None:
        try:
            data = json.loads(text or "")
            return cls(str(data["host"]), int(data["pid"]), float(data["expires"]))
        except (ValueError, KeyError, TypeError):
            return None

    def text(self) -> str:
        return json.dumps({"host": self.host, "pid": self.pid, "expires": round(self.expires, 1)})

    def is_mine(self) -> bool:
        return self.host == socket.gethostname() and self.pid == os.getpid()

    def is_live(self) -> bool:
        """Unexpired, and, for a process of this machine, still running."""
        if self.expires <= time.time():
            return False
        if self.host == socket.gethostname():
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
        return True

    def describe(self) -> str:
        until = datetime.fromtimestamp(self.expires).strftime("%H:%M:%S")
        return f"process {self.pid} on {self.host} (lease until {until})"


def claim(client: MlflowClient, run_id: str, force: bool = False) -> None:
    """Take the study's lease: LeaseHeld with one line if another live process holds it (unless `force`)."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise HptError(f"cannot load study {run_id!r} from {client.tracking_uri}: {str(exc).splitlines()[0]}") from None
    holder = Lease.parse(run.data.tags.get(LEASE_TAG))
    if holder is not None and not force and not holder.is_mine() and holder.is_live():
        raise LeaseHeld(
            f"study {run_id} is being run by {holder.describe()}; wait for it to finish, "
            "or pass --force to take it over"
        )
    renew(client, run_id)


def renew(client: MlflowClient, run_id: str) -> None:
    client.set_tag(run_id, LEASE_TAG, Lease.mine().text())


def release(client: MlflowClient, run_id: str) -> None:
    """Give the lease up (the study stopped); a store that is away lets it expire instead."""
    with contextlib.suppress(Exception):  # an unreachable store: the lease expires by itself
        client.delete_tag(run_id, LEASE_TAG)


__all__ = ["LEASE_TAG", "Lease", "LeaseHeld", "claim", "release", "renew"]
