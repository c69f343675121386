"""Two processes x 2 CPU devices, as a two-host job: ``jax.distributed.initialize`` with a
coordinator on 127.0.0.1 and gloo CPU collectives, started the way a hand-made cluster starts
the command-line programs (``JAX_COORDINATOR_ADDRESS``, ``GAN_JAX_NUM_PROCESSES``,
``GAN_JAX_PROCESS_ID``).

- Each global step equals the step of one process with the same 4 devices, to the float32
  tolerances of tests/test_parallel.py (the all-reduce sums in another order).
- The training loop: only process 0 writes metrics, grids and config (an audit hook lists
  every file each process touches), both processes call and write orbax's checkpoint.
- ``experiments.mnist`` in 2 processes, SIGTERM to process 1 only: both stop at the same step
  with one checkpoint and exit 75; rerunning both ends bitwise equal to the uninterrupted
  2-process run.

The subprocess bodies are in tests/multiprocess_worker.py.
"""

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from tests.helpers import tree_equal
from tests import multiprocess_worker as worker_lib

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# One persistent compilation cache for this module's subprocesses: the pairs of processes
# run the same programs (the fixture's training run, then the CLI twice), so only the first
# compiles them. Executables from the cache compute bitwise what a fresh compile does.
_CACHE_DIR = []


def _env(num_devices: int, process_id=None, port=None) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GAN_JAX_", "JAX_", "MEGASCALE_", "TPU_"))}
    env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={num_devices}",
               JAX_PLATFORMS="cpu")
    if _CACHE_DIR:
        env.update(JAX_COMPILATION_CACHE_DIR=_CACHE_DIR[0],
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    if process_id is not None:
        env.update(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", GAN_JAX_NUM_PROCESSES="2",
                   GAN_JAX_PROCESS_ID=str(process_id))
    return env


def _start_pair(args, **popen):
    """The same command in processes 0 and 1 of a new 2-process job."""
    port = _free_port()
    return [subprocess.Popen([sys.executable, *args], cwd=ROOT, env=_env(2, i, port),
                             stderr=subprocess.PIPE, text=True, **popen) for i in (0, 1)]


def _wait(procs, timeout=240):
    errs = [p.communicate(timeout=timeout)[1] for p in procs]
    return [p.returncode for p in procs], errs


def _cli_flags(workdir, data_dir):
    c = worker_lib.train_config(str(data_dir), str(workdir))
    return ["-m", "experiments.mnist", f"--arch={c.arch}", f"--batch_size={c.batch_size}",
            f"--num_steps={c.num_steps}", f"--log_every={c.log_every}",
            f"--sample_every={c.sample_every}", f"--checkpoint_every={c.checkpoint_every}",
            f"--workdir={workdir}", f"--data_dir={data_dir}", "--eval_every=0"]


def _last_checkpoint(workdir, config):
    from gan_jax.games import abstract_state
    from gan_jax.training.checkpoint import Checkpointer

    with Checkpointer(str(Path(workdir) / "checkpoints"), read_only=True) as ckpt:
        return ckpt.latest_step(), ckpt.restore(abstract_state(config))


@pytest.fixture(scope="module")
def runs(mnist_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multiprocess")
    _CACHE_DIR[:] = [str(tmp / "jax_cache")]
    base = str(tmp / "report")
    t0 = time.time()
    ref = subprocess.run([sys.executable, "-m", "tests.multiprocess_worker", "reference",
                          str(mnist_dir), base + ".reference"], cwd=ROOT, env=_env(4),
                         capture_output=True, text=True, timeout=240)
    assert ref.returncode == 0, ref.stderr[-5000:]
    codes, errs = _wait(_start_pair(["-m", "tests.multiprocess_worker", "worker",
                                     str(mnist_dir), base, str(tmp / "train")]))
    assert codes == [0, 0], "\n\n".join(e[-4000:] for e in errs)
    reports = []
    for name in (".reference", ".0", ".1"):
        with open(base + name, "rb") as f:
            reports.append(pickle.load(f))
    return {"tmp": tmp, "reference": reports[0], "workers": reports[1:],
            "seconds": time.time() - t0}


def _max_diff(a, b):
    return max([float(np.max(np.abs(x - y))) for x, y in
                zip(jax.tree.leaves(a), jax.tree.leaves(b))] + [0.0])


def _max_rel_diff(a, b):
    return max([float(np.max(np.abs(x - y)) / max(float(np.max(np.abs(x))), 1e-30))
                for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)) if x.size] + [0.0])


