"""gan_jax: Generative Adversarial Networks in JAX/Flax, correct to the papers and reproducible.

Public API (see README.md for a hand-written training loop that composes these):
  Config                      the run's hyperparameters (one frozen object, mirrored by flags)
  create_state, GANState      the whole game as one pytree
  make_train_step             jitted Algorithm 1 iteration: (state, key) -> (state, metrics)
  generate, sample            G(z) with BatchNorm running averages
  train                       the full loop with logs, figures and checkpoints
  evaluation, evaluator,      sample-quality metrics (pure functions), the digest-pinned MNIST
  scoring                     classifier they use, and scoring of images / runs with its card
"""

from gan_jax.checkpoint import CheckpointError, Checkpointer
from gan_jax.config import Config, load_config, save_config
from gan_jax.data import DataError, load_dataset, to_model_range
from gan_jax.losses import OBJECTIVES, get_objective
from gan_jax.models import ARCHITECTURES, Architecture, get_architecture, register_architecture
from gan_jax.priors import PRIORS, get_prior
from gan_jax import evaluation, evaluator, parallel, plotting, scoring, sweep
from gan_jax import toy_models  # registers the theory lab's toy1d / toy2d / parallel_lines
from gan_jax.sampling import generate, sample, sample_from_workdir
from gan_jax.state import GAN, GANState, abstract_state, build_gan, count_params, create_state
from gan_jax.steps import make_train_step, train_step_fn
from gan_jax.training import TrainingDiverged, load_training_images, run_keys, train

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "Checkpointer", "Config", "load_config", "save_config", "DataError",
    "load_dataset", "to_model_range", "OBJECTIVES", "get_objective", "ARCHITECTURES",
    "Architecture", "get_architecture", "register_architecture", "PRIORS", "get_prior",
    "evaluation", "evaluator", "parallel", "plotting",
    "scoring", "sweep", "generate", "sample",
    "sample_from_workdir", "GAN", "GANState", "abstract_state", "build_gan", "count_params",
    "create_state", "make_train_step", "train_step_fn", "TrainingDiverged",
    "load_training_images", "run_keys", "train",
]
