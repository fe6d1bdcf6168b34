"""A group's members trained together: one compiled program, its members sharded over devices.

The K members of a `lincv.sweep.space.Group` train under one `jit(vmap(...))`, each on
the data order of its seed (one shared order, and each batch gathered once, where the
members have one seed or `shuffle_seed` is set), with the population axis sharded over
all devices and cut into chunks of at most `MAX_CHUNK` members (see `chunking`). A group
with `optimizer="closed_form"` is solved in one epoch instead (`lincv.sweep.closed_form`).

Members that stop leave the population: once fewer members are active than it holds, an
epoch computes only those (`Population.epoch`, `lincv.sweep.compaction`), and leaves the
others as the full program leaves a member that is not training; the full-batch
solver's, once that saves more than a compilation (`COMPACT_AFTER_FLOPS`).
"""

import dataclasses
import functools
import math

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from lincv import distributed, lbfgs, ridge, seeds, training
from lincv import placement as placement_lib
from lincv.sweep import compaction, space
from lincv.sweep.closed_form import ClosedForm
from lincv.sweep.space import Group, SweepError


def _mesh() -> Mesh:
  """Every device of every process, along the population axis."""
  return Mesh(np.asarray(jax.devices()), ("pop",))


def _padded(tree, k_pad: int):
  """Pads the leading (population) axis to k_pad by repeating the last member."""
  def pad(x):
    if x.shape[0] == k_pad:
      return x
    x = np.asarray(x)
    return np.concatenate([x, np.repeat(x[-1:], k_pad - x.shape[0], axis=0)])
  return jax.tree.map(pad, tree)


def _shard(tree, mesh: Mesh, spec=P("pop")):
  """`tree` on the mesh's devices; with several processes, each places its own blocks."""
  if distributed.is_multiprocess():
    return distributed.put(tree, NamedSharding(mesh, spec))
  return jax.device_put(tree, NamedSharding(mesh, spec))


