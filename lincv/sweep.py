"""Hyperparameter sweeps: search spaces, grouping, a vmapped population, halving, selection.

A sweep is a list of members, each a full assignment of the swept fields. Members that
agree on every structural field form a group; a group's numeric fields are stacked into
arrays of shape (K,) and its K members train together under one `jit(vmap(...))`, each
on the data order of its seed (one shared order, and each batch gathered once, where the
members have one seed or `shuffle_seed` is set), with the population axis sharded over
all devices. After each epoch the sweep state is checkpointed atomically, so a killed
sweep resumes where it stopped and ends with the same results.

Search spaces (`config.sweep`), per field:
  [v1, v2, ...]                 values (grid: all combinations; random: a uniform choice)
  {"choice": [v1, v2, ...]}     the same, spelled out
  {"log_uniform": [lo, hi]}     random search only: exp(U(log lo, log hi))
  {"uniform": [lo, hi]}         random search only: U(lo, hi)
"""

import collections
import dataclasses
import itertools
import json
import math
import numbers
import os
import time
from collections.abc import Callable, Mapping

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from lincv import checkpoint, optim, seeds, training
from lincv import config as config_lib
from lincv._checks import check_name

SEARCHES = ("grid", "random")
_DISTRIBUTIONS = ("choice", "log_uniform", "uniform")


class SweepError(ValueError):
  """A sweep specification that cannot run; the message says what is valid."""


# --------------------------------------------------------------------------- expansion


def _as_dict(x):
  return x.to_dict() if isinstance(x, ml_collections.ConfigDict) else dict(x)


def _space(spec: Mapping, search: str = "grid") -> dict:
  """Validated search space: field -> ("values", list) | (distribution, args)."""
  space = {}
  for field, value in spec.items():
    if field not in config_lib.SWEEPABLE:
      raise SweepError(f"unknown sweep field {field!r}; expected one of: "
                       f"{', '.join(config_lib.SWEEPABLE)}")
    if isinstance(value, (ml_collections.ConfigDict, Mapping)):
      value = _as_dict(value)
      if len(value) != 1 or next(iter(value)) not in _DISTRIBUTIONS:
        raise SweepError(f"sweep field {field!r}: a distribution is one of "
                         f"{{{', '.join(_DISTRIBUTIONS)}: ...}}, got {value}")
      kind, args = next(iter(value.items()))
      args = list(args) if isinstance(args, (list, tuple)) else [args]
      if kind == "choice":
        space[field] = ("values", args)
      else:
        if (field not in config_lib.NUMERIC or len(args) != 2
            or not all(_is_number(a) for a in args) or not args[0] < args[1]):
          raise SweepError(f"sweep field {field!r}: {kind} needs a numeric field and "
                           f"[low, high] with low < high, got {args}")
        if kind == "log_uniform" and args[0] <= 0:
          raise SweepError(f"sweep field {field!r}: log_uniform needs low > 0, got {args}")
        space[field] = (kind, [float(a) for a in args])
    elif isinstance(value, (list, tuple)):
      space[field] = ("values", list(value))
    else:
      space[field] = ("values", [value])
    if space[field][0] == "values":
      values = space[field][1]
      if not values:
        raise SweepError(f"sweep field {field!r} has no values: the grid is empty")
      for v in values:
        _check_type(field, v)
      if field in _FLOATS:
        values = [float(v) for v in values]
        space[field] = ("values", values)
      if search == "grid":
        twice = [v for i, v in enumerate(values) if v in values[:i]]
        if twice:
          raise SweepError(f"sweep.{field} lists {twice[0]!r} twice; list each value once")
  return space


def _is_number(v) -> bool:
  return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


_FLOATS = {name for name in training.HPARAM_DEFAULTS if name != "seed"} | {
    f.name for f in dataclasses.fields(training.Structure) if isinstance(f.default, float)}
_NAMES = {f.name for f in dataclasses.fields(training.Structure)
          if isinstance(f.default, str)} | {"features"}


