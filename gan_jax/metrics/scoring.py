"""Scores generated images with the evaluator network; every number carries its card.

:mod:`gan_jax.metrics.evaluation` has the metrics as pure functions of features; :mod:`gan_jax.metrics.evaluator`
has the digest-pinned classifier. This module joins them to a real-data reference:

* :func:`load_reference` computes, once, what the real side needs: evaluator features of the
  dataset's test split (FD, precision/recall, KID) and the two Parzen sets of Goodfellow et al.
  (2014): sigma is chosen on the first 1,000 images of train[50000:60000], the likelihood is
  measured on the test split.
* :func:`score_images` returns the full record (the keys of eval.json); :func:`quick_scores`
  the cheap subset that training logs every ``--eval_every`` steps.
* :func:`prepare_images` accepts the array layouts and value ranges users have, and says which
  one it detected.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from typing import Optional

import numpy as np

from gan_jax import data as data_lib
from gan_jax.metrics import evaluation
from gan_jax.metrics.evaluator import EVALUATORS, Evaluator, load_evaluator

MIN_SAMPLES = 100  # fewer makes FD, KID and precision/recall meaningless
PARZEN_VALIDATION = slice(50000, 51000)  # Goodfellow et al. 2014: train[50000:60000][:1000]
PARZEN_SIGMAS = np.logspace(-1, 0, 10)
KNN_K = 3  # precision/recall neighbourhood, Kynkaanniemi et al. 2019's default


@dataclasses.dataclass(frozen=True)
class Reference:
    """The real side of every comparison (computed once per evaluator and dataset)."""

    evaluator: Evaluator
    dataset: str
    split: str
    features: np.ndarray  # evaluator features of the real split [N, 128]
    mean: np.ndarray  # float64 Gaussian fit of ``features``
    cov: np.ndarray
    parzen_validation: Optional[np.ndarray]  # [1000, 784] in [0, 1]; None: Parzen unavailable
    parzen_test: np.ndarray  # [N, 784] in [0, 1]


def evaluator_for_dataset(dataset: str) -> Optional[str]:
    """Name of a registered evaluator trained on ``dataset``, or None."""
    for name, spec in EVALUATORS.items():
        if spec.dataset == dataset:
            return name
    return None


def _flat01(images_uint8: np.ndarray) -> np.ndarray:
    return images_uint8.reshape(images_uint8.shape[0], -1).astype(np.float32) / 255.0


def load_reference(dataset: str = "mnist", data_dir=None, evaluator: Optional[str] = None
                   ) -> Reference:
    """Loads ``evaluator`` (default: the one registered for ``dataset``) and the real data.

    Raises ValueError when no evaluator is registered for ``dataset``.
    """
    name = evaluator or evaluator_for_dataset(dataset)
    if name is None:
        raise ValueError(f"no evaluator registered for dataset {dataset!r} (registered: "
                         f"{ {n: s.dataset for n, s in EVALUATORS.items()} }); train one with "
                         "python -m experiments.train_classifier and register_evaluator()")
    net = load_evaluator(name)
    test, _ = data_lib.load_dataset(dataset, "test", data_dir)
    train, _ = data_lib.load_dataset(dataset, "train", data_dir)
    features, _ = net.features_and_probs(data_lib.to_model_range(test))
    mean, cov = evaluation.gaussian_stats(features)
    validation = train[PARZEN_VALIDATION]
    return Reference(net, dataset, "test", features, mean, cov,
                     _flat01(validation) if validation.shape[0] else None, _flat01(test))


def card(reference: Reference, n_samples: int) -> dict:
    """How a number against ``reference`` was made: evaluator, its digest, the real split."""
    return {"evaluator": reference.evaluator.name,
            "evaluator_sha256": reference.evaluator.sha256,
            "real_split": f"{reference.dataset} {reference.split}",
            "n_real": int(reference.features.shape[0]), "n_samples": int(n_samples)}


def prepare_images(images) -> tuple[np.ndarray, str]:
    """``images`` as float32 ``[N, 28, 28, 1]`` in [-1, 1], and a description of the input.

    Accepts ``[N, H, W]`` or ``[N, H, W, 1]``; uint8 in [0, 255], or floats in [0, 1] or [-1, 1]
    (floats with a negative value are taken as [-1, 1], others as [0, 1]: a [-1, 1] image set
    has a black background at -1). Anything else (NaN/inf, other ranges, other ranks) is an error.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] != 1:
        raise ValueError(f"expected images [N, H, W] or [N, H, W, 1], got shape {images.shape}")
    if images.dtype == np.uint8:
        return data_lib.to_model_range(images), "uint8 in [0, 255]"
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"expected uint8 or float images, got dtype {images.dtype}")
    if not np.all(np.isfinite(images)):
        raise ValueError(f"{int(np.sum(~np.isfinite(images)))} image values are NaN or inf")
    low, high = float(images.min()), float(images.max())
    tol = 1e-3
    if low < -1 - tol or high > 1 + tol:
        raise ValueError(f"image values span [{low:.3g}, {high:.3g}]; expected [0, 1] or [-1, 1]")
    images = np.clip(images.astype(np.float32), -1.0, 1.0)
    if low < 0:
        return images, f"float in [-1, 1] (min {low:.3g}, max {high:.3g})"
    return np.clip(images, 0.0, 1.0) * 2.0 - 1.0, f"float in [0, 1] (min {low:.3g}, max {high:.3g})"