def _by_chunk(chunk: int):
  """by_chunk(fn, batched, shared, blocked=()): vmap(fn) over each chunk of `chunk` of a
  device's members, one chunk after another.

  `fn` takes (*batched, *blocked, *shared). Each `blocked` argument holds one value per
  block of consecutive members (its leading axis: the device's members / block size):
  within a block it is shared, unbatched, so what `fn` derives from it alone (a
  minibatch and its gather, from a block's data order) is computed once per block, and
  the block's members form one product (see `seed_block`). Chunks are whole blocks.
  """
  def by_chunk(fn, batched, shared, blocked=()):
    split = lambda a: a.reshape(a.shape[0] // chunk, chunk, *a.shape[1:])
    merge = lambda a: a.reshape(a.shape[0] * chunk, *a.shape[2:])
    if not blocked:
      in_axes = (0,) * len(batched) + (None,) * len(shared)
      out = jax.lax.map(lambda b: jax.vmap(fn, in_axes=in_axes)(*b, *shared),
                        jax.tree.map(split, batched))
      return jax.tree.map(merge, out)
    num_blocks = jax.tree.leaves(blocked)[0].shape[0]
    per_chunk = chunk * num_blocks // jax.tree.leaves(batched)[0].shape[0]
    block = chunk // per_chunk
    by_block = lambda a: a.reshape(a.shape[0] // chunk, per_chunk, block, *a.shape[1:])
    blocks = lambda a: a.reshape(num_blocks // per_chunk, per_chunk, *a.shape[1:])
    unblock = lambda a: a.reshape(a.shape[0] * chunk, *a.shape[3:])
    in_axes = (0,) * len(batched) + (None,) * (len(blocked) + len(shared))
    members = jax.vmap(fn, in_axes=in_axes)          # a block's members
    each_block = jax.vmap(lambda b, k: members(*b, *k, *shared))
    out = jax.lax.map(lambda a: each_block(*a),
                      (jax.tree.map(by_block, batched), jax.tree.map(blocks, blocked)))
    return jax.tree.map(unblock, out)
  return by_chunk


def seed_block(member_seeds, chunk: int) -> int:
  """How many consecutive members share one data order, as seed blocks (1: none).

  Members with one seed draw one data order (`lincv.order`); where a group's seeds come
  in runs (`lincv.sweep.space.group` puts each seed's members together), blocks of the
  greatest common divisor of the runs' lengths and the chunk have one seed each, and
  whole blocks fill each chunk: the block's members share each minibatch's gather and
  form one product, where members of different orders gather apart and form K skinny
  products. Padding repeats the last member: its run grows by a multiple of the block.
  Where the chunk would leave blocks of 1 (99 members of 3 seeds, chunks of 50),
  `Population` trains in chunks of a divisor of the runs (33) instead. `chunk=0` gives
  the runs' greatest common divisor alone.

  >>> seed_block([0, 0, 0, 0, 1, 1, 1, 1], 8), seed_block([0, 1, 0, 1], 4)
  (4, 1)
  """
  seeds_ = np.asarray(member_seeds)
  starts = np.flatnonzero(np.diff(seeds_)) + 1
  runs = np.diff(np.concatenate([[0], starts, [seeds_.size]]))
  return math.gcd(chunk, *(int(r) for r in runs))


def _per_device(mesh: Mesh, fn, num_batched: int, num_shared: int):
  """`fn` on each device's block of members: the first `num_batched` arguments are split
  along the population axis, the next `num_shared` replicated."""
  return jax.shard_map(fn, mesh=mesh, in_specs=(P("pop"),) * num_batched
                       + (P(),) * num_shared, out_specs=P("pop"), check_vma=False)


# Groups share the programs that do not depend on what sets them apart: a sweep over
# losses builds one initialisation and one accuracy program, not one per group.
@functools.lru_cache(maxsize=32)
def _init_program(s: training.Structure, num_classes: int):
  """The vmapped `training.init_state` of structure `training.init_fields(...)` (jitted):
  groups that start alike share it."""
  def init(hparams, data):
    return training.init_state(hparams, data, s, num_classes)
  # LLVM's full optimisation of init's threefry sampler takes seconds, a tenth of that
  # at level 1, for the same values; init runs once per group.
  return jax.jit(jax.vmap(init, in_axes=(0, None)),
                 compiler_options={"xla_backend_optimization_level": 1})


@functools.lru_cache(maxsize=32)
def _accuracy_program(model: str, chunk: int, mesh: Mesh):
  """Every member's accuracy on rows (x, y), in chunks of `chunk` members (jitted)."""
  by_chunk, s = _by_chunk(chunk), training.Structure(model=model)
  accuracy = lambda params, x, y: training.accuracy(s, params, x, y)
  return jax.jit(_per_device(mesh, lambda p, x, y: by_chunk(accuracy, (p,), (x, y)), 1, 2))


# Like the two above, the epoch programs belong to what a population computes, not to
# the population: a later population of the same structure, devices, seed blocks and
# chunks on rows of the same shapes (a sweep run again in one process, in a notebook or
# a benchmark's repetitions) reuses their traced and compiled programs instead of
# building its own.
@functools.lru_cache(maxsize=32)
def _epoch_program(s: training.Structure, mesh: Mesh, block: int, chunk: int,
                   counted: bool):
  """(shared-order epoch, own-order epoch), jitted, for chunks of `chunk` members;
  `counted`: they compute only each device's first n chunks, n (one per device) their
  last argument (see `compaction.by_count`). `block`: members per seed block
  (`seed_block`), where each member has its own data order."""
  c = int(counted)  # the counts come first, if any
  by_chunk = compaction.by_count(chunk) if counted else _by_chunk(chunk)

  def epoch(state, hparams, data, key, e):
    return training.train_epoch(state, hparams, data, key, s, epoch=e)

  def population_epoch(state, hparams, data, key, *counts):
    # Members advance together, so they share one epoch number; with one key, they
    # share one data order and one minibatch gather per step (see
    # `training.train_epoch`).
    e = state.epoch[0]

    def local(*args):
      st, hp, d, k = args[c:]
      return by_chunk(epoch, (st, hp), (d, k, e), *(n[0] for n in args[:c]))
    return _per_device(mesh, local, 2 + c, 2)(*counts, state, hparams, data, key)

  def population_epoch_own(state, hparams, data, *counts):
    # Each member its own data order, from its seed: a gather per member and step;
    # in seed blocks, one per block (`seed_block`).
    e = state.epoch[0]
    if block > 1 and not counted:
      def blocks(st, hp, d):
        keys = jax.vmap(lambda seed: seeds.key(seed, "order"))(hp["seed"][::block])
        return by_chunk(lambda st_, hp_, key, d_, e_: epoch(st_, hp_, d_, key, e_),
                        (st, hp), (d, e), (keys,))
      return _per_device(mesh, blocks, 2, 1)(state, hparams, data)

    def local(*args):
      st, hp, d = args[c:]
      return by_chunk(epoch, (st, hp), (d, None, e), *(n[0] for n in args[:c]))
    return _per_device(mesh, local, 2 + c, 1)(*counts, state, hparams, data)

  # At XLA's default optimisation level, unlike `_init_program`'s. On a 2-core CPU,
  # level 2 compiled them no faster (an L-BFGS epoch of 16 members on 5,000 x 3,072
  # pixels about 3.5 s, an SGD epoch of 64 members 1.6 to 2 s: the first epoch less
  # the next ones, at either level) nor ran them faster; at level 1 the 16-strength
  # L-BFGS path took 20.2 to 22.1 s where it took 19.6 to 21.0 s (compilation in).
  return jax.jit(population_epoch), jax.jit(population_epoch_own)


MAX_CHUNK = 64  # at most this many members train as one vmapped program
COMPACT = True  # members that stop leave the population (False: they stay, frozen)
# The full-batch solver's members leave the population once those no longer training have
# cost this many flops of products in the epochs they were computed for nothing (the rule
# of renting skis until their price is spent): each smaller population compiles a
# program, about 1.5 s on a 2-core CPU, which pays only over a long enough tail. On the
# bench's probe path (16 members, 5,000 rows of 3,072, 6e9 flops a member-epoch, 5
# epochs) compacting to 8 and 1 members took 9.1 s where staying took 7.5 s; on 1,800
# k-means rows of 6,400 (5e9, 41 epochs) one member trained alone for its last 7.
COMPACT_AFTER_FLOPS = 2e11


def chunking(k: int, num_devices: int) -> tuple[int, int]:
  """(chunk, chunks per device) for a population of k members on `num_devices` devices.

  Every device holds the same whole number of chunks of `chunk` members, a function of
  k alone (padded with copies of the last member), and trains them one after the other,
  each as one vmapped program of `chunk` members sharing every minibatch. That program
  has the same shapes whatever the number of devices, so a member's results do not
  depend on it, bit for bit (the rounding of one product of K members' weights depends
  on K). Chunks of up to 64 members keep what a chunk pays once per step (the minibatch
  gather, the bookkeeping) small next to its products; a sweep of fewer than
  64 x devices members leaves some devices idle.
  """
  num_chunks = math.ceil(k / MAX_CHUNK)
  chunk = math.ceil(k / num_chunks)
  return chunk, math.ceil(num_chunks / num_devices)


@dataclasses.dataclass
class Population:
  """A group's compiled functions, sharded over devices; padded members are dropped on read.

  Its numeric hyperparameters are held in the data's float dtype (the seed as uint32).
  `placement` ("auto", "device" or "host") and `block_steps` say where the training rows
  live and how many minibatches go to the devices at once (see `lincv.placement`).
  """
  group: Group
  data: training.Data
  num_classes: int
  placement: str = "auto"
  block_steps: int = 0
  min_members: int | None = None

  def __post_init__(self):
    self.mesh = _mesh()
    n_dev = self.mesh.devices.size
    self.k = self.group.size
    s = self.group.structure
    # Members that stop leave the population (see `epoch`): the full-batch solver's as
    # it goes, pruned ones when halving (`min_members`, the fewest members the group may
    # train as, sets the chunks then, so that every population size runs the same
    # program per chunk and gives the same numbers).
    self._compacts = COMPACT and (s.optimizer == "lbfgs" or bool(self.min_members))
    self.chunk, per_device = chunking(self.k, n_dev)
    if self.min_members and s.optimizer != "lbfgs":
      self.chunk = chunking(min(self.min_members, self.k), 1)[0]
      per_device = math.ceil(math.ceil(self.k / self.chunk) / n_dev)
    member_seeds = np.unique(self.group.hparams["seed"])
    self.seed = int(member_seeds[0]) if member_seeds.size == 1 else None
    # Members of one seed share its data order in blocks (`seed_block`); not where
    # halving may move them between chunks, nor where they train on every row at once.
    minibatches = s.optimizer not in training.FULL_BATCH
    self.block = 1
    if self.seed is None and minibatches and not self.min_members:
      runs = seed_block(self.group.hparams["seed"], 0)    # gcd of the seeds' runs alone
      self.block = math.gcd(runs, self.chunk)             # = seed_block(seeds, chunk)
      if self.block == 1 and runs > 1:
        # Chunks that cut across the runs (99 members of 3 seeds in chunks of 50) would
        # leave one order per member: chunks of a divisor of the runs keep the blocks.
        self.chunk = self.block = max(c for c in range(1, min(runs, MAX_CHUNK) + 1)
                                      if runs % c == 0)
        per_device = math.ceil(math.ceil(self.k / self.chunk) / n_dev)
    self.k_pad = n_dev * per_device * self.chunk
    dtype = np.dtype(self.data.x_train.dtype)
    with np.errstate(over="ignore"):   # an overflow is refused below, with its value
      hparams = {f: np.asarray(v, np.uint32 if f == "seed" else dtype)
                 for f, v in self.group.hparams.items()}
    for f, v in hparams.items():      # held in the rows' dtype: it must hold them
      lost = (~np.isfinite(v) | ((v == 0) & (self.group.hparams[f] != 0))
              if np.issubdtype(v.dtype, np.floating) else np.zeros(v.shape, bool))
      if lost.any():
        value = self.group.hparams[f][lost][0]
        became = "infinite" if not np.isfinite(v[lost][0]) else "0"
        raise SweepError(f"{f} {value:g} is {became} in {dtype.name}, the dtype of the rows "
                         f"the sweep computes in; give values within its range "
                         f"({np.finfo(dtype).tiny:.3g} to {np.finfo(dtype).max:.3g}), or "
                         "float64 rows")
    for f in space.BELOW_ONE:         # a rate just below 1 may round to 1: no decay at all
      if f in hparams and (hparams[f] >= 1).any():
        value = float(self.group.hparams[f][hparams[f] >= 1][0])
        below = float(np.nextafter(dtype.type(1), dtype.type(0)))
        raise SweepError(f"{f} {value!r} is 1 in {dtype.name}, the dtype of the rows the "
                         f"sweep computes in, and a decay rate of 1 never forgets; give at "
                         f"most {below!r}, or float64 rows")
    self.hparams = _shard(_padded(hparams, self.k_pad), self.mesh)
    nbytes = self.data.x_train.nbytes + self.data.y_train.nbytes
    self.placement = placement_lib.resolve(self.placement, nbytes, self.mesh.devices.flat)
    if self.placement == "host":
      if self.group.structure.optimizer == "lbfgs":
        raise SweepError("optimizer 'lbfgs' trains on every training row at once, so the "
                         "rows must fit on the device: use data.placement='device'")
      if jax.process_count() > 1:
        raise SweepError("data.placement='host' runs in one process for now; use "
                         "data.placement='device' (or auto) with several processes")
      self.data = placement_lib.host_data(self.data, NamedSharding(self.mesh, P()))
    else:
      self.data = _shard(self.data, self.mesh, P())
    if training.needs_basis(self.data, s):
      # The preconditioner's basis, once for the rows (the runner hands the data on to
      # the next group, basis included).
      self.data = self.data._replace(basis=jax.jit(
          lbfgs.basis, out_shardings=NamedSharding(self.mesh, P()))(self.data.x_train))

    self._init = _init_program(training.init_fields(s), self.num_classes)
    # The final accuracy of every member costs a pass over the rows per chunk: it runs in
    # the widest chunks the group's size allows (`chunking`), also where halving trains
    # in narrower ones; like the training chunks, they do not depend on the devices.
    self._eval_chunk, eval_per_device = chunking(self.k, n_dev)
    self._eval_pad = n_dev * eval_per_device * self._eval_chunk
    self._accuracy = _accuracy_program(s.model, self._eval_chunk, self.mesh)
    self._epochs = {}     # (chunk, counted) -> the compiled epoch programs of that chunk size
    self._host = (placement_lib.HostEpochs(self, _by_chunk(self.chunk), self.block_steps)
                  if self.placement == "host" else None)
    self._closed_form = ClosedForm(self) if s.optimizer == ridge.OPTIMIZER else None
    self.hparams_host = _padded(hparams, self.k_pad)
    # Halving's populations run every size as the one program that computes each
    # device's first n chunks (`compaction.by_count`), n all of them here.
    self._counted = self._compacts and s.optimizer != "lbfgs"
    self._all_chunks = (self.shard(np.full(n_dev, per_device, np.int32))
                        if self._counted else None)

  def _epoch_programs(self, chunk: int, counted: bool = False):
    """(shared-order epoch, own-order epoch) for chunks of `chunk` members (`_epoch_program`);
    `counted`: they compute only each device's first n chunks."""
    if (chunk, counted) not in self._epochs:
      self._epochs[chunk, counted] = _epoch_program(self.group.structure, self.mesh,
                                                    self.block, chunk, counted)
    return self._epochs[chunk, counted]

  def _per_device(self, fn, num_batched: int, num_shared: int):
    return _per_device(self.mesh, fn, num_batched, num_shared)

  def init(self):
    if self._closed_form:
      return self._closed_form.init()
    if self._host:
      return self._host.init()
    return self._init(self.hparams, self.data)

  def epoch(self, state, key: jax.Array | None = None):
    """One epoch of every member: (state, metrics).

    `key` is the data-order key every member shares; None gives each member its own,
    `seeds.key(seed, "order")`. A group whose members all have one seed then shares
    that seed's order, and trains on the one-gather path.

    When the active members fit a smaller population (`_compacted_size`: the full-batch
    solver's as they stop, halving's after a rung), only they are computed
    (`_compacted_epoch`); rows on the host are not compacted.
    """
    if self._closed_form:
      return self._closed_form.epoch(state)
    if key is None and self.seed is not None:
      key = seeds.key(self.seed, "order")
    if self._host:
      return self._host.epoch(state, key)
    if self._compacts:
      members = np.flatnonzero(distributed.fetch(state.status)[: self.k] == training.ACTIVE)
      if members.size:
        chunk, k_sub = self._compacted_size(members.size)
        if k_sub < self.k_pad and self._saves(state):
          return self._compacted_epoch(state, members, key, chunk, k_sub)
    return self.run_epoch(self.chunk, state, self.hparams, key, self._all_chunks)

  def _saves(self, state) -> bool:
    """Whether a smaller population pays for its compilation: always for halving (whose
    one program runs every size); for the full-batch solver once the members no longer
    training have been computed for `COMPACT_AFTER_FLOPS` of products (a member that is
    not training still counts its epochs: `epoch - epochs_run`, so a resumed run decides
    as the run it continues)."""
    s = self.group.structure
    if s.optimizer != "lbfgs":
      return True
    n, d = self.data.x_train.shape
    idle = distributed.fetch(state.epoch)[: self.k] - distributed.fetch(state.epochs_run)[: self.k]
    return float(idle.sum()) * s.lbfgs_iters * 4 * n * d * self.num_classes >= COMPACT_AFTER_FLOPS

  def _compacted_size(self, m: int) -> tuple[int, int]:
    """(chunk, population size) that `m` active members train as (`compaction.size`)."""
    return compaction.size(self.group.structure.optimizer, self.chunk, m,
                           self.mesh.devices.size, chunking)

  def run_epoch(self, chunk, state, hparams, key, counts=None):
    """The epoch program of chunks of `chunk` members on (state, hparams); with `counts`
    (one per device, sharded), the one that computes only that many chunks per device."""
    shared, own = self._epoch_programs(chunk, counts is not None)
    counts = () if counts is None else (counts,)
    if key is None:
      return own(state, hparams, self.data, *counts)
    return shared(state, hparams, self.data, key, *counts)

  def _compacted_epoch(self, state, members: np.ndarray, key, chunk: int, k_sub: int):
    """One epoch in which only `members` (the active members' indices) are computed, as a
    population of k_sub members in chunks of `chunk` (`compaction.epoch`).

    Without this a stopped or pruned member would cost as much as an active one until
    the group ends: the population computes every member and masks the frozen ones.
    """
    state, metrics = compaction.epoch(self, state, members, key, chunk, k_sub)
    return state, _padded(metrics, self.k_pad)

  def shard(self, tree):
    """`tree` split along the population axis over the mesh's devices."""
    return _shard(tree, self.mesh)

  def accuracy(self, params, x, y):
    if self._host and not isinstance(x, jax.Array):
      return self._host.accuracy(params, x, y)[: self.k]
    if self._eval_pad != self.k_pad:   # re-padded for the evaluation's chunks
      params = distributed.fetch(params)
      params = self.shard(_padded(jax.tree.map(lambda a: a[: self.k], params), self._eval_pad))
    return distributed.fetch(self._accuracy(params, x, y))[: self.k]

  def restore(self, state):
    """`state` on the devices; a state of the group's k members alone (a checkpoint's)
    is padded as `init` pads it."""
    return _shard(_padded(state, self.k_pad), self.mesh)
