"""Every task of the suite by name: the synthetic functions and the network-tuning tasks."""

from suite import functions, mlp_tasks

TASKS = {**functions.TASKS, **mlp_tasks.TASKS}
FAMILIES = ("synthetic", "bayesmark", "hpt-mlp")
