"""One device mesh for every platform: a 1-D ``Mesh`` over all devices with a 'data' axis.

The same code runs on 1 CPU, N fake CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=N``), a GPU host and a TPU pod: each
process loads its share of the global batch and :func:`global_batch` assembles the global,
'data'-sharded array with ``jax.make_array_from_process_local_data``; parameters are
replicated. Only process 0 writes the run's files; orbax checkpoints are collective (every
process takes part and writes only the index of the shards it holds, via OCDBT).
"""
from __future__ import annotations

import dataclasses
import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def distributed_requested(config) -> bool:
    """The config asks (``distributed=True``) or the launcher does (``JAXEQ_DISTRIBUTED=1`` or
    ``JAX_COORDINATOR_ADDRESS`` set)."""
    return bool(config.distributed or os.environ.get("JAXEQ_DISTRIBUTED") == "1"
                or os.environ.get("JAX_COORDINATOR_ADDRESS"))


def maybe_initialize_distributed(config) -> None:
    """Call ``jax.distributed.initialize`` once when asked; a no-op otherwise.

    Arguments come from the environment: ``JAX_COORDINATOR_ADDRESS`` (read by JAX itself) and,
    where the cluster cannot be auto-detected (e.g. local tests), ``JAX_NUM_PROCESSES`` and
    ``JAX_PROCESS_ID``. On Cloud TPU pods, SLURM and similar, everything is auto-detected.
    Must run before anything touches the devices.
    """
    if not distributed_requested(config) or jax.distributed.is_initialized():
        return
    kwargs = {}
    if os.environ.get("JAX_NUM_PROCESSES"):
        kwargs["num_processes"] = int(os.environ["JAX_NUM_PROCESSES"])
    if os.environ.get("JAX_PROCESS_ID"):
        kwargs["process_id"] = int(os.environ["JAX_PROCESS_ID"])
    jax.distributed.initialize(**kwargs)


@dataclasses.dataclass(frozen=True)
class MeshInfo:
    mesh: Mesh
    replicated: NamedSharding      # parameters, optimizer state, metrics
    batch_sharding: NamedSharding  # leading (batch) axis split over 'data'

    @property
    def num_devices(self) -> int:
        return self.mesh.devices.size


def make_mesh() -> MeshInfo:
    devices = np.asarray(jax.devices())
    mesh = Mesh(devices, (DATA_AXIS,))
    return MeshInfo(mesh, NamedSharding(mesh, P()), NamedSharding(mesh, P(DATA_AXIS)))


def check_batch_sizes(batch_size: int, eval_batch_size: int) -> None:
    """Global batches must split evenly over devices and processes (raises before compiling)."""
    n_dev, n_proc = jax.device_count(), jax.process_count()
    for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
        if value % n_dev:
            raise ValueError(f"config: {name}={value} is not divisible by the device count "
                             f"{n_dev} (the global batch is split evenly over the 'data' axis)")
        if value % n_proc:
            raise ValueError(f"config: {name}={value} is not divisible by the process count "
                             f"{n_proc}")


def global_batch(local: dict, info: MeshInfo, global_batch_size: int) -> dict:
    """This process's numpy share -> global arrays sharded over 'data'."""
    def one(x):
        x = np.asarray(x)
        return jax.make_array_from_process_local_data(
            info.batch_sharding, x, (global_batch_size,) + x.shape[1:])
    return {k: one(v) for k, v in local.items()}
