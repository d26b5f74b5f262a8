"""Every task of the suite by name: the synthetic functions (the 22 and the fresh group) and the network-tuning
tasks."""

from suite import functions, mlp_tasks

TASKS = {**functions.TASKS, **functions.FRESH_TASKS, **mlp_tasks.TASKS}
FAMILIES = ("synthetic", "fresh", "bayesmark", "hpt-mlp")
