"""Every task of the suite by name: the synthetic functions (the 22 and the fresh group), COCO's BBOB
functions (where coco-experiment is installed) and the network-tuning tasks."""

from suite import bbob, functions, mlp_tasks

TASKS = {**functions.TASKS, **functions.FRESH_TASKS, **bbob.TASKS, **mlp_tasks.TASKS}
FAMILIES = ("synthetic", "fresh", "bbob", "bayesmark", "hpt-mlp")