def _check_type(field: str, value) -> None:
  """Refuses a value of the wrong kind: a name where a number belongs, or the reverse."""
  if field in _NAMES:
    if not isinstance(value, str):
      raise SweepError(f"sweep.{field} takes names, got {value!r}")
  elif not _is_number(value):
    raise SweepError(f"sweep.{field} takes numbers, got {value!r}")


def expand(config: ml_collections.ConfigDict) -> list[dict]:
  """All members of the sweep, each a dict of every sweepable field's value.

  A swept field that does nothing for some members (see `config.ONLY_WITH`: the margin
  for a softmax member, momentum for an Adam member, ...) takes the config's own value
  in those members, and members that thereby become identical are trained once
  (`notes` says which); a swept field that does nothing for any member is refused.

  Raises:
    SweepError: an unknown field or name, an empty grid, an invalid value, a value
      listed twice in a grid, a swept field that does nothing for any member.
  """
  return _expand(config)[0]


def notes(config: ml_collections.ConfigDict) -> list[str]:
  """One line per swept field that does nothing for some members, saying what `expand`
  did about it; empty when every swept field matters for every member."""
  return _expand(config)[1]


def _expand(config: ml_collections.ConfigDict) -> tuple[list[dict], list[str]]:
  check_name("search", config.search, SEARCHES)
  space = _space(_as_dict(config.sweep), config.search)
  base = {f: config[f] for f in config_lib.SWEEPABLE}
  validate_member(base)
  if config.search == "grid":
    for field, (kind, _) in space.items():
      if kind != "values":
        raise SweepError(f"sweep field {field!r}: {kind} needs search='random'; a grid "
                         "takes lists of values")
    names = list(space)
    combos = itertools.product(*(space[f][1] for f in names))
    members = [dict(base, **dict(zip(names, combo))) for combo in combos]
  else:
    if config.num_samples < 1:
      raise SweepError(f"num_samples must be >= 1 for a random search, got {config.num_samples}")
    rng = np.random.default_rng(seeds.integer(config.search_seed, "search"))
    members = []
    for _ in range(config.num_samples):
      m = dict(base)
      for field, (kind, args) in space.items():
        if kind == "values":
          m[field] = args[int(rng.integers(len(args)))]
        elif kind == "uniform":
          m[field] = float(rng.uniform(*args))
        else:
          m[field] = float(np.exp(rng.uniform(np.log(args[0]), np.log(args[1]))))
      members.append(m)
  for m in members:
    validate_member(m)
  return _collapse(members, space, base)


def _collapse(members: list[dict], space: dict, base: dict) -> tuple[list[dict], list[str]]:
  """Gives each member the config's value of every swept field that does nothing for it,
  drops the members that this makes identical to an earlier one, and says so."""
  notes = []
  for field in space:
    if field not in config_lib.ONLY_WITH:
      continue
    message = config_lib.unused_message(field, members, f"sweep.{field}")
    if message:
      raise SweepError(message)
    decider = config_lib.ONLY_WITH[field][0]
    idle = {m[decider] for m in members if not config_lib.used(field, m)}
    if not idle:
      continue
    seen = {tuple(m.items()) for m in members}
    kept = []
    for m in members:
      if config_lib.used(field, m) or m[field] == base[field]:
        kept.append(m)
        continue
      m = dict(m, **{field: base[field]})
      if tuple(m.items()) not in seen:
        seen.add(tuple(m.items()))
        kept.append(m)
    dropped = len(members) - len(kept)
    notes.append(
        f"sweep.{field} does nothing with {decider}={' or '.join(repr(v) for v in sorted(idle))}; "
        f"those members take {field}={base[field]!r}, the config's value"
        + (f", and the {dropped} that became identical to another are dropped "
           f"({len(kept)} members remain)" if dropped else ""))
    members = kept
  return members, notes


