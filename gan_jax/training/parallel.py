"""Data parallelism as sharding: one 1-D device mesh named ``"data"``, nothing else.

The train step is written for the *global* batch and never mentions devices. Parallelism is
a property of where arrays live (big_vision style):

- the game state (parameters, BatchNorm statistics, optimiser states) is replicated on every
  device: ``NamedSharding(mesh, P())``;
- each real minibatch and each batch of z is sharded along its batch axis:
  ``NamedSharding(mesh, P("data"))``, so device ``i`` of ``D`` handles rows
  ``i * B/D .. (i+1) * B/D - 1`` of the global batch of ``B``;
- ``jax.jit`` compiles the global program for the mesh and XLA inserts the collectives: the
  gradient of a mean over the batch becomes a local sum plus an all-reduce, and BatchNorm's
  mean and variance are over the *global* batch (not per device), exactly as on one device.

So the same code runs on 1 CPU, on 8 fake CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``, how the tests check it), on a GPU,
or on all chips of a TPU VM or multi-host TPU slice. Results equal single-device training up
to float32 reassociation of the reductions (tests/test_parallel.py).

Multi-host (a TPU slice with several hosts, or a hand-made cluster started with
``JAX_COORDINATOR_ADDRESS``, ``GAN_JAX_NUM_PROCESSES`` and ``GAN_JAX_PROCESS_ID``; each
process runs the same command; tests/test_multiprocess.py runs 2 processes on one machine): call
:func:`maybe_initialize_distributed` first (``gan_jax.train`` does), then ``jax.devices()``
lists the chips of all hosts and :func:`data_mesh` spans them. Input feeding: every host
loads the (small) training set and places it replicated on its own chips; the minibatch
indices are drawn from the shared PRNG key *inside* the compiled step, so every host computes
the same global index vector and each chip gathers only its own rows of the batch from its
local copy of the dataset. Each host thereby feeds exactly its shard of the global batch,
with no host-side input pipeline and no data moving between hosts. (A dataset too large to
replicate would instead be sharded, or fed per host with
``jax.make_array_from_process_local_data``; MNIST at 188 MB float32 does not need that.)
"""

from __future__ import annotations

import glob
import importlib.util
import os
import urllib.request
from typing import Any, Mapping, Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"

# Environment switch: "1" forces jax.distributed.initialize(), "0" disables it.
DISTRIBUTED_ENV = "GAN_JAX_DISTRIBUTED"
# A hand-made cluster (no Slurm, Open MPI or TPU metadata to detect): the number of processes
# and this process's id, passed to jax.distributed.initialize() with JAX_COORDINATOR_ADDRESS.
NUM_PROCESSES_ENV = "GAN_JAX_NUM_PROCESSES"
PROCESS_ID_ENV = "GAN_JAX_PROCESS_ID"


