"""The training loop: data, state, compiled step, logs, figures and checkpoints in a workdir.

Workdir layout:
  config.json            the run's :class:`~gan_jax.config.Config`
  metrics.jsonl          one JSON row per step: the game's metrics (classic: step, d_loss,
                         g_loss, d_real, d_fake, g_d_fake; BEGAN: also k, m_global, ...);
                         every eval_every steps also fd, score, classes_covered, class_kl
                         (gan_jax.metrics.scoring.quick_scores on eval_samples fakes from a
                         fixed z; conditional runs: balanced labels, plus label_accuracy), of
                         the averaged generator when there is one, and live_* of the live one
  eval_card.json         how those were made: evaluator name and sha256, real split, sizes
  samples/step_NNNNNN.png  grids of G(z) for one fixed z (seed 000 Fig. 2.2); conditional
                         runs: one row per class, the same z down each column
  curves.png             the game's curves (classic: D(x), D(G(z)) with the 1/2 line, the
                         losses, Fig. 2.3), and FD
  checkpoints/<step>/    orbax checkpoints of the whole game state
  .lock                  held while a run trains here (pid, host, start): a second run on
                         the same workdir is refused (gan_jax.training.workdir)

Running :func:`train` again on the same workdir resumes from the newest complete checkpoint and
ends bitwise identical to an uninterrupted run (the step derives all randomness from the seed
and the step number); so does a run stopped by SIGTERM or SIGINT, which writes a checkpoint
of the step it stopped after (gan_jax.training.preemption). A non-finite loss or parameter
stops training with :class:`TrainingDiverged`; no checkpoint is written after the divergence.

Devices: with one device the loop runs the single-device step. With several (GPUs, TPU
chips, fake CPU devices, or the chips of all hosts of a multi-host TPU slice) it trains data
parallel over all of them (:mod:`gan_jax.training.parallel`): same global batch, state replicated,
batches split over a 1-D ``"data"`` mesh. On several hosts every process runs the loop; only
process 0 writes metrics, grids and config.json, all take part in the checkpoints, and the
workdir must be on a filesystem all hosts share.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from gan_jax import data as data_lib
from gan_jax import plotting
from gan_jax.models import conditional, layers
from gan_jax.training import parallel, sampling
from gan_jax.metrics import scoring
from gan_jax.training.checkpoint import Checkpointer
from gan_jax.training.preemption import StopRequest, TrainingInterrupted
from gan_jax.training.workdir import WorkdirLock, check_writable_folder
from gan_jax.config import Config, check_resumable, load_config, save_config
from gan_jax.models.architectures import get_architecture
from gan_jax.games import abstract_state, build_game, create_state
from gan_jax.training.steps import make_train_step

NUM_GRID_SAMPLES = 100  # a 10 x 10 grid: enough to see all ten digits
EVAL_KEYS = ("fd", "score", "classes_covered", "class_kl")  # logged every eval_every steps


class TrainingDiverged(RuntimeError):
    """A loss or parameter became NaN/inf; the message names the step and the last checkpoint."""


def run_keys(seed: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The run's three independent streams from ``--seed``: (init, train, fixed-sample) keys."""
    init_key, train_key, sample_key = jax.random.split(jax.random.key(seed), 3)
    return init_key, train_key, sample_key


def eval_key(seed: int) -> jax.Array:
    """The key of the in-training evaluation's fakes: the same z at every evaluation, a stream
    of its own (folded off the grid's key)."""
    return jax.random.fold_in(run_keys(seed)[2], 1)


def load_training_images(config: Config) -> np.ndarray:
    """The training split as float32 ``[N, H, W, C]`` in [-1, 1], checked against the model."""
    return load_training_data(config)[0]


def load_training_data(config: Config) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """(images, labels): the training split as float32 ``[N, H, W, C]`` in [-1, 1], checked
    against the model, and its int32 class labels ``[N]`` for a conditional config (else None)."""
    images, labels = data_lib.load_dataset(config.dataset, "train", config.data_dir)
    images = data_lib.to_model_range(images)
    expected = get_architecture(config.arch).image_shape
    if images.shape[1:] != expected:
        raise ValueError(f"--arch={config.arch} expects images {expected}, "
                         f"dataset {config.dataset!r} has {images.shape[1:]}")
    return images, (labels.astype(np.int32) if config.conditional else None)


@jax.jit
def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)
              if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves))


