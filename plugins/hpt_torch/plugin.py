"""Registers the `mlp` backend and the `hpt lr-find` command (entry point `hpt = torch`).

Nothing heavy is imported here: torch loads when the backend is built or the command runs.
"""

from hpt import hookimpl


@hookimpl
def hpt_register_backends(register):
    register(
        "mlp",
        "hpt_torch.backend:MLPBackend",
        requires={"torch": "torch", "sklearn": "scikit-learn"},
        extra="torch",
        summary="PyTorch MLP on tabular data (classification or regression)",
        default=True,
        worker_imports=("torch._dynamo",),  # torch.optim imports it at a process's first optimizer (about 1 s)
    )


@hookimpl
def hpt_register_commands(cli):
    from hpt_torch.commands import lr_find

    cli.add_command(lr_find)
