"""Several processes (hosts) running one sweep through `jax.distributed`.

Every process runs the same program on the same data; the population axis is sharded
over every process's devices (`lincv.sweep.population`), and what a process reads back
(metrics, states, outcomes) is gathered from all of them (`fetch`), so every process takes
the same decisions: which members go on, which one is selected. Process 0 alone writes
(`is_writer`).

    distributed.initialize("host0:1234", num_processes=2, process_id=0)

A process that loses a peer fails at its next collective (or when the coordination
service misses the peer's heartbeat, after `HEARTBEAT_SECONDS`); `abort` then ends it at
once with one line, without waiting for the peers at exit.
"""

import contextlib
import logging
import os
import sys

import jax
import numpy as np

HEARTBEAT_SECONDS = 20   # a peer silent this long is dead, and the run ends
_joined = []             # [True] once this process has joined a run


def initialize(coordinator: str, num_processes: int, process_id: int) -> None:
  """Joins the run of `num_processes` processes whose process 0 listens at `coordinator`
  (host:port). On CPU, collectives between processes go over gloo."""
  if jax.config.jax_cpu_collectives_implementation in (None, "none"):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                             process_id=process_id,
                             heartbeat_timeout_seconds=HEARTBEAT_SECONDS)
  _joined.append(True)


def joined() -> bool:
  """True once `initialize` has joined this process to a run."""
  return bool(_joined)


def is_multiprocess() -> bool:
  return jax.process_count() > 1


def is_writer() -> bool:
  """True in the process that writes the run directory and prints: process 0."""
  return jax.process_index() == 0


def fetch(tree):
  """`tree` as NumPy arrays on this host, each leaf gathered whole from every process."""
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel

  def one(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)
  return jax.tree.map(one, tree)


def put(tree, sharding):
  """`tree` (the same whole host arrays in every process) as global arrays of `sharding`:
  each process places the blocks of its own devices."""
  def one(x):
    if isinstance(x, jax.Array) and x.sharding == sharding:
      return x
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return jax.device_put(x, sharding)
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
  return jax.tree.map(one, tree)


def abort(message: str, status: int = 1) -> None:
  """Writes `message` as one line on stderr and ends the process now: the exit of a
  process whose peer died would otherwise wait for that peer at JAX's shutdown barrier."""
  sys.stdout.flush()
  sys.stderr.write(message.rstrip("\n") + "\n")
  sys.stderr.flush()
  os._exit(status)  # pylint: disable=protected-access


def exit_without_teardown(code: int = 0) -> None:
  """Ends a finished (or interrupted) one-process program at once, skipping the
  interpreter's teardown.

  Unloading jax, XLA and matplotlib takes 0.5 to 1 s of a 2-core CPU after the last line
  is printed, a tenth of the default run; everything the run writes is closed (and
  synced) by then. After Ctrl-C, XLA's threads may still be running the program the
  interrupt cut short, and tearing the interpreter down under them could crash the
  process (SIGSEGV instead of status 130). A process of a multi-process run exits
  normally: jax's exit handler leaves the coordination service, which its peers wait on.
  """
  if joined():
    if code:
      sys.exit(code)
    return
  logging.shutdown()
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)  # pylint: disable=protected-access


@contextlib.contextmanager
def writer_first(name: str):
  """Runs the body in process 0 first, then in the others at once: what it writes to a
  shared place (a dataset's prepared copy, a feature cache) is written once."""
  if not is_multiprocess():
    yield
    return
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  if not is_writer():
    multihost_utils.sync_global_devices(name)
  yield
  if is_writer():
    multihost_utils.sync_global_devices(name)
