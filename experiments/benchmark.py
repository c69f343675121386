"""Train-step speed: ``python -m experiments.benchmark --objective=nonsaturating --batch_size=128``.

Prints compile time and the median steps/s and images/s of the jitted Algorithm 1 step on random
data (the data does not change the work done).
"""

import json

from absl import app, flags

import gan_jax
from gan_jax.benchmark import time_train_step

flags.DEFINE_enum("objective", "nonsaturating", sorted(gan_jax.OBJECTIVES), "GAN objective.")
flags.DEFINE_enum("arch", "thesis", sorted(gan_jax.ARCHITECTURES), "Architecture.")
flags.DEFINE_integer("batch_size", 128, "Minibatch size.")
flags.DEFINE_integer("disc_steps", 1, "k.")
flags.DEFINE_integer("steps", 20, "Steps per timed repeat.")
flags.DEFINE_integer("repeats", 5, "Timed repeats (the median is reported).")

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = gan_jax.Config(objective=FLAGS.objective, arch=FLAGS.arch,
                            batch_size=FLAGS.batch_size, disc_steps=FLAGS.disc_steps)
    result = time_train_step(config, steps_per_repeat=FLAGS.steps, repeats=FLAGS.repeats)
    print(json.dumps({"arch": config.arch, "objective": config.objective,
                      "batch_size": config.batch_size, "disc_steps": config.disc_steps,
                      **{k: (round(v, 3) if isinstance(v, float) else [round(x, 3) for x in v])
                         for k, v in result.items()}}))


if __name__ == "__main__":
    app.run(main)
