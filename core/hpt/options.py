"""Plugin options: what a strategy, backend or executor can be configured with, read from its class.

A plugin declares its options the way any Python class does: keyword arguments of `__init__` with a
type hint and a default, each described in the class docstring's `Options:` section:

    class Quadratic(Backend):
        \"\"\"A parabola with its minimum at `centre`.

        Options:
            centre: where the minimum lies.
            scale: how steep the parabola is.
        \"\"\"

        def __init__(self, centre: float = 0.0, scale: float = 1.0) -> None: ...

The CLI turns them into flags (`--centre 2`), `hpt run --backend quadratic --help` lists them, and a
study records the ones given so that a resume rebuilds the plugin the same way. The source is read
with `ast`, not imported, so listing options never pulls in a plugin's heavy dependencies; a class whose
`__init__` is inherited from another module is imported instead.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import inspect
import re
from dataclasses import dataclass
from typing import Any

CONTEXT_ARGUMENTS = {
    "strategy": ("space", "directions", "seed"),
    "backend": (),
    "executor": ("workers", "preload"),
}
"""Constructor arguments the study itself supplies, per kind: not options."""

_SECTION = re.compile(r"^\s*Options\b[^:\n]*:\s*$")
_LINE = re.compile(r"^(\s*)([A-Za-z_]\w*(?:\s*/\s*[A-Za-z_]\w*)*)\s*:\s*(.*)$")


@dataclass(frozen=True)
class Option:
    """One option of a plugin: its name, the type named by its hint, its default and a line of help."""

    name: str
    annotation: str = ""
    default: Any = None
    help: str = ""
    default_text: str = ""
    """The default as written in the source, where it is a name rather than a literal (`MAX_EPOCHS`)."""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def is_flag(self) -> bool:
        """A boolean that defaults to False reads best as a bare `--name` switch."""
        return self.annotation.replace(" ", "") in ("bool", "bool|None") and not self.default

    @property
    def choices(self) -> tuple[str, ...] | None:
        """The values of a `Literal[...]` hint."""
        match = re.fullmatch(r"(?:typing\.)?Literal\[(.*)\](?:\s*\|\s*None)?", self.annotation.strip())
        if not match:
            return None
        try:
            values = ast.literal_eval(f"({match.group(1)},)")
        except (ValueError, SyntaxError):
            return None
        return tuple(str(v) for v in values)

    @property
    def scalar_type(self) -> type | None:
        """int, float, str or bool when the hint names exactly one of them (with or without `| None`)."""
        names = {"str" if part.strip() == "Path" else part.strip() for part in self.annotation.split("|")}
        names -= {"None", ""}
        if len(names) == 1:
            return {"int": int, "float": float, "str": str, "bool": bool}.get(names.pop())
        return None


def options_of(target: str | type, kind: str) -> list[Option]:
    """The options a plugin class declares; `target` is the class or its `"module:Class"` path."""
    if isinstance(target, str):
        found = _options_from_source(target, kind)
        if found is not None:
            return found
        module_name, _, attr = target.partition(":")
        target = getattr(importlib.import_module(module_name), attr)
    return _options_from_class(target, kind)


def help_lines(doc: str | None) -> dict[str, str]:
    """`name: text` lines of a docstring's `Options:` section (continuation lines indented deeper);
    `a / b: text` documents both."""
    out: dict[str, str] = {}
    lines = inspect.cleandoc(doc or "").splitlines()
    start = next((i for i, line in enumerate(lines) if _SECTION.match(line)), None)
    if start is None:
        return out
    names: list[str] = []
    indent: int | None = None
    for line in lines[start + 1 :]:
        if not line.strip():
            if names:
                break
            continue
        match = _LINE.match(line)
        depth = len(line) - len(line.lstrip())
        if match and (indent is None or depth <= indent):
            indent = depth
            names = [n.strip() for n in match.group(2).split("/")]
            for name in names:
                out[name] = match.group(3).strip()
        elif names and indent is not None and depth > indent:
            for name in names:
                out[name] = f"{out[name]} {line.strip()}".strip()
        else:
            break
    return out


def _options_from_source(target: str, kind: str) -> list[Option] | None:
    """Read the class without importing its module; None when that is not possible."""
    module_name, _, class_name = target.partition(":")
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    tree = _parse(spec.origin)
    if tree is None:
        return None
    constants = _constants(tree)
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    node = classes.get(class_name)
    docs: list[str | None] = []
    inits: list[ast.arguments] = []
    while node is not None:  # up the bases in this module while `__init__` is inherited or takes **options
        docs.append(ast.get_docstring(node))
        init = next(
            (n for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == "__init__"),
            None,
        )
        if init is not None:
            docs.append(ast.get_docstring(init))
            inits.append(init.args)
            if init.args.kwarg is None:
                helps = _merged_help(docs)
                found: dict[str, Option] = {}
                for args in reversed(inits):  # the subclass's own declaration wins
                    found.update((o.name, o) for o in _from_arguments(args, kind, helps, constants))
                return list(found.values())
        bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
        node = classes.get(bases[0]) if len(bases) == 1 else None
    return None


def _parse(path: str) -> ast.Module | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return ast.parse(handle.read())
    except (OSError, SyntaxError):
        return None


def _constants(tree: ast.Module, follow_imports: bool = True) -> dict[str, Any]:
    """Module-level `NAME = literal` assignments, and those a `from module import NAME` brings in."""
    out: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    with contextlib.suppress(ValueError):
                        out[target.id] = ast.literal_eval(node.value)
        elif follow_imports and isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            try:
                spec = importlib.util.find_spec(node.module)
            except (ImportError, ValueError):
                continue
            source = _parse(spec.origin) if spec and spec.origin and spec.origin.endswith(".py") else None
            if source is not None:
                theirs = _constants(source, follow_imports=False)
                out.update({a.asname or a.name: theirs[a.name] for a in node.names if a.name in theirs})
    return out


def _from_arguments(args: ast.arguments, kind: str, helps: dict[str, str], constants: dict[str, Any]) -> list[Option]:
    positional = [*args.posonlyargs, *args.args][1:]  # without self
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs = list(zip(positional, defaults, strict=True)) + list(zip(args.kwonlyargs, args.kw_defaults, strict=True))
    out = []
    for arg, default in pairs:
        if arg.arg in CONTEXT_ARGUMENTS[kind]:
            continue
        if default is None:  # a required argument the CLI cannot supply: not an option
            continue
        annotation = ast.unparse(arg.annotation) if arg.annotation is not None else ""
        if isinstance(default, ast.Name) and default.id in constants:
            out.append(Option(arg.arg, annotation, constants[default.id], helps.get(arg.arg, "")))
            continue
        try:
            out.append(Option(arg.arg, annotation, ast.literal_eval(default), helps.get(arg.arg, "")))
        except ValueError:  # computed: shown as written, applied by the class itself
            out.append(Option(arg.arg, annotation, None, helps.get(arg.arg, ""), ast.unparse(default)))
    return out


def _options_from_class(cls: type, kind: str) -> list[Option]:
    helps = _merged_help(
        [
            doc
            for c in cls.__mro__
            for doc in (c.__doc__, vars(c).get("__init__", None).__doc__ if "__init__" in vars(c) else None)
        ]
    )
    found: dict[str, Option] = {}
    for owner in cls.__mro__:  # up the classes while `__init__` passes **options on
        if "__init__" not in vars(owner) or owner is object:
            continue
        params = inspect.signature(owner.__init__).parameters.values()
        for param in params:
            if param.name == "self" or param.name in CONTEXT_ARGUMENTS[kind] or param.name in found:
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or param.default is param.empty:
                continue
            annotation = param.annotation if isinstance(param.annotation, str) else _type_name(param.annotation)
            found[param.name] = Option(param.name, annotation, param.default, helps.get(param.name, ""))
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return list(found.values())


def accepted_keywords(cls: type) -> set[str] | None:
    """Every keyword `cls(...)` takes, following `**options` up to the base that consumes them; None when
    it takes any keyword at all."""
    names: set[str] = set()
    for owner in cls.__mro__:
        if "__init__" not in vars(owner):
            continue
        if owner is object:
            return names
        params = inspect.signature(owner.__init__).parameters.values()
        names.update(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names
    return None


def _merged_help(docs: list[str | None]) -> dict[str, str]:
    out: dict[str, str] = {}
    for doc in reversed(docs):
        out.update(help_lines(doc))
    return out


def _type_name(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    return getattr(annotation, "__name__", str(annotation))


__all__ = ["CONTEXT_ARGUMENTS", "Option", "accepted_keywords", "help_lines", "options_of"]
