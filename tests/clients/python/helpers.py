"""Helpers shared by the real-client suites."""

import time


def wait_until(condition, what, timeout=20.0, interval=0.05):
    """Polls `condition` until it returns a truthy value, at most `timeout` seconds; returns that value."""
    deadline = time.monotonic() + timeout
    attempts = 0
    while True:
        attempts += 1
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not true after {timeout} s ({attempts} attempts)")
        time.sleep(interval)
