"""actwatch.tracker."""