def _read_metrics(path: str, upto_step: int) -> list[dict]:
    """Rows of metrics.jsonl with step <= ``upto_step`` (drops rows a killed run left behind)."""
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # A line cut short by a kill.
                if row.get("step", math.inf) <= upto_step:
                    rows.append(row)
    return rows


def _write_metrics(path: str, rows: list[dict]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    os.replace(tmp, path)


class _Outputs:
    """The workdir's files, and the logic of when each is written."""

    def __init__(self, config: Config, checkpointer: Checkpointer, start_step: int,
                 mesh: Optional[jax.sharding.Mesh] = None,
                 reference: Optional[scoring.Reference] = None):
        self.config = config
        self.reference = reference
        self.eval_key = eval_key(config.seed)
        # Multi-host: every process computes (the arrays are global), only process 0 writes.
        self.writer = jax.process_index() == 0
        self.workdir = config.workdir
        self.metrics_path = os.path.join(self.workdir, "metrics.jsonl")
        self.samples_dir = os.path.join(self.workdir, "samples")
        if self.writer:
            os.makedirs(self.samples_dir, exist_ok=True)
        self.checkpointer = checkpointer
        self.rows = _read_metrics(self.metrics_path, start_step)
        if self.writer:
            _write_metrics(self.metrics_path, self.rows)  # Drop rows past the restored step.
        self.pending: list[tuple[int, dict, Optional[int]]] = []
        self.game = gan = build_game(config)
        self.fixed_labels = None
        if gan.num_classes is None:
            self.fixed_z = gan.sample_z(run_keys(config.seed)[2], NUM_GRID_SAMPLES)
        else:
            # One row per class; each column keeps its z across the rows (same "style").
            columns = NUM_GRID_SAMPLES // 10
            self.fixed_z = jnp.tile(gan.sample_z(run_keys(config.seed)[2], columns),
                                    (gan.num_classes, 1))
            self.fixed_labels = conditional.grid_labels(gan.num_classes, columns)
        if mesh is not None:
            self.fixed_z = parallel.replicate(self.fixed_z, mesh)

    def record(self, step: int, metrics: dict, index: Optional[int] = None) -> None:
        """Step ``step``'s metrics: ``metrics``, or row ``index`` of stacked metrics."""
        self.pending.append((step, metrics, index))

    def flush(self, evaluate: Optional[Any] = None) -> None:
        """Fetches pending device metrics (one transfer), appends them, stops on NaN/inf.

        ``evaluate``: the state after the last pending step, whose evaluation metrics
        (:func:`gan_jax.metrics.scoring.quick_scores`) join that step's row.
        """
        if not self.pending:
            return
        # (A call's stacked metrics, listed once per step, are transferred once.)
        fetched = jax.device_get([m for _, m, _ in self.pending])
        new_rows = [{"step": s, **{k: float(v if i is None else v[i]) for k, v in m.items()}}
                    for (s, _, i), m in zip(self.pending, fetched)]
        self.pending = []
        bad = next((row for row in new_rows if not all(math.isfinite(v) for v in row.values())),
                   None)
        if bad is None and evaluate is not None:
            new_rows[-1].update(self.evaluate(evaluate, new_rows[-1]["step"]))
        if self.writer:
            with open(self.metrics_path, "a") as f:
                for row in new_rows:
                    f.write(json.dumps(row) + "\n")
        self.rows.extend(new_rows)
        if bad is not None:
            values = {k: v for k, v in bad.items() if not math.isfinite(v)}
            self.diverged(f"non-finite {values} at step {bad['step']}")

    def evaluate(self, state: Any, step: int) -> dict:
        """FD, classifier score, classes covered and class KL of ``eval_samples`` fakes; with
        an averaged generator, of it, and of the live one under ``live_*``."""
        scores = self._scores(state, step, live=False)
        if self.config.ema_decay:
            scores.update({f"live_{k}": v for k, v in self._scores(state, step, True).items()})
        return scores

    def _scores(self, state: Any, step: int, live: bool) -> dict:
        images = sampling.sample(self.config, state, self.eval_key, self.config.eval_samples,
                                 live=live)
        if not np.all(np.isfinite(images)):
            self.diverged(f"non-finite generator output at step {step}")
        labels = sampling.sample_labels(self.config, self.config.eval_samples)
        scores = scoring.quick_scores(images, self.reference, labels)
        which = " (live G)" if live else " (averaged G)" if self.config.ema_decay else ""
        logging.info("step %d eval%s (%d samples): FD %.3f  classifier score %.2f  classes "
                     "covered %d  class KL %.3f%s", step, which, self.config.eval_samples,
                     scores["fd"], scores["score"], scores["classes_covered"],
                     scores["class_kl"], "" if labels is None else
                     f"  label accuracy {scores['label_accuracy']:.3f}")
        keys = EVAL_KEYS + (() if labels is None else ("label_accuracy",))
        return {k: float(scores[k]) for k in keys}

    def diverged(self, what: str) -> None:
        last = self.checkpointer.latest_step()
        where = (f"the last good checkpoint is step {last} in {self.checkpointer.directory}"
                 if last is not None else "no checkpoint had been written yet")
        raise TrainingDiverged(f"Training diverged: {what}. Stopped without saving; {where}.")

    def samples(self, state: Any, step: int) -> None:
        images = sampling.generate(self.config, state, self.fixed_z, self.fixed_labels)
        if not self.writer:
            return
        path = os.path.join(self.samples_dir, f"step_{step:06d}.png")
        plotting.save_image_grid(np.asarray(images), path, ncols=10)
        if self.rows:
            self.game.plot_curves(self.rows, os.path.join(self.workdir, "curves.png"))

    def checkpoint(self, state: Any, step: int) -> None:
        if not bool(_all_finite(state)):
            self.diverged(f"non-finite parameters or optimiser state after step {step}")
        self.checkpointer.save(step, state)


def train(config: Config, images: Optional[np.ndarray] = None,
          labels: Optional[np.ndarray] = None) -> Any:
    """Trains (or resumes) the GAN described by ``config`` in ``config.workdir``.

    SIGTERM and SIGINT stop it after the step in flight with a checkpoint of that step
    (:mod:`gan_jax.training.preemption`): it then raises :class:`TrainingInterrupted`, and
    calling it again continues.

    Args:
      config: the run; ``workdir`` is required.
      images: optional training set float32 ``[N, H, W, C]`` in [-1, 1]; loaded from
        ``config.dataset`` / ``config.data_dir`` when omitted.
      labels: the int class labels ``[N]`` of ``images``, for a conditional config (loaded
        with them when ``images`` is omitted).

    Returns:
      The final state (after ``config.num_steps`` iterations).
    """
    if not config.workdir:
        raise ValueError("train() needs config.workdir")
    check_writable_folder(config.workdir, "workdir")
    layers.configured_form()  # a bad $GAN_JAX_LAYERS is refused before anything runs
    parallel.maybe_initialize_distributed()  # Multi-host slices only; before any JAX call.
    if jax.process_index() == 0:  # Others only read it (and take part in the checkpoints).
        os.makedirs(config.workdir, exist_ok=True)
    # One run per workdir: the lock is process 0's (all processes of a job share the workdir).
    with StopRequest() as stop, WorkdirLock(config.workdir, enabled=jax.process_index() == 0):
        return _train(config, images, labels, stop)


def _train(config: Config, images: Optional[np.ndarray], labels: Optional[np.ndarray],
           stop: StopRequest) -> Any:
    # All devices of the job when there are several (replicated state, sharded batches);
    # one device keeps the single-device step, bit for bit.
    mesh = parallel.data_mesh() if jax.device_count() > 1 else None
    if mesh is not None:
        parallel.check_batch_size(config.batch_size, mesh)
        logging.info("Data parallel over %d %s devices (%d per device of the batch of %d)",
                     mesh.size, jax.devices()[0].platform, config.batch_size // mesh.size,
                     config.batch_size)
    logging.info("Convolutions in their %s form on %s (--layers / $%s)", layers.resolved_form(),
                 jax.default_backend(), layers.LAYERS_ENV)
    config_path = os.path.join(config.workdir, "config.json")
    if os.path.exists(config_path):
        check_resumable(load_config(config_path), config, config_path)
    if images is None:
        images, labels = load_training_data(config)
    elif config.conditional and labels is None:
        raise ValueError("a conditional config needs the labels of the images passed to train()")

    init_key, train_key, _ = run_keys(config.seed)
    checkpointer = Checkpointer(os.path.join(config.workdir, "checkpoints"))
    start = checkpointer.latest_step()
    if start is None:
        state, start = create_state(config, init_key), 0
        if mesh is not None:
            state = parallel.replicate(state, mesh)
    else:
        target = abstract_state(config)
        if mesh is not None:  # Restored straight into replicated arrays.
            target = parallel.replicated_target(target, mesh)
        state = checkpointer.restore(target, start)
        logging.info("Resuming from %s", checkpointer.path(start))
    if mesh is not None:
        train_key = parallel.replicate(train_key, mesh)
    if jax.process_index() == 0:
        save_config(config, config_path)
    reference = _eval_reference(config)
    if reference is not None and jax.process_index() == 0:
        scoring.write_eval_json(scoring.card(reference, config.eval_samples),
                                os.path.join(config.workdir, "eval_card.json"))
    outputs = _Outputs(config, checkpointer, start, mesh, reference)
    if start == 0:
        outputs.samples(state, 0)
    train_step = make_train_step(config, images, mesh=mesh, labels=labels)
    n = config.steps_per_call
    # N steps per call: from a multiple of N (the reporting intervals are multiples of N, so
    # they fall between calls); single steps before the first and after the last whole call.
    train_steps = (make_train_step(config, images, mesh=mesh, labels=labels, steps_per_call=n)
                   if n > 1 and config.num_steps - start >= n else None)

    logging.info("Training %s/%s from step %d to %d%s", config.arch,
                 config.objective or config.game, start, config.num_steps,
                 f", {n} steps per call" if train_steps else "")
    t_window, s_window = time.time(), start
    in_call, metrics = 0, None  # steps of the current call still to record after this one
    for step in range(start + 1, config.num_steps + 1):
        if in_call:
            in_call -= 1
            outputs.record(step, metrics, n - 1 - in_call)
        elif train_steps is not None and (step - 1) % n == 0 and step - 1 + n <= config.num_steps:
            state, metrics = train_steps(state, train_key)
            outputs.record(step, metrics, 0)
            in_call = n - 1
        else:
            state, metrics = train_step(state, train_key)
            outputs.record(step, metrics)
        if step == start + 1:  # Exclude compilation from the speed figures.
            jax.block_until_ready(metrics)
            logging.info("First call (compile + run) took %.1f s", time.time() - t_window)
            t_window, s_window = time.time(), step
        if in_call:  # ``state`` is already at the end of the call: nothing to report yet
            continue
        last = step == config.num_steps
        log = step % config.log_every == 0 or last
        draw = step % config.sample_every == 0 or last
        save = step % config.checkpoint_every == 0 or last
        evaluate = outputs.reference is not None and (step % config.eval_every == 0 or last)
        # Several processes agree on a stop with a collective, which waits for the step: only
        # at log steps there (the host waits for the metrics then anyway); one process: always.
        check = jax.process_count() == 1 or log
        stopping = stop.requested() if check and not last else None
        save = save or stopping is not None
        if log or draw or save or evaluate:
            # Also the NaN check: before anything is evaluated or saved.
            outputs.flush(state if evaluate else None)
        if log:
            row = outputs.rows[-1]
            rate = (step - s_window) / max(time.time() - t_window, 1e-9)
            eta = (config.num_steps - step) / rate if rate > 0 else float("nan")
            values = "  ".join(f"{label} {row[key]:.4g}" for key, label in outputs.game.progress)
            logging.info("step %d/%d  %s  %.2f steps/s  ETA %s", step, config.num_steps, values,
                         rate, _format_seconds(eta))
            t_window, s_window = time.time(), step
        if draw:
            outputs.samples(state, step)
        if save:
            outputs.checkpoint(state, step)
        if stopping:
            checkpointer.close()
            raise TrainingInterrupted(
                f"Stopped by {stopping} after step {step} of {config.num_steps}: checkpoint "
                f"{checkpointer.path(step)} written. Rerun the same command to continue.",
                stopping, step)
    checkpointer.close()
    return state


def _eval_reference(config: Config) -> Optional[scoring.Reference]:
    """The real side of the in-training evaluation, or None when it is off or unavailable."""
    if config.eval_every == 0:
        return None
    if scoring.evaluator_for_dataset(config.dataset) is None:
        logging.warning("No evaluator registered for dataset %r: training without evaluation "
                        "(see gan_jax.metrics.evaluator.register_evaluator).", config.dataset)
        return None
    try:
        return scoring.load_reference(config.dataset, config.data_dir)
    except (ValueError, OSError) as e:
        raise ValueError(f"evaluation during training (--eval_every={config.eval_every}) needs "
                         f"the {config.dataset} test split and the evaluator: {e}. Pass "
                         "--eval_every=0 to train without it.") from e


def _format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s"
