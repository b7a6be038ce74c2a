"""The user's door: the `gamer-bench` CLI, the registry of paper tables, the runner, the report and perf."""
