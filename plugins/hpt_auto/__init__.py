"""hpt plugin package hpt_auto: the `auto` strategy (the default of `hpt run`)."""
