"""User-facing errors: each carries one line that says what is wrong and what to do."""


class HptError(Exception):
    """An error the CLI prints as one line and exits non-zero on."""


class SpaceError(HptError, ValueError):
    """A malformed search space or a value outside it; the message names the parameter."""


class PluginError(HptError):
    """An unknown plugin name, or a plugin that cannot be used (missing dependency, bad options)."""


class DataError(HptError, ValueError):
    """Bad input data: missing target column, empty file, single-class target."""
