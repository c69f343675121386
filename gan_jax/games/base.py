"""The game interface every family implements, the registry of games, and the real batches.

A *game* is the static half of a run, built from a :class:`~gan_jax.config.Config` by
:func:`build_game`: its networks, optimisers, prior and losses. Its *state* is one pytree of
arrays (a ``flax.struct.PyTreeNode`` with an int32 ``step``: parameters, optimiser states and
whatever else the game carries, e.g. BEGAN's k_t or an averaged generator), so that it can be
jitted, donated, sharded and checkpointed whole.

One trainer serves every game (:mod:`gan_jax.training`): the compiled step, the loop with its
logs, grids, curves, evaluation and NaN stop, orbax checkpoints restored into
:func:`abstract_state`, data-parallel sharding, sweeps, sampling and evaluation. A game
provides (see :class:`Game`):

  ``init(key) -> state``                 the initial state (deterministic in ``key``)
  ``train_step(state, key, batches)``    one iteration, ``-> (state, metrics)``; ``key`` is the
                                         step's noise key, ``batches`` its real minibatches
  ``batch_range(step)``                  (first minibatch number, count) that iteration ``step``
                                         draws, in plain arithmetic (host ints or traced)
  ``max_batches_per_step``               the most minibatches one iteration draws
  ``sample_z(key, num)``, ``sample_labels(key, num)``, ``num_classes``, ``latent_dim``,
  ``image_shape``                        what the generator takes and makes
  ``generator_variables(state, live)``   the generator's inference variables: the averaged
                                         generator's (``--ema_decay``) unless ``live``
  ``generate(variables, z, labels)``     images ``[N, H, W, C]`` in [-1, 1]
  ``progress``                           (metric, label) pairs of the loop's progress line
  ``plot_curves(rows, path)``            the run's curves.png from metrics.jsonl rows

Adding a family means writing its networks, its losses, its state and these methods, and
registering its builder with :func:`register_game`; no loop, checkpointer or sampler.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Protocol

import jax
import jax.numpy as jnp
import optax

from gan_jax import data as data_lib
from gan_jax import registry
from gan_jax.config import Config

Metrics = dict[str, jax.Array]


class Batches:
    """The real minibatches an iteration draws: minibatch number ``n`` of the run's stream.

    Minibatch ``n`` is the ``n % (N // B)``-th slice of epoch ``n // (N // B)``'s permutation
    of the training set (:func:`gan_jax.data.batch_indices`); the permutations come from the
    data key, or precomputed in ``epoch_orders`` (the same minibatches, see
    :class:`gan_jax.training.steps.EpochOrderedStep`).

    Args:
      images: the whole training set ``[N, ...]``.
      labels: its int class labels ``[N]``, or None.
      data_key: the run's data-order key.
      batch_size: B.
      epoch_orders: optional precomputed permutations of the epochs this step draws from.
      sharding: optional sharding of every batch (batch axis over devices) inside a jit over a
        mesh; games pass it on to the arrays they make (z, fakes).
    """

    def __init__(self, images: jax.Array, labels: Optional[jax.Array], data_key: jax.Array,
                 batch_size: int, epoch_orders: Optional[data_lib.EpochOrders] = None,
                 sharding: Optional[jax.sharding.Sharding] = None):
        self.images, self.labels = images, labels
        self.data_key, self.batch_size = data_key, batch_size
        self.epoch_orders, self.sharding = epoch_orders, sharding

    def indices(self, number) -> jax.Array:
        """Row indices ``[B]`` of minibatch ``number`` (an int or a traced int32)."""
        n = self.images.shape[0]
        if self.epoch_orders is None:
            return data_lib.batch_indices(self.data_key, number, n, self.batch_size)
        return data_lib.batch_indices_from(self.epoch_orders, number, n, self.batch_size)

    def take(self, number) -> tuple[jax.Array, Optional[jax.Array]]:
        """(images ``[B, ...]``, labels ``[B]`` or None) of minibatch ``number``."""
        idx = self.indices(number)
        return self.images[idx], None if self.labels is None else self.labels[idx]

    def shard(self, x: jax.Array) -> jax.Array:
        """``x`` constrained to the batch sharding (unchanged without one)."""
        if self.sharding is None:
            return x
        return jax.lax.with_sharding_constraint(x, self.sharding)


class Game(Protocol):
    """What the trainer needs of a game (module docstring); games are frozen dataclasses."""

    latent_dim: int
    image_shape: tuple[int, ...]
    num_classes: Optional[int]
    max_batches_per_step: int
    progress: tuple[tuple[str, str], ...]

    def init(self, key: jax.Array) -> Any: ...

    def train_step(self, state: Any, key: jax.Array, batches: Batches
                   ) -> tuple[Any, Metrics]: ...

    def batch_range(self, step): ...

    def sample_z(self, key: jax.Array, num: int) -> jax.Array: ...

    def sample_labels(self, key: jax.Array, num: int) -> Optional[jax.Array]: ...

    def generator_variables(self, state: Any, live: bool = False) -> dict: ...

    def generate(self, variables: dict, z: jax.Array,
                 labels: Optional[jax.Array] = None) -> jax.Array: ...

    def plot_curves(self, rows: list[dict], path: str) -> None: ...


class LatentGeneratorGame:
    """Sampling for games whose generator maps z (and labels) to images, ``G(z[, y])``.

    Needs the attributes ``generator`` (a linen module called as ``G(z[, labels], train=)``),
    ``prior`` and ``latent_dim``, and the state fields ``g_params``, ``g_ema_params`` (``{}``
    when not averaging) and, where G has BatchNorm, ``g_batch_stats``.
    """

    def sample_z(self, key: jax.Array, num: int) -> jax.Array:
        """``[num, latent_dim]`` draws from the prior."""
        return self.prior(key, (num, self.latent_dim))

    def generator_variables(self, state: Any, live: bool = False) -> dict:
        """G's inference variables: the averaged weights (when the game keeps them) unless
        ``live``. BatchNorm statistics: the running averages for the live weights, recomputed
        for the averaged ones (:func:`gan_jax.games.ema.recompute_batch_stats`)."""
        from gan_jax.games import ema  # noqa: PLC0415 (ema imports nothing of ours)

        averaged = bool(state.g_ema_params) and not live
        params = state.g_ema_params if averaged else state.g_params
        stats = getattr(state, "g_batch_stats", {})
        if averaged and stats:
            z = self.sample_z(jax.random.key(ema.STATS_SEED), ema.STATS_SAMPLES)
            labels = self.sample_labels(jax.random.key(ema.STATS_SEED + 1), ema.STATS_SAMPLES)
            chunks = [(z[i:i + ema.STATS_CHUNK],) if labels is None else
                      (z[i:i + ema.STATS_CHUNK], labels[i:i + ema.STATS_CHUNK])
                      for i in range(0, ema.STATS_SAMPLES, ema.STATS_CHUNK)]
            stats = ema.recompute_batch_stats(self.generator.apply, params, stats, chunks)
        return {"params": params, **({"batch_stats": stats} if stats else {})}

    def generate(self, variables: dict, z: jax.Array,
                 labels: Optional[jax.Array] = None) -> jax.Array:
        """G(z) (or G(z, y)) in inference mode: ``z [N, latent_dim]`` -> ``[N, H, W, C]``."""
        inputs = (z,) if labels is None else (z, labels)
        return self.generator.apply(variables, *inputs, train=False)


def cast_floats(tree: Any, dtype: Any) -> Any:
    """``tree`` with its floating-point leaves cast to ``dtype`` (integer leaves kept)."""
    return jax.tree.map(
        lambda v: v.astype(dtype) if jnp.issubdtype(v.dtype, jnp.floating) else v, tree)


def apply_train(module, params, batch_stats, x, dropout_key=None, labels=None, *,
                dtype=jnp.float32):
    """Train-mode forward; returns (output, new batch_stats) (``{}`` stays ``{}``).

    ``dropout_key`` feeds the ``'dropout'`` stream of networks with dropout (unused otherwise).
    ``labels``: the class labels of a conditional network (None: unconditional).
    ``dtype``: the arithmetic's dtype. bfloat16 is mixed precision: the (float32) parameters
    and ``x`` are cast to it for the pass (so gradients flow back to the float32 parameters),
    the output comes back as float32, and BatchNorm statistics stay float32 (Flax computes
    them in float32).
    """
    mixed = jnp.dtype(dtype) != jnp.float32
    if mixed:
        params, x = cast_floats(params, dtype), x.astype(dtype)
    rngs = None if dropout_key is None else {"dropout": dropout_key}
    inputs = (x,) if labels is None else (x, labels)
    if not batch_stats:
        out = module.apply({"params": params}, *inputs, train=True, rngs=rngs)
        return (out.astype(jnp.float32) if mixed else out), batch_stats
    out, updates = module.apply({"params": params, "batch_stats": batch_stats}, *inputs,
                                train=True, mutable=["batch_stats"], rngs=rngs)
    if mixed:
        return out.astype(jnp.float32), cast_floats(updates["batch_stats"], jnp.float32)
    return out, updates["batch_stats"]


def descend(optimizer: optax.GradientTransformation, grads: Any, opt_state: Any,
            params: Any) -> tuple[Any, Any]:
    """One optimiser step: (new params, new optimiser state)."""
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


# name -> builder(config, learning_rate) -> Game; ``--game`` picks one.
GAMES: dict[str, Callable[[Config, Optional[Any]], Game]] = {}
# name -> the game's settings (Config fields; level 0 of the defaults in gan_jax.config). A
# game with objectives has an "objective" entry; every game names its default "arch".
GAME_DEFAULTS: dict[str, dict[str, Any]] = {}


def register_game(name: str, builder: Callable[[Config, Optional[Any]], Game],
                  defaults: dict[str, Any], *, overwrite: bool = False) -> None:
    """Adds a game builder under ``name`` (``--game=name``) with its default settings."""
    if name in GAMES and GAMES[name] is not builder and not overwrite:
        raise ValueError(f"game {name!r} is already registered; pass overwrite=True to "
                         "replace it")
    GAMES[name] = builder
    GAME_DEFAULTS[name] = dict(defaults)


def game_defaults(name: str) -> dict[str, Any]:
    """The settings game ``name`` brings; an unknown name lists the valid ones."""
    _import_games()
    return registry.lookup(GAME_DEFAULTS, "game", name)


def build_game(config: Config, learning_rate: Optional[Any] = None) -> Game:
    """The game ``config.game`` describes.

    ``learning_rate`` overrides ``config.learning_rate``; it may be a traced scalar, which is
    how :mod:`gan_jax.training.sweep` trains runs with different rates in one program.
    """
    _import_games()
    return registry.lookup(GAMES, "game", config.game)(config, learning_rate)


def _import_games() -> None:
    # The built-in games register themselves on import; imported here, not at module level,
    # because they import this module.
    from gan_jax.games import began, classic  # noqa: F401


def create_state(config: Config, key: jax.Array) -> Any:
    """The game's initial state from ``key`` (deterministic in ``key``)."""
    return _create_state(config.computation(), key)


def _create_state_impl(config: Config, key: jax.Array) -> Any:
    return build_game(config).init(key)


_create_state = jax.jit(_create_state_impl, static_argnums=0)


def abstract_state(config: Config) -> Any:
    """Shapes and dtypes of the state, without computing it (restore target for orbax)."""
    return jax.eval_shape(lambda: create_state(config, jax.random.key(0)))


def count_params(params: Any) -> int:
    """Total number of scalars in a parameter tree."""
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(params))
