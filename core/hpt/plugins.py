"""The plugin manager: finds plugins through the `hpt` entry-point group and keeps the registry of
strategies, backends and executors they register.

A plugin that fails to import, uses a misspelled hook or lacks a dependency is recorded with a
one-line reason; it never breaks the other plugins. Set HPT_DISABLE_PLUGIN_AUTOLOAD=1 to load
only the plugins that ship with hpt itself.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import Any

import pluggy

from hpt import hookspecs
from hpt.errors import PluginError
from hpt.options import Option, accepted_keywords, options_of

ENTRY_POINT_GROUP = "hpt"
AUTOLOAD_ENV = "HPT_DISABLE_PLUGIN_AUTOLOAD"
KINDS = ("strategy", "backend", "executor")
_HOOK_OF_KIND = {
    "strategy": "hpt_register_strategies",
    "backend": "hpt_register_backends",
    "executor": "hpt_register_executors",
}


@dataclass
class PluginEntry:
    """One registered strategy, backend or executor."""

    name: str
    kind: str
    target: str | type
    distribution: str
    version: str
    requires: dict[str, str] = field(default_factory=dict)
    extra: str | None = None
    summary: str = ""
    worker_imports: tuple[str, ...] = ()
    """For a backend: modules its trials need beyond its own module (heavy imports its code only makes
    lazily); worker pools import them up front, while the driver builds the backend."""
    default: bool = False
    """Whether `hpt run` uses this one when the user names none of its kind."""

    def options(self) -> list[Option]:
        """The options the plugin's class declares (read from its source, without importing it)."""
        return options_of(self.target, self.kind)

    @property
    def module(self) -> str:
        """The module that defines the plugin, known without importing it."""
        return self.target.partition(":")[0] if isinstance(self.target, str) else self.target.__module__

    def missing(self) -> list[str]:
        """Pip requirement names of dependencies that are not installed (checked without importing)."""
        return [pip for module, pip in self.requires.items() if importlib.util.find_spec(module) is None]

    def install_hint(self) -> str:
        """The pip command that installs what is missing, each requirement quoted for the shell
        (`pip install optuna>=3.6` unquoted would redirect to a file named `=3.6`)."""
        if self.extra and self.distribution == "hpt":
            return f'pip install "hpt[{self.extra}]"'
        return "pip install " + " ".join(f'"{req}"' for req in self.missing() or self.requires.values())

    def load(self) -> type:
        """Import the class behind this entry; a missing dependency becomes one actionable line."""
        missing = self.missing()
        if missing:
            raise PluginError(f"{self.kind} {self.name!r} needs {', '.join(missing)}: {self.install_hint()}")
        if not isinstance(self.target, str):
            return self.target
        module_name, _, attr = self.target.partition(":")
        try:
            return getattr(importlib.import_module(module_name), attr)
        except ImportError as exc:
            raise PluginError(f"{self.kind} {self.name!r} cannot be imported ({exc}): {self.install_hint()}") from None


@dataclass
class BrokenPlugin:
    """A plugin (or one of its registrations) that could not be loaded, and why."""

    name: str
    distribution: str
    version: str
    reason: str