def _check_count(images: np.ndarray, minimum: int = MIN_SAMPLES) -> None:
    if images.shape[0] < minimum:
        raise ValueError(f"{images.shape[0]} samples are too few to score; need >= {minimum}")


def _class_scores(features: np.ndarray, probs: np.ndarray, reference: Reference,
                  labels: Optional[np.ndarray] = None) -> dict:
    mean, cov = evaluation.gaussian_stats(features)
    predicted = np.argmax(probs, axis=1)
    coverage = evaluation.mode_coverage(predicted, probs.shape[1])
    result = {
        "fd": evaluation.frechet_distance_from_stats(mean, cov, reference.mean, reference.cov),
        "score": evaluation.classifier_score(probs),
        "classes_covered": coverage["classes_covered"],
        "class_kl": coverage["class_kl"],
        "class_histogram": coverage["histogram"],
    }
    if labels is not None:
        # Conditional GANs: how often the evaluator reads the class G was asked for.
        labels = np.asarray(labels)
        if labels.shape != predicted.shape:
            raise ValueError(f"labels {labels.shape} do not match {predicted.shape[0]} images")
        if not np.issubdtype(labels.dtype, np.integer) or (
                labels.size and (labels.min() < 0 or labels.max() >= probs.shape[1])):
            raise ValueError(f"labels must be integer classes in 0..{probs.shape[1] - 1}, got "
                             f"{labels.dtype} values in [{labels.min()}, {labels.max()}]")
        result["label_accuracy"] = float(np.mean(predicted == labels))
    return result


def quick_scores(images, reference: Reference, labels: Optional[np.ndarray] = None) -> dict:
    """FD, classifier score, classes covered and class KL of ``images`` (model range); with
    ``labels`` (the classes a conditional G was given) also ``label_accuracy``."""
    images, _ = prepare_images(images)
    _check_count(images)
    return _class_scores(*reference.evaluator.features_and_probs(images), reference, labels)


def score_images(images, reference: Reference, parzen: bool = True,
                 labels: Optional[np.ndarray] = None) -> dict:
    """Every metric of ``images`` against ``reference``, with the card that says how.

    Keys: ``fd``, ``score``, ``classes_covered``, ``class_kl``, ``class_histogram``,
    ``precision``, ``recall``, ``kid``, ``kid_std``, ``kid_feature_scale``, ``parzen_ll``, ``parzen_se``,
    ``parzen_sigma`` (None without ``parzen`` or without a validation split), ``n_samples``,
    ``n_real``, ``real_split``, ``evaluator``, ``evaluator_sha256``, ``input_range``; with
    ``labels`` (a conditional G's classes) also ``label_accuracy``.
    """
    images, described = prepare_images(images)
    _check_count(images)
    features, probs = reference.evaluator.features_and_probs(images)
    result = _class_scores(features, probs, reference, labels)
    precision, recall = evaluation.precision_recall(reference.features, features, k=KNN_K)
    # KID's cubic kernel (x.y / d + 1)^3 assumes features of order 1 (Inception pool features);
    # ours are ReLU activations of RMS ~4.5, which would put x.y / d near 10 and let a few
    # pairs dominate. Both sets are divided by the real set's RMS feature value first.
    scale = float(np.sqrt(np.mean(np.square(reference.features, dtype=np.float64))))
    kid, kid_std = evaluation.kernel_inception_distance(reference.features / scale,
                                                        features / scale)
    result.update(precision=precision, recall=recall, kid=kid, kid_std=kid_std,
                  kid_feature_scale=scale,
                  parzen_ll=None, parzen_se=None, parzen_sigma=None)
    if parzen and reference.parzen_validation is not None:
        flat = ((images.reshape(images.shape[0], -1) + 1.0) / 2.0).astype(np.float32)
        sigma, _ = evaluation.select_parzen_sigma(flat, reference.parzen_validation, PARZEN_SIGMAS)
        ll, se = evaluation.parzen_log_likelihood(flat, reference.parzen_test, sigma)
        result.update(parzen_ll=ll, parzen_se=se, parzen_sigma=sigma)
    result.update(
        **card(reference, images.shape[0]),
        parzen_protocol=("Goodfellow et al. 2014: sigma from logspace(-1, 0, 10) on "
                         f"{reference.dataset} train[50000:51000], LL on {reference.dataset} "
                         "test, pixels in [0, 1]"),
        input_range=described)
    return result


