"""How many threads torch's CPU kernels use, chosen so a run does not collapse on a shared machine.

torch starts one intra-op thread per CPU. Its parallel regions end in a barrier, so when other processes keep a
core busy, every region waits for the thread that was descheduled: on a 2-core machine shared with other jobs a
100-step fit took 120-240 s with the default, and 7-9 s with one thread (issue 9). The policy here:

* ``threads=N`` (N > 0): exactly N threads.
* ``threads=0`` or null (auto): the CPUs this process may run on (``os.sched_getaffinity``), capped at
  ``AUTO_CAP``, minus the CPUs other processes keep busy (the larger of the 1-minute load average and the
  runnable tasks sampled now, which sees load that started seconds ago), rounded to the nearest, at least 1.

The choice is made once, when a tool starts; load that appears later is not followed.
"""

from __future__ import annotations

import logging
import math
import os
import statistics
import time

log = logging.getLogger(__name__)

AUTO_CAP = 4
_applied: int | None = None


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask; ``os.cpu_count()`` where affinity is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def runnable_now(samples: int = 5, interval: float = 0.02) -> float:
    """Other tasks runnable right now: the median over ``samples`` reads of ``/proc/loadavg``'s running count,
    less this process. 0.0 where ``/proc`` is not available."""
    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]) - 1)
        except (OSError, IndexError, ValueError):
            return 0.0
        if i + 1 < samples:
            time.sleep(interval)
    return float(max(0.0, statistics.median(counts)))


def busy_cpus() -> float:
    """CPUs kept busy by other processes: the larger of the 1-minute load average and :func:`runnable_now`."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    return max(load, runnable_now())


def choose_threads(requested: int | None = None, cap: int = AUTO_CAP, busy: float | None = None) -> int:
    """The intra-op thread count: ``requested`` when > 0, else the free CPUs (see the module doc), at least 1.
    ``busy``: CPUs other processes use (default: measured by :func:`busy_cpus`)."""
    if requested is not None and int(requested) > 0:
        return int(requested)
    cpus = available_cpus()
    busy = busy_cpus() if busy is None else busy
    return max(1, min(cpus, cap, math.floor(cpus - busy + 0.5)))


def apply_thread_policy(requested: int | None = None) -> int:
    """Set torch's intra-op threads by :func:`choose_threads` (and the inter-op pool to the same count where
    torch still allows it); logs the choice once per process and per change. Returns the count."""
    global _applied
    import torch

    busy = None if requested else busy_cpus()
    n = choose_threads(requested, busy=busy)
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:  # only possible before the first inter-op parallel work; then the pool stays as it is
        pass
    if n != _applied:
        how = f"threads={int(requested)}" if requested else f"auto: {available_cpus()} CPUs, {busy:.1f} busy"
        log.info("Using %d CPU thread(s) for torch (%s)", n, how)
        _applied = n
    return n