def _frac_off(a, b, atol=1e-6, rtol=1e-5):
    total = sum(x.size for x in jax.tree.leaves(a))
    off = sum(int(np.sum(np.abs(x - y) > atol + rtol * np.abs(x)))
              for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    return off / total


def _compare(s1, m1, s2, m2):
    params = lambda s: (s.g_params, s.d_params)
    return {"metrics": _max_diff(m1, m2),
            "batch_stats": _max_diff((s1.g_batch_stats, s1.d_batch_stats),
                                     (s2.g_batch_stats, s2.d_batch_stats)),
            "opt_state_rel": _max_rel_diff((s1.g_opt_state, s1.d_opt_state),
                                           (s2.g_opt_state, s2.d_opt_state)),
            "params_max": _max_diff(params(s1), params(s2)),
            "params_frac_off": _frac_off(params(s1), params(s2)),
            "step": int(s1.step) == int(s2.step)}


def test_two_processes_form_one_job_of_four_devices(runs):
    ref, workers = runs["reference"], runs["workers"]
    assert (ref["process_count"], ref["device_count"]) == (1, 4)
    for i, w in enumerate(workers):
        assert w["initialized"] is True  # by gan_jax's maybe_initialize_distributed
        assert (w["process_count"], w["process_index"]) == (2, i)
        assert (w["device_count"], w["local_device_count"]) == (4, 2)


def test_each_global_step_equals_the_single_process_step(runs):
    """The 2-process step from each of the single-process run's states equals that run's next
    state to the tolerances of tests/test_parallel.py (measured: metrics and BatchNorm
    statistics within 1e-6). The control is the single-process step from the same state with
    G scaled by 1 +- 3e-6: how far float32-level noise moves it."""
    ref = runs["reference"]
    lr = worker_lib.config("").learning_rate  # DCGAN's 2e-4
    for w in runs["workers"]:
        for i, (s, m, replicated) in enumerate(w["stepped"]):
            want, want_m = ref["states"][i + 1], ref["metrics"][i]
            d = _compare(want, want_m, s, m)
            controls = [_compare(want, want_m, *c) for c in ref["controls"][i]]
            c = {k: max(x[k] for x in controls) for k in controls[0]}
            assert replicated and d["step"], i
            assert d["metrics"] < 1e-5 and d["batch_stats"] < 1e-6, (i, d)
            assert d["opt_state_rel"] < 2 * c["opt_state_rel"] + 1e-2, (i, d, c)
            assert d["params_frac_off"] < 2 * c["params_frac_off"] + 1e-2, (i, d, c)
            assert d["params_max"] <= 2 * lr + 1e-6, (i, d)
    # Both processes hold the same global values.
    a, b = runs["workers"]
    assert all(tree_equal(x[0], y[0]) for x, y in zip(a["stepped"], b["stepped"]))


def test_only_process_0_writes_and_both_write_the_checkpoint(runs):
    first, second = runs["workers"]
    steps = worker_lib.TRAIN_STEPS
    assert first["final_step"] == second["final_step"] == steps
    assert tree_equal(first["final"], second["final"])
    assert first["saves"] == second["saves"] == [steps]  # both call orbax's save
    # Files land by rename of a temporary, so name each by its final path.
    final = lambda p: p.replace(".tmp.png", "").replace(".tmp", "")
    outside = lambda w: sorted({final(p) for _, p in w["writes"]
                                if not p.startswith("checkpoints")})
    grids = [f"samples/step_{s:06d}.png" for s in range(0, steps + 1, 2)]
    assert outside(first) == sorted([".", ".lock", "config.json", "curves.png",
                                     "metrics.jsonl", "samples", *grids])
    assert outside(second) == []
    # In checkpoints/ process 1 writes only its own array metadata (and, through tensorstore,
    # which Python's audit hook does not see, its ocdbt.process_1 files checked below).
    assert {os.path.basename(p) for _, p in second["writes"]} == {"process_1"}
    workdir = runs["tmp"] / "train"
    rows = [json.loads(line)["step"] for line in open(workdir / "metrics.jsonl")]
    assert rows == list(range(1, steps + 1))  # each row once
    saved = workdir / "checkpoints" / str(steps) / "default"
    assert {p.name for p in saved.glob("ocdbt.process_*")} == {"ocdbt.process_0",
                                                               "ocdbt.process_1"}
    assert {p.name for p in (saved / "array_metadatas").iterdir()} == {"process_0", "process_1"}


def test_sigterm_to_one_process_stops_both_and_the_rerun_resumes_bitwise(runs, mnist_dir):
    """experiments.mnist in 2 processes; SIGTERM to process 1 once process 0 has logged step 2.
    The processes agree at the next log step: both print the same 'stopped:' message and exit
    75 with one checkpoint; the same two commands then finish the run, bitwise equal to the
    uninterrupted 2-process run of the fixture (same flags)."""
    workdir = runs["tmp"] / "preempted"
    flags = _cli_flags(workdir, mnist_dir)
    procs = _start_pair(flags, stdout=subprocess.DEVNULL)
    metrics, deadline = workdir / "metrics.jsonl", time.time() + 180
    while (all(p.poll() is None for p in procs) and time.time() < deadline
           and not (metrics.exists() and metrics.read_text().count("\n") >= 2)):
        time.sleep(0.01)
    assert all(p.poll() is None for p in procs), "the run ended before it could be signalled"
    procs[1].send_signal(signal.SIGTERM)
    codes, errs = _wait(procs)
    assert codes == [75, 75], "\n\n".join(e[-3000:] for e in errs)
    ckpts = sorted(int(d) for d in os.listdir(workdir / "checkpoints") if d.isdigit())
    steps = worker_lib.TRAIN_STEPS
    assert len(ckpts) == 1 and 2 < ckpts[0] < steps and ckpts[0] % 2 == 0, ckpts
    stopped = ckpts[0]
    message = (f"stopped: Stopped by SIGTERM after step {stopped} of {steps}: checkpoint "
               f"{workdir / 'checkpoints' / str(stopped)} written.")
    assert message in errs[0] and message in errs[1]

    codes, errs = _wait(_start_pair(flags, stdout=subprocess.DEVNULL))
    assert codes == [0, 0], "\n\n".join(e[-3000:] for e in errs)
    assert f"Resuming from {workdir / 'checkpoints' / str(stopped)}" in errs[1]
    config = worker_lib.train_config(str(mnist_dir), str(workdir))
    step, state = _last_checkpoint(workdir, config)
    ref_step, ref_state = _last_checkpoint(runs["tmp"] / "train", config)
    assert step == ref_step == steps
    assert tree_equal(state, ref_state)
    assert tree_equal(state, runs["workers"][0]["final"])


def test_hand_made_cluster_variables_are_checked():
    from gan_jax.training import parallel

    assert parallel.process_arguments({}) == {}
    assert parallel.process_arguments({"GAN_JAX_NUM_PROCESSES": "2", "GAN_JAX_PROCESS_ID": "1"}
                                      ) == {"num_processes": 2, "process_id": 1}
    with pytest.raises(ValueError, match="GAN_JAX_PROCESS_ID is set but GAN_JAX_NUM_PROCESSES"):
        parallel.process_arguments({"GAN_JAX_PROCESS_ID": "0"})
    with pytest.raises(ValueError, match=r"GAN_JAX_PROCESS_ID=2 must be in 0\.\.1"):
        parallel.process_arguments({"GAN_JAX_NUM_PROCESSES": "2", "GAN_JAX_PROCESS_ID": "2"})
    with pytest.raises(ValueError, match="must be integers"):
        parallel.process_arguments({"GAN_JAX_NUM_PROCESSES": "two", "GAN_JAX_PROCESS_ID": "0"})
