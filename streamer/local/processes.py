"""What every server of the developer stack needs: a free loopback port, and to die with its parent."""

from __future__ import annotations

import ctypes
import os
import signal
import socket

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def die_with_parent(sig: signal.Signals = signal.SIGKILL, parent: int | None = None) -> None:
    """Runs in the child before exec: it gets `sig` when the *thread* that started it dies (Linux prctl).

    Given the parent's pid, a child whose parent died before prctl ran exits at once: nobody would signal it.
    Start servers from a thread that outlives them (the main thread, as pytest fixtures and CLI commands do).
    """
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, sig)
    if parent is not None and os.getppid() != parent:
        os._exit(1)