def validate_member(m: Mapping) -> None:
  """Checks one member's values; raises SweepError naming the field and what is valid."""
  for field in config_lib.SWEEPABLE:
    _check_type(field, m[field])
  try:
    structure(m)
  except ValueError as e:
    raise SweepError(str(e)) from None
  check_name("features", m["features"], config_lib.FEATURES)
  if not m["learning_rate"] > 0:
    raise SweepError(f"learning_rate must be > 0, got {m['learning_rate']}")
  for field in ("reg_strength", "margin", "beta", "init_scale"):
    if not m[field] >= 0:
      raise SweepError(f"{field} must be >= 0, got {m[field]}")
  for field in ("momentum", "b1", "b2", "rms_decay"):
    if not 0 <= m[field] < 1:
      raise SweepError(f"{field} must be in [0, 1), got {m[field]}")
  if not m["lr_decay"] > 0:
    raise SweepError(f"lr_decay must be > 0, got {m['lr_decay']}")
  if int(m["seed"]) != m["seed"] or not 0 <= m["seed"] < 2**32:
    raise SweepError(f"seed must be an integer in [0, 2**32), got {m['seed']}")


def structure(m: Mapping) -> training.Structure:
  """The static training settings of a member."""
  fields = {f.name: m[f.name] for f in dataclasses.fields(training.Structure)}
  for name in ("batch_size", "epochs", "hidden", "warmup_epochs", "decay_every", "patience"):
    if int(fields[name]) != fields[name]:
      raise SweepError(f"{name} must be an integer, got {fields[name]}")
    fields[name] = int(fields[name])
  return training.Structure(**fields)


# --------------------------------------------------------------------------- grouping


@dataclasses.dataclass(frozen=True)
class Group:
  """Members sharing their structural fields; they train together."""
  structure: training.Structure
  features: str
  members: tuple[int, ...]          # indices into the member list
  hparams: dict                     # field -> np.ndarray (K,)

  @property
  def size(self) -> int:
    return len(self.members)


def group(members: list[dict]) -> list[Group]:
  """Splits members by structural fields, in order of first appearance."""
  keys: dict[tuple, list[int]] = {}
  for i, m in enumerate(members):
    keys.setdefault(tuple(m[f] for f in config_lib.STRUCTURAL), []).append(i)
  groups = []
  for idx in keys.values():
    first = members[idx[0]]
    hparams = {f: np.asarray([members[i][f] for i in idx],
                             np.int32 if f == "seed" else np.float64)
               for f in config_lib.NUMERIC}
    groups.append(Group(structure(first), first["features"], tuple(idx), hparams))
  return groups


# --------------------------------------------------------------------------- population


def _mesh() -> Mesh:
  return Mesh(np.asarray(jax.devices()), ("pop",))


def _padded(tree, k_pad: int):
  """Pads the leading (population) axis to k_pad by repeating the last member."""
  def pad(x):
    x = np.asarray(x)
    if x.shape[0] == k_pad:
      return x
    return np.concatenate([x, np.repeat(x[-1:], k_pad - x.shape[0], axis=0)])
  return jax.tree.map(pad, tree)


def _shard(tree, mesh: Mesh):
  return jax.device_put(tree, NamedSharding(mesh, P("pop")))


