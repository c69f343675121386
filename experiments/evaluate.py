"""Score a GAN: ``python -m experiments.evaluate --workdir=RUN`` or ``--samples=FILE.npz``.

Writes eval.json (beside the run, or beside the .npz) with FD, classifier score, mode coverage,
precision/recall, KID and the Parzen log-likelihood, plus the card of how they were made
(n_samples, n_real, real split, evaluator sha256). ``--real`` scores real training images: the
reference row every GAN is read against.
"""

import json
import os

from absl import app, flags

from experiments import exit_on_user_error
from gan_jax.metrics import scoring
from gan_jax.training.workdir import check_output_file

flags.DEFINE_string("workdir", None, "A training run to sample from (its newest checkpoint).")
flags.DEFINE_string("samples", None, "An .npz with an array 'images' [N,28,28(,1)] in [-1,1] "
                    "or [0,1] (or uint8).")
flags.DEFINE_bool("real", False, "Score the first --num real training images (reference row).")
flags.DEFINE_integer("num", 10000, "Samples drawn from the checkpoint (or real images).")
flags.DEFINE_integer("seed", 0, "Seed of the z draws.")
flags.DEFINE_integer("step", None, "Checkpoint step (default: newest).")
flags.DEFINE_bool("live", False, "--workdir: score the trained generator, not the averaged one "
                  "(runs with --ema_decay).")
flags.DEFINE_string("dataset", "mnist", "Real data for --samples/--real (a --workdir run "
                    "uses its own).")
flags.DEFINE_string("data_dir", None, "Folder with the MNIST IDX files (default: the run's, "
                    "else tensorflow-datasets).")
flags.DEFINE_bool("parzen", True, "Also compute the Parzen log-likelihood (about a minute).")
flags.DEFINE_string("out", None, "Where to write the JSON (default: WORKDIR/eval.json, "
                    "FILE.eval.json, or eval_real.json).")

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    sources = [name for name in ("workdir", "samples") if FLAGS[name].value] + (
        ["real"] if FLAGS.real else [])
    if len(sources) != 1:
        raise app.UsageError("give exactly one of --workdir, --samples, --real")
    if FLAGS.workdir:
        out = FLAGS.out or os.path.join(FLAGS.workdir,
                                        "eval_live.json" if FLAGS.live else "eval.json")
    elif FLAGS.samples:
        out = FLAGS.out or os.path.splitext(FLAGS.samples)[0] + ".eval.json"
    else:
        out = FLAGS.out or "eval_real.json"
    with exit_on_user_error():
        check_output_file(out, "--out")  # before a minute of scoring, not after
        if FLAGS.workdir:
            result = scoring.evaluate_workdir(FLAGS.workdir, FLAGS.num, FLAGS.seed, FLAGS.step,
                                              FLAGS.data_dir, FLAGS.parzen, live=FLAGS.live)
        elif FLAGS.samples:
            reference = scoring.load_reference(FLAGS.dataset, FLAGS.data_dir)
            images, labels = scoring.load_samples_npz(FLAGS.samples, with_labels=True)
            result = scoring.score_images(images, reference, FLAGS.parzen, labels=labels)
            result["samples"] = os.path.abspath(FLAGS.samples)
        else:
            result = scoring.evaluate_real(FLAGS.dataset, FLAGS.data_dir, FLAGS.num, FLAGS.parzen)
    scoring.write_eval_json(result, out)
    print(json.dumps(result, indent=2, sort_keys=True))
    print(f"Wrote {out}")


if __name__ == "__main__":
    app.run(main)
