"""The command line of a trial: `{name}` placeholders filled with the trial's values, each shell-quoted.

    python train.py --lr {learning_rate} --layers {n_hidden} --epochs {budget}

A placeholder is a parameter of the space or one of `PLACEHOLDERS`; `{name:.3g}` formats the value
first; `{{` and `}}` are literal braces (so `${HOME}` is written `${{HOME}}`). The same values reach
the script as environment variables (`environment`), for scripts that prefer them.
"""

from __future__ import annotations

import json
import re
import shlex
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hpt.errors import HptError

PLACEHOLDERS = {
    "budget": "the trial's budget (epochs) from a multi-fidelity strategy",
    "checkpoint_dir": "a directory of the trial's own, kept across its budgets: save there, resume from there",
    "trial": "the trial's number",
    "seed": "the trial's seed",
    "args": "every parameter of the trial as --name=value",
}
"""The placeholders that are not parameters."""


class CommandTemplate:
    """A command with placeholders, checked when it is given and filled once per trial."""

    def __init__(self, text: str) -> None:
        self.text = text
        try:
            self._pieces = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise HptError(f"--command {text!r}: {exc}; write a literal brace as {{{{ or }}}}") from None
        for _, field, _, _ in self._pieces:
            if field is not None and not field.isidentifier():
                raise HptError(
                    f"--command {text!r}: placeholder {{{field}}} is not a name; use a parameter of the space or "
                    f"one of {', '.join('{' + p + '}' for p in PLACEHOLDERS)} (a literal brace is {{{{ or }}}})"
                )

    @property
    def fields(self) -> set[str]:
        """The names of its placeholders."""
        return {field for _, field, _, _ in self._pieces if field is not None}

    def render(self, values: Mapping[str, Any]) -> str:
        """The command with each placeholder replaced by its shell-quoted value (`args`: already a list of
        quoted words); a name without a value is one clear line."""
        formatter = string.Formatter()
        out = []
        for literal, field, spec, conversion in self._pieces:
            out.append(literal)
            if field is None:
                continue
            if field not in values or values[field] is None:
                raise HptError(_missing(field, values))
            if field == "args":
                out.append(values[field])
                continue
            value = formatter.convert_field(values[field], conversion) if conversion else values[field]
            out.append(shlex.quote(formatter.format_field(value, spec or "")))
        return "".join(out)


def _missing(field: str, values: Mapping[str, Any]) -> str:
    if field == "budget":
        return (
            "the command uses {budget} but this strategy gives trials no budget: use a multi-fidelity strategy "
            "(hyperband, asha, successive-halving) or write the number into the command"
        )
    if field == "checkpoint_dir":
        return "the command uses {checkpoint_dir} but this trial has no checkpoint directory"
    known = sorted(name for name, value in values.items() if value is not None)
    return (
        f"the command uses {{{field}}}, which is no parameter of this trial (a misspelling, or a conditional "
        f"parameter that is inactive: pass those with {{args}} or read $HPT_PARAMS_FILE); it has "
        + ", ".join("{" + name + "}" for name in known)
    )


def as_text(value: Any) -> str:
    """How a value is written on a command line and in an environment variable."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def as_args(params: Mapping[str, Any]) -> str:
    """`{args}`: every parameter as a shell-quoted `--name=value` word."""
    return " ".join(shlex.quote(f"--{name}={as_text(value)}") for name, value in params.items())


def environment(params: Mapping[str, Any], values: Mapping[str, Any], params_file: Path) -> dict[str, str]:
    """The trial as environment variables: HPT_PARAM_<NAME> per parameter, HPT_PARAMS_FILE (a JSON file of
    them all, written here), HPT_TRIAL, HPT_SEED, HPT_BUDGET and HPT_CHECKPOINT_DIR where the trial has them."""
    params_file.write_text(json.dumps(dict(params), default=str))
    env = {"HPT_PARAM_" + re.sub(r"\W", "_", name).upper(): as_text(value) for name, value in params.items()}
    env["HPT_PARAMS_FILE"] = str(params_file)
    for name in ("trial", "seed", "budget", "checkpoint_dir"):
        if values.get(name) is not None:
            env[f"HPT_{name.upper()}"] = as_text(values[name])
    return env
