"""The command-line programs, run as a user runs them (subprocesses from the repo root)."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import gan_jax
from gan_jax.training.checkpoint import Checkpointer
from gan_jax.games import abstract_state
from tests.helpers import tree_equal

ROOT = Path(__file__).resolve().parents[1]


def _tiny_flags(workdir, data_dir, num_steps=4, checkpoint_every=2):
    return ["--batch_size=8", f"--num_steps={num_steps}", "--log_every=2", "--sample_every=2",
            f"--checkpoint_every={checkpoint_every}", f"--workdir={workdir}", f"--data_dir={data_dir}",
            "--eval_every=0"]


def _run(module, *args, timeout=240):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def _popen(module, *args):
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _final_state(workdir, config):
    with Checkpointer(os.path.join(workdir, "checkpoints"), read_only=True) as ckpt:
        return ckpt.latest_step(), ckpt.restore(abstract_state(config))



@pytest.mark.parametrize("flag,valid", [
    ("--objective=wgan-typo", "<hinge|lsgan|minimax|nonsaturating|wgan|wgan-gp>"),
    ("--prior=cauchy", "<normal|uniform>"),
    ("--game=cycle", "<began|classic>"),
    ("--arch=resnet", "<began|began_reference|dcgan|dcgan32|dcgan64|goodfellow_mlp|mlp|thesis|thesis_plain>"),
    ("--layers=cudnn", "<auto|cpu|native>"),
])
def test_unknown_flag_values_list_the_valid_ones(flag, valid):
    result = _run("experiments.mnist", flag)
    assert result.returncode != 0
    assert valid in result.stderr


def test_a_bad_layers_variable_is_refused_before_anything_runs(tmp_path):
    env = dict(os.environ, GAN_JAX_LAYERS="fast")
    result = subprocess.run([sys.executable, "-m", "experiments.mnist",
                             f"--workdir={tmp_path / 'w'}"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, env=env)
    assert result.returncode == 1
    assert "error: GAN_JAX_LAYERS='fast' is not a layer form; valid: auto, cpu, native" in (
        result.stderr)
    assert not (tmp_path / "w").exists()


def test_missing_data_names_the_file(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train-images-idx3-ubyte.gz").write_bytes(b"")
    result = _run("experiments.mnist", *_tiny_flags(tmp_path / "w", tmp_path / "data"))
    assert result.returncode == 1
    assert "train-labels-idx1-ubyte.gz" in result.stderr or "train-images-idx3-ubyte.gz" in result.stderr


KILL_RUN_STEPS = 10  # the SIGKILL test's run: every step checkpointed


@pytest.fixture(scope="module")
def cli_run(mnist_dir, tmp_path_factory):
    """One uninterrupted ``experiments.mnist`` run of the tiny config (10 steps, a checkpoint
    at every step): the CLI run sampled below and the SIGKILL test's reference."""
    workdir = tmp_path_factory.mktemp("cli") / "run"
    result = _run("experiments.mnist", *_tiny_flags(workdir, mnist_dir, num_steps=KILL_RUN_STEPS,
                                                    checkpoint_every=1))
    return workdir, result


def test_train_then_sample_cli(cli_run, tmp_path):
    workdir, result = cli_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert "steps/s" in result.stderr and "ETA" in result.stderr
    out, npz = tmp_path / "grid.png", tmp_path / "s.npz"
    result = _run("experiments.sample", f"--workdir={workdir}", "--num=6", f"--out={out}",
                  f"--npz={npz}", "--seed=3")
    assert result.returncode == 0, result.stderr[-3000:]
    images = np.load(npz)["images"]
    assert np.load(npz).files == ["images"]  # no labels: an unconditional run
    assert images.shape == (6, 28, 28, 1) and images.dtype == np.float32
    assert -1.0 <= images.min() and images.max() <= 1.0
    assert out.stat().st_size > 1000
    # Same samples as the library call with the same seed.
    expected, _ = gan_jax.sample_from_workdir(str(workdir), 6, seed=3)
    np.testing.assert_array_equal(images, expected)
    missing = _run("experiments.sample", f"--workdir={tmp_path / 'nowhere'}", f"--out={out}")
    assert missing.returncode == 1 and "nowhere/config.json" in missing.stderr


