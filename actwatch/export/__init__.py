"""actwatch.export."""
