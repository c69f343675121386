"""Training loops of the theory lab, composed from the library's own step pieces.

* :func:`fit_discriminators`: many discriminators, each trained *alone* against a frozen
  generator by :func:`gan_jax.games.classic_updates.discriminator_update` (the same update the MNIST step
  makes), on fresh real samples every update (infinite data: the expectations of the theory,
  not an empirical training set). Runs are ``jax.vmap``-ed, updates ``fori_loop``-ed: one
  compiled program per call.
* :func:`train_runs`: many full GANs, each doing Algorithm 1 iterations of
  :func:`gan_jax.training.steps.train_step_fn` (vmapped over runs, ``fori_loop`` over steps), with a
  user function recording each run every ``chunk`` steps.

Frozen generator with a known density (the ``mixture1d`` architecture registered here).
:class:`MixtureGenerator` maps z ~ N(0, I_2) (``--prior=normal``) to a 1-D Gaussian mixture
whose means, log-stds and weight logits *are* its parameters: x = mu_c + sigma_c z_1 with
component c chosen by Phi(z_2) against the cumulative weights. Its output density is therefore
known in closed form for whatever parameters the state holds. We write the wanted (p_g)
parameters into ``state.g_params`` and never call the generator update, so p_g stays fixed
exactly (rather than hoping a trained MLP generator lands on a known density). The same
approach freezes ``theta`` of the ``parallel_lines`` generator.
"""

from __future__ import annotations

import functools
import types
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax.models import architectures as models, toy as toy_models
from gan_jax.theory import closed_form as theory_math
from gan_jax.config import Config
from gan_jax.games.classic import GANState, build_gan
from gan_jax.games.classic_updates import discriminator_update
from gan_jax.training.steps import train_step_fn
from gan_jax.training.loop import run_keys

NUM_COMPONENTS = 2  # of the mixture1d generator (a Gaussian is a mixture with one weight 0)
MIXTURE_D_HIDDEN = 32
FINAL_LR_FRACTION = 0.01  # D-alone fits decay the learning rate to 1% (cosine)


class MixtureGenerator(nn.Module):
    """z [B, 2] ~ N(0, I) -> x [B, 1] ~ sum_k softmax(logits)_k N(means_k, exp(log_stds_k)^2).

    Needs ``--prior=normal``: z_1 is the Gaussian noise, Phi(z_2) ~ U(0, 1) picks the component.
    """

    num_components: int = NUM_COMPONENTS

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
        del train
        k = self.num_components
        params = {
            "means": self.param("means", nn.initializers.zeros, (k,)),
            "stds": jnp.exp(self.param("log_stds", nn.initializers.zeros, (k,))),
            "weights": jax.nn.softmax(self.param("logits", nn.initializers.zeros, (k,))),
        }
        uniform = jax.scipy.stats.norm.cdf(z[:, 1])
        return theory_math.mixture_from_normals(params, z[:, 0], uniform)[:, None]


MIXTURE_ARCH = models.Architecture(
    MixtureGenerator, lambda: toy_models.ToyDiscriminator(hidden=MIXTURE_D_HIDDEN), (1,),
    defaults=types.MappingProxyType({"latent_dim": 2, "batch_size": 256, "learning_rate": 1e-3,
                                     "b1": 0.5, "b2": 0.999}))
models.register_architecture("mixture1d", MIXTURE_ARCH)


def mixture_g_params(mixture: theory_math.Mixture1D) -> dict[str, np.ndarray]:
    """``mixture1d`` generator parameters whose output density is ``mixture``."""
    padded = mixture.padded(NUM_COMPONENTS)
    # Zero weights become logit -1e4 (softmax weight exactly 0 in float32), not -inf.
    weights = padded["weights"]
    logits = np.where(weights > 0, np.log(np.maximum(weights, 1e-30)), -1e4)
    return {"means": padded["means"], "log_stds": np.log(padded["stds"]),
            "logits": logits.astype(np.float32)}


def stack(trees: Sequence[Any]) -> Any:
    """Pytrees with equal structure stacked on a new leading axis."""
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *trees)


