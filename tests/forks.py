"""Forking from a test: wait for the child with a deadline, so a deadlocked child fails the test, never hangs it."""

from __future__ import annotations

import os
import signal
import time

import pytest


def assert_child_succeeds(pid: int, seconds: float, hung: str) -> None:
    """The forked child `pid` exits with status 0 within `seconds`; else it is killed and the test fails with `hung`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        finished, code = os.waitpid(pid, os.WNOHANG)
        if finished:
            assert os.waitstatus_to_exitcode(code) == 0
            return
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(hung)
