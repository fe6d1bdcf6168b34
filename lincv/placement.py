"""Where a sweep's training rows live: on the devices, or in host memory sent block by block.

`config.data.placement` is one of

  device  the rows are copied to every device once, and each step gathers its minibatch
          there (`lincv.training.train_epoch`);
  host    the rows stay in host memory (a NumPy array, or a memory-mapped .npy from
          `np.load(path, mmap_mode="r")`). Each epoch, blocks of `data.block_steps`
          minibatches are gathered on the host and sent to the devices, double-buffered:
          the next block is gathered and its transfer started (`jax.device_put` returns at
          once) while the compiled loop, one `lax.scan` per block, trains on the current
          one, so at most two blocks are on a device. The last block holds the steps left
          over: the block size need not divide the epoch's steps. The validation rows go
          to the devices;
  auto    `host` when the training rows take more than `FIT_FRACTION` of the free memory
          of the device with the least free memory (`Device.memory_stats()`), else
          `device`. A backend without memory statistics (XLA:CPU, whose device memory is
          the host's) gets `device`, and so does a run of several processes (`host`
          runs in one process for now, and every process must decide alike).

Both placements train on the same minibatches: the data order is a function of (seed,
epoch) only (`lincv.order`), and `host` computes it as `device` does, on the devices, then
fetches the epoch's row indices. Results are identical on XLA:CPU, bit for bit
(tests/test_placement.py): both run `training.epoch_steps`, whose step gathers its
minibatch by index from an array of rows (all the training rows, or the block's) and
runs the same operations, with the same shapes, in the same order; a block never holds a
single step (see `spans`). The two programs still differ in the size of the array gathered
from and in where the loop is cut, so a compiler that fuses them differently (XLA:GPU may
fuse the gather into the products) can round differently: there they agree within float32
rounding (not measured on a GPU). The training accuracy of host rows
(`HostEpochs.accuracy`) counts correct rows in blocks of `EVAL_ROWS`, a multiple of
`training.predict`'s chunk, and divides once, as `training.accuracy` does.

With one data order per member (no shared seed, no `shuffle_seed`) each member's
minibatches travel apart: K times the training rows per epoch, in blocks K times shorter;
members in seed blocks (`lincv.sweep.population.seed_block`) share a block's.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from lincv import order, training
from lincv._checks import check_name

PLACEMENTS = ("auto", "device", "host")
FIT_FRACTION = 0.5         # auto: the rows may take this share of a device's free memory
BLOCK_BYTES = 64 << 20     # data.block_steps = 0: blocks of about this many bytes
EVAL_ROWS = 8192           # rows per block of the training accuracy; predict's chunk


def options(data_cfg) -> tuple[str, int]:
  """(placement, block_steps) of a config's `data`, checked; a ValueError says what is valid."""
  placement, block = data_cfg.get("placement", "auto"), data_cfg.get("block_steps", 0)
  check_name("data.placement", placement, PLACEMENTS)
  return placement, check_block_steps(block)


def check_block_steps(block) -> int:
  """`block` if it is a valid `data.block_steps`, else a ValueError saying what is."""
  if isinstance(block, bool) or not isinstance(block, int) or block < 0 or block == 1:
    raise ValueError(f"data.block_steps must be 0 (blocks of about {BLOCK_BYTES >> 20} MiB) "
                     f"or an integer >= 2 (minibatches per block), got {block!r}")
  return block


