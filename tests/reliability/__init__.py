"""The reliability and security suite: faults, load and hostile input against the real daemon (issue 10)."""
