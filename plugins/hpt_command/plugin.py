"""Registers the `command` backend (entry point `hpt = command`): a user's own training script, run once per trial.

Nothing is imported here beyond hpt itself: the backend's module loads when a study builds it."""

from hpt import hookimpl


@hookimpl
def hpt_register_backends(register):
    register(
        "command",
        "hpt_command.backend:CommandBackend",
        summary="your own training script, run once per trial with the parameters substituted",
        worker_imports=("mlflow.tracking",),  # workers read the trial's run: forked with MLflow already imported
    )
