"""Command-line building blocks shared by `hpt run`, `hpt compare` and plugins' own commands.

`PluginOptionsCommand` is a click command whose flags include the options of the plugins chosen on
the same command line (`--backend mlp` adds `--dataset`, `--folds`, ...), read from the registry, so
the core never spells a plugin's option. `study_options` are the options every command that runs
studies shares. Only click and yaml are imported here.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from functools import wraps
from typing import Any

import click
import yaml

from hpt.errors import HptError
from hpt.options import Option
from hpt.plugins import PluginEntry, registry

_SECTIONS = "hpt.plugin_sections"
"""Where a context keeps the plugin options of its command line."""
PLUGIN_FLAGS = {"backend": "--backend", "strategy": "--strategy", "executor": "--executor"}
"""The flag that names the plugin of each kind on a command line."""


def pairs(values: Sequence[str], flag: str) -> dict[str, str]:
    """`("a=1", "b=x")` -> `{"a": "1", "b": "x"}`; one clear line for an item without `=`."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise HptError(f"{flag} {item!r}: expected NAME=VALUE")
        out[key.strip()] = value.strip()
    return out


def typed(values: Mapping[str, str]) -> dict[str, Any]:
    """Option values as YAML scalars: `3` -> 3, `true` -> True, `ei` -> 'ei', `[a, b]` -> a list."""
    out = {}
    for key, value in values.items():
        try:
            out[key] = yaml.safe_load(value) if value else value
        except yaml.YAMLError:
            out[key] = value
    return out


def guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected errors into one line on stderr and exit status 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HptError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper


class PluginOptionsCommand(click.Command):
    """A command that also takes the options of the plugins its command line names, as flags of their own.

    `plugin_kinds` maps each kind the command configures this way to the flag that names its plugin
    (`{"backend": "--backend"}`); that flag may name several, comma-separated (`--strategies a,b`), and
    without it the flag's default or the registered default applies. The values reach the callback as
    `plugin_options[kind]`, holding only the options given (so each plugin's own defaults apply); an
    option that several of the named plugins declare is one flag whose value goes to each of them."""

    def __init__(self, *args: Any, plugin_kinds: Mapping[str, str] = PLUGIN_FLAGS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plugin_kinds = dict(plugin_kinds)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_SECTIONS] = self._plugin_sections(args)
        return super().parse_args(ctx, args)

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        """The command's own parameters and, for this command line, its plugins' (the command itself keeps
        only its own, so one invocation's plugins never leak into the next)."""
        plugin_params = [p for _, _, params in self._sections(ctx) for p in params]
        own = super().get_params(ctx)
        helps = [p for p in own if set(p.opts) & set(ctx.help_option_names)]
        return [p for p in own if p not in helps] + plugin_params + helps  # --help stays last

    def invoke(self, ctx: click.Context) -> Any:
        chosen: dict[str, dict[str, Any]] = {kind: {} for kind in self.plugin_kinds}
        for kind, _, params in self._sections(ctx):
            for param in params:
                value = ctx.params.pop(param.name, None)
                if value is not None:
                    chosen[kind][param.option_name] = value
        ctx.params["plugin_options"] = chosen
        return super().invoke(ctx)

    def _sections(self, ctx: click.Context) -> list[tuple[str, str, list[click.Parameter]]]:
        if _SECTIONS not in ctx.meta:  # help asked for without parsing (docs): the defaults' options
            ctx.meta[_SECTIONS] = self._plugin_sections([])
        return ctx.meta[_SECTIONS]

    def _plugin_sections(self, args: Sequence[str]) -> list[tuple[str, str, list[click.Parameter]]]:
        """(kind, title, click options) for each plugin the command line names."""
        sections = []
        taken = {opt for p in self.params for opt in p.opts}
        for kind, flag in self.plugin_kinds.items():
            declared: set[str] = set()
            for entry in self._named(kind, flag, args):
                params = []
                for option in _declared(entry):
                    if option.name in declared:
                        continue
                    declared.add(option.name)
                    name = option.flag if option.flag not in taken else f"--{entry.name}-{option.flag[2:]}"
                    taken.add(name)
                    dest = re.sub(r"\W", "_", f"{kind}_{entry.name}_{option.name}")
                    param = _click_option(option, name, dest)
                    param.option_name = option.name  # type: ignore[attr-defined]
                    params.append(param)
                sections.append((kind, f"{kind} {entry.name!r}", params))
        return sections

    def _named(self, kind: str, flag: str, args: Sequence[str]) -> list[PluginEntry]:
        """The registered entries the command line names for `kind` (unknown names are reported later,
        when the study is built, with what is available)."""
        value = _flag_value(args, flag)
        if value is None:
            param = next((p for p in self.params if flag in p.opts), None)
            value = param.default if param is not None and isinstance(param.default, str) else None
        if value is None:
            entry = registry().default(kind)
            return [entry] if entry is not None else []
        names = [n.strip() for n in value.split(",") if n.strip()]
        return [registry().entries[kind][n] for n in names if n in registry().entries[kind]]

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections = self._sections(ctx)
        plugin_params = {id(p) for _, _, params in sections for p in params}
        core = [p.get_help_record(ctx) for p in self.get_params(ctx) if id(p) not in plugin_params]
        with formatter.section("Options"):
            formatter.write_dl([r for r in core if r])
        for _, title, params in sections:
            records = [r for r in (p.get_help_record(ctx) for p in params) if r]
            if records:
                with formatter.section(f"Options of {title}"):
                    formatter.write_dl(records)


