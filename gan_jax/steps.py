"""The jitted training step: Algorithm 1 of Goodfellow et al. (2014).

One call of ``train_step(state, key) -> (state, metrics)`` is one iteration:

  for i in 1..k (``disc_steps``):
      draw a fresh real minibatch and fresh z; update D by descending L_D
  draw fresh z; update G by descending its objective against the *updated* D.

Randomness is derived, never reused: ``key`` is the run's training key (the same every call);
the step splits it into a data key (fixed: it shuffles the epochs, see
:func:`gan_jax.data.batch_indices`) and a noise key folded with ``state.step``. A resumed run
therefore replays exactly the stream of an uninterrupted one.

BatchNorm: every network runs in train mode inside the step (batch statistics); the running
averages in ``g_batch_stats`` / ``d_batch_stats`` are updated by each forward pass, as
PyTorch does, and are what :func:`gan_jax.sampling.generate` uses.

Many devices: ``make_train_step(config, images, mesh=gan_jax.parallel.data_mesh())`` compiles
the same body for a 1-D ``"data"`` mesh: the state is replicated, and every real minibatch and
batch of z is constrained to be sharded along its batch axis (``batch_sharding``). The body
still sees the global batch, so BatchNorm statistics and the losses are over the global batch;
see :mod:`gan_jax.parallel`.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import data as data_lib
from gan_jax import losses, parallel
from gan_jax.config import Config
from gan_jax.state import GAN, GANState, build_gan

Metrics = dict[str, jax.Array]


def _apply(module, params, batch_stats, x, dropout_key=None, labels=None):
    """Train-mode forward; returns (output, new batch_stats) (``{}`` stays ``{}``).

    ``dropout_key`` feeds the ``'dropout'`` stream of networks with dropout (unused otherwise).
    ``labels``: the class labels of a conditional network (None: unconditional).
    """
    rngs = None if dropout_key is None else {"dropout": dropout_key}
    inputs = (x,) if labels is None else (x, labels)
    if not batch_stats:
        return module.apply({"params": params}, *inputs, train=True, rngs=rngs), batch_stats
    out, updates = module.apply({"params": params, "batch_stats": batch_stats}, *inputs,
                                train=True, mutable=["batch_stats"], rngs=rngs)
    return out, updates["batch_stats"]


def _dropout_keys(key: jax.Array, num: int) -> jax.Array:
    # Folded off the update's key, so that the z drawn from ``key`` itself (and with it every
    # result of dropout-free networks) does not depend on whether a network uses dropout.
    return jax.random.split(jax.random.fold_in(key, 1), num)


def _shard_batch(x: jax.Array, batch_sharding: Optional[jax.sharding.Sharding]) -> jax.Array:
    """``x`` constrained to ``batch_sharding`` (batch axis over devices); unchanged if None."""
    if batch_sharding is None:
        return x
    return jax.lax.with_sharding_constraint(x, batch_sharding)


def _optimizer_step(optimizer, grads, opt_state, params):
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def discriminator_update(gan: GAN, state: GANState, real: jax.Array, key: jax.Array,
                         batch_sharding: Optional[jax.sharding.Sharding] = None,
                         labels: Optional[jax.Array] = None) -> tuple[GANState, Metrics]:
    """One D step on ``real`` [B, H, W, C] and a fresh batch of fakes G(z), z from ``key``.

    ``batch_sharding`` (inside a jit over a mesh): the sharding of ``real`` and z, normally
    :func:`gan_jax.parallel.batch_sharded`; None leaves placement to the compiler.
    ``labels`` (conditional GANs): the classes ``[B]`` of ``real``; the fakes are G(z, labels),
    so both halves of D's batch have the same class mix (:mod:`gan_jax.conditional`).
    """
    if (labels is None) != (gan.num_classes is None):
        raise ValueError("a conditional GAN needs the real minibatch's labels, an "
                         "unconditional one takes none")
    real = _shard_batch(real, batch_sharding)
    if labels is not None:
        labels = _shard_batch(labels, batch_sharding)
    z = _shard_batch(gan.sample_z(key, real.shape[0]), batch_sharding)
    fake, g_batch_stats = _apply(gan.generator, state.g_params, state.g_batch_stats, z,
                                 labels=labels)
    fake = jax.lax.stop_gradient(fake)
    dropout_real, dropout_fake = _dropout_keys(key, 2)
    objective = gan.objective

    def loss_fn(d_params):
        real_logits, d_stats = _apply(gan.discriminator, d_params, state.d_batch_stats, real,
                                      dropout_real, labels)
        fake_logits, d_stats = _apply(gan.discriminator, d_params, d_stats, fake, dropout_fake,
                                      labels)
        loss = objective.discriminator_loss(real_logits=real_logits, fake_logits=fake_logits)
        aux = {}
        if objective.gradient_penalty:
            # The critic has no BatchNorm here (models.discriminator_for), so it is a
            # per-example function and the penalty's gradient rows are per-example gradients.
            # Conditional: real and fake share ``labels``, and so do their interpolates.
            critic = lambda x: _apply(gan.discriminator, d_params, d_stats, x,  # noqa: E731
                                      jax.random.fold_in(key, 3), labels)[0]
            penalty, grad_norm = losses.gradient_penalty(
                critic, real, fake, jax.random.fold_in(key, 2))
            aux = {"gradient_penalty": penalty, "critic_grad_norm": grad_norm}
            loss = loss + gan.gp_weight * penalty
        return loss, (d_stats, real_logits, fake_logits, aux)

    (loss, (d_stats, real_logits, fake_logits, aux)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.d_params)
    d_params, d_opt_state = _optimizer_step(gan.d_optimizer, grads, state.d_opt_state,
                                            state.d_params)
    if objective.weight_clipping:
        d_params = losses.clip_params(d_params, gan.clip)
    state = state.replace(d_params=d_params, d_batch_stats=d_stats, d_opt_state=d_opt_state,
                          g_batch_stats=g_batch_stats)
    metrics = {"d_loss": loss, "d_real": _mean_output(objective, real_logits),
               "d_fake": _mean_output(objective, fake_logits), **aux}
    if not objective.probabilistic:
        # The critic's estimate of E f(x) - E f(G(z)) (for WGAN: of W(P_r, P_g) up to the
        # Lipschitz constant), before this update.
        metrics["critic_gap"] = jnp.mean(real_logits) - jnp.mean(fake_logits)
    return state, metrics


def _mean_output(objective, logits: jax.Array) -> jax.Array:
    """Mean D(x) as a probability (sigmoid of the logits), or the critic's mean raw score."""
    return jnp.mean(jax.nn.sigmoid(logits) if objective.probabilistic else logits)