MAX_CHUNK = 64  # at most this many members train as one vmapped program


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

  Its numeric hyperparameters are held in the data's float dtype (the seed as int32).
  """
  group: Group
  data: training.Data
  num_classes: int

  def __post_init__(self):
    self.mesh = _mesh()
    n_dev = self.mesh.devices.size
    self.k = self.group.size
    self.chunk, per_device = chunking(self.k, n_dev)
    self.k_pad = n_dev * per_device * self.chunk
    dtype = np.dtype(self.data.x_train.dtype)
    hparams = {f: np.asarray(v, np.int32 if f == "seed" else dtype)
               for f, v in self.group.hparams.items()}
    self.hparams = _shard(_padded(hparams, self.k_pad), self.mesh)
    member_seeds = np.unique(self.group.hparams["seed"])
    self.seed = int(member_seeds[0]) if member_seeds.size == 1 else None
    self.data = jax.device_put(self.data, NamedSharding(self.mesh, P()))
    s = self.group.structure

    self.traces = collections.Counter()  # times each function was traced (compiled)

    def init(hparams, data):
      self.traces["init"] += 1
      return training.init_state(hparams, data, s, self.num_classes)

    def epoch(state, hparams, data, key, e):
      self.traces["epoch"] += 1
      return training.train_epoch(state, hparams, data, key, s, epoch=e)

    def accuracy(params, x, y):
      self.traces["accuracy"] += 1
      return training.accuracy(s, params, x, y)

    def by_chunk(fn, batched, shared):
      """vmap(fn) over each chunk of this device's members, one chunk after another."""
      split = lambda a: a.reshape(per_device, self.chunk, *a.shape[1:])
      merge = lambda a: a.reshape(per_device * self.chunk, *a.shape[2:])
      in_axes = (0,) * len(batched) + (None,) * len(shared)
      out = jax.lax.map(lambda b: jax.vmap(fn, in_axes=in_axes)(*b, *shared),
                        jax.tree.map(split, batched))
      return jax.tree.map(merge, out)

    def population_epoch(state, hparams, data, key):
      # Members advance together, so they share one epoch number; with one key, they
      # share one data order and one minibatch gather per step (see `training.train_epoch`).
      e = state.epoch[0]
      local = lambda st, hp, d, k: by_chunk(epoch, (st, hp), (d, k, e))
      return self._per_device(local, 2, 2)(state, hparams, data, key)

    def population_epoch_own(state, hparams, data):
      # Each member its own data order, from its seed: a gather per member and step.
      e = state.epoch[0]
      local = lambda st, hp, d: by_chunk(epoch, (st, hp), (d, None, e))
      return self._per_device(local, 2, 1)(state, hparams, data)

    def population_accuracy(params, x, y):
      local = lambda p, x, y: by_chunk(accuracy, (p,), (x, y))
      return self._per_device(local, 1, 2)(params, x, y)

    # init runs once per group; LLVM's full optimisation of its threefry sampler takes
    # seconds, a tenth of that at level 1, for the same values.
    self._init = jax.jit(jax.vmap(init, in_axes=(0, None)),
                         compiler_options={"xla_backend_optimization_level": 1})
    self._epoch = jax.jit(population_epoch)
    self._epoch_own = jax.jit(population_epoch_own)
    self._accuracy = jax.jit(population_accuracy)

  def _per_device(self, fn, num_batched: int, num_shared: int):
    """`fn` on each device's block of members: the first `num_batched` arguments are split
    along the population axis, the next `num_shared` replicated."""
    return jax.shard_map(fn, mesh=self.mesh, in_specs=(P("pop"),) * num_batched
                         + (P(),) * num_shared, out_specs=P("pop"), check_vma=False)

  def init(self):
    return self._init(self.hparams, self.data)

  def epoch(self, state, key: jax.Array | None = None):
    """One epoch of every member: (state, metrics).

    `key` is the data-order key every member shares; None gives each member its own,
    `seeds.key(seed, "order")`. A group whose members all have one seed then shares
    that seed's order, and trains on the one-gather path.
    """
    if key is None and self.seed is not None:
      key = seeds.key(self.seed, "order")
    if key is None:
      return self._epoch_own(state, self.hparams, self.data)
    return self._epoch(state, self.hparams, self.data, key)

  def accuracy(self, params, x, y):
    return np.asarray(self._accuracy(params, x, y))[: self.k]

  def restore(self, state):
    return _shard(state, self.mesh)


# --------------------------------------------------------------------------- halving


def halving(config: ml_collections.ConfigDict,
            members: list[dict]) -> tuple[tuple[int, ...], float]:
  """The rungs (sorted, distinct epochs) and eta of `config.halving`.

  Raises:
    SweepError: eta below 2, or a rung that is not an epoch before the last of every member.
  """
  eta, rungs = config.halving.eta, config.halving.rungs
  if isinstance(eta, bool) or not isinstance(eta, numbers.Real) or not eta >= 2:
    raise SweepError(f"halving.eta must be a number >= 2 (each rung keeps the best 1/eta of "
                     f"the members still training), got {eta!r}")
  rungs = tuple(rungs) if isinstance(rungs, (list, tuple)) else (rungs,)
  epochs = min(int(m["epochs"]) for m in members)
  for r in rungs:
    if (isinstance(r, bool) or not isinstance(r, numbers.Real) or not 1 <= r < epochs
        or int(r) != r):
      valid = f"epochs 1..{epochs - 1}" if epochs > 1 else "none"
      raise SweepError(f"halving.rungs must be epochs before the last ({valid} for "
                       f"epochs={epochs}), got {rungs}")
  return tuple(sorted({int(r) for r in rungs})), float(eta)