def test_sigkill_at_any_moment_then_restart_ends_identical(cli_run, mnist_dir, tmp_path,
                                                            tiny_config):
    """Kill -9 repeatedly (mostly mid-checkpoint: every step is saved), restart, compare bits
    with the uninterrupted run of the same flags."""
    num_steps = KILL_RUN_STEPS
    flags = lambda w: _tiny_flags(w, mnist_dir, num_steps=num_steps, checkpoint_every=1)  # noqa
    config = tiny_config.replace(num_steps=num_steps)
    ref_dir, result = cli_run
    assert result.returncode == 0, result.stderr[-3000:]
    ref_step, ref_state = _final_state(ref_dir, config)
    assert ref_step == num_steps

    workdir = tmp_path / "killed"
    rng = random.Random(0)
    kills = 0
    for attempt in range(8):
        proc = _popen("experiments.mnist", *flags(workdir))
        ckpt_dir = workdir / "checkpoints"
        before = set(os.listdir(ckpt_dir)) if ckpt_dir.exists() else set()
        deadline = time.time() + 120
        # Wait for a new checkpoint (or temporary checkpoint dir) to appear, then kill soon after.
        while proc.poll() is None and time.time() < deadline:
            now = set(os.listdir(ckpt_dir)) if ckpt_dir.exists() else set()
            if now - before:
                break
            time.sleep(0.01)
        if attempt < 3 and proc.poll() is None:
            time.sleep(rng.uniform(0.0, 0.4))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            continue
        assert proc.wait(timeout=180) == 0
        break
    assert kills >= 2  # the scenario really happened
    step, state = _final_state(workdir, config)
    assert step == num_steps
    assert tree_equal(state, ref_state)


def test_sigterm_stops_at_a_step_with_a_checkpoint_and_the_rerun_ends_identical(
        cli_run, mnist_dir, tmp_path, tiny_config):
    """SIGTERM mid-run (then SIGINT while it stops): exit status 75 with a message, a checkpoint
    of the step it stopped after (no periodic checkpoint is due), its metrics rows kept; the
    rerun of the same command ends bitwise identical to the uninterrupted run."""
    num_steps = KILL_RUN_STEPS
    workdir = tmp_path / "preempted"
    flags = _tiny_flags(workdir, mnist_dir, num_steps=num_steps, checkpoint_every=1000)
    proc = subprocess.Popen([sys.executable, "-m", "experiments.mnist", *flags], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first_grid = workdir / "samples" / "step_000000.png"  # written once the handlers are in
    deadline = time.time() + 120
    while proc.poll() is None and not first_grid.exists() and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be signalled"
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    second_sent = proc.poll() is None
    if second_sent:
        proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=180)
    assert proc.returncode == gan_jax.EXIT_INTERRUPTED == 75, stderr[-3000:]
    ckpts = sorted(int(d) for d in os.listdir(workdir / "checkpoints") if d.isdigit())
    assert len(ckpts) == 1 and 1 <= ckpts[0] < num_steps
    stopped = ckpts[0]
    assert (f"stopped: Stopped by SIGTERM after step {stopped} of {num_steps}: checkpoint "
            f"{workdir / 'checkpoints' / str(stopped)} written. Rerun the same command to "
            "continue.") in stderr
    if second_sent:
        assert "Received SIGINT while stopping: ignored" in stderr
    rows = (workdir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == list(range(1, stopped + 1))

    result = _run("experiments.mnist", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Resuming from {workdir / 'checkpoints' / str(stopped)}" in result.stderr
    ref_step, ref_state = _final_state(cli_run[0], tiny_config.replace(num_steps=num_steps))
    step, state = _final_state(workdir, tiny_config.replace(num_steps=num_steps))
    assert step == ref_step == num_steps
    assert tree_equal(state, ref_state)


def test_faces_program_defaults_to_celeb_a_and_dcgan64(tmp_path):
    """experiments.faces is experiments.mnist with seed 001's defaults (CelebA via tfds)."""
    result = _run("experiments.faces", f"--workdir={tmp_path / 'w'}",
                  f"--data_dir={tmp_path / 'nope'}")
    assert result.returncode == 1
    assert "nope: tfds data folder not found" in result.stderr  # the colour-set (tfds) path
    config = gan_jax.Config(dataset="celeb_a", arch="dcgan64")
    assert (config.latent_dim, config.learning_rate, config.batch_size) == (100, 2e-4, 128)
