"""Timing of the compiled train step (compile time apart, median of repeats).

Speed is measured here, never asserted in tests: machines are shared and noisy.

:class:`TrainStepTimer` times the JAX step round by round (``compile()``, then ``run(n)``), and
:func:`interleave` runs several such timers in alternating rounds, so that a comparison with
another implementation (``experiments/torch_reference.py``) sees the same machine conditions.
This module imports no framework other than JAX: any object with ``compile() -> seconds`` and
``run(n) -> seconds`` can take part in :func:`interleave`.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Mapping, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import data as data_lib
from gan_jax.training import steps
from gan_jax.config import Config
from gan_jax.models.architectures import get_architecture
from gan_jax.games import abstract_state, create_state
from gan_jax.training.steps import make_train_step


# A round counts as quiet when other processes kept fewer cores than this busy meanwhile.
QUIET_CORES = 0.25


class StepTimer(Protocol):
    """What :func:`interleave` needs from an implementation of the train step."""

    def compile(self) -> float:
        """Runs the first step (tracing, compilation, allocator warm-up); returns its seconds."""

    def run(self, num_steps: int) -> float:
        """Runs ``num_steps`` steps and waits for them; returns the elapsed seconds."""


def _machine_busy_s() -> float | None:
    """CPU seconds the whole machine has been busy (all cores, Linux ``/proc/stat``), or None."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 8:
        return None
    # user nice system idle iowait irq softirq [steal ...]; busy = all but idle and iowait.
    ticks = [int(x) for x in fields[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def timed_run(timer: StepTimer, num_steps: int) -> tuple[float, float | None]:
    """``timer.run(num_steps)``; returns (seconds, cores kept busy meanwhile by other processes).

    The second value is (machine busy time - this process's CPU time) / wall time, from
    ``/proc/stat`` (None where unavailable; resolution 1/100 s): about 0 on a quiet machine, 1
    when another process holds a whole core during the run.
    """
    busy0, own0 = _machine_busy_s(), _own_cpu_s()
    start = time.perf_counter()
    seconds = timer.run(num_steps)
    wall = time.perf_counter() - start
    busy1, own1 = _machine_busy_s(), _own_cpu_s()
    if busy0 is None or busy1 is None or wall <= 0:
        return seconds, None
    return seconds, max(0.0, ((busy1 - busy0) - (own1 - own0)) / wall)


def random_images(config: Config, num_images: int = 1024, seed: int = 0) -> np.ndarray:
    """``num_images`` uniform [-1, 1) float32 images of ``config``'s architecture, NHWC."""
    shape = get_architecture(config.arch).image_shape
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (num_images, *shape)).astype(np.float32)


class TrainStepTimer:
    """The jitted train step of ``config`` on a random in-memory dataset, timed in rounds.

    ``compile()`` makes the first call (tracing + XLA compilation + first execution);
    ``run(n)`` then makes ``n`` more calls and blocks on the result. The data does not change
    the work done, so random pixels stand in for MNIST.
    """

    def __init__(self, config: Config, num_images: int = 1024, seed: int = 0,
                 images: np.ndarray | None = None):
        self.config = config
        self.images = random_images(config, num_images, seed) if images is None else images
        self._train_step, self._state, self._key = self._build(seed)
        self.metrics = None
        self.compiled = False

    def _build(self, seed: int):
        """(step function, initial state, key) of what is timed."""
        return (make_train_step(self.config, self.images),
                create_state(self.config, jax.random.key(seed)), jax.random.key(seed + 1))

    def compile(self) -> float:
        start = time.perf_counter()
        self._state, self.metrics = self._train_step(self._state, self._key)
        jax.block_until_ready((self._state, self.metrics))
        self.compiled = True
        return time.perf_counter() - start

    def run(self, num_steps: int) -> float:
        if not self.compiled:
            raise RuntimeError("call compile() before run(): the first call is timed apart")
        state, metrics, key = self._state, self.metrics, self._key
        start = time.perf_counter()
        for _ in range(num_steps):
            state, metrics = self._train_step(state, key)
        jax.block_until_ready((state, metrics))
        elapsed = time.perf_counter() - start
        self._state, self.metrics = state, metrics
        return elapsed


class SweepTimer(TrainStepTimer):
    """``num_runs`` independent runs (seeds 0..N-1) vmapped into one step
    (:mod:`gan_jax.training.sweep`); one call advances every run by one step."""

    def __init__(self, config: Config, num_runs: int, num_images: int = 1024, seed: int = 0,
                 images: np.ndarray | None = None):
        self.num_runs = num_runs
        super().__init__(config, num_images, seed, images)

    def _build(self, seed: int):
        from gan_jax.training import sweep  # imports the training loop; only needed here

        seeds = list(range(seed, seed + self.num_runs))
        return (sweep.make_sweep_step(self.config, self.images, num_runs=self.num_runs),
                sweep.create_states(self.config, seeds), sweep.train_keys(seeds))


def time_train_step(config: Config, num_images: int = 1024, steps_per_repeat: int = 20,
                    repeats: int = 5) -> dict:
    """Runs the train step of ``config`` on random data and times it.

    Returns:
      dict with ``compile_s`` (first call, includes tracing and XLA compilation),
      ``steps_per_s`` (median over ``repeats`` of ``steps_per_repeat`` steps each),
      ``steps_per_s_all`` (every repeat) and ``images_per_s`` (= steps/s x batch_size x
      disc_steps real images seen by D).
    """
    timer = TrainStepTimer(config, num_images)
    compile_s = timer.compile()
    rates = [steps_per_repeat / timer.run(steps_per_repeat) for _ in range(repeats)]
    rate = statistics.median(rates)
    return {"compile_s": compile_s, "steps_per_s": rate, "steps_per_s_all": rates,
            "images_per_s": rate * config.batch_size * config.disc_steps}


def interleave(timers: Mapping[str, StepTimer], rounds: int = 5, steps: int = 20,
               warmup: int = 2, images_per_step: int = 1, alternate: bool = True,
               quiet_cores: float = QUIET_CORES) -> dict:
    """Times several implementations of one step in interleaved rounds.

    Every timer is compiled first (its first call timed alone), then runs ``warmup`` untimed
    steps. Each of ``rounds`` rounds then runs ``steps`` timed steps of every timer in turn;
    with ``alternate`` the order is reversed every other round (A B, B A, A B, ...), so slow
    drifts of a shared machine hit all of them alike.

    Returns:
      dict with ``order`` (the timers' names, in the first round's order), ``rounds``,
      ``steps`` and, under ``results[name]``: ``compile_s``, ``steps_per_s`` (median over
      rounds), ``steps_per_s_all`` (every round, in round order), ``images_per_s`` (median
      steps/s x ``images_per_step``), ``other_cores_all`` (per round, the cores other
      processes kept busy meanwhile, see :func:`timed_run`; rounds well above 0 were
      contended). With two or more timers, ``ratios[f"{a}/{b}"]`` for each
      pair (a before b in ``timers``) holds ``ratio_of_medians`` and ``median_of_ratios``
      (the per-round ratios, each from two measurements taken back to back), ``per_round``,
      ``quiet_rounds`` (how many rounds had both runs with other processes below
      ``quiet_cores`` busy cores) and ``median_of_quiet_ratios`` (over those rounds; None if
      none, or where the machine's load cannot be read).
    """
    if rounds < 1 or steps < 1 or warmup < 0:
        raise ValueError(
            f"need rounds >= 1, steps >= 1, warmup >= 0; got {rounds}, {steps}, {warmup}")
    names = list(timers)
    compile_s = {name: timers[name].compile() for name in names}
    for name in names:
        if warmup:
            timers[name].run(warmup)
    rates: dict[str, list[float]] = {name: [] for name in names}
    others: dict[str, list[float | None]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[::-1] if alternate and r % 2 else names
        for name in order:
            seconds, other = timed_run(timers[name], steps)
            rates[name].append(steps / seconds)
            others[name].append(other)
    results = {}
    for name in names:
        rate = statistics.median(rates[name])
        results[name] = {"compile_s": compile_s[name], "steps_per_s": rate,
                         "steps_per_s_all": rates[name], "images_per_s": rate * images_per_step,
                         "other_cores_all": others[name]}
    ratios = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            per_round = [x / y for x, y in zip(rates[a], rates[b])]
            quiet = [ratio for ratio, oa, ob in zip(per_round, others[a], others[b])
                     if oa is not None and ob is not None and max(oa, ob) < quiet_cores]
            ratios[f"{a}/{b}"] = {
                "ratio_of_medians": results[a]["steps_per_s"] / results[b]["steps_per_s"],
                "median_of_ratios": statistics.median(per_round),
                "per_round": per_round,
                "quiet_rounds": len(quiet),
                "median_of_quiet_ratios": statistics.median(quiet) if quiet else None,
            }
    return {"order": names, "rounds": rounds, "steps": steps, "results": results,
            "ratios": ratios}


def step_flops(config: Config, num_images: int = 1024) -> float | None:
    """Floating-point operations of one compiled train step of ``config`` (single device), by
    XLA's cost analysis of the program :func:`make_train_step` runs; None where the backend
    reports none. Compiles the step once more (not from the jit cache)."""
    height, width, channels = get_architecture(config.arch).image_shape
    images = jax.ShapeDtypeStruct((num_images, height, width, channels), jnp.float32)
    num_epochs = data_lib.epochs_spanned(steps.max_batches_per_step(config), num_images,
                                         config.batch_size)
    orders = data_lib.EpochOrders(jax.ShapeDtypeStruct((), jnp.int32),
                                  jax.ShapeDtypeStruct((num_epochs, num_images), jnp.int32))
    compiled = steps._train_step.lower(config.computation(), abstract_state(config),
                                       jax.random.key(0), images, None, orders).compile()
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older jaxlibs: one dict per program
        analysis = analysis[0] if analysis else None
    flops = (analysis or {}).get("flops")
    return float(flops) if flops and flops > 0 else None


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    """The machine's float32 matrix-multiply rate in JAX (GFLOP/s, best of 3 timings of
    ``repeats`` products of ``size x size`` matrices): the peak the step's FLOP rate is
    measured against."""
    a = jnp.ones((size, size), jnp.float32)
    product = jax.jit(lambda x: x @ x)
    jax.block_until_ready(product(a))
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            out = product(a)
        jax.block_until_ready(out)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 * repeats / best / 1e9


def cpu_model() -> str:
    """The CPU's model name and widest x86 vector extension (Linux ``/proc/cpuinfo``)."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return "unknown CPU"
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                 if line.startswith("model name")), "unknown CPU")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines()
                  if line.startswith("flags")), [])
    vector = next((v for v in ("avx512f", "avx2", "avx") if v in flags), None)
    return f"{name} ({os.cpu_count()} logical CPUs{', ' + vector.upper() if vector else ''})"
