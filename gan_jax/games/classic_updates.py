"""The classic game's updates: Algorithm 1 of Goodfellow et al. (2014).

One iteration (:func:`classic_step`):

  for i in 1..k (``disc_steps``):
      draw a fresh real minibatch and fresh z; update D by descending L_D
  draw fresh z; update G by descending its objective against the *updated* D.

Randomness is derived, never reused: the step's noise key is folded with ``state.step`` and
split into one key per update. BatchNorm: every network runs in train mode inside the step
(batch statistics); the running averages in ``g_batch_stats`` / ``d_batch_stats`` are updated
by each forward pass, as PyTorch does, and are what sampling uses.

:func:`discriminator_update` and :func:`generator_update` are public, so that a researcher can
compose them in a loop of their own (README).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from gan_jax.games import losses
from gan_jax.games.base import Batches, Metrics, apply_train, descend
from gan_jax.games.classic import GAN, GANState

def _dropout_keys(key: jax.Array, num: int) -> jax.Array:
    # Folded off the update's key, so that the z drawn from ``key`` itself (and with it every
    # result of dropout-free networks) does not depend on whether a network uses dropout.
    return jax.random.split(jax.random.fold_in(key, 1), num)


def _shard_batch(x: jax.Array, batch_sharding: Optional[jax.sharding.Sharding]) -> jax.Array:
    """``x`` constrained to ``batch_sharding`` (batch axis over devices); unchanged if None."""
    if batch_sharding is None:
        return x
    return jax.lax.with_sharding_constraint(x, batch_sharding)


def discriminator_update(gan: GAN, state: GANState, real: jax.Array, key: jax.Array,
                         batch_sharding: Optional[jax.sharding.Sharding] = None,
                         labels: Optional[jax.Array] = None) -> tuple[GANState, Metrics]:
    """One D step on ``real`` [B, H, W, C] and a fresh batch of fakes G(z), z from ``key``.

    ``batch_sharding`` (inside a jit over a mesh): the sharding of ``real`` and z, normally
    :func:`gan_jax.training.parallel.batch_sharded`; None leaves placement to the compiler.
    ``labels`` (conditional GANs): the classes ``[B]`` of ``real``; the fakes are G(z, labels),
    so both halves of D's batch have the same class mix (:mod:`gan_jax.models.conditional`).
    """
    if (labels is None) != (gan.num_classes is None):
        raise ValueError("a conditional GAN needs the real minibatch's labels, an "
                         "unconditional one takes none")
    real = _shard_batch(real, batch_sharding)
    if labels is not None:
        labels = _shard_batch(labels, batch_sharding)
    z = _shard_batch(gan.sample_z(key, real.shape[0]), batch_sharding)
    fake, g_batch_stats = _apply(gan, gan.generator, state.g_params, state.g_batch_stats, z,
                                 labels=labels)
    fake = jax.lax.stop_gradient(fake)
    dropout_real, dropout_fake = _dropout_keys(key, 2)
    objective = gan.objective

    def loss_fn(d_params):
        real_logits, d_stats = _apply(gan, gan.discriminator, d_params, state.d_batch_stats, real,
                                      dropout_real, labels)
        fake_logits, d_stats = _apply(gan, gan.discriminator, d_params, d_stats, fake, dropout_fake,
                                      labels)
        loss = objective.discriminator_loss(real_logits=real_logits, fake_logits=fake_logits)
        aux = {}
        if objective.gradient_penalty:
            # The critic has no BatchNorm here (models.discriminator_for), so it is a
            # per-example function and the penalty's gradient rows are per-example gradients.
            # Conditional: real and fake share ``labels``, and so do their interpolates.
            critic = lambda x: _apply(gan, gan.discriminator, d_params, d_stats, x,  # noqa: E731
                                      jax.random.fold_in(key, 3), labels)[0]
            penalty, grad_norm = losses.gradient_penalty(
                critic, real, fake, jax.random.fold_in(key, 2))
            aux = {"gradient_penalty": penalty, "critic_grad_norm": grad_norm}
            loss = loss + gan.gp_weight * penalty
        return loss, (d_stats, real_logits, fake_logits, aux)

    (loss, (d_stats, real_logits, fake_logits, aux)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.d_params)
    d_params, d_opt_state = descend(gan.d_optimizer, grads, state.d_opt_state,
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


def _apply(gan: GAN, module, *args, **kwargs):
    """:func:`apply_train` in the game's compute dtype."""
    return apply_train(module, *args, dtype=gan.compute_dtype, **kwargs)


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
        fake, g_stats = _apply(gan, gan.generator, g_params, state.g_batch_stats, z, labels=labels)
        # D's statistics from this pass are discarded: D is only trained in its own step.
        fake_logits, _ = _apply(gan, gan.discriminator, state.d_params, state.d_batch_stats, fake,
                                _dropout_keys(key, 1)[0], labels)
        return gan.objective.generator_loss(fake_logits=fake_logits), (g_stats, fake_logits)

    (loss, (g_stats, fake_logits)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.g_params)
    g_params, g_opt_state = descend(gan.g_optimizer, grads, state.g_opt_state,
                                    state.g_params)
    state = state.replace(g_params=g_params, g_batch_stats=g_stats, g_opt_state=g_opt_state)
    if gan.ema is not None:
        # The average follows G's own updates; ``state.step`` (not yet incremented) is the
        # number of generator updates before this one.
        state = state.replace(g_ema_params=gan.ema.update(state.g_ema_params, g_params,
                                                          state.step))
    return state, {"g_loss": loss, "g_d_fake": _mean_output(gan.objective, fake_logits)}