def write_eval_json(result: dict, path: str) -> None:
    """Writes ``result`` as indented JSON, atomically."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def load_samples_npz(path: str, with_labels: bool = False):
    """The array ``images`` of an .npz file (read without pickle); errors name the file.

    With ``with_labels``: ``(images, labels)``, where ``labels`` is the optional int array
    ``labels`` ``[N]`` (the classes a conditional generator was asked for; None if absent).
    """
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such samples file") from None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable .npz file ({e})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: a single .npy array, expected an .npz with an array 'images'")
    with archive:
        if "images" not in archive.files:
            raise ValueError(f"{path}: no array 'images' (found {sorted(archive.files)})")
        arrays = {}
        for name in ("images", "labels") if with_labels else ("images",):
            if name not in archive.files:
                continue
            try:
                arrays[name] = archive[name]
            except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
                raise ValueError(f"{path}: array {name!r} is corrupt ({e})") from None
    if not with_labels:
        return arrays["images"]
    labels = arrays.get("labels")
    if labels is not None and (labels.ndim != 1 or labels.shape[0] != arrays["images"].shape[0]
                               or not np.issubdtype(labels.dtype, np.integer)):
        raise ValueError(f"{path}: 'labels' must be integer classes [N] for the "
                         f"{arrays['images'].shape[0]} images, got {labels.dtype} "
                         f"{list(labels.shape)}")
    return arrays["images"], labels


def evaluate_workdir(workdir: str, num_samples: int = 10000, seed: int = 0,
                     step: Optional[int] = None, data_dir=None, parzen: bool = True,
                     live: bool = False) -> dict:
    """Samples ``num_samples`` images from a run's checkpoint and scores them.

    The real data comes from ``data_dir``, else the run's own ``data_dir`` / dataset. The
    result adds ``workdir``, ``step`` (the checkpoint scored), ``sample_seed`` and
    ``generator``: "averaged" (the default when the run keeps an averaged generator) or
    "live" (``live=True``, or a run without averaging).
    """
    from gan_jax.training import sampling  # the checkpoint stack; only needed here
    from gan_jax.config import load_config

    config = load_config(os.path.join(workdir, "config.json"))
    images, restored = sampling.sample_from_workdir(workdir, num_samples, seed, step, live=live)
    reference = load_reference(config.dataset, data_dir or config.data_dir)
    labels = sampling.sample_labels(config, num_samples)
    result = score_images(images, reference, parzen=parzen, labels=labels)
    result.update(workdir=os.path.abspath(workdir), step=restored, sample_seed=seed,
                  game=config.game, objective=config.objective, arch=config.arch,
                  conditional=config.conditional,
                  generator="averaged" if config.ema_decay and not live else "live")
    return result


def evaluate_real(dataset: str = "mnist", data_dir=None, num_samples: int = 10000,
                  parzen: bool = True) -> dict:
    """The reference row: the first ``num_samples`` training images scored as if generated."""
    reference = load_reference(dataset, data_dir)
    images, _ = data_lib.load_dataset(dataset, "train", data_dir)
    result = score_images(images[:num_samples], reference, parzen=parzen)
    result["samples"] = f"{dataset} train[:{min(num_samples, images.shape[0])}] (real images)"
    return result