def _survivors(live: Mapping[int, float], eta: float) -> set[int]:
  """The best ceil(n / eta) of the n live members (member -> validation accuracy so far);
  ties go to the lower member index."""
  order = sorted(live, key=lambda m: (-live[m], m))
  return set(order[: math.ceil(len(order) / eta)])


# --------------------------------------------------------------------------- running


@dataclasses.dataclass
class Result:
  """What a sweep produced."""
  rows: list[dict]                  # one per member, see `run`
  history: list[dict]               # per member: {"train_loss": [...], "val_accuracy": [...]}
  best: dict                        # the selected row
  best_params: dict                 # its best-validation parameters (numpy)
  best_structure: training.Structure
  test_accuracy: float | None
  earlier_seconds: float = 0.0      # worked on this run by earlier processes (resumed runs)


class Diverged(SweepError):
  """Every member of the sweep diverged: there is nothing to select."""


def _best(rows: list[dict]) -> dict | None:
  ok = [r for r in rows if r["status"] != "diverged"]
  return max(ok, key=lambda r: (r["val_accuracy"], -r["member"])) if ok else None


def select(rows: list[dict]) -> dict:
  """The member with the highest validation accuracy (ties: the lower index), not diverged.

  Raises:
    Diverged: every member diverged.
  """
  best = _best(rows)
  if best is None:
    raise Diverged(f"all {len(rows)} members diverged; lower the learning rate")
  return best


def check_data(data: training.Data, num_classes: int) -> training.Data:
  """`data` if its labels lie in [0, num_classes) and its rows are finite, else a
  SweepError naming the array. (Inside the compiled loop a bad label would only show as a
  NaN loss, and a non-finite row as a diverged member.)"""
  for name in ("y_train", "y_val"):
    y = np.asarray(getattr(data, name))
    bad = np.flatnonzero((y < 0) | (y >= num_classes))
    if bad.size:
      i = int(bad[0])
      raise SweepError(f"{name}: label {int(y[i])} (example {i}) is out of range for "
                       f"{num_classes} classes; labels must be in [0, {num_classes - 1}]")
  for name in ("x_train", "x_val"):
    x = getattr(data, name)
    finite = np.asarray(jax.numpy.isfinite(x).all(axis=1))
    if not finite.all():
      raise SweepError(f"{name}: row {int(np.argmin(finite))} holds a NaN or infinite value; "
                       "every input must be finite")
  return data


def shared_order_key(config) -> jax.Array | None:
  """The data-order key of `config.shuffle_seed`, shared by every member; None if unset
  (each member then shuffles by its own `seed`)."""
  shuffle_seed = config.get("shuffle_seed")
  return None if shuffle_seed is None else seeds.key(int(shuffle_seed), "order")


def _fingerprint(config) -> dict:
  """The configuration as JSON would give it back, without fields that may change on resume."""
  c = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else dict(config)
  c = {k: v for k, v in c.items() if k not in ("checkpoint_every",)}
  return json.loads(json.dumps(c, sort_keys=True))


def _active(state: training.TrainState, k: int) -> np.ndarray:
  return np.asarray(state.status)[:k] == training.ACTIVE


@dataclasses.dataclass
class _GroupRun:
  """One group's progress: its state and curves while it trains, its outcome once finished."""
  state: training.TrainState | None = None
  train_loss: np.ndarray | None = None      # (K, epochs), NaN in epochs not trained
  val_accuracy: np.ndarray | None = None
  seconds: float = 0.0                      # the group's training time, every process's
  outcome: dict | None = None               # per-member arrays, once finished