def generator_update(gan: GAN, state: GANState, batch_size: int, key: jax.Array,
                     batch_sharding: Optional[jax.sharding.Sharding] = None
                     ) -> tuple[GANState, Metrics]:
    """One G step on fresh z against the current (already updated) discriminator.

    ``batch_sharding``: the sharding of z, as in :func:`discriminator_update`.
    Conditional GANs draw the fakes' labels uniformly (from a key folded off ``key``, so the
    z stream is the unconditional one).
    """
    z = _shard_batch(gan.sample_z(key, batch_size), batch_sharding)
    labels = gan.sample_labels(jax.random.fold_in(key, 4), batch_size)
    if labels is not None:
        labels = _shard_batch(labels, batch_sharding)

    def loss_fn(g_params):
        # Fakes are made inside the differentiated function, so gradients reach G.
        fake, g_stats = _apply(gan.generator, g_params, state.g_batch_stats, z, labels=labels)
        # D's statistics from this pass are discarded: D is only trained in its own step.
        fake_logits, _ = _apply(gan.discriminator, state.d_params, state.d_batch_stats, fake,
                                _dropout_keys(key, 1)[0], labels)
        return gan.objective.generator_loss(fake_logits=fake_logits), (g_stats, fake_logits)

    (loss, (g_stats, fake_logits)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.g_params)
    g_params, g_opt_state = _optimizer_step(gan.g_optimizer, grads, state.g_opt_state,
                                            state.g_params)
    state = state.replace(g_params=g_params, g_batch_stats=g_stats, g_opt_state=g_opt_state)
    return state, {"g_loss": loss, "g_d_fake": _mean_output(gan.objective, fake_logits)}


