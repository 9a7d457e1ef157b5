"""actwatch.service."""
