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
import os
import time
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
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


def _space(spec: Mapping) -> dict:
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
      args = list(args)
      if kind == "choice":
        space[field] = ("values", args)
      else:
        if field not in config_lib.NUMERIC or len(args) != 2 or not args[0] < args[1]:
          raise SweepError(f"sweep field {field!r}: {kind} needs a numeric field and "
                           f"[low, high] with low < high, got {args}")
        if kind == "log_uniform" and args[0] <= 0:
          raise SweepError(f"sweep field {field!r}: log_uniform needs low > 0, got {args}")
        space[field] = (kind, [float(a) for a in args])
    elif isinstance(value, (list, tuple)):
      space[field] = ("values", list(value))
    else:
      space[field] = ("values", [value])
    if space[field][0] == "values" and not space[field][1]:
      raise SweepError(f"sweep field {field!r} has no values: the grid is empty")
  return space


def expand(config: ml_collections.ConfigDict) -> list[dict]:
  """All members of the sweep, each a dict of every sweepable field's value.

  Raises:
    SweepError: an unknown field or name, an empty grid, an invalid value.
  """
  check_name("search", config.search, SEARCHES)
  space = _space(_as_dict(config.sweep))
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
  return members


def validate_member(m: Mapping) -> None:
  """Checks one member's values; raises SweepError naming the field and what is valid."""
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


def _halve(state: training.TrainState, k: int, eta: int) -> training.TrainState:
  """Keeps the best ceil(n / eta) of the n live members by validation accuracy."""
  status = np.array(state.status)
  live = np.flatnonzero(np.isin(status[:k], [training.ACTIVE, training.STOPPED]))
  if live.size <= 1:
    return state
  acc = np.asarray(state.best_val_acc)[live]
  order = live[np.lexsort((live, -acc))]      # best first; ties: lower index first
  keep = max(1, math.ceil(live.size / eta))
  status[order[keep:]] = training.PRUNED
  return state._replace(status=jnp.asarray(status))


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


def select(rows: list[dict]) -> dict:
  """The member with the highest validation accuracy (ties: the lower index), not diverged."""
  ok = [r for r in rows if r["status"] != "diverged"]
  if not ok:
    raise SweepError("every member diverged; lower the learning rate")
  return max(ok, key=lambda r: (r["val_accuracy"], -r["member"]))


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


