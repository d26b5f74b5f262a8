"""Opening an MLflow store: one client, checked with one read, its errors turned into one line.

MLflow's own HTTP client retries a request for minutes before it gives up; hpt retries writes itself
(`hpt.store_sync`), so a request here fails after a few seconds and the study is never held up by it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from hpt.errors import HptError
from hpt.journal import hpt_home

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql", "databricks")
"""Tracking URI schemes MLflow stores answer to (a plain path is a `file` store)."""
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # "View run ... at" lines would break --json
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
"""Set unless the user set them: a request gives up in seconds, and MLflow prints nothing on stdout."""


def make_client(tracking_uri: str | None = None) -> MlflowClient:
    """An MlflowClient on `tracking_uri`, MLFLOW_TRACKING_URI or MLflow's default local store, checked
    with one read so that a store that cannot be opened is one clear line (HptError), not a traceback.

    A local SQLite store is created (or migrated) under a file lock beside it: studies started at the
    same moment on a store that does not exist yet would otherwise race through MLflow's migrations.
    """
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    import mlflow
    from mlflow.tracking import MlflowClient

    for name in ("mlflow", "alembic"):  # store creation chatter is not the user's business
        logging.getLogger(name).setLevel(logging.WARNING)
    # a failing database write is logged by MLflow with its traceback, then raised: hpt reports it in a line
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    uri = tracking_uri or mlflow.get_tracking_uri()
    check_scheme(uri)
    with store_errors(uri), _creation_lock(uri):
        _from_template(uri)
        client = MlflowClient(uri)
        client.search_experiments(max_results=1)
    return client


def _from_template(uri: str) -> None:
    """Start a new SQLite store as a copy of an empty one: MLflow builds a store by running its schema
    migrations one by one, seconds of work that are the same for every store of one MLflow version. The
    first store of a version is built as usual and kept, empty, under `$HPT_HOME/stores/`."""
    import mlflow

    path = _sqlite_path(uri)
    if path is None or path.exists():
        return
    template = hpt_home() / "stores" / f"mlflow-{mlflow.__version__}-empty.db"
    if not template.is_file():
        from mlflow.tracking import MlflowClient

        template.parent.mkdir(parents=True, exist_ok=True)
        building = template.with_name(f"{template.name}.{os.getpid()}.tmp")
        MlflowClient(f"sqlite:///{building}").search_experiments(max_results=1)
        os.replace(building, template)
    shutil.copyfile(template, path)


def check_scheme(uri: str) -> None:
    """One line for a tracking URI no MLflow store answers to (`ftp://x`), naming the ones that work."""
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", uri)
    if match is None or len(match.group(1)) == 1:  # a path (or a Windows drive letter): a file store
        return
    scheme = match.group(1).lower().split("+")[0]
    if scheme not in SCHEMES:
        raise HptError(
            f"unsupported tracking URI {uri!r}: use sqlite:///PATH.db, a folder path, http(s)://HOST:PORT of an "
            "MLflow server, or a database URL (postgresql://, mysql://, mssql://)"
        )


@contextmanager
def store_errors(uri: str) -> Iterator[None]:
    """Turn what MLflow, SQLAlchemy or the file system raise about a store into one HptError line."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except (MlflowException, SQLAlchemyError, OSError) as exc:
        raise HptError(store_error_line(uri, exc)) from None


def store_error_line(uri: str, exc: BaseException) -> str:
    """What went wrong with the store at `uri`, in one line."""
    text = str(getattr(exc, "orig", None) or exc)
    refused = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if uri.startswith(("http://", "https://")) and (refused or "Max retries" in text or "timed out" in text):
        reason = refused.group(1).strip() if refused else "no answer"
        return f"cannot reach the MLflow server {uri} ({reason}); start it or check --tracking-uri"
    lines = text.strip().splitlines()
    reason = lines[0][:300] if lines else type(exc).__name__
    full = re.search(r"database or disk is full|disk I/O error|attempt to write a readonly database", text)
    if full:
        return (
            f"cannot write the MLflow store {uri}: its disk is full or read-only ({full.group(0)}); "
            "free space or pass another --tracking-uri"
        )
    return f"cannot use the MLflow store {uri}: {reason}; check --tracking-uri"


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a local SQLite store URI (None for a server, an in-memory store, ...)."""
    if not uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    return Path(database) if database and database != ":memory:" else None


@contextmanager
def _creation_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock on `<db>.lock` while MLflow opens (creates, migrates) a SQLite store."""
    path = _sqlite_path(uri)
    if path is None:
        yield
        return
    if not path.parent.is_dir():
        raise HptError(
            f"cannot use the MLflow store {uri}: directory {path.parent} does not exist; "
            "create it or pass another --tracking-uri"
        )
    try:
        lock = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115 - held for the with block
    except OSError as exc:
        if not path.exists():
            raise HptError(
                f"cannot create the MLflow store {uri}: directory {path.parent} is not writable ({exc.strerror}); "
                "pass a --tracking-uri in a writable directory"
            ) from None
        yield  # an existing store in a directory we may not write to: read it as it is
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


__all__ = ["check_scheme", "make_client", "store_error_line", "store_errors"]