def free_bytes(devices) -> int | None:
  """The least free memory of `devices`, in bytes; None if one reports no statistics."""
  free = []
  for d in devices:
    stats = d.memory_stats() if hasattr(d, "memory_stats") else None
    if not stats or "bytes_limit" not in stats:
      return None
    free.append(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
  return min(free) if free else None


def resolve(placement: str, nbytes: int, devices) -> str:
  """"device" or "host": `placement`, with "auto" decided by `nbytes` of training rows."""
  check_name("data.placement", placement, PLACEMENTS)
  if placement != "auto":
    return placement
  if jax.process_count() > 1:
    return "device"   # every process must decide alike, and host runs in one process
  free = free_bytes(devices)
  return "host" if free is not None and nbytes > FIT_FRACTION * free else "device"


def spans(num_steps: int, block: int) -> list[tuple[int, int]]:
  """[start, stop) of each block of `block` steps; the last holds what is left, and a
  single step left over joins the block before it: XLA compiles a scan of one step
  without its loop, and fuses it differently (its results then differ in the last bits)."""
  starts = list(range(0, num_steps, block))
  if len(starts) > 1 and num_steps - starts[-1] == 1:
    starts.pop()
  return list(zip(starts, [*starts[1:], num_steps]))


def run_blocks(carry, steps, load, blocks):
  """The carry after `steps(carry, *load(b))` for each block b in turn, double-buffered.

  Block i+1 is loaded (gathered, its transfer started) once block i's steps are
  dispatched and block i-1's are done: the host works while the devices train, and at
  most two blocks are held on them.
  """
  ahead = load(blocks[0])
  for i in range(len(blocks)):
    current, before = ahead, carry
    carry = steps(carry, *current)
    jax.block_until_ready(before)
    if i + 1 < len(blocks):
      ahead = load(blocks[i + 1])
  return carry


class HostEpochs:
  """The epochs of a `lincv.sweep.Population` whose training rows stay on the host.

  `pop.data` holds the training rows as NumPy arrays and the validation rows on the
  devices; `by_chunk` is the population's vmap over chunks of members (see `Population`).
  """

  def __init__(self, pop, by_chunk, block_steps: int = 0):
    self.pop, s = pop, pop.group.structure
    block_steps = check_block_steps(block_steps)
    x, y = pop.data.x_train, pop.data.y_train
    n = x.shape[0]
    self.replicated = NamedSharding(pop.mesh, P())
    self.split = NamedSharding(pop.mesh, P("pop"))
    step_bytes = s.batch_size * (x.dtype.itemsize * x.shape[1] + y.dtype.itemsize)
    self.block_steps, self.step_bytes = block_steps, step_bytes
    self.block = self.steps_per_block(1)
    shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), pop.data)

    def steps(carry, hp, idx, xs, ys):
      return training.epoch_steps(carry, hp, xs, ys, idx, s, n)

    def end(state, carry, hp, x_val, y_val):
      return training.epoch_end(state, carry, hp, x_val, y_val, s)

    def count(params, xb, yb):
      return jnp.sum(training.predict(s, params, xb) == yb, dtype=jnp.int32)

    self._init = jax.jit(jax.vmap(lambda hp: training.init_state(hp, shapes, s,
                                                                   pop.num_classes)),
                         compiler_options={"xla_backend_optimization_level": 1})
    self._order = jax.jit(lambda epoch, key: order.epoch_batches({}, key, epoch[0], s, n),
                          out_shardings=self.replicated)
    self._order_own = jax.jit(lambda epoch, hps: jax.vmap(
        lambda hp: order.epoch_batches(hp, None, epoch[0], s, n))(hps))
    self._start = jax.jit(jax.vmap(lambda st: training.epoch_start(st, s)))
    # A block holds the rows of its minibatches and their indices into those rows; with
    # one order per member, each device gets its members' rows (see `epoch`).
    self._steps = jax.jit(pop._per_device(
        lambda c, hp, idx, xs, ys: by_chunk(steps, (c, hp), (idx, xs, ys)), 2, 3))
    self._steps_own = jax.jit(pop._per_device(
        lambda c, hp, idx, xs, ys: by_chunk(steps, (c, hp, idx), (xs, ys)), 5, 0))
    self._steps_blocks = jax.jit(pop._per_device(   # a seed block's rows, one gather
        lambda c, hp, idx, xs, ys: by_chunk(steps, (c, hp), (xs, ys), (idx,)), 5, 0))
    self._end = jax.jit(pop._per_device(
        lambda st, c, hp, xv, yv: by_chunk(end, (st, c, hp), (xv, yv)), 3, 2))
    # Correctly rounded, as on the devices (`training.fraction`).
    self._mean = jax.jit(training.fraction, static_argnums=(1, 2))
    self._count = jax.jit(pop._per_device(
        lambda p, xb, yb: by_chunk(count, (p,), (xb, yb)), 1, 2))

  def steps_per_block(self, copies: int) -> int:
    """Minibatches per block: `data.block_steps`, else as many as hold about BLOCK_BYTES
    with `copies` of each minibatch's rows (one per data order; see `epoch`)."""
    return self.block_steps or max(2, BLOCK_BYTES // (self.step_bytes * copies))

  def init(self):
    return self._init(self.pop.hparams)

  def epoch(self, state, key: jax.Array | None):
    """One epoch of every member, as `Population.epoch`: (state, metrics).

    A block of s steps of batch B sends the s*B rows of its minibatches, in step order,
    and the indices of each minibatch into them. With one order per member (per seed
    block), the rows of every member (block) follow one another, and each device gets
    those of its own members.
    """
    pop = self.pop
    x, y, hparams = pop.data.x_train, pop.data.y_train, pop.hparams
    if key is None:
      # (members, steps, batch); in seed blocks (`Population.block`), one per block
      firsts = jax.tree.map(lambda a: a[::pop.block], pop.hparams_host)
      idx = np.asarray(self._order_own(state.epoch, firsts))
      block, sharding = self.steps_per_block(idx.shape[0]), self.split
      run = self._steps_own if pop.block == 1 else self._steps_blocks
      per_device = idx.shape[0] // pop.mesh.devices.size
    else:
      idx = np.asarray(self._order(state.epoch, key))           # (steps, batch)
      block, sharding, run = self.block, self.replicated, self._steps

    def load(span):
      rows = idx[..., span[0]:span[1], :]
      steps_b = rows.shape[-2:]
      local = np.arange(np.prod(steps_b), dtype=np.int32).reshape(steps_b)
      if key is None:   # a member's (or block's) indices are into its device's rows
        j = np.arange(idx.shape[0], dtype=np.int32)[:, None, None] % per_device
        local = j * local.size + local
      flat = rows.reshape(-1)
      return jax.device_put((local, x[flat], y[flat]), sharding)

    carry = run_blocks(self._start(state), lambda c, *blk: run(c, hparams, *blk), load,
                       spans(idx.shape[-2], block))
    return self._end(state, carry, hparams, pop.data.x_val, pop.data.y_val)

  def accuracy(self, params, x, y) -> np.ndarray:
    """Each member's accuracy (k_pad,) on host rows `x`, `y`, sent `EVAL_ROWS` at a time."""
    total = 0
    for a in range(0, x.shape[0], EVAL_ROWS):
      rows = slice(a, a + EVAL_ROWS)
      xb, yb = jax.device_put((np.asarray(x[rows]), np.asarray(y[rows])), self.replicated)
      total = total + self._count(params, xb, yb)
    return np.asarray(self._mean(total, x.shape[0], np.dtype(x.dtype)))


def host_data(data: training.Data, sharding) -> training.Data:
  """`data` with its training rows as host arrays (a memory map stays one) and its
  validation rows on the devices of `sharding`."""
  return training.Data(np.asarray(data.x_train), np.asarray(data.y_train),
                       *jax.device_put((data.x_val, data.y_val), sharding))
