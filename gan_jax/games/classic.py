"""The classic game (Goodfellow et al. 2014 and its objectives): one G, one D, losses of logits.

:class:`GANState` holds arrays only (step counter, both networks' parameters, their BatchNorm
statistics, both optimiser states and the averaged generator), so it can be jitted, donated,
sharded and checkpointed whole. :class:`GAN` is the static half, rebuilt from the
:class:`~gan_jax.config.Config` by :func:`build_gan`: networks, optimisers, prior, objective,
and the game interface of :mod:`gan_jax.games.base` (its step is
:func:`gan_jax.games.classic_updates.classic_step`).
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
from gan_jax.games import base, ema as ema_lib, losses, priors
from gan_jax.models import architectures as models
from gan_jax.models import conditional


class GANState(struct.PyTreeNode):
    """Everything that changes during training.

    Attributes:
      step: int32 scalar, completed iterations of Algorithm 1 (= generator updates).
      g_params, d_params: Flax parameter trees of the generator and discriminator.
      g_batch_stats, d_batch_stats: BatchNorm running averages (``{}`` when a network has none).
      g_opt_state, d_opt_state: optax states of the two optimisers.
      g_ema_params: the averaged generator's parameters (``--ema_decay``; ``{}`` when off).
    """

    step: jax.Array
    g_params: Any
    g_batch_stats: Any
    d_params: Any
    d_batch_stats: Any
    g_opt_state: Any
    d_opt_state: Any
    g_ema_params: Any


@dataclasses.dataclass(frozen=True)
class GAN(base.LatentGeneratorGame):
    """The static half of a run: networks, optimisers, prior, objective, and the schedule."""

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
    # K for a class-conditional pair (G(z, y), D(x, y); gan_jax.models.conditional); None otherwise.
    num_classes: Optional[int] = None
    disc_steps: int = 1
    batch_size: int = 128
    wgan_warmup: bool = False
    ema: Optional[ema_lib.GeneratorEMA] = None  # generator averaging; None: off
    compute_dtype: Any = jnp.float32  # of the training passes (base.apply_train)

    def sample_labels(self, key: jax.Array, num: int) -> Optional[jax.Array]:
        """``[num]`` uniform class labels for a conditional pair; None for an unconditional one."""
        if self.num_classes is None:
            return None
        return conditional.sample_labels(key, num, self.num_classes)

    # The game interface (gan_jax.games.base).
    progress = (("d_loss", "d_loss"), ("g_loss", "g_loss"), ("d_real", "D(x)"),
                ("d_fake", "D(G(z))"))

    @property
    def max_batches_per_step(self) -> int:
        """The most minibatches one iteration draws (``disc_steps``, or the warm-up's 100)."""
        from gan_jax.games.classic_updates import WARMUP_CRITIC_STEPS
        return max(self.disc_steps, WARMUP_CRITIC_STEPS) if self.wgan_warmup else self.disc_steps

    def batch_range(self, step):
        """(first minibatch number, number of minibatches) of generator step ``step``, in the
        step's own arithmetic (host ints here, traced int32 inside the step)."""
        from gan_jax.games.classic_updates import critic_updates_before, warmup_critic_steps
        k = self.disc_steps
        if not self.wgan_warmup:
            return step * k, k
        return critic_updates_before(step, k), warmup_critic_steps(step, k)

    def init(self, key: jax.Array) -> GANState:
        """Both networks and optimisers from ``key``; the average starts at G's weights."""
        g_key, d_key = jax.random.split(key)
        labels = () if self.num_classes is None else (jnp.zeros((2,), jnp.int32),)
        g_vars = self.generator.init(g_key, jnp.zeros((2, self.latent_dim)), *labels,
                                     train=False)
        d_vars = self.discriminator.init(d_key, jnp.zeros((2, *self.image_shape)), *labels,
                                         train=False)
        g_params, d_params = g_vars["params"], d_vars["params"]
        return GANState(
            step=jnp.zeros((), jnp.int32),
            g_params=g_params,
            g_batch_stats=g_vars.get("batch_stats", {}),
            d_params=d_params,
            d_batch_stats=d_vars.get("batch_stats", {}),
            g_opt_state=self.g_optimizer.init(g_params),
            d_opt_state=self.d_optimizer.init(d_params),
            g_ema_params=g_params if self.ema is not None else {},
        )

    def train_step(self, state: GANState, key: jax.Array, batches: base.Batches
                   ) -> tuple[GANState, base.Metrics]:
        from gan_jax.games.classic_updates import classic_step
        return classic_step(self, state, key, batches)

    def plot_curves(self, rows: list[dict], path: str) -> None:
        plotting.plot_curves(rows, path, probabilistic=self.objective.probabilistic)


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
        :mod:`gan_jax.training.sweep` trains runs with different learning rates in one program (the
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
        disc_steps=config.disc_steps,
        batch_size=config.batch_size,
        wgan_warmup=config.wgan_warmup,
        ema=ema_lib.GeneratorEMA(config.ema_decay, config.ema_warmup) if config.ema_decay else None,
        compute_dtype=jnp.dtype(config.compute_dtype),
    )


base.register_game("classic", build_gan, {"objective": "nonsaturating", "arch": "thesis"})
