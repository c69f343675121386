"""GAN objectives as pure functions of discriminator logits, registered by ``--objective``.

Notation: ``real_logits = D(x)`` and ``fake_logits = D(G(z))`` before the sigmoid, so
``log D = log_sigmoid(l) = -softplus(-l)`` and ``log(1 - D) = log_sigmoid(-l) = -softplus(l)``.
Everything goes through softplus, never ``log(sigmoid(.))``: finite for any finite logit.

Value of the game (Goodfellow et al. 2014, eq. 1):
    V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))].
The discriminator ascends V, i.e. minimises the binary cross-entropy
    L_D = E_x[softplus(-D(x))] + E_z[softplus(D(G(z)))].
The generator either
  * ``minimax``: descends E_z[log(1 - D(G(z)))] = -E_z[softplus(D(G(z)))] (the saturating loss
    of the minimax game; its gradient vanishes when D confidently rejects the fakes), or
  * ``nonsaturating``: ascends E_z[log D(G(z))], i.e. minimises E_z[softplus(-D(G(z)))]
    (Goodfellow et al. 2014, Sec. 3; seed 000 eq. 1.39).

Objectives whose network is a *critic* (its output is a score, not the logit of a probability):
  * ``wgan`` (Arjovsky et al. 2017): the critic f maximises E_x[f(x)] - E_z[f(G(z))], i.e.
    minimises ``mean(f(G(z))) - mean(f(x))``; G minimises ``-mean(f(G(z)))``. The Lipschitz
    constraint is weight clipping (a projection applied by the train step after every critic
    update, :func:`clip_params`); RMSProp lr 5e-5, c = 0.01, batch 64, n_critic 5.
  * ``wgan-gp`` (Gulrajani et al. 2017): the same losses plus lambda E[(||grad f(xhat)||_2 - 1)^2]
    on per-example interpolates xhat (:func:`gradient_penalty`, added by the train step);
    Adam lr 1e-4, betas (0, 0.9), lambda 10, n_critic 5; no BatchNorm in the critic.
  * ``lsgan`` (Mao et al. 2017, the 0-1 coding a = 0, b = c = 1): D minimises
    ``1/2 mean((D(x) - 1)^2) + 1/2 mean(D(G(z))^2)``, G minimises ``1/2 mean((D(G(z)) - 1)^2)``
    on the raw (linear) outputs.
  * ``hinge`` (Lim & Ye 2017; Miyato et al. 2018): D minimises ``mean(relu(1 - D(x))) +
    mean(relu(1 + D(G(z))))``, G minimises ``-mean(D(G(z)))``.

Each objective carries the optimiser settings of its paper (:attr:`Objective.defaults`); those
without (the Goodfellow family) use the architecture's (see :mod:`gan_jax.config`).
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from gan_jax import registry


def bce_discriminator_loss(*, real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """-V(D, G): ``mean(softplus(-real_logits)) + mean(softplus(fake_logits))``. Scalar."""
    return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def minimax_generator_loss(*, fake_logits: jax.Array) -> jax.Array:
    """E_z[log(1 - D(G(z)))] = ``-mean(softplus(fake_logits))``, minimised by G. Scalar."""
    return -jnp.mean(jax.nn.softplus(fake_logits))


def nonsaturating_generator_loss(*, fake_logits: jax.Array) -> jax.Array:
    """-E_z[log D(G(z))] = ``mean(softplus(-fake_logits))``, minimised by G. Scalar."""
    return jnp.mean(jax.nn.softplus(-fake_logits))


def wasserstein_critic_loss(*, real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """-(E_x[f(x)] - E_z[f(G(z))]) = ``mean(fake) - mean(real)``, minimised by the critic."""
    return jnp.mean(fake_logits) - jnp.mean(real_logits)


def wasserstein_generator_loss(*, fake_logits: jax.Array) -> jax.Array:
    """-E_z[f(G(z))] = ``-mean(fake_logits)``, minimised by G (also hinge's G loss)."""
    return -jnp.mean(fake_logits)


def least_squares_discriminator_loss(*, real_logits: jax.Array, fake_logits: jax.Array
                                     ) -> jax.Array:
    """LSGAN: ``1/2 mean((real - 1)^2) + 1/2 mean(fake^2)`` on raw outputs."""
    return 0.5 * jnp.mean(jnp.square(real_logits - 1.0)) + 0.5 * jnp.mean(jnp.square(fake_logits))


def least_squares_generator_loss(*, fake_logits: jax.Array) -> jax.Array:
    """LSGAN: ``1/2 mean((fake - 1)^2)``."""
    return 0.5 * jnp.mean(jnp.square(fake_logits - 1.0))


def hinge_discriminator_loss(*, real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """``mean(relu(1 - real)) + mean(relu(1 + fake))``."""
    return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))


