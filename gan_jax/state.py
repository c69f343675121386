"""The game's state as one pytree, and the static pieces built from a config.

:class:`GANState` holds arrays only (step counter, both networks' parameters, their BatchNorm
statistics and both optimiser states), so it can be jitted, donated, sharded and checkpointed
whole. The modules, optimisers, prior and objective are static and rebuilt from the
:class:`~gan_jax.config.Config` by :func:`build_gan`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from gan_jax import conditional, losses, models, priors
from gan_jax.config import Config


class GANState(struct.PyTreeNode):
    """Everything that changes during training.

    Attributes:
      step: int32 scalar, completed iterations of Algorithm 1 (= generator updates).
      g_params, d_params: Flax parameter trees of the generator and discriminator.
      g_batch_stats, d_batch_stats: BatchNorm running averages (``{}`` when a network has none).
      g_opt_state, d_opt_state: optax states of the two optimisers.
    """

    step: jax.Array
    g_params: Any
    g_batch_stats: Any
    d_params: Any
    d_batch_stats: Any
    g_opt_state: Any
    d_opt_state: Any


@dataclasses.dataclass(frozen=True)
class GAN:
    """The static half of a run: networks, optimisers, prior and objective."""

    generator: nn.Module
    discriminator: nn.Module
    g_optimizer: optax.GradientTransformation
    d_optimizer: optax.GradientTransformation
    prior: Callable[[jax.Array, tuple[int, ...]], jax.Array]
    objective: losses.Objective
    latent_dim: int
    image_shape: tuple[int, int, int]
    clip: Optional[float] = None  # WGAN: critic parameters projected to [-clip, clip]
    gp_weight: Optional[float] = None  # WGAN-GP: lambda
    # K for a class-conditional pair (G(z, y), D(x, y); gan_jax.conditional); None otherwise.
    num_classes: Optional[int] = None

    def sample_z(self, key: jax.Array, num: int) -> jax.Array:
        """``[num, latent_dim]`` draws from the prior."""
        return self.prior(key, (num, self.latent_dim))

    def sample_labels(self, key: jax.Array, num: int) -> Optional[jax.Array]:
        """``[num]`` uniform class labels for a conditional pair; None for an unconditional one."""
        if self.num_classes is None:
            return None
        return conditional.sample_labels(key, num, self.num_classes)


def make_optimizer(config: Config, learning_rate: Any) -> optax.GradientTransformation:
    """``config.optimizer`` at ``learning_rate``.

    ``rmsprop`` is PyTorch's ``torch.optim.RMSprop`` with its defaults (alpha 0.99, eps 1e-8
    added outside the square root), the optimiser of the WGAN paper's code.
    """
    if config.optimizer == "adam":
        return optax.adam(learning_rate, b1=config.b1, b2=config.b2)
    if config.optimizer == "rmsprop":
        return optax.rmsprop(learning_rate, decay=0.99, eps=1e-8, eps_in_sqrt=False)
    raise ValueError(f"Unknown optimizer {config.optimizer!r}")


def build_gan(config: Config, learning_rate: Optional[Any] = None) -> GAN:
    """Builds the static pieces named by ``config``.

    Args:
      config: the run's configuration.
      learning_rate: overrides ``config.learning_rate``; may be a traced scalar, which is how
        :mod:`gan_jax.sweep` trains runs with different learning rates in one program (the
        optimiser states do not depend on the learning rate, so the state is unchanged).
    """
    arch = models.get_architecture(config.arch)
    objective = losses.get_objective(config.objective)
    lr = config.learning_rate if learning_rate is None else learning_rate
    generator = arch.generator()
    discriminator = models.discriminator_for(arch, objective.gradient_penalty,
                                             config.d_activation, config.d_dropout)
    num_classes = None
    if config.conditional:
        num_classes = conditional.num_classes_for(config.dataset)
        generator = conditional.ConditionalGenerator(generator, num_classes)
        discriminator = conditional.ConditionalDiscriminator(discriminator, num_classes,
                                                             flat=arch.d_flattens)
    return GAN(
        generator=generator,
        discriminator=discriminator,
        g_optimizer=make_optimizer(config, lr),
        d_optimizer=make_optimizer(config, lr),
        prior=priors.get_prior(config.prior),
        objective=objective,
        latent_dim=config.latent_dim,
        image_shape=arch.image_shape,
        clip=config.clip,
        gp_weight=config.gp_weight,
        num_classes=num_classes,
    )


def create_state(config: Config, key: jax.Array) -> GANState:
    """Initialises both networks and optimisers from ``key`` (deterministic in ``key``)."""
    return _create_state(config.computation(), key)


@functools.partial(jax.jit, static_argnums=0)
def _create_state(config: Config, key: jax.Array) -> GANState:
    gan = build_gan(config)
    g_key, d_key = jax.random.split(key)
    labels = () if gan.num_classes is None else (jnp.zeros((2,), jnp.int32),)
    g_vars = gan.generator.init(g_key, jnp.zeros((2, gan.latent_dim)), *labels, train=False)
    d_vars = gan.discriminator.init(d_key, jnp.zeros((2, *gan.image_shape)), *labels,
                                    train=False)
    g_params, d_params = g_vars["params"], d_vars["params"]
    return GANState(
        step=jnp.zeros((), jnp.int32),
        g_params=g_params,
        g_batch_stats=g_vars.get("batch_stats", {}),
        d_params=d_params,
        d_batch_stats=d_vars.get("batch_stats", {}),
        g_opt_state=gan.g_optimizer.init(g_params),
        d_opt_state=gan.d_optimizer.init(d_params),
    )


def abstract_state(config: Config) -> GANState:
    """Shapes and dtypes of the state, without computing it (restore target for orbax)."""
    return jax.eval_shape(lambda: create_state(config, jax.random.key(0)))


def count_params(params: Any) -> int:
    """Total number of scalars in a parameter tree."""
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(params))
