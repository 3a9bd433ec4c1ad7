"""vlmcompress.threads.set_threads: --threads, else VLMCOMPRESS_THREADS, else the cores divided by the processes."""

import os

import pytest
import torch

from vlmcompress.errors import VlmcompressError
from vlmcompress.threads import THREADS_ENV, set_threads


@pytest.fixture
def restore_threads(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv(THREADS_ENV, raising=False)
    yield monkeypatch
    torch.set_num_threads(before)


def test_threads_come_from_the_argument_then_the_environment_then_the_cores(restore_threads):
    cores = os.cpu_count() or 1
    assert set_threads(0, 1) == max(1, cores) == torch.get_num_threads()
    assert set_threads(0, cores * 2) == 1  # more processes than cores: one thread each
    restore_threads.setenv(THREADS_ENV, "1")
    assert set_threads(0, 1) == 1 == torch.get_num_threads()
    assert set_threads(3, 1) == 3 == torch.get_num_threads()  # --threads wins over the environment


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_thread_count_in_the_environment_names_what_is_expected(restore_threads, value):
    restore_threads.setenv(THREADS_ENV, value)
    with pytest.raises(VlmcompressError, match=f"{THREADS_ENV}=.*expected a whole number of threads >= 1"):
        set_threads(0, 1)