class _Runner:
  """Trains the groups of one sweep and commits their progress; see `run`."""

  def __init__(self, config, members, groups, data_for, num_classes, key, workdir, progress,
               started):
    self.config, self.members, self.groups = config, members, groups
    self.data_for, self.num_classes, self.key = data_for, num_classes, key
    self.progress, self.started = progress, started
    self.runs: dict[int, _GroupRun] = {}
    self.pops: dict[int, Population] = {}
    self.data: dict[str, training.Data] = {}
    self.meta = {"config": _fingerprint(config), "seconds": 0.0, "halved": [], "groups": {}}
    self.store = None
    if workdir:
      self.store = checkpoint.Store(os.path.join(workdir, "checkpoint"), "sweep.json")
      try:
        saved = self.store.load()
      except ValueError as e:
        raise SweepError(f"{e}; use a new workdir") from None
      if saved is not None and saved.get("config") != self.meta["config"]:
        raise SweepError(f"{workdir} holds a run of a different configuration; use a new "
                         "workdir, or the same configuration to resume it")
      self.meta = saved or self.meta
    self.earlier_seconds = float(self.meta["seconds"])

  def population(self, gi: int) -> Population:
    """Group gi's compiled population (its data fetched once per features name)."""
    if gi not in self.pops:
      g = self.groups[gi]
      if g.features not in self.data:
        self.data[g.features] = check_data(self.data_for(g.features), self.num_classes)
      try:
        training.steps_per_epoch(g.structure, self.data[g.features].x_train.shape[0])
      except ValueError as e:
        raise SweepError(str(e)) from None
      self.pops[gi] = Population(g, self.data[g.features], self.num_classes)
      self.data[g.features] = self.pops[gi].data    # on the devices, for the next group
    return self.pops[gi]

  def group_run(self, gi: int) -> _GroupRun:
    """Group gi's progress: in memory, else as last committed, else a fresh start."""
    if gi not in self.runs:
      info = self.meta["groups"].get(str(gi))
      saved = self.store.read(f"group{gi}") if info else None
      if info and info["finished"]:
        self.runs[gi] = _GroupRun(seconds=info["seconds"], outcome=saved)
      else:
        pop = self.population(gi)
        shape = (pop.k, self.groups[gi].structure.epochs)
        run = _GroupRun(train_loss=np.full(shape, np.nan), val_accuracy=np.full(shape, np.nan))
        if saved is None:
          run.state = pop.init()
        else:
          like = pop._init.eval_shape(pop.hparams, pop.data)    # shapes only, no compile
          run.state = checkpoint.from_arrays(saved, like, "state_",
                                             f"the checkpoint of group {gi}")
          run.train_loss, run.val_accuracy = saved["train_loss"], saved["val_accuracy"]
          run.seconds = info["seconds"]
        self.runs[gi] = run
    return self.runs[gi]

  def train(self, gi: int, end: int) -> None:
    """Trains group gi up to epoch `end` while a member is active; finishes it when done."""
    run = self.group_run(gi)
    if run.outcome is not None:
      return
    pop, s = self.population(gi), self.groups[gi].structure
    run.state = pop.restore(run.state)
    e = int(np.asarray(run.state.epoch)[0])
    while e < end and _active(run.state, pop.k).any():
      t0 = time.perf_counter()
      run.state, metrics = pop.epoch(run.state, self.key)
      run.train_loss[:, e] = np.asarray(metrics["train_loss"])[: pop.k]
      run.val_accuracy[:, e] = np.asarray(metrics["val_accuracy"])[: pop.k]
      run.seconds += time.perf_counter() - t0
      e += 1
      alive = int(_active(run.state, pop.k).sum())
      if self.store and alive and e < s.epochs and (
          e == end or e % self.config.checkpoint_every == 0):
        self.commit([gi])
      if self.progress:
        self.progress({
            "group": gi, "num_groups": len(self.groups), "epoch": e, "epochs": s.epochs,
            "alive": alive, "members": pop.k,
            "best_val_accuracy": float(np.max(np.asarray(run.state.best_val_acc)[: pop.k])),
            "seconds": run.seconds})
    if e == s.epochs or not _active(run.state, pop.k).any():
      self.finish(gi)

  def finish(self, gi: int) -> None:
    """Evaluates group gi's members, keeps its best member's parameters, frees its devices."""
    run, pop, g = self.runs[gi], self.pops.pop(gi), self.groups[gi]
    st, k = run.state, pop.k
    run.outcome = {
        "train_accuracy": pop.accuracy(st.best_params, pop.data.x_train, pop.data.y_train),
        "val_accuracy": np.asarray(st.best_val_acc)[:k],
        "final_loss": np.asarray(st.last_loss)[:k],
        "status": np.asarray(st.status)[:k],
        "epochs_run": np.asarray(st.epochs_run)[:k],
        "best_epoch": np.asarray(st.best_epoch)[:k],
        "train_loss_history": run.train_loss,
        "val_accuracy_history": run.val_accuracy}
    best = _best([row for row, _ in self.rows(gi)])
    if best is not None:
      j = g.members.index(best["member"])
      run.outcome.update({f"params_{n}": np.asarray(v)[j] for n, v in st.best_params.items()})
    run.state = run.train_loss = run.val_accuracy = None
    if not any(h.features == g.features for i, h in enumerate(self.groups)
               if i > gi or i in self.pops):
      self.data.pop(g.features, None)
    if self.store:
      self.commit([gi])

  def halve(self, rung: int, eta: float) -> None:
    """Prunes all but the best ceil(n / eta) of the n members still training, sweep-wide."""
    training_groups = [gi for gi in range(len(self.groups))
                       if self.group_run(gi).outcome is None]
    live = {}
    for gi in training_groups:
      st = self.runs[gi].state
      status, acc = np.asarray(st.status), np.asarray(st.best_val_acc)
      live.update({m: float(acc[j]) for j, m in enumerate(self.groups[gi].members)
                   if status[j] == training.ACTIVE})
    keep = _survivors(live, eta)
    for gi in training_groups:
      st = self.runs[gi].state
      status = np.array(st.status)
      for j, m in enumerate(self.groups[gi].members):
        if m in live and m not in keep:
          status[j] = training.PRUNED
      self.runs[gi].state = st._replace(status=status)
    self.meta["halved"] = [*self.meta["halved"], rung]
    if self.store:
      self.commit(training_groups)

  def commit(self, gis: list[int]) -> None:
    """Commits the progress of groups `gis`, and the seconds worked so far, in one step."""
    files = {}
    for gi in gis:
      run = self.runs[gi]
      if run.outcome is not None:
        files[f"group{gi}"] = run.outcome
        self.meta["groups"][str(gi)] = {"finished": True, "seconds": run.seconds}
      else:
        files[f"group{gi}"] = {**checkpoint.tree_arrays(run.state, "state_"),
                               "train_loss": run.train_loss, "val_accuracy": run.val_accuracy}
        self.meta["groups"][str(gi)] = {"finished": False, "seconds": run.seconds,
                                        "epoch": int(np.asarray(run.state.epoch)[0])}
    self.meta["seconds"] = self.earlier_seconds + time.perf_counter() - self.started
    self.store.commit(self.meta, files)

  def rows(self, gi: int) -> list[tuple[dict, dict]]:
    """(row, history) of each member of finished group gi."""
    g, run = self.groups[gi], self.group_run(gi)
    out = run.outcome
    rows = []
    for j, m in enumerate(g.members):
      n = int(out["epochs_run"][j])    # a member trains epochs 1..n, then no more
      row = dict(
          member=m, group=gi, **{f: self.members[m][f] for f in config_lib.SWEEPABLE},
          train_accuracy=float(out["train_accuracy"][j]),
          val_accuracy=float(max(out["val_accuracy"][j], 0.0)),
          final_loss=float(out["final_loss"][j]),
          status=training.STATUS_NAMES[int(out["status"][j])],
          epochs_run=n, best_epoch=int(out["best_epoch"][j]), seconds=run.seconds / g.size)
      rows.append((row, {"train_loss": out["train_loss_history"][j, :n].tolist(),
                         "val_accuracy": out["val_accuracy_history"][j, :n].tolist()}))
    return rows

  def best_params(self, gi: int) -> dict:
    """The best-validation parameters of finished group gi's best member."""
    out = self.group_run(gi).outcome
    return {n[len("params_"):]: v for n, v in out.items() if n.startswith("params_")}

  def discard(self) -> None:
    """Forgets the committed progress (the checkpoint's files)."""
    if self.store:
      self.store.clear()


