"""Stopping a study on a signal: SIGTERM and SIGHUP (what a scheduler, `docker stop` or a closed terminal
send) are handled as Ctrl-C is, and a signal that comes while the study is already stopping does not
cut its clean-up short: it only tells the study to stop waiting for an unreachable store."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """The study was asked to stop by a signal (a KeyboardInterrupt, so it is handled as Ctrl-C is)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM)."""
        return 128 + self.signum


_deferring = 0
_pending: list[int] = []


@contextmanager
def deferred() -> Iterator[None]:
    """A stop signal that arrives inside this block takes effect at its end, so that a trial is never left
    half recorded (started in the journal but not among the running trials, or finished but not logged)."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if _deferring == 0 and _pending:
            raise Stopped(_pending.pop())


@contextmanager
def stop_on_signals(on_repeat: Callable[[int], None]) -> Iterator[None]:
    """Within the block, the first stop signal raises `Stopped`; later ones call `on_repeat(signum)`
    instead of interrupting the clean-up. The previous handlers come back at the end, unless the block
    was stopped: then stop signals are ignored for the rest of the process's exit."""
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if received:
            on_repeat(signum)
            return
        received.append(signum)
        if _deferring:
            _pending.append(signum)
            return
        raise Stopped(signum)

    previous = {}
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is signal.SIG_IGN:
            continue  # started with it ignored on purpose (nohup ignores SIGHUP): keep it so
        previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            # once stopping, the process is on its way out with its clean-up done: a later signal (a second
            # Ctrl-C while the interpreter shuts down) must not end it by the signal's default action
            signal.signal(signum, signal.SIG_IGN if received else old)


__all__ = ["STOP_SIGNALS", "Stopped", "stop_on_signals"]
