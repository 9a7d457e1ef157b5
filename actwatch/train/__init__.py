"""actwatch.train."""
