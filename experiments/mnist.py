"""Train a GAN on MNIST: ``python -m experiments.mnist --objective=nonsaturating --workdir=...``.

Defaults are the thesis GAN of seed 000 (SPEC 3A). Rerunning the same command on the same
workdir resumes from the last checkpoint.
"""

import dataclasses

from absl import app, flags

from experiments import exit_on_user_error
import gan_jax
from gan_jax.config import BASE_DEFAULTS, D_ACTIVATIONS, OPTIMIZERS, Config

_D = Config()
_B = BASE_DEFAULTS
flags.DEFINE_enum("game", _D.game, sorted(gan_jax.GAMES), "The game: classic (Goodfellow et "
                  "al.'s, any --objective) or began (autoencoder D, equilibrium k_t).")
flags.DEFINE_enum("objective", None, sorted(gan_jax.OBJECTIVES), "GAN objective of the classic "
                  f"game (default {_D.objective}).")
# Image architectures only (the theory lab's toy1d / toy2d work on points, experiments.toy).
flags.DEFINE_enum("arch", None, sorted(n for n, a in gan_jax.ARCHITECTURES.items()
                                       if len(a.image_shape) == 3),
                  f"Generator/discriminator pair (default: the game's; classic {_D.arch}, "
                  "began began).")
flags.DEFINE_enum("prior", _D.prior, sorted(gan_jax.PRIORS), "Noise prior p_z.")
flags.DEFINE_enum("dataset", _D.dataset, list(gan_jax.data.DATASET_NAMES), "Training data "
                  "(mnist, fashion_mnist: 28x28x1; cifar10: 32x32x3; celeb_a: 64x64x3).")
flags.DEFINE_integer("latent_dim", None, "Dimension of z (default: the architecture's; "
                     f"thesis {_B['latent_dim']}, DCGAN and MLPs 100).")
flags.DEFINE_integer("batch_size", None, "Minibatch size m, real and fake each (default: "
                     f"{_B['batch_size']}; WGAN, WGAN-GP 64).")
flags.DEFINE_integer("disc_steps", None, "k (n_critic): discriminator updates per generator "
                     f"update (default {_B['disc_steps']}; WGAN, WGAN-GP 5).")
flags.DEFINE_integer("num_steps", _D.num_steps, "Iterations of Algorithm 1 (generator updates).")
flags.DEFINE_enum("optimizer", None, list(OPTIMIZERS), "Optimiser of both networks (default "
                  "adam; WGAN rmsprop).")
flags.DEFINE_float("learning_rate", None, "Learning rate of both networks (default: thesis "
                   "1e-3, DCGAN 2e-4, WGAN 5e-5, WGAN-GP 1e-4).")
flags.DEFINE_float("b1", None, "Adam beta1 (default 0.5; WGAN-GP 0).")
flags.DEFINE_float("b2", None, "Adam beta2 (default 0.999; WGAN-GP 0.9).")
flags.DEFINE_float("clip", None, "WGAN: critic weights clipped to [-clip, clip] (default 0.01).")
flags.DEFINE_float("gp_weight", None, "WGAN-GP: gradient penalty weight lambda (default 10).")
flags.DEFINE_bool("wgan_warmup", _D.wgan_warmup, "WGAN: the original code's schedule, 100 "
                  "critic updates for the first 25 generator updates and every 500th.")
flags.DEFINE_enum("d_activation", None, list(D_ACTIVATIONS), "Discriminator activation for "
                  "thesis/dcgan/dcgan64 (default leaky_relu; seed 001's ablation).")
flags.DEFINE_float("d_dropout", _D.d_dropout, "Dropout rate after each LeakyReLU of D for "
                   "dcgan/dcgan32/dcgan64 (seed 003's Keras DCGAN variant used 0.4); 0: none.")
flags.DEFINE_bool("conditional", _D.conditional, "Class-conditional GAN: the label is fed to "
                  "G (one-hot, concatenated to z) and D (one-hot planes, concatenated to the "
                  "image); sample grids show one row per class.")
flags.DEFINE_float("ema_decay", _D.ema_decay, "Generator weight averaging: decay beta in [0, 1) "
                   "(e.g. 0.999); grids, evaluation and sampling then use the averaged G. 0: "
                   "off.")
flags.DEFINE_bool("ema_warmup", _D.ema_warmup, "Warm the average up: beta_t = min(beta, (1 + t) "
                  "/ (10 + t)), so a short run is not dominated by the initial weights.")
flags.DEFINE_float("gamma", None, "BEGAN: diversity ratio gamma = E L(G(z)) / E L(x) that k_t "
                   "steers to (default 2.0: above the paper's [0, 1], see docs/began.md).")
flags.DEFINE_float("lambda_k", None, "BEGAN: learning rate of k_t (default 0.001).")
flags.DEFINE_integer("lr_halve_every", None, "BEGAN: halve the learning rate every this many "
                     "steps (down to --lr_floor).")
flags.DEFINE_float("lr_floor", None, "BEGAN: lowest learning rate of the halving (default 2e-5).")
flags.DEFINE_integer("seed", _D.seed, "Root PRNG seed.")
flags.DEFINE_string("workdir", "/tmp/gan_jax/mnist", "Output directory (resumed if it exists).")
flags.DEFINE_string("data_dir", None, "Folder with the four MNIST IDX .gz files (or a tfds "
                    "data dir); default: tensorflow-datasets.")
flags.DEFINE_integer("log_every", _D.log_every, "Steps between progress lines.")
flags.DEFINE_integer("sample_every", _D.sample_every, "Steps between sample grids and plots.")
flags.DEFINE_integer("checkpoint_every", _D.checkpoint_every, "Steps between checkpoints.")
flags.DEFINE_integer("eval_every", _D.eval_every, "Steps between evaluations (FD, classifier "
                     "score, classes covered; see experiments.evaluate); 0 turns them off.")
flags.DEFINE_integer("eval_samples", _D.eval_samples, "Generated images per evaluation.")
flags.DEFINE_integer("steps_per_call", _D.steps_per_call, "Training steps per compiled call (a "
                     "lax.scan; the same run bit for bit). Pays on accelerators; the "
                     "reporting intervals must be multiples of it.")
flags.DEFINE_enum("compute_dtype", _D.compute_dtype, list(gan_jax.config.COMPUTE_DTYPES),
                  "Arithmetic of the training passes; parameters, optimiser state and "
                  "BatchNorm statistics stay float32.")

FLAGS = flags.FLAGS


def config_from_flags() -> Config:
    return Config(**{f.name: FLAGS[f.name].value for f in dataclasses.fields(Config) if f.init})


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    with exit_on_user_error():
        config = config_from_flags()
        gan_jax.train(config)
    print(f"Done. Outputs in {config.workdir}")


if __name__ == "__main__":
    app.run(main)
