"""Seed 001's ablation on MNIST: ``python -m experiments.ablation --workdir=...``.

Trains one GAN per (prior, D activation) pair with every other setting shared (all the flags of
``experiments.mnist`` apply to every cell) and writes ablation.png, the cells' grids side by
side, and ablation.json. Cells live in ``<workdir>/<prior>_<activation>/``; rerunning resumes.
"""

from absl import app, flags

from experiments import exit_on_user_error, mnist
from gan_jax.theory import ablation
from gan_jax.config import D_ACTIVATIONS

flags.DEFINE_list("priors", ["uniform", "normal"], "Priors p_z of the grid's rows.")
flags.DEFINE_list("d_activations", list(D_ACTIVATIONS), "Discriminator activations.")
flags.FLAGS.set_default("workdir", "/tmp/gan_jax/ablation")

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    with exit_on_user_error():
        base = mnist.config_from_flags()
        record = ablation.run_ablation(base, FLAGS.priors, FLAGS.d_activations)
    for cell in record["cells"]:
        fd = f"FD {cell['fd']:.2f}" if "fd" in cell else "not evaluated"
        wall = "?" if cell["wall_seconds"] is None else f"{cell['wall_seconds']:.0f}"
        print(f"{cell['cell']:>20}: {fd}, {wall} s")
    print(f"Wrote {base.workdir}/ablation.png and ablation.json")


if __name__ == "__main__":
    app.run(main)