def data_key_of(key: jax.Array) -> jax.Array:
    """The data-order key that a step with training key ``key`` shuffles the epochs with."""
    return jax.random.split(key)[0]


def train_step_fn(config: Config, state: GANState, key: jax.Array, images: jax.Array,
                  learning_rate: Optional[jax.Array] = None, *,
                  labels: Optional[jax.Array] = None,
                  batch_sharding: Optional[jax.sharding.Sharding] = None,
                  epoch_orders: Optional[data_lib.EpochOrders] = None
                  ) -> tuple[GANState, Metrics]:
    """Un-jitted body of one Algorithm 1 iteration; ``images`` is the whole training set.

    ``learning_rate`` optionally overrides ``config.learning_rate`` with a (traced) scalar.
    ``labels``: int ``[N]`` classes of ``images``, required by (only) ``config.conditional``.
    ``batch_sharding`` optionally constrains every real minibatch and batch of z (used by
    ``make_train_step(..., mesh=...)``; None: no constraint, the single-device program).
    ``epoch_orders`` optionally holds the permutations of the epochs this step draws from
    (``data.epoch_orders(data_key_of(key), ...)``), so that the step reads its minibatches
    instead of re-sorting the whole training set for each (:func:`make_train_step` passes them;
    the minibatches are the same either way).

    Metrics (float32 scalars): ``d_loss``, ``d_real`` = mean D(x) and ``d_fake`` = mean
    D(G(z)) from the last discriminator update (before it is applied), ``g_loss`` and
    ``g_d_fake`` = mean D(G(z)) seen by the generator update (after D was updated).
    """
    gan = build_gan(config, learning_rate)
    _check_labels(config, images, labels)
    k, batch_size = config.disc_steps, config.batch_size
    data_key, noise_key = jax.random.split(key)
    num_examples = images.shape[0]

    def indices(batch_number):
        if epoch_orders is None:
            return data_lib.batch_indices(data_key, batch_number, num_examples, batch_size)
        return data_lib.batch_indices_from(epoch_orders, batch_number, num_examples, batch_size)

    if config.wgan_warmup:
        return _warmup_step(config, gan, state, indices, noise_key, images, labels,
                            batch_sharding)
    keys = jax.random.split(jax.random.fold_in(noise_key, state.step), k + 1)
    for i in range(k):  # k is small and static; unrolled.
        idx = indices(state.step * k + i)
        state, d_metrics = discriminator_update(gan, state, images[idx], keys[i], batch_sharding,
                                                _take(labels, idx))
    state, g_metrics = generator_update(gan, state, batch_size, keys[k], batch_sharding)
    return state.replace(step=state.step + 1), {**d_metrics, **g_metrics}


def _check_labels(config: Config, images, labels) -> None:
    if config.conditional and labels is None:
        raise ValueError("--conditional training needs the training set's labels")
    if not config.conditional and labels is not None:
        raise ValueError("labels were given to an unconditional GAN (set conditional=True)")
    if labels is not None and labels.shape != images.shape[:1]:
        raise ValueError(f"labels {labels.shape} do not match images {images.shape}")


def _take(labels: Optional[jax.Array], idx: jax.Array) -> Optional[jax.Array]:
    return None if labels is None else labels[idx]