def _declared(entry: PluginEntry) -> list[Option]:
    """The entry's options; none when it cannot be read (a missing dependency or module is reported, in
    one line, when the study builds the plugin)."""
    if entry.missing():
        return []
    try:
        return entry.options()
    except Exception:
        return []


def _flag_value(args: Sequence[str], flag: str) -> str | None:
    """The value given to `flag` in `args` (`--flag X` or `--flag=X`), the last one winning."""
    value = None
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(flag + "="):
            value = arg.partition("=")[2]
    return value


def _click_option(option: Option, flag: str, dest: str) -> click.Option:
    """A click flag for a plugin option: its type from the hint, its default shown but not applied."""
    shown = option.default_text or (repr(option.default) if isinstance(option.default, str) else option.default)
    text = option.help or option.name.replace("_", " ")
    if shown is not None and not option.is_flag:
        text += f"  [default: {shown}]"
    if option.is_flag:
        return click.Option([flag, dest], is_flag=True, default=None, help=text)
    if option.scalar_type is bool:
        return click.Option([f"{flag}/--no-{flag[2:]}", dest], default=None, help=text)
    choices = option.choices
    if choices:
        return click.Option([flag, dest], type=click.Choice(choices), default=None, help=text)
    scalar = option.scalar_type
    if scalar in (int, float, str):
        return click.Option([flag, dest], type=scalar, default=None, help=text)
    return click.Option([flag, dest], type=_YamlValue(), default=None, metavar="VALUE", help=text)


class _YamlValue(click.ParamType):
    """A value whose hint is no plain scalar (`str | Sequence[str]`, a mapping): read as YAML."""

    name = "value"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return typed({"v": value})["v"] if isinstance(value, str) else value


def study_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options of every command that runs studies: the space, the budget, parallelism, the store."""
    decorators = [
        click.option("--backend", help="What to tune (see `hpt plugins`; default: the registered default)."),
        click.option(
            "-B", "--backend-option", "backend_opts", multiple=True, metavar="KEY=VALUE", help="A backend option."
        ),
        click.option("--space", "space_file", type=click.Path(), help="Search space file (YAML or TOML)."),
        click.option(
            "--set",
            "sets",
            multiple=True,
            metavar="NAME=VALUE",
            help="Pin a parameter, or narrow it: lr=1e-4..1e-2, act=relu,tanh.",
        ),
        click.option("--timeout", type=float, help="Stop starting trials of a study after this many seconds."),
        click.option("--workers", type=click.IntRange(min=1), help="Trials run in parallel (default 1)."),
        click.option(
            "--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI (default: ./mlflow.db)."
        ),
        click.option("--quiet", is_flag=True, help="Print nothing but errors."),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON summary on stdout."),
    ]
    for decorator in reversed(decorators):
        fn = decorator(fn)
    return fn


def backend_options(opts: Mapping[str, Any]) -> dict[str, Any]:
    """The backend's options from its own flags and `-B KEY=VALUE`."""
    return {**opts["plugin_options"].get("backend", {}), **typed(pairs(opts["backend_opts"], "--backend-option"))}


__all__ = ["PLUGIN_FLAGS", "PluginOptionsCommand", "backend_options", "guard", "pairs", "study_options", "typed"]
