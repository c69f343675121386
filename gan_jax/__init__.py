"""gan_jax: Generative Adversarial Networks in JAX/Flax, correct to the papers and reproducible.

Layout (one concept per subpackage):
  gan_jax.models     networks: the architecture registry (--arch), layers, conditional wrappers
  gan_jax.games      what is trained: the game interface, the classic GAN and BEGAN, objectives,
                     priors, generator averaging (EMA)
  gan_jax.training   running any game: the compiled step, the loop, checkpoints, sampling,
                     devices (sharding) and vmapped sweeps
  gan_jax.metrics    sample quality: metric functions, the shipped MNIST evaluator, scoring
  gan_jax.theory     the theory lab: toy problems with closed forms, mixtures, the ablation
  gan_jax.config, gan_jax.data, gan_jax.plotting   the run's settings, datasets, figures

Public API (see README.md for a hand-written training loop that composes these):
  Config                      the run's hyperparameters (one frozen object, mirrored by flags)
  build_game, create_state    the game a config describes and its state (one pytree)
  GAN, GANState, build_gan    the classic game; discriminator_update / generator_update are
                              its two updates, for a loop of your own
  make_train_step             the jitted iteration of any game: (state, key) -> (state, metrics)
  generate, sample            images from G (the averaged one, when the run keeps it)
  train                       the full loop with logs, figures and checkpoints
"""

from gan_jax import plotting
from gan_jax.config import Config, load_config, save_config
from gan_jax.data import DataError, load_dataset, to_model_range
from gan_jax.games import (GAMES, Batches, abstract_state, build_game, count_params,
                           create_state, register_game)
from gan_jax.games.began import BEGAN, BEGANState
from gan_jax.games.classic import GAN, GANState, build_gan
from gan_jax.games.classic_updates import discriminator_update, generator_update
from gan_jax.games.losses import OBJECTIVES, get_objective
from gan_jax.games.priors import PRIORS, get_prior
from gan_jax.metrics import evaluation, evaluator, scoring
from gan_jax.models import toy as toy_models  # registers the theory lab's toy1d / toy2d / lines
from gan_jax.models.architectures import (ARCHITECTURES, Architecture, get_architecture,
                                          register_architecture)
from gan_jax.training import parallel, sweep
from gan_jax.training.checkpoint import CheckpointError, Checkpointer
from gan_jax.training.loop import TrainingDiverged, load_training_images, run_keys, train
from gan_jax.training.preemption import EXIT_INTERRUPTED, TrainingInterrupted
from gan_jax.training.sampling import generate, sample, sample_from_workdir
from gan_jax.training.steps import make_train_step, train_step_fn

__version__ = "0.2.0"

__all__ = [
    "plotting", "Config", "load_config", "save_config", "DataError", "load_dataset",
    "to_model_range", "GAMES", "Batches", "abstract_state", "build_game", "count_params",
    "create_state", "register_game", "BEGAN", "BEGANState", "GAN", "GANState", "build_gan",
    "discriminator_update", "generator_update", "OBJECTIVES", "get_objective", "PRIORS",
    "get_prior", "evaluation", "evaluator", "scoring", "toy_models", "ARCHITECTURES",
    "Architecture", "get_architecture", "register_architecture", "parallel", "sweep",
    "CheckpointError", "Checkpointer", "TrainingDiverged", "TrainingInterrupted",
    "EXIT_INTERRUPTED", "load_training_images", "run_keys", "train", "generate", "sample",
    "sample_from_workdir", "make_train_step", "train_step_fn",
]
