"""Games: what is trained, and how one step of it goes.

A game is a set of networks, optimisers and carried arrays with one step
``(state, key) -> (state, metrics)`` (the interface: :mod:`gan_jax.games.base`). The classic
GAN (:mod:`gan_jax.games.classic`, its updates in :mod:`gan_jax.games.classic_updates`) is one;
objectives (:mod:`gan_jax.games.losses`), noise priors (:mod:`gan_jax.games.priors`) and
generator averaging (:mod:`gan_jax.games.ema`) live here too.
"""

from gan_jax.games.base import (GAMES, Batches, Game, abstract_state, build_game, count_params,
                                create_state, register_game)