def gradient_penalty(critic: Callable[[jax.Array], jax.Array], real: jax.Array, fake: jax.Array,
                     key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """WGAN-GP's E[(||grad_xhat f(xhat)||_2 - 1)^2] and the mean gradient norm.

    xhat_i = e_i x_i + (1 - e_i) G(z_i) with one e_i ~ U[0, 1] per example. ``critic`` maps a
    batch [B, ...] to scores [B] and must treat examples independently (no BatchNorm), so the
    gradient of ``sum(critic(xhat))`` w.r.t. ``xhat`` holds each example's own gradient in its
    row. Differentiable in the critic's parameters (closed over by ``critic``).
    """
    eps = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
    xhat = eps * real + (1.0 - eps) * fake
    grads = jax.grad(lambda x: jnp.sum(critic(x)))(xhat)
    norms = jnp.sqrt(jnp.sum(jnp.square(grads.reshape(grads.shape[0], -1)), axis=1))
    return jnp.mean(jnp.square(norms - 1.0)), jnp.mean(norms)


def clip_params(params: Any, clip: float) -> Any:
    """WGAN's projection: every parameter of the critic clipped to [-clip, clip]."""
    return jax.tree.map(lambda p: jnp.clip(p, -clip, clip), params)


@dataclasses.dataclass(frozen=True)
class Objective:
    """One generator loss and one discriminator loss, both functions of D's outputs only.

    Attributes:
      probabilistic: D's output is the logit of P(real) (the Goodfellow family): metrics report
        sigmoids, and D(G(z)) -> 1/2 is the equilibrium. False for critics (scores).
      defaults: the paper's settings of this objective, applied unless a flag overrides them
        (keys are :class:`gan_jax.config.Config` fields); empty: the architecture's settings.
      weight_clipping: clip the critic's parameters to [-clip, clip] after each update (WGAN).
      gradient_penalty: add ``gp_weight`` times :func:`gradient_penalty` to the critic loss.
    """

    discriminator_loss: Callable[..., jax.Array]
    generator_loss: Callable[..., jax.Array]
    probabilistic: bool = True
    defaults: Mapping[str, Any] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({}))
    weight_clipping: bool = False
    gradient_penalty: bool = False


def _frozen(**values) -> Mapping[str, Any]:
    return types.MappingProxyType(values)


OBJECTIVES: dict[str, Objective] = {
    "minimax": Objective(bce_discriminator_loss, minimax_generator_loss),
    "nonsaturating": Objective(bce_discriminator_loss, nonsaturating_generator_loss),
    # Arjovsky et al. 2017, Algorithm 1 defaults.
    "wgan": Objective(wasserstein_critic_loss, wasserstein_generator_loss, probabilistic=False,
                      defaults=_frozen(optimizer="rmsprop", learning_rate=5e-5, batch_size=64,
                                       disc_steps=5, clip=0.01),
                      weight_clipping=True),
    # Gulrajani et al. 2017, Algorithm 1 defaults.
    "wgan-gp": Objective(wasserstein_critic_loss, wasserstein_generator_loss,
                         probabilistic=False,
                         defaults=_frozen(optimizer="adam", learning_rate=1e-4, b1=0.0, b2=0.9,
                                          batch_size=64, disc_steps=5, gp_weight=10.0),
                         gradient_penalty=True),
    "lsgan": Objective(least_squares_discriminator_loss, least_squares_generator_loss,
                       probabilistic=False),
    "hinge": Objective(hinge_discriminator_loss, wasserstein_generator_loss,
                       probabilistic=False),
}


def get_objective(name: str) -> Objective:
    """Looks up ``--objective``; an unknown name lists the valid ones."""
    return registry.lookup(OBJECTIVES, "objective", name)
