"""Sample from a trained generator: ``python -m experiments.sample --workdir=... --out=grid.png``.

Restores the newest (or ``--step``) checkpoint of a workdir written by ``experiments.mnist`` and
writes a PNG grid and/or an .npz with key ``images`` of shape [N, H, W, C] in [-1, 1]; for a
``--conditional`` run also ``labels`` [N], the classes the samples were drawn for (balanced, as
:func:`gan_jax.training.sampling.sample_labels` draws them), which ``experiments.evaluate --samples``
scores as ``label_accuracy``.
"""

import os

import numpy as np
from absl import app, flags

from experiments import exit_on_user_error
import gan_jax
from gan_jax.training.workdir import check_output_file

flags.DEFINE_string("workdir", None, "Workdir of a training run.", required=True)
flags.DEFINE_integer("num", 64, "Number of samples.")
flags.DEFINE_string("out", None, "PNG grid to write.")
flags.DEFINE_string("npz", None, ".npz file to write (key 'images', [N, H, W, C] in [-1, 1]).")
flags.DEFINE_integer("seed", 0, "Seed of the z draws.")
flags.DEFINE_integer("step", None, "Checkpoint step to restore (default: newest).")
flags.DEFINE_bool("live", False, "Sample the trained generator, not the averaged one (runs with "
                  "--ema_decay; others have only the live one).")

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS.out and not FLAGS.npz:
        raise app.UsageError("Nothing to write: pass --out=grid.png and/or --npz=samples.npz")
    if FLAGS.num < 1:
        raise app.UsageError(f"--num must be >= 1, got {FLAGS.num}")
    with exit_on_user_error():
        for flag in ("out", "npz"):
            if FLAGS[flag].value:
                check_output_file(FLAGS[flag].value, f"--{flag}")
        images, step = gan_jax.sample_from_workdir(FLAGS.workdir, FLAGS.num, FLAGS.seed, FLAGS.step,
                                                   live=FLAGS.live)
    if FLAGS.out:
        gan_jax.plotting.save_image_grid(images, FLAGS.out)
    if FLAGS.npz:
        config = gan_jax.load_config(os.path.join(FLAGS.workdir, "config.json"))
        labels = gan_jax.training.sampling.sample_labels(config, FLAGS.num)
        extra = {} if labels is None else {"labels": np.asarray(labels)}
        np.savez_compressed(FLAGS.npz, images=images, **extra)
    written = ", ".join(p for p in (FLAGS.out, FLAGS.npz) if p)
    print(f"{FLAGS.num} samples from step {step} of {os.path.abspath(FLAGS.workdir)} -> {written}")


if __name__ == "__main__":
    app.run(main)