WARMUP_CRITIC_STEPS = 100  # WGAN code: Diters = 100 if gen_iterations < 25 or % 500 == 0
WARMUP_GENERATOR_STEPS = 25
WARMUP_EVERY = 500


# The warm-up schedule in plain arithmetic on ``step``, so that the same code counts on traced
# int32 steps inside the compiled step and on Python ints on the host (``GAN.batch_range``).
def warmup_critic_steps(step, k: int):
    """Critic updates before generator update ``step`` under the WGAN warm-up schedule."""
    warm = (step < WARMUP_GENERATOR_STEPS) | (step % WARMUP_EVERY == 0)
    return k + (WARMUP_CRITIC_STEPS - k) * warm


def critic_updates_before(step, k: int):
    """Total critic updates in generator steps 0..step-1 (closed form of the schedule)."""
    after_start = step > WARMUP_GENERATOR_STEPS
    # min(step, 25) + (number of multiples of 500 in 1..step-1, counted past the start);
    # (step - 1) // 500 is only negative at step 0, where after_start is 0.
    warm = (step - (step - WARMUP_GENERATOR_STEPS) * after_start
            + (step - 1) // WARMUP_EVERY * after_start)
    return k * step + (WARMUP_CRITIC_STEPS - k) * warm


def classic_step(gan: GAN, state: GANState, key: jax.Array, batches: Batches
                 ) -> tuple[GANState, Metrics]:
    """One Algorithm 1 iteration: ``disc_steps`` D updates, then one G update.

    ``key`` is the step's noise key (folded with ``state.step`` here). Metrics (float32
    scalars): ``d_loss``, ``d_real`` = mean D(x) and ``d_fake`` = mean D(G(z)) from the last
    discriminator update (before it is applied), ``g_loss`` and ``g_d_fake`` = mean D(G(z))
    seen by the generator update (after D was updated).
    """
    if gan.wgan_warmup:
        return _warmup_step(gan, state, key, batches)
    k = gan.disc_steps
    keys = jax.random.split(jax.random.fold_in(key, state.step), k + 1)
    for i in range(k):  # k is small and static; unrolled.
        real, labels = batches.take(state.step * k + i)
        state, d_metrics = discriminator_update(gan, state, real, keys[i], batches.sharding,
                                                labels)
    state, g_metrics = generator_update(gan, state, batches.batch_size, keys[k],
                                        batches.sharding)
    return state.replace(step=state.step + 1), {**d_metrics, **g_metrics}


def _warmup_step(gan: GAN, state: GANState, key: jax.Array, batches: Batches
                 ) -> tuple[GANState, Metrics]:
    """One iteration with the WGAN code's schedule: 100 critic updates for each of the first 25
    generator updates and every 500th, ``disc_steps`` otherwise (a ``fori_loop`` with a
    traced trip count). Real minibatches continue the same epoch stream as without warm-up."""
    k = gan.disc_steps
    d_root, g_key = jax.random.split(jax.random.fold_in(key, state.step))
    first = critic_updates_before(state.step, k)

    def critic_update(i, state):
        real, labels = batches.take(first + i)
        return discriminator_update(gan, state, real, jax.random.fold_in(d_root, i),
                                    batches.sharding, labels)

    state, d_metrics = critic_update(0, state)
    state, d_metrics = jax.lax.fori_loop(
        1, warmup_critic_steps(state.step, k), lambda i, c: critic_update(i, c[0]),
        (state, d_metrics))
    state, g_metrics = generator_update(gan, state, batches.batch_size, g_key, batches.sharding)
    return state.replace(step=state.step + 1), {**d_metrics, **g_metrics}
