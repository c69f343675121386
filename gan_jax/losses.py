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
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax

from gan_jax import registry
import jax.numpy as jnp


def bce_discriminator_loss(*, real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """-V(D, G): ``mean(softplus(-real_logits)) + mean(softplus(fake_logits))``. Scalar."""
    return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def minimax_generator_loss(*, fake_logits: jax.Array) -> jax.Array:
    """E_z[log(1 - D(G(z)))] = ``-mean(softplus(fake_logits))``, minimised by G. Scalar."""
    return -jnp.mean(jax.nn.softplus(fake_logits))


def nonsaturating_generator_loss(*, fake_logits: jax.Array) -> jax.Array:
    """-E_z[log D(G(z))] = ``mean(softplus(-fake_logits))``, minimised by G. Scalar."""
    return jnp.mean(jax.nn.softplus(-fake_logits))


@dataclasses.dataclass(frozen=True)
class Objective:
    """One generator loss and one discriminator loss, both functions of logits only."""

    discriminator_loss: Callable[..., jax.Array]
    generator_loss: Callable[..., jax.Array]


OBJECTIVES: dict[str, Objective] = {
    "minimax": Objective(bce_discriminator_loss, minimax_generator_loss),
    "nonsaturating": Objective(bce_discriminator_loss, nonsaturating_generator_loss),
}


def get_objective(name: str) -> Objective:
    """Looks up ``--objective``; an unknown name lists the valid ones."""
    return registry.lookup(OBJECTIVES, "objective", name)
