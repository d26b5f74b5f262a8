"""The broad quality suite: tasks (synthetic functions, MLP tuning), methods, a result cache and the report."""
