"""hpt's built-in plugins that need no heavy dependency: grid and random search, the
`function` backend of standard test functions, and the serial and process executors."""