class Registry:
    """Strategies, backends and executors by name, plus the pluggy manager for event hooks."""

    def __init__(self, autoload: bool = True) -> None:
        self.pm = pluggy.PluginManager("hpt")
        self.pm.add_hookspecs(hookspecs)
        self.entries: dict[str, dict[str, PluginEntry]] = {kind: {} for kind in KINDS}
        self.broken: list[BrokenPlugin] = []
        self._dists: dict[str, tuple[str, str]] = {}
        self._ready = False
        self._load_entry_points(autoload)
        for kind in KINDS:
            self._collect(kind)
        self._ready = True

    def _load_entry_points(self, autoload: bool) -> None:
        seen: set[tuple[str, str]] = set()
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = (ep.dist.name, ep.dist.version) if ep.dist else ("unknown", "")
            if (dist[0], ep.name) in seen or (not autoload and dist[0] != "hpt"):
                continue
            seen.add((dist[0], ep.name))
            try:
                module = ep.load()
            except Exception as exc:
                self.broken.append(BrokenPlugin(ep.name, *dist, f"failed to import {ep.value}: {exc}"))
                continue
            self.add_plugin(module, ep.name, dist)

    def add_plugin(self, plugin: Any, name: str, dist: tuple[str, str] = ("local", "")) -> None:
        """Register a plugin object (module or class instance); misspelled hooks reject it."""
        self.pm.register(plugin, name=name)
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(plugin)
            self.broken.append(BrokenPlugin(name, *dist, str(exc).splitlines()[0]))
            return
        self._dists[name] = dist
        if self._ready:  # registered after start-up (a notebook, a test): collect its entries now
            for kind in KINDS:
                self._collect(kind, only=name)

    def _collect(self, kind: str, only: str | None = None) -> None:
        hook = getattr(self.pm.hook, _HOOK_OF_KIND[kind])
        for impl in hook.get_hookimpls():
            if only is not None and impl.plugin_name != only:
                continue
            dist = self._dists.get(impl.plugin_name, ("local", ""))

            def register(
                name: str,
                target: str | type,
                *,
                requires: Mapping[str, str] | None = None,
                extra: str | None = None,
                summary: str = "",
                worker_imports: Sequence[str] = (),
                default: bool = False,
                _dist: tuple[str, str] = dist,
                _kind: str = kind,
            ) -> None:
                existing = self.entries[_kind].get(name)
                if existing is not None:
                    self.broken.append(
                        BrokenPlugin(name, *_dist, f"{_kind} {name!r} is already registered by {existing.distribution}")
                    )
                    return
                self.entries[_kind][name] = PluginEntry(
                    name, _kind, target, *_dist, dict(requires or {}), extra, summary, tuple(worker_imports), default
                )

            try:
                impl.function(register=register)
            except Exception as exc:
                self.broken.append(BrokenPlugin(impl.plugin_name, *dist, f"{_HOOK_OF_KIND[kind]} failed: {exc}"))

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def get(self, kind: str, name: str) -> PluginEntry:
        entry = self.entries[kind].get(name)
        if entry is None:
            available = ", ".join(self.names(kind)) or "none"
            raise PluginError(f"unknown {kind} {name!r}; available: {available}")
        return entry

    def entry_of(self, kind: str, cls: type) -> PluginEntry | None:
        """The entry registered for `cls` (matched by import path, without loading other plugins)."""
        path = f"{cls.__module__}:{cls.__qualname__}"
        for entry in self.entries[kind].values():
            if entry.target is cls or entry.target == path:
                return entry
        return None

    def default(self, kind: str) -> PluginEntry | None:
        """The entry registered with `default=True` for this kind (one shipped with hpt wins a tie)."""
        marked = [e for e in self.entries[kind].values() if e.default]
        marked.sort(key=lambda e: e.distribution != "hpt")
        return marked[0] if marked else None

    def default_name(self, kind: str) -> str:
        """The name of the registered default of this kind; one clear line when there is none or it cannot load."""
        entry = self.default(kind)
        if entry is None:
            raise PluginError(f"no default {kind} is installed; name one (see `hpt plugins`)")
        missing = entry.missing()
        if missing:
            raise PluginError(
                f"the default {kind} {entry.name!r} needs {', '.join(missing)}: {entry.install_hint()} "
                f"(or choose another {kind}, see `hpt plugins`)"
            )
        return entry.name

    def create(self, kind: str, name: str, *args: Any, **options: Any) -> Any:
        """Build a plugin instance; an option its class does not take is one clear line, checked against the
        signature before the call (a TypeError raised inside the constructor stays what it is)."""
        cls = self.get(kind, name).load()
        accepted = accepted_keywords(cls)
        unknown = [key for key in options if accepted is not None and key not in accepted]
        if unknown:
            declared = [o.name for o in options_of(cls, kind)]
            raise PluginError(
                f"{kind} {name!r} does not take option {unknown[0]!r}; its options: {', '.join(declared) or 'none'}"
            )
        return cls(*args, **options)


@cache
def registry() -> Registry:
    """The process-wide registry, built on first use."""
    return Registry(autoload=os.environ.get(AUTOLOAD_ENV, "") in ("", "0", "false", "no"))
