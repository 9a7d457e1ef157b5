"""actwatch.capture."""
