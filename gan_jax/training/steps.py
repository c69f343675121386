"""The jitted training step of any game: ``train_step(state, key) -> (state, metrics)``.

One call is one iteration of the game (:mod:`gan_jax.games`): for the classic GAN, Algorithm 1
of Goodfellow et al. (2014), k discriminator updates and one generator update.

Randomness is derived, never reused: ``key`` is the run's training key (the same every call);
the step splits it into a data key (fixed: it shuffles the epochs, see
:func:`gan_jax.data.batch_indices`) and a noise key that the game folds with ``state.step``. A
resumed run therefore replays exactly the stream of an uninterrupted one.

Many devices: ``make_train_step(config, images, mesh=gan_jax.training.parallel.data_mesh())``
compiles the same body for a 1-D ``"data"`` mesh: the state is replicated, and every real
minibatch and batch of z is constrained to be sharded along its batch axis. The body still sees
the global batch, so BatchNorm statistics and the losses are over the global batch; see
:mod:`gan_jax.training.parallel`.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import data as data_lib
from gan_jax.config import Config
from gan_jax.games.base import Batches, Metrics, build_game
from gan_jax.training import parallel


def data_key_of(key: jax.Array) -> jax.Array:
    """The data-order key that a step with training key ``key`` shuffles the epochs with."""
    return jax.random.split(key)[0]


def train_step_fn(config: Config, state: Any, key: jax.Array, images: jax.Array,
                  learning_rate: Optional[jax.Array] = None, *,
                  labels: Optional[jax.Array] = None,
                  batch_sharding: Optional[jax.sharding.Sharding] = None,
                  epoch_orders: Optional[data_lib.EpochOrders] = None
                  ) -> tuple[Any, Metrics]:
    """Un-jitted body of one iteration of ``config``'s game; ``images`` is the training set.

    ``learning_rate`` optionally overrides ``config.learning_rate`` with a (traced) scalar.
    ``labels``: int ``[N]`` classes of ``images``, required by (only) ``config.conditional``.
    ``batch_sharding`` optionally constrains every real minibatch and batch of z (used by
    ``make_train_step(..., mesh=...)``; None: no constraint, the single-device program).
    ``epoch_orders`` optionally holds the permutations of the epochs this step draws from
    (``data.epoch_orders(data_key_of(key), ...)``), so that the step reads its minibatches
    instead of re-sorting the whole training set for each (:func:`make_train_step` passes them;
    the minibatches are the same either way).

    Metrics: the game's (classic: :func:`gan_jax.games.classic_updates.classic_step`).
    """
    game = build_game(config, learning_rate)
    _check_labels(config, images, labels)
    data_key, noise_key = jax.random.split(key)
    batches = Batches(images, labels, data_key, config.batch_size, epoch_orders,
                      batch_sharding)
    return game.train_step(state, noise_key, batches)


def _check_labels(config: Config, images, labels) -> None:
    if config.conditional and labels is None:
        raise ValueError("--conditional training needs the training set's labels")
    if not config.conditional and labels is not None:
        raise ValueError("labels were given to an unconditional GAN (set conditional=True)")
    if labels is not None and labels.shape != images.shape[:1]:
        raise ValueError(f"labels {labels.shape} do not match images {images.shape}")


def batch_range(config: Config, step: int) -> tuple[int, int]:
    """(first minibatch number, number of minibatches) that iteration ``step`` draws,
    computed on the host with the game's own schedule arithmetic."""
    first, count = build_game(config).batch_range(step)
    return int(first), int(count)


def max_batches_per_step(config: Config) -> int:
    """The most minibatches one iteration of ``config``'s game draws."""
    return build_game(config).max_batches_per_step


def donates_state(backend: Optional[str] = None) -> bool:
    """Whether the compiled steps donate their input state (``backend``: default JAX's).

    Not on the CPU: there XLA's copy insertion turns the in-place optimizer update of a donated
    state into copies of the parameters and Adam moments before the update (the fused update
    recomputes the new moment from the old one, whose buffer the new one overwrites), and the
    thesis step ran 12-25% faster without donation (same arithmetic, same results, see README
    "Speed"). On accelerators donation keeps a single copy of the state in device memory.
    """
    return (backend or jax.default_backend()) != "cpu"


def _step_body(config: Config, state: Any, key: jax.Array, images: jax.Array,
               labels: Optional[jax.Array], epoch_orders: data_lib.EpochOrders
               ) -> tuple[Any, Metrics]:
    return train_step_fn(config, state, key, images, labels=labels, epoch_orders=epoch_orders)


_train_step = jax.jit(_step_body, static_argnums=0)
_train_step_donating = jax.jit(_step_body, static_argnums=0, donate_argnums=1)