def run(config: ml_collections.ConfigDict,
        data_for: Callable[[str], training.Data],
        num_classes: int, *,
        workdir: str | None = None,
        test_for: Callable[[str], tuple] | None = None,
        progress: Callable[[dict], None] | None = None) -> Result:
  """Trains every member of the sweep `config` describes and selects the best.

  Args:
    config: a config (see `lincv.config.base`).
    data_for: features name -> `training.Data` (called once per group).
    num_classes: C.
    workdir: if given, the sweep checkpoints into `workdir/checkpoint/` after every
      `config.checkpoint_every` epochs and resumes from there. A workdir holding another
      configuration is refused.
    test_for: features name -> (x_test, y_test); evaluated once, for the selected member.
    progress: called after every epoch with {"group", "num_groups", "epoch", "epochs",
      "alive", "members", "best_val_accuracy", "seconds"}.

  Returns:
    a `Result`. Each row holds: member, group, every sweepable field, train_accuracy
    and val_accuracy (of the member's best-validation parameters), final_loss (mean
    train loss of its last epoch), status (ok / diverged / pruned), epochs_run,
    best_epoch, seconds (the group's wall time divided among its members).
  """
  members = expand(config)
  groups = group(members)
  ckpt_dir = os.path.join(workdir, "checkpoint") if workdir else None
  progress_path = os.path.join(ckpt_dir, "sweep.json") if ckpt_dir else None
  fingerprint = _fingerprint(config)
  done: dict = {"config": fingerprint, "groups": {}}
  if progress_path and os.path.exists(progress_path):
    saved = checkpoint.load_json(progress_path)
    if saved.get("config") != fingerprint:
      raise SweepError(f"{workdir} holds a run of a different configuration; use a new "
                       "workdir, or the same configuration to resume it")
    done = saved
  elif progress_path:
    checkpoint.save_json(progress_path, done)

  rows: list[dict] = [None] * len(members)
  history: list[dict] = [None] * len(members)
  best_params = {}
  key = shared_order_key(config)
  for gi, g in enumerate(groups):
    gkey = str(gi)
    if gkey in done["groups"] and done["groups"][gkey].get("finished"):
      for r, h in zip(done["groups"][gkey]["rows"], done["groups"][gkey]["history"]):
        rows[r["member"]], history[r["member"]] = r, h
      continue
    data = data_for(g.features)
    s = g.structure
    try:
      training.steps_per_epoch(s, data.x_train.shape[0])
    except ValueError as e:
      raise SweepError(str(e)) from None
    pop = Population(g, data, num_classes)
    state = pop.init()
    hist_loss = np.full((pop.k, s.epochs), np.nan)
    hist_acc = np.full((pop.k, s.epochs), np.nan)
    seconds = 0.0
    state_path = os.path.join(ckpt_dir, f"group{gi}.npz") if ckpt_dir else None
    meta = done["groups"].get(gkey)
    if meta and state_path and os.path.exists(state_path):
      state = pop.restore(checkpoint.load_tree(state_path, state))
      hist_loss[:, : meta["epoch"]] = np.asarray(meta["train_loss"], float)
      hist_acc[:, : meta["epoch"]] = np.asarray(meta["val_accuracy"], float)
      seconds = meta["seconds"]
    start = int(np.asarray(state.epoch)[0])
    rungs = set(int(r) for r in config.halving.rungs)
    for e in range(start, s.epochs):
      t0 = time.perf_counter()
      state, metrics = pop.epoch(state, key)
      hist_loss[:, e] = np.asarray(metrics["train_loss"])[: pop.k]
      hist_acc[:, e] = np.asarray(metrics["val_accuracy"])[: pop.k]
      if e + 1 in rungs:
        state = pop.restore(_halve(state, pop.k, int(config.halving.eta)))
      status = np.asarray(state.status)[: pop.k]
      seconds += time.perf_counter() - t0
      finished = e + 1 == s.epochs or not np.any(status == training.ACTIVE)
      if ckpt_dir and (finished or (e + 1) % config.checkpoint_every == 0):
        checkpoint.save_tree(state_path, state)
        done["groups"][gkey] = {"epoch": e + 1, "seconds": seconds,
                                "train_loss": hist_loss[:, : e + 1],
                                "val_accuracy": hist_acc[:, : e + 1]}
        checkpoint.save_json(progress_path, done)
      if progress:
        progress({"group": gi, "num_groups": len(groups), "epoch": e + 1,
                  "epochs": s.epochs, "alive": int(np.sum(status == training.ACTIVE)),
                  "members": pop.k,
                  "best_val_accuracy": float(np.max(np.asarray(state.best_val_acc)[: pop.k])),
                  "seconds": seconds})
      if finished:
        break

    train_acc = pop.accuracy(state.best_params, pop.data.x_train, pop.data.y_train)
    val_acc = np.asarray(state.best_val_acc)[: pop.k]
    status = np.asarray(state.status)[: pop.k]
    for j, m in enumerate(g.members):
      rows[m] = dict(
          member=m, group=gi, **{f: members[m][f] for f in config_lib.SWEEPABLE},
          train_accuracy=float(train_acc[j]), val_accuracy=float(max(val_acc[j], 0.0)),
          final_loss=float(np.asarray(state.last_loss)[j]),
          status=training.STATUS_NAMES[int(status[j])],
          epochs_run=int(np.asarray(state.epochs_run)[j]),
          best_epoch=int(np.asarray(state.best_epoch)[j]),
          seconds=seconds / pop.k)
      history[m] = {"train_loss": hist_loss[j].tolist(), "val_accuracy": hist_acc[j].tolist()}
    group_best = select([rows[m] for m in g.members])
    j = g.members.index(group_best["member"])
    best_params[gi] = jax.tree.map(lambda x: np.asarray(x)[j], state.best_params)
    if ckpt_dir:
      checkpoint.save_tree(os.path.join(ckpt_dir, f"group{gi}_best.npz"), best_params[gi])
      done["groups"][gkey] = {"finished": True, "rows": [rows[m] for m in g.members],
                              "history": [history[m] for m in g.members]}
      checkpoint.save_json(progress_path, done)
      if os.path.exists(state_path):
        os.remove(state_path)

  best = select(rows)
  gi = best["group"]
  s = groups[gi].structure
  if gi not in best_params:
    like = training.init_state(
        {f: jnp.asarray(v[0]) for f, v in groups[gi].hparams.items()},
        data_for(groups[gi].features), s, num_classes).params
    best_params[gi] = checkpoint.load_tree(
        os.path.join(ckpt_dir, f"group{gi}_best.npz"), like)
  test_acc = None
  if test_for is not None:
    x_test, y_test = test_for(groups[gi].features)
    test_acc = float(jax.jit(training.accuracy, static_argnums=0)(
        s, best_params[gi], x_test, y_test))
  return Result(rows=rows, history=history, best=best, best_params=best_params[gi],
                best_structure=s, test_accuracy=test_acc)