def data_mesh(devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
    """A 1-D mesh with axis ``"data"`` over ``devices`` (default: ``jax.devices()``).

    ``jax.devices()`` is every device of the job: the local ones on a single host, the chips
    of all hosts after :func:`maybe_initialize_distributed` on a multi-host slice.
    """
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("data_mesh needs at least one device")
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding of the game state: a full copy on every device of ``mesh``."""
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """The sharding of a batch: leading (batch) axis split over the ``"data"`` axis."""
    return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """ValueError unless ``batch_size`` splits evenly over the devices of ``mesh``."""
    num = mesh.shape[DATA_AXIS]
    if batch_size % num:
        raise ValueError(
            f"batch_size {batch_size} is not divisible by the {num} devices of the data mesh "
            f"({mesh.devices.flat[0].platform}): each device takes batch_size / {num} examples. "
            f"Use a batch_size that is a multiple of {num}, or fewer devices (e.g. "
            f"CUDA_VISIBLE_DEVICES, or an explicit mesh over jax.devices()[:n]).")


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Places every leaf of ``tree`` (arrays, numpy arrays, PRNG keys) replicated on ``mesh``.

    The result never shares buffers with ``tree``, so donating it (the train step donates
    its state on accelerators) leaves ``tree`` intact. Single process: ``jax.device_put``.
    Multi-process: each host builds the global array from its own copy of the value (which must
    be the same on every host, as the state, key and dataset of a run are), without cross-host
    traffic.
    """
    sharding = replicated(mesh)
    if jax.process_count() == 1:
        # device_put may reuse the source buffer as the copy on its own device; copy first.
        tree = jax.tree.map(lambda x: x.copy() if isinstance(x, jax.Array) else x, tree)
        return jax.device_put(tree, sharding)
    return jax.tree.map(lambda x: _replicate_from_host(x, sharding), tree)


def _replicate_from_host(x: Any, sharding: NamedSharding) -> jax.Array:
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        # A typed key travels as its raw uint32 data and is wrapped again on the mesh.
        data = _replicate_from_host(jax.random.key_data(x), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    value = np.asarray(x)
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def replicated_target(abstract: Any, mesh: Mesh) -> Any:
    """``abstract`` (a tree of ``jax.ShapeDtypeStruct``) with the replicated sharding attached:
    the orbax restore target that restores a checkpoint straight into replicated arrays."""
    sharding = replicated(mesh)
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
                        abstract)


def multihost_reason(environ: Mapping[str, str] = os.environ) -> Optional[str]:
    """Why this process looks like one of several hosts of a job, or None if it does not.

    In order:
      1. ``GAN_JAX_DISTRIBUTED=0`` (or false/no): never; ``=1`` (or true/yes): always (for
         Slurm, Open MPI or a hand-made cluster, where ``jax.distributed.initialize()``
         auto-detects or reads ``JAX_COORDINATOR_ADDRESS`` and friends).
      2. ``JAX_COORDINATOR_ADDRESS`` is set (JAX's own variable for a manual cluster).
      3. A multislice TPU job (``MEGASCALE_COORDINATOR_ADDRESS`` set), or a TPU job whose
         ``TPU_PROCESS_ADDRESSES`` / ``TPU_WORKER_HOSTNAMES`` lists more than one host (GKE).
      4. On a Cloud TPU VM (libtpu installed and TPU device files present): the VM metadata
         ``worker-network-endpoints`` lists more than one worker (a multi-host slice such as
         v4-32 or v5e-32; single-host VMs like v5e-8 list one).

    Nothing here touches the JAX backend, and on a laptop, CPU or GPU machine none of the
    checks fires and no network request is made.
    """
    flag = environ.get(DISTRIBUTED_ENV, "").strip().lower()
    if flag in ("0", "false", "no"):
        return None
    if flag in ("1", "true", "yes"):
        return f"{DISTRIBUTED_ENV}={environ[DISTRIBUTED_ENV]}"
    if environ.get("JAX_COORDINATOR_ADDRESS"):
        return "JAX_COORDINATOR_ADDRESS is set"
    if environ.get("MEGASCALE_COORDINATOR_ADDRESS"):
        return "multislice TPU job (MEGASCALE_COORDINATOR_ADDRESS is set)"
    for var in ("TPU_PROCESS_ADDRESSES", "TPU_WORKER_HOSTNAMES"):
        hosts = [h for h in environ.get(var, "").split(",") if h.strip()]
        if len(hosts) > 1:
            return f"{var} lists {len(hosts)} TPU hosts"
    if _on_cloud_tpu_vm():
        workers = _tpu_vm_metadata("worker-network-endpoints", environ)
        hosts = [w for w in (workers or "").split(",") if w.strip()]
        if len(hosts) > 1:
            return f"Cloud TPU VM metadata lists {len(hosts)} workers"
    return None


def _on_cloud_tpu_vm() -> bool:
    if importlib.util.find_spec("libtpu") is None:
        return False
    return bool(glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*"))


def _tpu_vm_metadata(key: str, environ: Mapping[str, str]) -> Optional[str]:
    host = environ.get("GCE_METADATA_IP", "metadata.google.internal")
    request = urllib.request.Request(
        f"http://{host}/computeMetadata/v1/instance/attributes/{key}",
        headers={"Metadata-Flavor": "Google"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.read().decode()
    except OSError:
        return None


def maybe_initialize_distributed() -> bool:
    """Calls ``jax.distributed.initialize()`` when :func:`multihost_reason` says this is a
    multi-host job; a no-op otherwise (single host, laptop, CPU, GPU box), and when JAX's
    distributed system is already initialized.

    Must run before anything else uses JAX (``jax.devices()``, any computation):
    :func:`gan_jax.train` calls it first. On a TPU slice ``initialize()`` needs no arguments
    (JAX finds the coordinator, the number of processes and this process's id itself).

    Returns:
      True if this call initialized the distributed system.
    """
    reason = multihost_reason()
    if reason is None or jax.distributed.is_initialized():
        return False
    kwargs = process_arguments()
    from jax._src import xla_bridge  # Only to turn JAX's error into an actionable one.

    if xla_bridge.backends_are_initialized():
        raise RuntimeError(
            f"This looks like a multi-host job ({reason}), but JAX was already used in this "
            "process, so jax.distributed.initialize() can no longer run. Call "
            "gan_jax.training.parallel.maybe_initialize_distributed() before any other JAX call, or set "
            f"{DISTRIBUTED_ENV}=0 to run this process on its own devices only.")
    jax.distributed.initialize(**kwargs)
    return True


def process_arguments(environ: Mapping[str, str] = os.environ) -> dict:
    """``num_processes`` and ``process_id`` for ``jax.distributed.initialize`` from
    ``GAN_JAX_NUM_PROCESSES`` and ``GAN_JAX_PROCESS_ID`` (both or neither), else ``{}`` (JAX
    detects them on TPU slices, Slurm and Open MPI).

    A hand-made cluster, e.g. two GPU machines or, as tests/test_multiprocess.py does, two
    processes on one machine, sets on every process ``JAX_COORDINATOR_ADDRESS=host:port`` (of
    process 0), ``GAN_JAX_NUM_PROCESSES=N`` and its own ``GAN_JAX_PROCESS_ID`` in 0..N-1.

    Raises:
      ValueError: only one of the two is set, or they are not integers with 0 <= id < N.
    """
    num, pid = environ.get(NUM_PROCESSES_ENV), environ.get(PROCESS_ID_ENV)
    if num is None and pid is None:
        return {}
    if num is None or pid is None:
        missing = NUM_PROCESSES_ENV if num is None else PROCESS_ID_ENV
        given = PROCESS_ID_ENV if num is None else NUM_PROCESSES_ENV
        raise ValueError(f"{given} is set but {missing} is not: a hand-made cluster sets both "
                         "(the number of processes, and this process's id from 0).")
    try:
        num_processes, process_id = int(num), int(pid)
    except ValueError:
        raise ValueError(f"{NUM_PROCESSES_ENV}={num!r} and {PROCESS_ID_ENV}={pid!r} must be "
                         "integers") from None
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise ValueError(f"{PROCESS_ID_ENV}={process_id} must be in 0..{num_processes - 1} "
                         f"({NUM_PROCESSES_ENV}={num_processes})")
    return {"num_processes": num_processes, "process_id": process_id}
