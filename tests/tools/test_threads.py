"""The CPU thread policy: the override, at least one thread, fewer threads when other processes are busy."""

from __future__ import annotations

import pytest

from decalite import threads


@pytest.fixture
def machine(monkeypatch):
    """A fake machine: ``set(cpus, load, runnable)``."""

    def set_(cpus: int, load: float, runnable: float = 0.0) -> None:
        monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(cpus)))
        monkeypatch.setattr(threads.os, "getloadavg", lambda: (load, load, load))
        monkeypatch.setattr(threads, "runnable_now", lambda *a, **k: runnable)
    return set_


def test_override_wins(machine):
    machine(2, 10.0)
    assert threads.choose_threads(3) == 3 and threads.choose_threads(1) == 1


def test_auto_uses_the_free_cpus_capped(machine):
    machine(2, 0.1)
    assert threads.choose_threads(0) == 2 and threads.choose_threads(None) == 2
    machine(64, 0.0)
    assert threads.choose_threads(0) == threads.AUTO_CAP


def test_fewer_threads_under_load_and_never_zero(machine):
    machine(8, 5.7)
    assert threads.choose_threads(0) == 2
    machine(2, 1.2)
    assert threads.choose_threads(0) == 1
    machine(2, 40.0)
    assert threads.choose_threads(0) == 1
    machine(2, 0.0, runnable=2.0)  # load that started seconds ago: the 1-minute average has not seen it yet
    assert threads.choose_threads(0) == 1


def test_apply_sets_torch(machine):
    import torch

    before = torch.get_num_threads()
    try:
        machine(2, 0.0)
        assert threads.apply_thread_policy(1) == 1 and torch.get_num_threads() == 1
        assert threads.apply_thread_policy(0) == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_runnable_now_reads_proc():
    assert threads.runnable_now(samples=2, interval=0.0) >= 0.0
