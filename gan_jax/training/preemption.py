"""Stopping on SIGTERM / SIGINT at a step boundary, with a checkpoint, so a rerun continues.

A preempted VM or a cluster scheduler stops a job with SIGTERM (then, after a grace period,
SIGKILL); a user stops it with Ctrl-C (SIGINT). While :func:`gan_jax.train` runs, both only set a
flag: the loop finishes the step in flight, writes its metrics and a checkpoint of that step,
and raises :class:`TrainingInterrupted`; the command-line programs turn that into a message and
exit status :data:`EXIT_INTERRUPTED`. Rerunning the same command resumes from that checkpoint
and ends bitwise identical to an uninterrupted run. Further signals while stopping are logged
and ignored, so a second Ctrl-C cannot interrupt the save (which is atomic anyway: see
:mod:`gan_jax.training.checkpoint`).

On several processes (multi-host) the processes agree on the stop: at every ``log_every``-th
step (where the host waits for the step's metrics anyway; an agreement is a collective that
waits for the step) every process contributes its flag, and all stop at that step if any one
was signalled, so they write the same checkpoint together (tests/test_multiprocess.py signals
one of two processes). A scheduler that signals every process works the same way.
"""

from __future__ import annotations

import signal
import threading
from typing import Optional

import jax
import numpy as np
from absl import logging

EXIT_INTERRUPTED = 75  # EX_TEMPFAIL of sysexits.h: "try again later", i.e. rerun to continue
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingInterrupted(RuntimeError):
    """Training stopped on a signal after saving a checkpoint; the message says which and where.

    Attributes:
      signal_name: ``"SIGTERM"`` or ``"SIGINT"``.
      step: the step of the checkpoint that was written.
    """

    def __init__(self, message: str, signal_name: str, step: int):
        super().__init__(message)
        self.signal_name = signal_name
        self.step = step


class StopRequest:
    """Context manager: while active, SIGTERM and SIGINT set :attr:`signal_name` instead of
    ending the process. Outside the main thread (where Python cannot install handlers) it
    installs nothing and never requests a stop."""

    def __init__(self, signals: tuple[int, ...] = SIGNALS):
        self.signals = signals
        self.signal_name: Optional[str] = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.signal_name is None:
            self.signal_name = name
            logging.warning("Received %s: stopping after the current step with a checkpoint "
                            "(rerun the same command to continue).", name)
        else:
            logging.warning("Received %s while stopping: ignored; the checkpoint is being "
                            "written.", name)

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def requested(self) -> Optional[str]:
        """The first signal's name if a stop was requested (on any process), else None."""
        if jax.process_count() == 1:
            return self.signal_name
        from jax.experimental import multihost_utils

        codes = np.asarray(multihost_utils.process_allgather(
            np.int32(0 if self.signal_name is None else signal.Signals[self.signal_name])))
        signalled = codes[codes > 0]
        return signal.Signals(int(signalled[0])).name if signalled.size else None
