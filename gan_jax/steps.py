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
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import optax

from gan_jax import data as data_lib
from gan_jax.config import Config
from gan_jax.state import GAN, GANState, build_gan

Metrics = dict[str, jax.Array]


def _apply(module, params, batch_stats, x):
    """Train-mode forward; returns (output, new batch_stats) (``{}`` stays ``{}``)."""
    if not batch_stats:
        return module.apply({"params": params}, x, train=True), batch_stats
    out, updates = module.apply(
        {"params": params, "batch_stats": batch_stats}, x, train=True, mutable=["batch_stats"])
    return out, updates["batch_stats"]


def _optimizer_step(optimizer, grads, opt_state, params):
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def discriminator_update(gan: GAN, state: GANState, real: jax.Array, key: jax.Array
                         ) -> tuple[GANState, Metrics]:
    """One D step on ``real`` [B, H, W, C] and a fresh batch of fakes G(z), z from ``key``."""
    z = gan.sample_z(key, real.shape[0])
    fake, g_batch_stats = _apply(gan.generator, state.g_params, state.g_batch_stats, z)
    fake = jax.lax.stop_gradient(fake)

    def loss_fn(d_params):
        real_logits, d_stats = _apply(gan.discriminator, d_params, state.d_batch_stats, real)
        fake_logits, d_stats = _apply(gan.discriminator, d_params, d_stats, fake)
        loss = gan.objective.discriminator_loss(real_logits=real_logits, fake_logits=fake_logits)
        return loss, (d_stats, real_logits, fake_logits)

    (loss, (d_stats, real_logits, fake_logits)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.d_params)
    d_params, d_opt_state = _optimizer_step(gan.d_optimizer, grads, state.d_opt_state,
                                            state.d_params)
    state = state.replace(d_params=d_params, d_batch_stats=d_stats, d_opt_state=d_opt_state,
                          g_batch_stats=g_batch_stats)
    metrics = {
        "d_loss": loss,
        "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
        "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits)),
    }
    return state, metrics


def generator_update(gan: GAN, state: GANState, batch_size: int, key: jax.Array
                     ) -> tuple[GANState, Metrics]:
    """One G step on fresh z against the current (already updated) discriminator."""
    z = gan.sample_z(key, batch_size)

    def loss_fn(g_params):
        # Fakes are made inside the differentiated function, so gradients reach G.
        fake, g_stats = _apply(gan.generator, g_params, state.g_batch_stats, z)
        # D's statistics from this pass are discarded: D is only trained in its own step.
        fake_logits, _ = _apply(gan.discriminator, state.d_params, state.d_batch_stats, fake)
        return gan.objective.generator_loss(fake_logits=fake_logits), (g_stats, fake_logits)

    (loss, (g_stats, fake_logits)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.g_params)
    g_params, g_opt_state = _optimizer_step(gan.g_optimizer, grads, state.g_opt_state,
                                            state.g_params)
    state = state.replace(g_params=g_params, g_batch_stats=g_stats, g_opt_state=g_opt_state)
    return state, {"g_loss": loss, "g_d_fake": jnp.mean(jax.nn.sigmoid(fake_logits))}


def train_step_fn(config: Config, state: GANState, key: jax.Array, images: jax.Array,
                  learning_rate: Optional[jax.Array] = None) -> tuple[GANState, Metrics]:
    """Un-jitted body of one Algorithm 1 iteration; ``images`` is the whole training set.

    ``learning_rate`` optionally overrides ``config.learning_rate`` with a (traced) scalar.

    Metrics (float32 scalars): ``d_loss``, ``d_real`` = mean D(x) and ``d_fake`` = mean
    D(G(z)) from the last discriminator update (before it is applied), ``g_loss`` and
    ``g_d_fake`` = mean D(G(z)) seen by the generator update (after D was updated).
    """
    gan = build_gan(config, learning_rate)
    k, batch_size = config.disc_steps, config.batch_size
    data_key, noise_key = jax.random.split(key)
    keys = jax.random.split(jax.random.fold_in(noise_key, state.step), k + 1)
    for i in range(k):  # k is small and static; unrolled.
        idx = data_lib.batch_indices(data_key, state.step * k + i, images.shape[0], batch_size)
        state, d_metrics = discriminator_update(gan, state, images[idx], keys[i])
    state, g_metrics = generator_update(gan, state, batch_size, keys[k])
    return state.replace(step=state.step + 1), {**d_metrics, **g_metrics}


@functools.partial(jax.jit, static_argnums=0, donate_argnums=1)
def _train_step(config: Config, state: GANState, key: jax.Array, images: jax.Array
                ) -> tuple[GANState, Metrics]:
    return train_step_fn(config, state, key, images)


def make_train_step(config: Config, images: Any
                    ) -> Callable[[GANState, jax.Array], tuple[GANState, Metrics]]:
    """Returns the compiled ``train_step(state, key) -> (state, metrics)``.

    Args:
      config: the run's configuration (static: bound before ``jax.jit``; runs that differ only
        in workdir, length or reporting share one compilation).
      images: the training set, float32 ``[N, H, W, C]`` in [-1, 1]. It is put on the device
        once and passed to the compiled step as an argument (not baked in as a constant);
        minibatches are gathered inside the step.

    The input ``state`` is donated: do not use it after the call.
    """
    if images.shape[0] < config.batch_size:
        raise ValueError(
            f"batch_size {config.batch_size} exceeds the {images.shape[0]} training images")
    images = jnp.asarray(images, jnp.float32)
    static = config.computation()

    def train_step(state: GANState, key: jax.Array) -> tuple[GANState, Metrics]:
        return _train_step(static, state, key, images)

    return train_step