def scan_steps(step: Callable[[Any], tuple[Any, Metrics]], state: Any, num_steps: int,
               unroll: int = 1) -> tuple[Any, Metrics]:
    """``num_steps`` iterations of ``step(state) -> (state, metrics)`` as one ``lax.scan``:
    the final state and the metrics stacked along a leading axis of ``num_steps``.

    The loop stays rolled (``unroll=1``), which keeps each iteration's arithmetic that of a
    single step (bitwise for dense networks on XLA:CPU, tests/test_throughput.py). XLA:CPU
    runs the convolutions of a rolled loop body with its naive fallback (jax-ml/jax#12868):
    thesis GAN 5.45 -> 0.17 steps/s at 10 steps per call on the 2-core CPU, and its results
    then differ from single steps at float32 rounding. Unrolled (``unroll=num_steps``) it ran
    at 5.37 steps/s, but XLA then fuses across iterations and the run is no longer bitwise.
    So on the CPU keep one step per call (the default).
    """
    return jax.lax.scan(lambda s, _: step(s), state, None, length=num_steps, unroll=unroll)


def _steps_body(config: Config, num_steps: int, state: Any, key: jax.Array, images: jax.Array,
                labels: Optional[jax.Array], epoch_orders: data_lib.EpochOrders
                ) -> tuple[Any, Metrics]:
    return scan_steps(lambda s: _step_body(config, s, key, images, labels, epoch_orders), state,
                      num_steps)


_train_steps = jax.jit(_steps_body, static_argnums=(0, 1))
_train_steps_donating = jax.jit(_steps_body, static_argnums=(0, 1), donate_argnums=2)


@functools.lru_cache(maxsize=None)
def _sharded_train_step(config: Config, mesh: jax.sharding.Mesh, steps_per_call: int = 1
                        ) -> Callable:
    """The step compiled for ``mesh``: replicated state, key, images and metrics; batches
    sharded over ``"data"`` inside. Cached per (config, mesh), like ``_train_step`` per config.
    ``steps_per_call > 1``: that many steps in one ``lax.scan``, metrics stacked."""
    replicated = parallel.replicated(mesh)
    batch_sharding = parallel.batch_sharded(mesh)

    def one(state, key, images, labels, epoch_orders):
        return train_step_fn(config, state, key, images, labels=labels,
                             batch_sharding=batch_sharding, epoch_orders=epoch_orders)

    def body(state, key, images, labels, epoch_orders):
        if steps_per_call == 1:
            return one(state, key, images, labels, epoch_orders)
        return scan_steps(lambda s: one(s, key, images, labels, epoch_orders), state,
                          steps_per_call)

    return jax.jit(body, in_shardings=(replicated,) * 5,
                   out_shardings=(replicated, replicated),
                   donate_argnums=0 if donates_state(mesh.devices.flat[0].platform) else ())


def make_train_step(config: Config, images: Any, mesh: Optional[jax.sharding.Mesh] = None,
                    labels: Any = None, steps_per_call: int = 1
                    ) -> Callable[[Any, jax.Array], tuple[Any, Metrics]]:
    """Returns the compiled ``train_step(state, key) -> (state, metrics)``.

    ``steps_per_call > 1``: each call runs that many iterations in one compiled ``lax.scan``
    (bitwise the same states as as many single calls; tests/test_steps.py) and returns every
    metric stacked, ``[steps_per_call]``. It saves a dispatch and a host round trip per step,
    which pays on accelerators; on XLA:CPU the single step is as fast or faster (README, speed).

    Args:
      config: the run's configuration (static: bound before ``jax.jit``; runs that differ only
        in workdir, length or reporting share one compilation).
      images: the training set, float32 ``[N, H, W, C]`` in [-1, 1]. It is put on the device
        once and passed to the compiled step as an argument (not baked in as a constant);
        minibatches are gathered inside the step.
      mesh: optional 1-D device mesh with axis ``"data"`` (:func:`gan_jax.training.parallel.data_mesh`).
        None (default): the single-device step. With a mesh the step is data parallel: the
        state, key and metrics are replicated on every device (pass the state and key through
        :func:`gan_jax.training.parallel.replicate` to avoid a transfer per call), each real minibatch
        and batch of z is split over the devices along the batch axis, and the step still
        computes the global-batch update (BatchNorm statistics included). ``config.batch_size``
        must be divisible by the number of devices.
      labels: int ``[N]`` class labels of ``images``; required by (only) a conditional config.
        Held on the device like ``images``.

    On accelerators the input ``state`` is donated: do not use it after the call (on the CPU
    it is kept, which is faster there; see :func:`donates_state`).
    """
    if images.shape[0] < config.batch_size:
        raise ValueError(
            f"batch_size {config.batch_size} exceeds the {images.shape[0]} training images")
    if steps_per_call < 1:
        raise ValueError(f"steps_per_call must be >= 1, got {steps_per_call}")
    static = config.computation()
    if labels is not None:
        labels = np.asarray(labels, np.int32)
    _check_labels(config, images, labels)
    if mesh is None:
        images = jnp.asarray(images, jnp.float32)
        labels = None if labels is None else jnp.asarray(labels)
        if steps_per_call == 1:
            compiled = _train_step_donating if donates_state() else _train_step
            call = lambda state, key, orders: compiled(  # noqa: E731
                static, state, key, images, labels, orders)
        else:
            compiled = _train_steps_donating if donates_state() else _train_steps
            call = lambda state, key, orders: compiled(  # noqa: E731
                static, steps_per_call, state, key, images, labels, orders)
        return EpochOrderedStep(call, static, images.shape[0], training_epoch_orders,
                                steps_per_call=steps_per_call)

    parallel.check_batch_size(config.batch_size, mesh)
    # The whole training set is replicated on every device: MNIST is 188 MB as float32, and
    # a replicated set lets each device gather its rows of the global minibatch locally (on
    # every host of a multi-host slice too), with no input pipeline. A dataset too large for
    # that would be sharded along "data" (changing which device draws which example) or fed
    # per host with jax.make_array_from_process_local_data.
    images = (images.astype(jnp.float32) if isinstance(images, jax.Array)
              else np.asarray(images, np.float32))
    images = parallel.replicate(images, mesh)
    labels = None if labels is None else parallel.replicate(labels, mesh)
    replicated = parallel.replicated(mesh)
    orders_fn = jax.jit(training_epoch_orders, static_argnums=(2, 3), out_shardings=replicated)
    sharded_step = _sharded_train_step(static, mesh, steps_per_call)
    return EpochOrderedStep(
        lambda state, key, orders: sharded_step(state, key, images, labels, orders),
        static, images.shape[0], orders_fn, steps_per_call=steps_per_call)


