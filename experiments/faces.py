"""Train the 64x64 DCGAN on faces: ``python -m experiments.faces --workdir=...``.

The same program as ``experiments.mnist`` (every flag is the same) with seed 001's setting as
the defaults: ``--dataset=celeb_a`` (tensorflow-datasets' CelebA, center-cropped to 178x178 and
resized to 64x64) and ``--arch=dcgan64`` (Radford et al.: Adam 2e-4, beta1 0.5, 100-d z).
"""

from absl import app, flags

from experiments import mnist

flags.FLAGS.set_default("dataset", "celeb_a")
flags.FLAGS.set_default("arch", "dcgan64")
flags.FLAGS.set_default("workdir", "/tmp/gan_jax/faces")

if __name__ == "__main__":
    app.run(mnist.main)
