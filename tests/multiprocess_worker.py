"""Subprocess body of tests/test_multiprocess.py: ``python -m tests.multiprocess_worker MODE OUT``.

MODE ``reference`` runs in ONE process with 4 CPU devices: from the run's initial state it
takes 3 data-parallel steps, each also from the state scaled by 1 +- 3e-6 in G (the control of
tests/test_parallel.py), and pickles the states, metrics and controls to OUT.

MODE ``worker`` runs in each of 2 processes with 2 CPU devices each, started with
``JAX_COORDINATOR_ADDRESS``, ``GAN_JAX_NUM_PROCESSES`` and ``GAN_JAX_PROCESS_ID`` (the same
environment as the command-line programs): the 4-device job takes one step from each of the
reference's states (compared there, in the test), then trains ``gan_jax.train`` in the workdir
``WORKDIR`` while an audit hook records every file this process creates, writes or removes
under it. Each process writes its report to OUT.<process index>.
"""

import os
import pickle
import sys

from gan_jax import xla_config

xla_config.use_fast_cpu_convolutions()  # as the command-line programs do, before JAX starts

from gan_jax.training import parallel  # noqa: E402

INITIALIZED = parallel.maybe_initialize_distributed()  # first, before any JAX computation

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import gan_jax  # noqa: E402
from gan_jax.training import checkpoint, loop, steps  # noqa: E402

NUM_STEPS = 3
EPS = (3e-6, -3e-6)
TRAIN_STEPS = 6  # the training loop's run (as the CLI's in the test: same flags)
WRITE_EVENTS = ("os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "os.truncate",
                "shutil.rmtree", "shutil.copyfile", "os.link", "os.symlink")


ARCH = "dcgan"  # DCGAN-28: BatchNorm in G and D across devices; 10x the thesis GAN's speed here


def config(data_dir, **kwargs):
    return gan_jax.Config(arch=ARCH, batch_size=8, eval_every=0, data_dir=data_dir, **kwargs)


def train_config(data_dir, workdir):
    """The flags of tests/test_multiprocess.py's command lines, as a Config."""
    return config(data_dir, workdir=workdir, num_steps=TRAIN_STEPS, log_every=2,
                  sample_every=2, checkpoint_every=1000)


def scaled(state, eps):
    return state.replace(g_params=jax.tree.map(lambda x: x * jnp.float32(1 + eps),
                                               state.g_params))


def reference(data_dir, out):
    cfg = config(data_dir)
    images = loop.load_training_images(cfg)
    init_key, key, _ = loop.run_keys(cfg.seed)
    mesh = parallel.data_mesh()
    step = steps.make_train_step(cfg, images, mesh=mesh)
    states, metrics, controls = [jax.device_get(gan_jax.create_state(cfg, init_key))], [], []
    for _ in range(NUM_STEPS):
        s, m = step(parallel.replicate(states[-1], mesh), key)
        controls.append([jax.device_get(step(parallel.replicate(scaled(states[-1], e), mesh),
                                             key)) for e in EPS])
        states.append(jax.device_get(s))
        metrics.append(jax.device_get(m))
    with open(out, "wb") as f:
        pickle.dump({"device_count": jax.device_count(), "process_count": jax.process_count(),
                     "states": states, "metrics": metrics, "controls": controls}, f)


def worker(data_dir, out, workdir):
    with open(out.rsplit(".", 1)[0] + ".reference", "rb") as f:
        ref = pickle.load(f)
    cfg = config(data_dir)
    images = loop.load_training_images(cfg)
    _, key, _ = loop.run_keys(cfg.seed)
    mesh = parallel.data_mesh()
    step = steps.make_train_step(cfg, images, mesh=mesh)
    rkey = parallel.replicate(key, mesh)
    stepped = []
    for i in range(NUM_STEPS):
        s, m = step(parallel.replicate(ref["states"][i], mesh), rkey)
        replicated = all(x.sharding.is_fully_replicated and len(x.sharding.device_set) == 4
                         for x in jax.tree.leaves(s))
        stepped.append((jax.device_get(s), jax.device_get(m), replicated))

    workdir = os.path.abspath(workdir)
    writes, saves = [], []

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            if not isinstance(path, (str, bytes, os.PathLike)):
                return
            writing = (mode is not None and any(c in mode for c in "wax+")) or (
                mode is None and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if not writing:
                return
        elif event not in WRITE_EVENTS:
            return
        for path in args[:2]:
            if isinstance(path, (str, bytes, os.PathLike)):
                path = os.path.abspath(os.fsdecode(path))
                if path == workdir or path.startswith(workdir + os.sep):
                    writes.append((event, os.path.relpath(path, workdir)))
                    return

    save = checkpoint.Checkpointer.save

    def recording_save(self, step_number, state):
        saves.append(step_number)
        return save(self, step_number, state)

    checkpoint.Checkpointer.save = recording_save
    sys.addaudithook(hook)
    final = gan_jax.train(train_config(data_dir, workdir))
    sys.addaudithook(lambda *a: None)  # (hooks cannot be removed; stop recording instead)
    recorded = list(writes)
    with open(f"{out}", "wb") as f:
        pickle.dump({
            "initialized": INITIALIZED, "process_count": jax.process_count(),
            "process_index": jax.process_index(), "device_count": jax.device_count(),
            "local_device_count": jax.local_device_count(), "stepped": stepped,
            "writes": recorded, "saves": saves, "final_step": int(final.step),
            "final": jax.device_get(final)}, f)


if __name__ == "__main__":
    mode, data_dir, out = sys.argv[1:4]
    if mode == "reference":
        reference(data_dir, out)
    else:
        worker(data_dir, f"{out}.{jax.process_index()}", sys.argv[4])
