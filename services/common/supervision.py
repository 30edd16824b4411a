"""A child process that does not outlive the process that started it."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def exit_with_parent() -> None:
    """Have Linux send SIGTERM when the process that started this one dies, however it dies.

    A supervisor killed without a chance to clean up (SIGKILL, or a signal during its start-up)
    otherwise leaves its children running and holding their ports. Elsewhere nothing is done.
    """
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
