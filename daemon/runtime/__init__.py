"""The process: actors, their supervisor, signals and the composition root."""