@functools.partial(jax.jit, static_argnums=(2, 3))
def training_epoch_orders(key: jax.Array, first_epoch, num_epochs: int, num_examples: int
                          ) -> data_lib.EpochOrders:
    """The orders of ``num_epochs`` epochs from ``first_epoch`` that a step with training key
    ``key`` draws its minibatches from."""
    return data_lib.epoch_orders(data_key_of(key), first_epoch, num_epochs, num_examples)


class EpochOrderedStep:
    """``train_step(state, key)``: the compiled step, fed each epoch's order computed once.

    Deriving an epoch's permutation inside every step (:func:`gan_jax.data.batch_indices`)
    sorts the whole training set per minibatch: 21 ms for MNIST's 60,000 images on the 2-core
    CPU, which is 15% of the thesis GAN's step, five times that with k = 5, and 15 times the
    MLP GAN's whole step. Here the host tracks which generator step comes next and hands the
    compiled step the permutations of the epochs that step draws from
    (:func:`gan_jax.data.epoch_orders`, computed on the device once per epoch, asynchronously).
    The minibatches are bitwise the in-step ones, so results do not change.

    The host knows the step without asking the device while it is given back the state it
    returned last; any other state (a fresh or restored one, or one the caller rebuilt) is read
    once with ``step_of(state)``.

    Args:
      compiled: ``(state, key, orders) -> (state, metrics)``.
      config: the run's configuration (k, batch size, warm-up schedule).
      num_examples: size of the training set.
      orders_fn: ``(key, first_epoch, num_epochs, num_examples) -> EpochOrders``:
        :func:`gan_jax.data.epoch_orders` of ``data_key_of(key)`` (:func:`training_epoch_orders`;
        vmapped over the runs of a sweep).
      step_of: the generator step a state is at, as a Python int.
      steps_per_call: the iterations one call of ``compiled`` runs (its orders cover them all).
    """

    def __init__(self, compiled: Callable, config: Config, num_examples: int,
                 orders_fn: Callable, step_of: Callable[[Any], int] = lambda s: int(s.step),
                 steps_per_call: int = 1):
        self._compiled, self._config = compiled, config
        self._orders_fn, self._step_of = orders_fn, step_of
        self._num_examples = num_examples
        self._per_epoch = self._num_examples // config.batch_size
        self._game = build_game(config)
        self.steps_per_call = steps_per_call
        self._num_epochs = data_lib.epochs_spanned(
            self._game.max_batches_per_step * steps_per_call, self._num_examples,
            config.batch_size)
        self._last_state: Optional[Any] = None
        self._next_step = 0
        self._key: Optional[jax.Array] = None
        self._orders: Optional[data_lib.EpochOrders] = None
        self._first_epoch = -1

    def _epoch_orders(self, key: jax.Array, first_epoch: int) -> data_lib.EpochOrders:
        if key is not self._key or first_epoch != self._first_epoch:
            self._orders = self._orders_fn(key, first_epoch, self._num_epochs,
                                           self._num_examples)
            self._key, self._first_epoch = key, first_epoch
        return self._orders

    def __call__(self, state: Any, key: jax.Array) -> tuple[Any, Metrics]:
        step = self._next_step if state is self._last_state else self._step_of(state)
        first = int(self._game.batch_range(step)[0])
        last_first, last_count = (int(n) for n in
                                  self._game.batch_range(step + self.steps_per_call - 1))
        first_epoch = first // self._per_epoch
        if (last_first + last_count - 1) // self._per_epoch - first_epoch >= self._num_epochs:
            raise AssertionError("a step draws from more epochs than were precomputed")
        orders = self._epoch_orders(key, first_epoch)
        state, metrics = self._compiled(state, key, orders)
        self._last_state, self._next_step = state, step + self.steps_per_call
        return state, metrics
