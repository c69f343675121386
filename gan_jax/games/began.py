"""BEGAN (Berthelot, Schumm & Metz 2017): boundary equilibrium with an autoencoder D.

D is an autoencoder scored by its per-pixel L1 reconstruction error L(v) = mean |v - D(v)|:

  L_D = L(x) - k_t L(G(z_D)),        L_G = L(G(z_G)),
  k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1),  k_0 = 0,
  M_global = L(x) + |gamma L(x) - L(G(z))|   (the convergence measure).

One iteration (:func:`began_step`): one real minibatch and a fresh z_D update D; a fresh z_G
updates G against the *updated* D (the paper's separate z_D and z_G; the reference code updates
both networks at once from one z); then k is updated from L(x) and L(G(z_D)) of D's pass, so
the balance compares reals and fakes under one discriminator, as the paper's simultaneous
update does (L(G(z_G)) under the updated D is biased high by D's step). k_t lives in the
state, so it is checkpointed and resumed bitwise with the rest.

Learning rate: Adam's, halved every ``lr_halve_every`` steps down to ``lr_floor`` (the
reference code's fixed-step halving with its lower boundary; the paper halves "when M stalls").

Defaults for MNIST on a CPU (the reference's are for 64x64 faces: n = 128, batch 16, lr 8e-5
halved every 100k of 500k steps, gamma 0.5, lambda_k 0.001): n = 16 filters, h = z = 64,
batch 64, Adam(1e-4, 0.5, 0.999) halved every 5000 steps to 2e-5, gamma 2.0, lambda_k 0.001,
and a G with BatchNorm and a tanh output (arch ``began``). On MNIST the L1 error grows with a
digit's ink, so a G of thin "1"s meets gamma <= 1 with a small k and the game collapses; gamma
above the paper's [0, 1] keeps k pushing, and BatchNorm in G keeps a batch diverse (measured in
docs/began.md). ``--arch=began_reference`` is the reference's G (no normalisation, linear
output) with the settings used for it before (batch 16, lr 2e-4 halved every 1000 steps,
gamma 0.9, lambda_k 0.01), which collapses onto "1"s.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from gan_jax import plotting
from gan_jax.config import Config
from gan_jax.games import base, ema as ema_lib, priors
from gan_jax.models import architectures as models

DEFAULTS = {"arch": "began", "latent_dim": 64, "batch_size": 64, "learning_rate": 1e-4,
            "b1": 0.5, "b2": 0.999, "gamma": 2.0, "lambda_k": 0.001, "lr_halve_every": 5000,
            "lr_floor": 2e-5}


class BEGANState(struct.PyTreeNode):
    """Everything that changes while training BEGAN.

    Attributes:
      step: int32 scalar, completed iterations (= generator updates).
      g_params, d_params: parameters of G (a decoder) and D (an autoencoder).
      g_opt_state, d_opt_state: their Adam states.
      g_batch_stats: G's BatchNorm running averages (``{}`` for a G without BatchNorm).
      k: float32 scalar, the equilibrium variable k_t in [0, 1].
      g_ema_params: the averaged generator's parameters (``--ema_decay``; ``{}`` when off).
    """

    step: jax.Array
    g_params: Any
    d_params: Any
    g_opt_state: Any
    d_opt_state: Any
    g_batch_stats: Any
    k: jax.Array
    g_ema_params: Any


def reconstruction_loss(images: jax.Array, reconstructions: jax.Array) -> jax.Array:
    """L(v) = mean |v - D(v)| over the batch and every pixel (a float32 scalar)."""
    return jnp.mean(jnp.abs(images - reconstructions))


def discriminator_loss(real_loss: jax.Array, fake_loss: jax.Array, k: jax.Array) -> jax.Array:
    """L_D = L(x) - k_t L(G(z))."""
    return real_loss - k * fake_loss


def update_k(k: jax.Array, real_loss: jax.Array, fake_loss: jax.Array, gamma: float,
             lambda_k: float) -> jax.Array:
    """k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1)."""
    return jnp.clip(k + lambda_k * (gamma * real_loss - fake_loss), 0.0, 1.0)


def convergence_measure(real_loss: jax.Array, fake_loss: jax.Array, gamma: float) -> jax.Array:
    """M_global = L(x) + |gamma L(x) - L(G(z))|."""
    return real_loss + jnp.abs(gamma * real_loss - fake_loss)


def halving_schedule(learning_rate: Any, halve_every: int, floor: float) -> Callable:
    """count -> max(learning_rate * 0.5^(count // halve_every), floor), for optax."""

    def schedule(count):
        return jnp.maximum(learning_rate * 0.5 ** (count // halve_every), floor)

    return schedule


@dataclasses.dataclass(frozen=True)
class BEGAN(base.LatentGeneratorGame):
    """The static half of a BEGAN run (the game interface of :mod:`gan_jax.games.base`)."""

    generator: nn.Module
    discriminator: nn.Module
    g_optimizer: optax.GradientTransformation
    d_optimizer: optax.GradientTransformation
    prior: Callable[[jax.Array, tuple[int, ...]], jax.Array]
    latent_dim: int
    image_shape: tuple[int, int, int]
    gamma: float
    lambda_k: float
    batch_size: int
    ema: Optional[ema_lib.GeneratorEMA] = None
    num_classes: Optional[int] = None  # unconditional only
    compute_dtype: Any = jnp.float32  # of the training passes (base.apply_train)
    max_batches_per_step: int = 1
    progress = (("d_loss", "d_loss"), ("g_loss", "g_loss"), ("k", "k"),
                ("m_global", "M_global"))

    def sample_labels(self, key: jax.Array, num: int) -> None:
        return None

    def batch_range(self, step):
        return step, 1

    def init(self, key: jax.Array) -> BEGANState:
        g_key, d_key = jax.random.split(key)
        g_vars = self.generator.init(g_key, jnp.zeros((2, self.latent_dim)))
        g_params = g_vars["params"]
        d_params = self.discriminator.init(d_key, jnp.zeros((2, *self.image_shape)))["params"]
        return BEGANState(step=jnp.zeros((), jnp.int32), g_params=g_params, d_params=d_params,
                          g_opt_state=self.g_optimizer.init(g_params),
                          d_opt_state=self.d_optimizer.init(d_params),
                          g_batch_stats=g_vars.get("batch_stats", {}),
                          k=jnp.zeros((), jnp.float32),
                          g_ema_params=g_params if self.ema is not None else {})

    def train_step(self, state: BEGANState, key: jax.Array, batches: base.Batches
                   ) -> tuple[BEGANState, base.Metrics]:
        return began_step(self, state, key, batches)

    def generate(self, variables: dict, z: jax.Array, labels: None = None) -> jax.Array:
        """G(z) clipped to the data range [-1, 1] (a no-op with tanh; the reference G has no
        output nonlinearity)."""
        return jnp.clip(super().generate(variables, z, labels), -1.0, 1.0)

    def plot_curves(self, rows: list[dict], path: str) -> None:
        plotting.plot_began_curves(rows, path, self.gamma)


def _reconstruct(game: BEGAN, d_params: Any, images: jax.Array) -> jax.Array:
    return base.apply_train(game.discriminator, d_params, {}, images,
                            dtype=game.compute_dtype)[0]


def began_step(game: BEGAN, state: BEGANState, key: jax.Array, batches: base.Batches
               ) -> tuple[BEGANState, base.Metrics]:
    """One BEGAN iteration (module docstring). Metrics: ``d_loss``, ``g_loss``, ``real_loss``
    = L(x), ``fake_loss`` = L(G(z_D)) (D's pass), ``k`` (k_{t+1}), ``m_global``."""
    d_key, g_key = jax.random.split(jax.random.fold_in(key, state.step))
    real, _ = batches.take(state.step)
    real = batches.shard(real)
    fake, g_batch_stats = base.apply_train(
        game.generator, state.g_params, state.g_batch_stats,
        batches.shard(game.sample_z(d_key, real.shape[0])), dtype=game.compute_dtype)
    fake = jax.lax.stop_gradient(fake)

    def d_loss_fn(d_params):
        real_loss = reconstruction_loss(real, _reconstruct(game, d_params, real))
        fake_loss = reconstruction_loss(fake, _reconstruct(game, d_params, fake))
        return discriminator_loss(real_loss, fake_loss, state.k), (real_loss, fake_loss)

    (d_loss, (real_loss, d_fake_loss)), d_grads = jax.value_and_grad(
        d_loss_fn, has_aux=True)(state.d_params)
    d_params, d_opt_state = base.descend(game.d_optimizer, d_grads, state.d_opt_state,
                                         state.d_params)
    z = batches.shard(game.sample_z(g_key, batches.batch_size))

    def g_loss_fn(g_params):
        fake, stats = base.apply_train(game.generator, g_params, g_batch_stats, z,
                                       dtype=game.compute_dtype)
        return reconstruction_loss(fake, _reconstruct(game, d_params, fake)), stats

    (g_loss, g_batch_stats), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(
        state.g_params)
    g_params, g_opt_state = base.descend(game.g_optimizer, g_grads, state.g_opt_state,
                                         state.g_params)
    # The balance is measured under ONE discriminator (D's pass: L(x) and L(G(z_D)) before its
    # update), as in the paper's simultaneous update; G's L(G(z_G)) under the updated D would
    # bias it low (D's step has just lowered L(x) and raised L(G(z))) and pin k at 0.
    k = update_k(state.k, real_loss, d_fake_loss, game.gamma, game.lambda_k)
    g_ema_params = state.g_ema_params
    if game.ema is not None:
        g_ema_params = game.ema.update(g_ema_params, g_params, state.step)
    state = state.replace(step=state.step + 1, g_params=g_params, d_params=d_params,
                          g_opt_state=g_opt_state, d_opt_state=d_opt_state,
                          g_batch_stats=g_batch_stats, k=k,
                          g_ema_params=g_ema_params)
    return state, {"d_loss": d_loss, "g_loss": g_loss, "real_loss": real_loss,
                   "fake_loss": d_fake_loss, "k": k,
                   "m_global": convergence_measure(real_loss, d_fake_loss, game.gamma)}


def build_began(config: Config, learning_rate: Optional[Any] = None) -> BEGAN:
    """The BEGAN game ``config`` describes (``learning_rate`` may be traced, as for sweeps)."""
    arch = models.get_architecture(config.arch)
    lr = config.learning_rate if learning_rate is None else learning_rate
    schedule = halving_schedule(lr, config.lr_halve_every, config.lr_floor)
    optimizer = lambda: optax.adam(schedule, b1=config.b1, b2=config.b2)  # noqa: E731
    return BEGAN(
        generator=arch.generator(),
        discriminator=arch.discriminator(hidden=config.latent_dim),
        g_optimizer=optimizer(),
        d_optimizer=optimizer(),
        prior=priors.get_prior(config.prior),
        latent_dim=config.latent_dim,
        image_shape=arch.image_shape,
        gamma=config.gamma,
        lambda_k=config.lambda_k,
        batch_size=config.batch_size,
        ema=(ema_lib.GeneratorEMA(config.ema_decay, config.ema_warmup) if config.ema_decay
             else None),
        compute_dtype=jnp.dtype(config.compute_dtype),
    )


base.register_game("began", build_began, DEFAULTS)
