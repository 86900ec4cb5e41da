"""Logs, redaction and metrics: how the daemon tells its story without leaking."""
