"""Policy documents, their compiled in-memory snapshots and the pure decision function."""
