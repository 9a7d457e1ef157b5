"""actwatch.cli."""
