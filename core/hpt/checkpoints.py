"""Where a trial keeps its checkpoint: a local directory, or a URL of storage every worker can reach.

A backend always sees a local directory (`TrialContext.checkpoint_dir`). A path is used in place: a
local disk, or a filesystem mounted at the same path on every machine (NFS, a cluster's scratch). A URL
(`file:///shared/ckpt`, `s3://bucket/ckpt`, `gs://...`, anything fsspec opens) is staged: the trial's
checkpoint is copied into a fresh local directory before the evaluation and copied back after it, so a
promoted trial continues on whichever worker gets it, and a worker lost mid-trial leaves the checkpoint
of the trial's last finished budget for the worker that runs it again. fsspec is imported for URLs only.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hpt.errors import HptError

Location = Path | str
"""A checkpoint's place: a local path, or a URL (a string holding `://`)."""


class CheckpointError(HptError):
    """A checkpoint URL that cannot be read or written."""


def is_url(location: Location | None) -> bool:
    """Whether `location` is a URL (staged through a local copy) rather than a path (used in place)."""
    return isinstance(location, str) and "://" in location


def trial_location(root: Location, number: int) -> Location:
    """The checkpoint place of trial `number` under `root`: a URL under a URL root, a path under a path."""
    name = f"trial-{number:04d}"
    return f"{root.rstrip('/')}/{name}" if is_url(root) else Path(root) / name


def check_root(root: str) -> None:
    """Fail with one line when a URL root cannot be used (unknown protocol, its package missing, no access);
    a study calls it once, before its first trial."""
    if not is_url(root):
        return
    fs, path = _filesystem(root)
    try:
        fs.makedirs(path, exist_ok=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint root {root!r} cannot be written: {type(exc).__name__}: {exc}") from None


@contextlib.contextmanager
def working_dir(location: Location | None) -> Iterator[Path | None]:
    """The local directory a backend works in for one evaluation of a trial whose checkpoint is at
    `location`: the path itself, or, for a URL, a temporary copy that is written back when the block ends
    without an exception (and removed)."""
    if not is_url(location):
        yield None if location is None else Path(location)
        return
    local = _fetch(location)
    try:
        yield local
        _store(local, location)
    finally:
        shutil.rmtree(local.parent, ignore_errors=True)


@contextlib.contextmanager
def fetched(location: Location | None) -> Iterator[Path | None]:
    """A local directory holding the checkpoint at `location` for reading (the best trial's, for its final
    report and saved model), or None when there is none."""
    if not is_url(location):
        path = None if location is None else Path(location)
        yield path if path is not None and path.is_dir() else None
        return
    local = _fetch(location)
    try:
        yield local if any(local.iterdir()) else None
    finally:
        shutil.rmtree(local.parent, ignore_errors=True)


def exists(location: Location | None) -> bool:
    """Whether a checkpoint root (or a trial's checkpoint) is there."""
    if not is_url(location):
        return location is not None and Path(location).is_dir()
    fs, path = _filesystem(location)
    return bool(fs.isdir(path))


def remove(location: Location) -> None:
    """Delete a checkpoint root and all it holds (a study's own temporary root, when it finishes)."""
    if not is_url(location):
        shutil.rmtree(location, ignore_errors=True)
        return
    fs, path = _filesystem(location)
    with contextlib.suppress(FileNotFoundError):
        fs.rm(path, recursive=True)


def _fetch(url: str) -> Path:
    """A fresh local directory holding what is stored at `url` (empty when nothing is yet)."""
    fs, path = _filesystem(url)
    local = Path(tempfile.mkdtemp(prefix="hpt-checkpoint-")) / "checkpoint"
    local.mkdir()
    try:
        if fs.isdir(path):
            fs.get(path.rstrip("/") + "/", str(local) + "/", recursive=True)
    except Exception as exc:
        shutil.rmtree(local.parent, ignore_errors=True)
        raise CheckpointError(f"cannot read the checkpoint at {url!r}: {type(exc).__name__}: {exc}") from None
    return local


def _store(local: Path, url: str) -> None:
    if not any(local.iterdir()):
        return
    fs, path = _filesystem(url)
    try:
        fs.put(str(local) + "/", path.rstrip("/"), recursive=True)
    except Exception as exc:
        raise CheckpointError(f"cannot store the checkpoint at {url!r}: {type(exc).__name__}: {exc}") from None


def _filesystem(url: str) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError:
        raise CheckpointError(f"checkpoint URL {url!r} needs fsspec: pip install fsspec") from None
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise CheckpointError(f"checkpoint URL {url!r}: {exc}") from None


__all__ = [
    "CheckpointError",
    "Location",
    "check_root",
    "exists",
    "fetched",
    "is_url",
    "remove",
    "trial_location",
    "working_dir",
]
