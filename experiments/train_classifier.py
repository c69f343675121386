"""Train the evaluator classifier: ``python -m experiments.train_classifier --data_dir=...``.

Writes the weights (default for mnist: the packaged ``gan_jax/assets/mnist_classifier.npz``) and
prints the file's sha256, which must then be pinned in ``gan_jax.metrics.evaluator.EVALUATORS`` (mnist)
or registered with ``gan_jax.metrics.evaluator.register_evaluator`` (any other dataset).
"""


from absl import app, flags

from experiments import exit_on_user_error
from gan_jax import data
from gan_jax.metrics import evaluator

flags.DEFINE_enum("dataset", "mnist", list(data.IDX_DATASETS), "Dataset to classify "
                  "(28x28 greyscale).")
flags.DEFINE_string("data_dir", None, "Folder with the four IDX .gz files (or a tfds data dir); "
                    "default: tensorflow-datasets.")
flags.DEFINE_string("out", None, "Output .npz; default: gan_jax/assets/<dataset>_classifier.npz.")
flags.DEFINE_integer("epochs", 6, "Passes over the training set.")
flags.DEFINE_float("learning_rate", 2e-3, "Peak Adam learning rate (cosine decay to 0).")
flags.DEFINE_integer("seed", 0, "Root PRNG seed.")
flags.DEFINE_bool("allow_low_accuracy", False, "Write the file even below the dataset's "
                  "required test accuracy (mnist: 0.99).")

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    out = FLAGS.out or evaluator.ASSETS_DIR / f"{FLAGS.dataset}_classifier.npz"
    with exit_on_user_error():
        result = evaluator.build_evaluator_file(
            dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, out=out, epochs=FLAGS.epochs,
            learning_rate=FLAGS.learning_rate, seed=FLAGS.seed,
            allow_low_accuracy=FLAGS.allow_low_accuracy)
    print(f"test accuracy: {result.test_accuracy:.4f} (trained in {result.train_seconds:.0f} s)")
    print(f"wrote {result.path}\nsha256: {result.sha256}")
    print(f'register: gan_jax.metrics.evaluator.register_evaluator('
          f'"{FLAGS.dataset}", "{result.path}", "{result.sha256}")')


if __name__ == "__main__":
    app.run(main)
