"""Jittered exponential waits, for everything that tries again (lock polls, connecting, DDL that
hit lock_timeout): the jitter keeps many replicas from retrying in step, the cap keeps one prompt."""

from __future__ import annotations

import random


class Backoff:
    """first_s, then first_s * factor, ... up to cap_s, each scaled by a random factor in [1-jitter, 1+jitter]."""

    def __init__(self, first_s: float, cap_s: float, *, factor: float = 2.0, jitter: float = 0.2) -> None:
        self._next_s = first_s
        self._cap_s = cap_s
        self._factor = factor
        self._jitter = jitter

    def next_s(self, *, at_most_s: float | None = None) -> float:
        """The next wait (never more than `at_most_s`, e.g. the time left before a deadline)."""
        delay = min(self._next_s, self._cap_s) * random.uniform(1 - self._jitter, 1 + self._jitter)
        self._next_s = min(self._next_s * self._factor, self._cap_s)
        return delay if at_most_s is None else min(delay, max(0.0, at_most_s))
