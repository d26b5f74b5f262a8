"""Registers the `command` backend (entry point `hpt = command`): a user's own training script, run once per trial."""
