"""The `callgate` command line: the one place that wires gateway, workers and shared together."""
