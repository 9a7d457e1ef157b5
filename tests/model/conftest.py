"""One torch thread for this folder's tests.

The tests run small tensors on a few shared CPU cores; torch's default of one thread per core makes
every convolution spin-wait for the other threads (3-4x slower under load). Restored afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
