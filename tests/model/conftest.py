"""Small-tensor tests: one torch thread (see the ``one_torch_thread`` fixture in tests/conftest.py)."""

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread: None) -> None:
    """Applies ``one_torch_thread`` to every module of this folder."""
