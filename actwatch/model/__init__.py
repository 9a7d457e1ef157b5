"""actwatch.model."""
