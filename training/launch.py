"""What the launcher asked for against what Accelerate started: a launch that would silently train with one
process, or start N independent trainings writing into one folder, stops before anything is written and says
what to run instead.

Measured with accelerate 1.15 and torch 2.13 on a machine without GPUs (docs/training.md, "Several processes"):

* ``accelerate launch --cpu --num_processes 2`` and ``accelerate launch --num_processes 2`` start ONE process
  (accelerate's single-process launcher; it expects ``mpirun`` for several CPU processes). The only trace of
  the request is ``MASTER_ADDR`` beside accelerate's ``ACCELERATE_DYNAMO_BACKEND``, and the launcher's own
  command line.
* ``accelerate launch --multi_gpu --num_processes 2`` and ``torchrun --nproc_per_node 2`` start two processes
  (``WORLD_SIZE=2``), but without GPUs and without ``ACCELERATE_USE_CPU=1`` Accelerate initialises each as a
  lone process (``DistributedType.NO``): two independent trainings.
* The same two with ``ACCELERATE_USE_CPU=1`` give one run of two processes (``MULTI_CPU``, gloo).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

MPI_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")


class LaunchMismatch(RuntimeError):
    """The launcher asked for a number of processes that Accelerate did not start."""


def requested_processes(env: Mapping[str, str]) -> tuple[int | None, str]:
    """How many processes the launch asked for (None: several, number unknown) and how it said so."""
    if "WORLD_SIZE" in env:
        return int(
            env["WORLD_SIZE"]
        ), f"WORLD_SIZE={env['WORLD_SIZE']}, set by torchrun or accelerate launch --multi_gpu"
    for name in MPI_SIZE_VARIABLES:
        if name in env:
            return int(env[name]), f"{name}={env[name]}, set by mpirun"
    if "ACCELERATE_DYNAMO_BACKEND" in env and "MASTER_ADDR" in env:  # accelerate launch's one-process launcher
        return _launcher_num_processes(), "accelerate launch --num_processes N without --multi_gpu"
    return 1, "a plain one-process start"


def _launcher_num_processes() -> int | None:
    """--num_processes from the parent (accelerate launch) process's command line, where Linux shows it."""
    try:
        argv = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return None
    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--num_processes=") else None
        if arg == "--num_processes" and i + 1 < len(argv):
            value = argv[i + 1]
        if value is not None and value.isdecimal():
            return int(value)
    return None


def check_launch(env: Mapping[str, str], num_processes: int, distributed_type: str, script: str = "") -> None:
    """Raise LaunchMismatch when the launch asked for other than the ``num_processes`` Accelerate started."""
    requested, how = requested_processes(env)
    if requested == num_processes:
        return
    if requested is None and num_processes > 1:
        return
    wanted = "several" if requested is None else str(requested)
    if num_processes == 1 and "WORLD_SIZE" in env:
        outcome = f"each of the {wanted} processes would train alone, all writing into the same output_dir"
    else:
        outcome = f"{num_processes} process(es) would train where {wanted} were asked for"
    module = script or f"training.{Path(sys.argv[0]).stem}"
    n = requested or "N"
    raise LaunchMismatch(
        f"This launch asked for {wanted} processes ({how}) but Accelerate started {num_processes} "
        f"({distributed_type}): {outcome}. Nothing was written. Run instead:\n"
        f"  {n} processes on this machine's CPUs (gloo):  ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu "
        f"--num_processes {n} -m {module} ...\n"
        f"      (or: ACCELERATE_USE_CPU=1 torchrun --nproc_per_node {n} -m {module} ...)\n"
        f"  {n} GPUs on this machine:  accelerate launch --multi_gpu --num_processes {n} -m {module} ...\n"
        f"  one process:  python -m {module} ..."
    )
