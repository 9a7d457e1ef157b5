"""Fixtures of the signal tests: the real serving detector (shared with the tracker tests)."""

from tests.tracker.conftest import person_detector

__all__ = ["person_detector"]