WARMUP_CRITIC_STEPS = 100  # WGAN code: Diters = 100 if gen_iterations < 25 or % 500 == 0
WARMUP_GENERATOR_STEPS = 25
WARMUP_EVERY = 500


# The warm-up schedule in plain arithmetic on ``step``, so that the same code counts on traced
# int32 steps inside the compiled step and on Python ints on the host (:func:`batch_range`).
def warmup_critic_steps(step, k: int):
    """Critic updates before generator update ``step`` under the WGAN warm-up schedule."""
    warm = (step < WARMUP_GENERATOR_STEPS) | (step % WARMUP_EVERY == 0)
    return k + (WARMUP_CRITIC_STEPS - k) * warm


def _critic_updates_before(step, k: int):
    """Total critic updates in generator steps 0..step-1 (closed form of the schedule)."""
    after_start = step > WARMUP_GENERATOR_STEPS
    # min(step, 25) + (number of multiples of 500 in 1..step-1, counted past the start);
    # (step - 1) // 500 is only negative at step 0, where after_start is 0.
    warm = (step - (step - WARMUP_GENERATOR_STEPS) * after_start
            + (step - 1) // WARMUP_EVERY * after_start)
    return k * step + (WARMUP_CRITIC_STEPS - k) * warm


def batch_range(config: Config, step: int) -> tuple[int, int]:
    """(first minibatch number, number of minibatches) that generator step ``step`` draws,
    computed on the host with the step's own schedule functions."""
    k = config.disc_steps
    if not config.wgan_warmup:
        return step * k, k
    return int(_critic_updates_before(step, k)), int(warmup_critic_steps(step, k))


def max_batches_per_step(config: Config) -> int:
    """The most minibatches one generator step draws (``disc_steps``, or the warm-up's 100)."""
    return max(config.disc_steps, WARMUP_CRITIC_STEPS) if config.wgan_warmup else config.disc_steps


def _warmup_step(config, gan, state, indices, noise_key, images, labels, batch_sharding):
    """One iteration with the WGAN code's schedule: 100 critic updates for each of the first 25
    generator updates and every 500th, ``disc_steps`` otherwise (a ``fori_loop`` with a
    traced trip count). Real minibatches continue the same epoch stream as without warm-up."""
    k, batch_size = config.disc_steps, config.batch_size
    d_root, g_key = jax.random.split(jax.random.fold_in(noise_key, state.step))
    first = _critic_updates_before(state.step, k)

    def critic_update(i, state):
        idx = indices(first + i)
        return discriminator_update(gan, state, images[idx], jax.random.fold_in(d_root, i),
                                    batch_sharding, _take(labels, idx))

    state, d_metrics = critic_update(0, state)
    state, d_metrics = jax.lax.fori_loop(
        1, warmup_critic_steps(state.step, k), lambda i, c: critic_update(i, c[0]),
        (state, d_metrics))
    state, g_metrics = generator_update(gan, state, batch_size, g_key, batch_sharding)
    return state.replace(step=state.step + 1), {**d_metrics, **g_metrics}


def donates_state(backend: Optional[str] = None) -> bool:
    """Whether the compiled steps donate their input state (``backend``: default JAX's).

    Not on the CPU: there XLA's copy insertion turns the in-place optimizer update of a donated
    state into copies of the parameters and Adam moments before the update (the fused update
    recomputes the new moment from the old one, whose buffer the new one overwrites), and the
    thesis step ran 12-25% faster without donation (same arithmetic, same results, see README
    "Speed"). On accelerators donation keeps a single copy of the state in device memory.
    """
    return (backend or jax.default_backend()) != "cpu"


def _step_body(config: Config, state: GANState, key: jax.Array, images: jax.Array,
               labels: Optional[jax.Array], epoch_orders: data_lib.EpochOrders
               ) -> tuple[GANState, Metrics]:
    return train_step_fn(config, state, key, images, labels=labels, epoch_orders=epoch_orders)


_train_step = jax.jit(_step_body, static_argnums=0)
_train_step_donating = jax.jit(_step_body, static_argnums=0, donate_argnums=1)


@functools.lru_cache(maxsize=None)
def _sharded_train_step(config: Config, mesh: jax.sharding.Mesh) -> Callable:
    """The step compiled for ``mesh``: replicated state, key, images and metrics; batches
    sharded over ``"data"`` inside. Cached per (config, mesh), like ``_train_step`` per config."""
    replicated = parallel.replicated(mesh)
    batch_sharding = parallel.batch_sharded(mesh)

    def body(state, key, images, labels, epoch_orders):
        return train_step_fn(config, state, key, images, labels=labels,
                             batch_sharding=batch_sharding, epoch_orders=epoch_orders)

    return jax.jit(body, in_shardings=(replicated,) * 5,
                   out_shardings=(replicated, replicated),
                   donate_argnums=0 if donates_state(mesh.devices.flat[0].platform) else ())


def make_train_step(config: Config, images: Any, mesh: Optional[jax.sharding.Mesh] = None,
                    labels: Any = None
                    ) -> Callable[[GANState, jax.Array], tuple[GANState, Metrics]]:
    """Returns the compiled ``train_step(state, key) -> (state, metrics)``.

    Args:
      config: the run's configuration (static: bound before ``jax.jit``; runs that differ only
        in workdir, length or reporting share one compilation).
      images: the training set, float32 ``[N, H, W, C]`` in [-1, 1]. It is put on the device
        once and passed to the compiled step as an argument (not baked in as a constant);
        minibatches are gathered inside the step.
      mesh: optional 1-D device mesh with axis ``"data"`` (:func:`gan_jax.parallel.data_mesh`).
        None (default): the single-device step. With a mesh the step is data parallel: the
        state, key and metrics are replicated on every device (pass the state and key through
        :func:`gan_jax.parallel.replicate` to avoid a transfer per call), each real minibatch
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
    static = config.computation()
    if labels is not None:
        labels = np.asarray(labels, np.int32)
    _check_labels(config, images, labels)
    if mesh is None:
        images = jnp.asarray(images, jnp.float32)
        labels = None if labels is None else jnp.asarray(labels)
        compiled = _train_step_donating if donates_state() else _train_step
        return EpochOrderedStep(
            lambda state, key, orders: compiled(static, state, key, images, labels, orders),
            static, images.shape[0], training_epoch_orders)

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
    sharded_step = _sharded_train_step(static, mesh)
    return EpochOrderedStep(
        lambda state, key, orders: sharded_step(state, key, images, labels, orders),
        static, images.shape[0], orders_fn)


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
    """

    def __init__(self, compiled: Callable, config: Config, num_examples: int,
                 orders_fn: Callable, step_of: Callable[[Any], int] = lambda s: int(s.step)):
        self._compiled, self._config = compiled, config
        self._orders_fn, self._step_of = orders_fn, step_of
        self._num_examples = num_examples
        self._per_epoch = self._num_examples // config.batch_size
        self._num_epochs = data_lib.epochs_spanned(
            max_batches_per_step(config), self._num_examples, config.batch_size)
        self._last_state: Optional[GANState] = None
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

    def __call__(self, state: GANState, key: jax.Array) -> tuple[GANState, Metrics]:
        step = self._next_step if state is self._last_state else self._step_of(state)
        first, count = batch_range(self._config, step)
        first_epoch = first // self._per_epoch
        if (first + count - 1) // self._per_epoch - first_epoch >= self._num_epochs:
            raise AssertionError("a step draws from more epochs than were precomputed")
        orders = self._epoch_orders(key, first_epoch)
        state, metrics = self._compiled(state, key, orders)
        self._last_state, self._next_step = state, step + 1
        return state, metrics
