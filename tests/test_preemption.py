"""The stop request behind preemption handling (the end-to-end run: tests/test_experiments.py)."""

import signal

import pytest

from gan_jax.training.preemption import StopRequest


def test_signals_set_the_request_once_and_the_handlers_are_restored():
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    with StopRequest() as stop:
        assert stop.requested() is None
        signal.raise_signal(signal.SIGTERM)  # would end the process without the handler
        assert stop.requested() == "SIGTERM"
        signal.raise_signal(signal.SIGINT)  # a second signal does not replace the first
        assert stop.requested() == "SIGTERM"
    assert {s: signal.getsignal(s) for s in before} == before
    with pytest.raises(KeyboardInterrupt):  # Python's own SIGINT handler is back
        signal.raise_signal(signal.SIGINT)


def test_sigint_alone_is_reported_as_sigint():
    with StopRequest() as stop:
        signal.raise_signal(signal.SIGINT)
        assert stop.requested() == "SIGINT"