def run(config: ml_collections.ConfigDict,
        data_for: Callable[[str], training.Data],
        num_classes: int, *,
        workdir: str | None = None,
        test_for: Callable[[str], tuple] | None = None,
        progress: Callable[[dict], None] | None = None,
        started: float | None = None) -> Result:
  """Trains every member of the sweep `config` describes and selects the best.

  Groups train one after another, each as one population. With successive halving
  (`config.halving`), every group trains up to a rung, then the members still training
  are ranked across the whole sweep by their best validation accuracy so far, and the
  best ceil(n / eta) of those n go on to the next rung (ties: the lower member index);
  members stopped early by `patience` or diverged are not ranked. Between rungs the
  unfinished groups stay compiled and on the devices.

  Members that diverge are left out of the selection; only a sweep in which every member
  diverged fails (`Diverged`, and a workdir's checkpoint is cleared).

  Args:
    config: a config (see `lincv.config.base`).
    data_for: features name -> `training.Data` (called once per features name while
      groups of it train).
    num_classes: C.
    workdir: if given, the sweep checkpoints into `workdir/checkpoint/` after every
      `config.checkpoint_every` epochs and at each rung, and resumes from there: the
      state, the curves and the time worked are committed together, in one atomic step,
      so a process killed at any point resumes to the same results. A workdir holding
      another configuration is refused.
    test_for: features name -> (x_test, y_test); evaluated once, for the selected member.
    progress: called after every epoch with {"group", "num_groups", "epoch", "epochs",
      "alive", "members", "best_val_accuracy", "seconds"}.
    started: `time.perf_counter()` when this process began working on the run (default:
      now), for the seconds the checkpoint records.

  Returns:
    a `Result`. Each row holds: member, group, every sweepable field, train_accuracy
    and val_accuracy (of the member's best-validation parameters), final_loss (mean
    train loss of its last epoch), status (ok / diverged / pruned), epochs_run,
    best_epoch, seconds (the group's training time divided among its members). A
    member's history holds the epochs it trained, 1..epochs_run.

  Raises:
    SweepError: a specification that cannot run; `Diverged` if every member diverged.
  """
  started = time.perf_counter() if started is None else started
  members = expand(config)
  groups = group(members)
  rungs, eta = halving(config, members)
  key = shared_order_key(config)
  runner = _Runner(config, members, groups, data_for, num_classes, key, workdir, progress,
                   started)
  for stop in (*rungs, None):
    for gi, g in enumerate(groups):
      runner.train(gi, g.structure.epochs if stop is None else stop)
    if stop is not None and stop not in runner.meta["halved"]:
      runner.halve(stop, eta)

  rows, history = [None] * len(members), [None] * len(members)
  for gi in range(len(groups)):
    for row, h in runner.rows(gi):
      rows[row["member"]], history[row["member"]] = row, h
  try:
    best = select(rows)
  except Diverged:
    runner.discard()
    raise
  gi = best["group"]
  best_params = runner.best_params(gi)
  s = groups[gi].structure
  test_acc = None
  if test_for is not None:
    x_test, y_test = test_for(groups[gi].features)
    test_acc = float(jax.jit(training.accuracy, static_argnums=0)(
        s, best_params, x_test, y_test))
  return Result(rows=rows, history=history, best=best, best_params=best_params,
                best_structure=s, test_accuracy=test_acc,
                earlier_seconds=runner.earlier_seconds)