def training_keys(seeds: Sequence[int], salts: Sequence[int]) -> jax.Array:
    """Per-run training keys ``[R]``: ``fold_in(run_keys(seed)[1], salt)`` (salt: e.g. the index
    of the run's distribution pair, so that pairs sharing a seed draw independent samples)."""
    return jnp.stack([jax.random.fold_in(run_keys(int(s))[1], int(t))
                      for s, t in zip(seeds, salts)])


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _fit(config: Config, sample_real: Callable, steps: int, floor: float, states: GANState,
         keys: jax.Array, real_params: Any) -> GANState:
    schedule = optax.cosine_decay_schedule(config.learning_rate, steps, alpha=floor)

    def one_run(state, key, params):
        def body(i, state):
            gan = build_gan(config, schedule(i))
            real_key, d_key = jax.random.split(jax.random.fold_in(key, i))
            real = sample_real(params, real_key, config.batch_size)
            return discriminator_update(gan, state, real, d_key)[0]

        return jax.lax.fori_loop(0, steps, body, state)

    return jax.vmap(one_run)(states, keys, real_params)


def fit_discriminators(config: Config, states: GANState, keys: jax.Array, real_params: Any,
                       steps: int, sample_real: Callable = theory_math.sample_mixture,
                       final_lr_fraction: float = FINAL_LR_FRACTION) -> GANState:
    """Trains every run's D alone for ``steps`` discriminator updates; G is never updated.

    Args:
      config: shared config (objective, architecture, optimiser, batch size).
      states: stacked ``[R]`` states; each run's ``g_params`` fix its p_g.
      keys: ``[R]`` training keys; update i of run r uses ``fold_in(keys[r], i)``.
      real_params: pytree with leading axis ``[R]``, passed to ``sample_real``.
      steps: discriminator updates per run.
      sample_real: ``(params, key, num) -> [num, *data_shape]`` fresh draws of p_data
        (static: a module-level function).
      final_lr_fraction: the learning rate follows a cosine decay from ``config.learning_rate``
        to this fraction of it (through ``build_gan``'s traced learning rate), so the last
        updates average out minibatch noise and D settles near the maximiser of V.

    Returns the states after training (the input states are not donated).
    """
    return _fit(config.computation(), sample_real, steps, final_lr_fraction, states, keys,
                real_params)


def train_runs(config: Config, states: GANState, keys: jax.Array, data: jax.Array,
               num_chunks: int, chunk: int,
               record: Callable[[GANState, Any], Any], record_inputs: Any = None
               ) -> tuple[GANState, Any, dict[str, jax.Array]]:
    """``num_chunks * chunk`` Algorithm 1 iterations of every run, recording after each chunk.

    Args:
      config: shared config; ``data`` [N, dim] is the shared training set (minibatches drawn
        inside :func:`gan_jax.training.steps.train_step_fn`).
      states, keys: stacked ``[R]`` states and training keys; with ``sweep.create_states`` and
        ``sweep.train_keys`` run r uses the keys ``gan_jax.train`` would use for ``seeds[r]``
        (same computation up to float32 reassociation, see :mod:`gan_jax.training.sweep`).
      record: ``(state, record_inputs) -> pytree`` of one run, applied after every chunk.
      record_inputs: arrays ``record`` needs (shared by all runs).

    Returns (final states, records with leading axes ``[num_chunks, R]``, the metrics of the
    last step of each chunk ``[num_chunks, R]``). Compiles once per call.
    """
    static = config.computation()

    @jax.jit
    def run(states, keys, data, record_inputs):
        step = jax.vmap(lambda s, k: train_step_fn(static, s, k, data))

        def chunk_body(states, _):
            metrics = jax.eval_shape(step, states, keys)[1]
            metrics = jax.tree.map(lambda m: jnp.zeros(m.shape, m.dtype), metrics)
            states, metrics = jax.lax.fori_loop(
                0, chunk, lambda i, c: step(c[0], keys), (states, metrics))
            recorded = jax.vmap(lambda s: record(s, record_inputs))(states)
            return states, (recorded, metrics)

        return jax.lax.scan(chunk_body, states, None, length=num_chunks)

    states, (records, metrics) = run(states, keys, jnp.asarray(data, jnp.float32), record_inputs)
    return states, records, metrics
