"""The theory lab: ``python -m experiments.toy --experiment=NAME --workdir=...``.

Low-dimensional experiments that check the source documents' mathematics in seconds on a CPU,
each writing its figures and results.json to the workdir:

  optimal_d, value_jsd, gaussian_1d, parallel_lines   (gan_jax.theory.lab)
  ring, grid, spiral                                   (gan_jax.theory.mixtures: mode collapse)

All seeds of a comparison train in one vmapped program with the library's own objectives and
train step (see the README's "Theory lab").
"""

import json

from absl import app, flags

from experiments import exit_on_user_error
from gan_jax.theory import mixtures, lab as theory

_THEORY = tuple(theory.EXPERIMENTS)
_MIXTURES = tuple(mixtures.EXPERIMENTS)

flags.DEFINE_enum("experiment", None, list(_THEORY + _MIXTURES), "Which experiment.")
flags.DEFINE_string("workdir", None, "Output folder (default /tmp/gan_jax/toy/EXPERIMENT).")
flags.DEFINE_integer("seeds", 8, "Independent runs, vmapped in one program (mean +- std).")
flags.DEFINE_integer("steps", None, "Training steps (default: the experiment's own).")
flags.DEFINE_bool("quick", False, "Tiny budget (a smoke test; the numbers mean little).")
flags.DEFINE_list("objectives", ["minimax", "nonsaturating", "wgan", "wgan-gp"],
                  "Objectives compared by ring / grid / spiral.")
flags.mark_flag_as_required("experiment")

FLAGS = flags.FLAGS

# The headline keys printed at the end (all of results.json is in the workdir).
_HEADLINES = {
    "optimal_d": ("max_gap",),
    "value_jsd": ("rows",),
    "gaussian_1d": ("final_d_min", "final_d_max", "final_w1"),
    "parallel_lines": ("theta_final",),
}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    name = FLAGS.experiment
    workdir = FLAGS.workdir or f"/tmp/gan_jax/toy/{name}"
    with exit_on_user_error():
        if name in _THEORY:
            results = theory.run(name, workdir, seeds=FLAGS.seeds, steps=FLAGS.steps,
                                 quick=FLAGS.quick)
            headline = {k: results[k] for k in _HEADLINES[name]}
        else:
            results = mixtures.run(name, workdir, seeds=FLAGS.seeds, steps=FLAGS.steps,
                                   quick=FLAGS.quick, objectives=FLAGS.objectives)
            headline = {"num_modes": results["num_modes"], "num_seeds": results["num_seeds"],
                        **{name: {k: v for k, v in per.items() if k.endswith(("_mean", "_std"))}
                           for name, per in results["objectives"].items()}}
    print(json.dumps(headline, indent=1, default=str)[:4000])
    print(f"Wrote {workdir}/results.json and figures {results.get('figures')}")


if __name__ == "__main__":
    app.run(main)
