"""Training a sweep's groups, one after another, with its progress committed as it goes.

Every `config.checkpoint_every` epochs, once `config.checkpoint_seconds` have passed since
the last commit, and at each rung and a group's end, a group's state, its curves and the
time worked are committed in one atomic step (`lincv.checkpoint.Store`), so
a killed sweep resumes where it stopped and ends with the same results.

With several processes (`lincv.distributed`) every process runs the same steps on the
values gathered from all of them, so all take the same decisions; process 0 alone writes
the checkpoint. A checkpoint holds the group's K members only (not the padding of
`population.chunking`), so it resumes whatever the number of processes and devices.
"""

import dataclasses
import math
import os
import time

import jax
import numpy as np

from lincv import checkpoint, distributed, events, lbfgs, placement, seeds, training
from lincv import config as config_lib
from lincv import features as features_lib
from lincv._checks import check_dtype, check_labels, first_nonfinite_row
from lincv.sweep import population, selection
from lincv.sweep.space import SweepError


def check_data(data: training.Data, num_classes: int) -> training.Data:
  """`data` if it has training and validation rows, float32 or float64, its labels lie in
  [0, num_classes) and its rows are finite, else a SweepError naming the array. (Inside
  the compiled loop a bad label would only show as a NaN loss, a non-finite row as a
  diverged member, and no validation row as every member keeping its initial parameters,
  at accuracy 0.)"""
  for name in ("x_train", "x_val"):
    x = getattr(data, name)
    _check_shape(name, x, np.shape(data.x_train)[1] if np.ndim(data.x_train) == 2 else -1)
    if not x.shape[0]:
      raise SweepError(f"{name} has no rows; a sweep trains on the training rows and selects "
                       "on the validation rows, so both need at least one")
    _check_float(name, x)
  for name in ("y_train", "y_val"):
    _check_labels(name, getattr(data, name), getattr(data, "x" + name[1:]), num_classes)
  for name in ("x_train", "x_val"):
    _check_finite(name, getattr(data, name))
  if data.basis is not None:    # the full-batch solver's preconditioner (`lbfgs.Basis`)
    n, d = data.x_train.shape
    r = min(n, d)
    shapes = tuple(data.basis.vectors.shape), tuple(data.basis.values.shape)
    if shapes != ((d, r), (r,)):
      raise SweepError(f"basis: vectors of shape {shapes[0]} and values of shape {shapes[1]} "
                       f"do not fit {n} rows of {d} columns; give lincv.lbfgs.basis(x_train) "
                       f"(shapes ({d}, {r}) and ({r},)), or None")
  return data


def check_test(x_test, y_test, dim: int, num_classes: int, source: str) -> None:
  """A SweepError unless the test rows (x_test, y_test) are `dim` floating columns, finite,
  with a label in [0, num_classes) each (`source` says where they came from): scored as
  they are, a label out of range or a NaN row would only lower the test accuracy."""
  if not np.shape(y_test)[0]:
    raise SweepError(f"{source} gave no test rows; the test accuracy needs at least one "
                     "(or pass test_for=None)")
  _check_shape(f"{source}: x_test", x_test, dim)
  if not np.issubdtype(np.dtype(x_test.dtype), np.floating):
    raise SweepError(f"{source}: x_test holds {np.dtype(x_test.dtype)} rows; give them as "
                     "the training rows were given (floating point, scaled alike)")
  _check_labels(f"{source}: y_test", y_test, x_test, num_classes)
  _check_finite(f"{source}: x_test", x_test)


def data_fingerprint(data: training.Data, num_classes: int) -> str:
  """A hash of the training and validation rows and labels (shapes, dtypes, bytes) and the
  number of classes: a workdir's run resumes only on the data it started on."""
  arrays = distributed.fetch((data.x_train, data.y_train, data.x_val, data.y_val))
  parts = [str(num_classes)] + [features_lib.fingerprint(a) for a in arrays]
  return features_lib.fingerprint(np.frombuffer("|".join(parts).encode(), np.uint8))


def _check_shape(name: str, x, dim: int) -> None:
  """Rows (N, dim)."""
  if np.ndim(x) != 2:
    raise SweepError(f"{name} must be rows of shape (N, D), got shape {np.shape(x)}")
  if np.shape(x)[1] != dim:
    raise SweepError(f"{name} has {np.shape(x)[1]} columns where x_train has {dim}; every "
                     "split needs the same columns")


def _check_labels(name: str, y, x, num_classes: int) -> None:
  """Labels in [0, num_classes), one per row of x. (Labels of another length would not
  fail inside the compiled loop: one label broadcasts, and a gather past the end
  clamps, so the members would train or be scored on the wrong labels.)"""
  n = np.shape(x)[0]
  if np.ndim(y) == 1 and np.shape(y)[0] != n:
    raise SweepError(f"{name}: {np.shape(y)[0]} labels for {n} rows of "
                     f"{name.replace('y_', 'x_')}; give one label per row")
  try:
    check_labels(np.asarray(y), num_classes, num_examples=n, name=name)
  except ValueError as e:
    raise SweepError(str(e)) from None


def _check_finite(name: str, x) -> None:
  row = first_nonfinite_row(x)      # on a CPU, on the host: no program to compile
  if row is not None:
    raise SweepError(f"{name}: row {row} holds a NaN or infinite value; every input must "
                     "be finite")


def _check_float(name: str, x) -> None:
  """float32 or float64 rows that JAX keeps in their dtype."""
  if np.dtype(x.dtype) not in (np.float32, np.float64):
    raise SweepError(f"{name} holds {np.dtype(x.dtype)} rows; a sweep trains in float32 or "
                     "float64 (its hyperparameters in the rows' dtype, where float16 "
                     "would round a learning rate of 1e-8 to 0): convert them, e.g. "
                     "x.astype(np.float32)")
  try:        # float64 rows without 64-bit JAX would train in float32, silently
    check_dtype(x.dtype, f"{name}'s dtype")
  except ValueError as e:
    raise SweepError(str(e)) from None


def shared_order_key(config) -> jax.Array | None:
  """The data-order key of `config.shuffle_seed`, shared by every member; None if unset
  (each member then shuffles by its own `seed`)."""
  shuffle_seed = config.get("shuffle_seed")
  return None if shuffle_seed is None else seeds.key(int(shuffle_seed), "order")


def _active(state: training.TrainState, k: int) -> np.ndarray:
  return distributed.fetch(state.status)[:k] == training.ACTIVE


def _members(tree, k: int, source: str):
  """The first k members of each leaf of `tree` (a checkpoint's; older ones kept the
  padding); a leaf with fewer, or another shape per member, is a ValueError."""
  def one(x):
    if x.ndim == 0 or x.shape[0] < k:
      raise ValueError(f"{source} holds an array of shape {x.shape}, expected {k} members")
    return x[:k]
  return {n: one(x) for n, x in tree.items()}


def _check_meta(meta: dict, path: str) -> dict:
  """`meta`, a sweep checkpoint's, if it holds the progress a run resumes from (the rungs
  halved, the seconds worked, each group's: finished, seconds and, unfinished, its
  epoch); else Damaged, naming `path`, rather than a KeyError deep in the resume."""
  number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
  groups, why = meta.get("groups"), None
  if not isinstance(groups, dict) or not isinstance(meta.get("halved"), list) or not number(
      meta.get("seconds")):
    why = "no groups, halved rungs or seconds"
  else:
    for gi, info in groups.items():
      if not (isinstance(info, dict) and isinstance(info.get("finished"), bool)
              and number(info.get("seconds"))
              and (info["finished"] or isinstance(info.get("epoch"), int))):
        why = f"group {gi}'s progress is {info!r}"
        break
  if why:
    raise checkpoint.damaged(path, "JSON", why)
  return meta


# A finished group's arrays (name -> rank), one row per member; and those it may hold.
_OUTCOME = {"val_accuracy": 1, "final_loss": 1, "status": 1, "epochs_run": 1,
            "best_epoch": 1, "train_loss_history": 2, "val_accuracy_history": 2}
_OUTCOME_OPTIONAL = {"train_accuracy": 1, "iterations": 1, "grad_norm": 1}


def _check_group(arrays: dict, k: int, epochs: int | None, path: str) -> dict:
  """The arrays of a group's checkpoint file (`path`), each per-member one cut to its
  first k rows (as `_members` cuts the state's), if they are those of a finished group
  (`epochs` None) or of one training for `epochs`: a history as long as the epochs its
  members ran, statuses lincv knows; else Damaged (a KeyError or IndexError mid-resume,
  or a curve cut short in metrics.jsonl)."""
  def bad(why):
    return checkpoint.damaged(path, ".npz", why)
  if epochs is None:
    ranks = {**_OUTCOME, **{n: r for n, r in _OUTCOME_OPTIONAL.items() if n in arrays}}
  else:
    ranks = {"train_loss": 2, "val_accuracy": 2}
  out = dict(arrays)
  for name, rank in ranks.items():
    if name not in arrays:
      raise bad(f"no array {name}")
    a = arrays[name]
    if a.ndim != rank or a.shape[0] < k or (epochs is not None and a.shape[1] != epochs):
      want = f"({k},)" if rank == 1 else f"({k}, {epochs or 'epochs'})"
      raise bad(f"{name} of shape {a.shape}, expected {want}")
    out[name] = a[:k]
  if epochs is None:
    if not np.isin(out["status"], list(training.STATUS_NAMES)).all():
      raise bad(f"status {out['status'].tolist()} holds values other than "
                f"{sorted(training.STATUS_NAMES)}")
    trained = int(np.max(out["epochs_run"], initial=0))
    for name in ("train_loss_history", "val_accuracy_history"):
      if out[name].shape[1] < trained:
        raise bad(f"{name} holds {out[name].shape[1]} epochs, its members ran {trained}")
  return out


def _layout(saved: dict, groups) -> list | None:
  """The members of each group of a saved run. A run saved before its meta recorded
  them grouped as `groups` do, each group's members in member order (they were not yet
  ordered by seed), unless one of those mixes losses (earlier runs trained each loss
  apart): its layout is then unknown (None)."""
  if "layout" in saved:
    return saved["layout"]
  if any(isinstance(g.structure.loss, tuple) for g in groups):
    return None
  return [sorted(g.members) for g in groups]     # they kept the members' order


def _same_sets(layout: list, groups) -> bool:
  """Whether `layout` holds each group's members, in some order."""
  return len(layout) == len(groups) and all(
      sorted(m) == sorted(g.members) for m, g in zip(layout, groups))


@dataclasses.dataclass
class _GroupRun:
  """One group's progress: its state and curves while it trains, its outcome once finished."""
  state: training.TrainState | None = None
  train_loss: np.ndarray | None = None      # (K, epochs), NaN in epochs not trained
  val_accuracy: np.ndarray | None = None
  seconds: float = 0.0                      # the group's training time, every process's
  outcome: dict | None = None               # per-member arrays, once finished


class Runner:
  """Trains the groups of one sweep and commits their progress (in `workdir/folder/`);
  see `run`."""

  def __init__(self, config, members, groups, data_for, num_classes, key, workdir, progress,
               started, folder="checkpoint"):
    self.config, self.members, self.groups = config, members, groups
    self.data_for, self.num_classes, self.key = data_for, num_classes, key
    self.progress, self.started = progress, started
    self.runs: dict[int, _GroupRun] = {}
    self.min_members = None   # with halving, the members left after its last rung
    self.pops: dict[int, population.Population] = {}
    self.data: dict[str, training.Data] = {}
    self.meta = {"config": config_lib.fingerprint(config), "seconds": 0.0, "halved": [],
                 "groups": {}, "layout": [list(g.members) for g in groups]}
    self.store, self.workdir = None, workdir
    self.writer = distributed.is_writer()
    self.live = (events.Live(workdir, members, config.sweep.keys())
                 if workdir and self.writer else None)
    if workdir:
      self.store = checkpoint.Store(os.path.join(workdir, folder), "sweep.json")
      try:
        saved = self.store.load(clean=self.writer)
      except checkpoint.Damaged:
        raise                          # its message says what to do
      except ValueError as e:
        raise SweepError(f"{e}; use a new workdir") from None
      if saved is not None:
        _check_meta(saved, self.store.path)
      differ = [] if saved is None else config_lib.differences(saved.get("config") or {},
                                                                self.meta["config"])
      if differ:
        raise SweepError(f"{workdir} holds a run of a different configuration (fields "
                         f"differ: {', '.join(differ)}); use a new workdir, or the same "
                         "configuration to resume it")
      layout = None if saved is None else _layout(saved, groups)
      if layout is not None and layout != self.meta["layout"] and _same_sets(layout, groups):
        # An earlier lincv ordered the members of each group otherwise (not by seed):
        # the run goes on in its order.
        self.groups = groups = [g.in_order(members, m) for g, m in zip(groups, layout)]
        self.meta["layout"] = layout
      if saved is not None and layout != self.meta["layout"]:
        raise SweepError(f"{workdir} holds a run whose members were grouped otherwise (by "
                         "an earlier lincv, which trained each loss apart); use a new "
                         "workdir to run this configuration")
      self.meta = saved or self.meta
    self.earlier_seconds = float(self.meta["seconds"])
    self.committed = time.perf_counter()     # see `_commit_due`
    self.on_disk = {}         # group -> the epoch its last completed commit holds

  def fetch(self, features: str) -> None:
    """Fetches `data_for(features)` once and checks it (`check_data`, the dtype); with a
    workdir, records its fingerprint, or refuses rows other than those it recorded."""
    if features in self.data:
      return
    data = check_data(self.data_for(features), self.num_classes)
    rows, wanted = np.dtype(data.x_train.dtype), self.config.get("dtype", "float32")
    if rows != np.dtype(wanted):   # the sweep trains in the rows' dtype
      how = ("float64 rows (with 64-bit JAX on: jax.config.update('jax_enable_x64', True))"
             if wanted == "float64" else "float32 rows")
      raise SweepError(
          f"config.dtype is {wanted!r} but data_for({features!r}) gave {rows.name} rows, "
          f"which the sweep would train in; give {how}, or set dtype={rows.name!r}")
    if self.store is not None:
      recorded = self.meta.setdefault("data", {})
      digest = data_fingerprint(data, self.num_classes)
      if recorded.setdefault(features, digest) != digest:
        raise SweepError(
            f"{self.workdir} holds a run on other data: data_for({features!r}) gave rows or "
            "labels other than those the run started on; use a new workdir, or the data "
            "it started on to resume")
    self.data[features] = data

  def compiled(self, gi: int) -> population.Population:
    """Group gi's compiled population (its data fetched once per features name)."""
    if gi not in self.pops:
      g = self.groups[gi]
      self.fetch(g.features)
      try:
        # lbfgs and closed_form train on every row at once: no minibatches
        if g.structure.optimizer not in training.FULL_BATCH:
          training.steps_per_epoch(g.structure, self.data[g.features].x_train.shape[0])
      except ValueError as e:
        raise SweepError(str(e)) from None
      self.pops[gi] = population.Population(g, self.data[g.features], self.num_classes,
                                            *placement.options(self.config.data),
                                            min_members=self.min_members)
      self.data[g.features] = self.pops[gi].data    # on the devices, for the next group
    return self.pops[gi]

  def group_run(self, gi: int) -> _GroupRun:
    """Group gi's progress: in memory, else as last committed, else a fresh start."""
    if gi not in self.runs:
      info = self.meta["groups"].get(str(gi))
      saved = None
      if info:
        saved = _check_group(self.store.read(f"group{gi}"), self.groups[gi].size,
                             None if info["finished"] else self.groups[gi].structure.epochs,
                             self.store.file(f"group{gi}"))
      if info and info["finished"]:
        if self.groups[gi].features in self.meta.get("data", {}):
          self.fetch(self.groups[gi].features)   # its results stand only on the same rows
        self.runs[gi] = _GroupRun(seconds=info["seconds"], outcome=saved)
        self._rewrite_events(gi, saved["train_loss_history"], saved["val_accuracy_history"])
      else:
        pop = self.compiled(gi)
        shape = (pop.k, self.groups[gi].structure.epochs)
        run = _GroupRun(train_loss=np.full(shape, np.nan), val_accuracy=np.full(shape, np.nan))
        if saved is None:
          run.state = pop.init()
        else:
          like = pop._init.eval_shape(pop.hparams, pop.data)    # shapes only, no compile
          like = jax.tree.map(lambda a: jax.ShapeDtypeStruct((pop.k, *a.shape[1:]), a.dtype),
                              like)
          source = f"the checkpoint of group {gi}"
          try:
            state = _members({n: a for n, a in saved.items() if n.startswith("state_")},
                             pop.k, source)
            run.state = checkpoint.from_arrays(state, like, "state_", source)
          except checkpoint.Damaged:
            raise
          except ValueError as e:
            raise SweepError(f"{e}; use a new workdir") from None
          run.train_loss, run.val_accuracy = saved["train_loss"], saved["val_accuracy"]
          run.seconds = info["seconds"]
          self._rewrite_events(gi, run.train_loss, run.val_accuracy, info["epoch"])
        self.runs[gi] = run
    return self.runs[gi]

  def train(self, gi: int, end: int) -> None:
    """Trains group gi up to epoch `end` while a member is active; finishes it when done."""
    run = self.group_run(gi)
    if run.outcome is not None:
      return
    pop, s = self.compiled(gi), self.groups[gi].structure
    run.state = pop.restore(run.state)
    e = int(distributed.fetch(run.state.epoch)[0])
    self.on_disk.setdefault(gi, e)
    active = _active(run.state, pop.k)
    try:
      while e < end and active.any():
        t0 = time.perf_counter()
        if hasattr(self.progress, "starting"):     # where a Ctrl-C lands (`Progress`)
          self.progress.starting(gi, e + 1)
        state, metrics = pop.epoch(run.state, self.key)
        got = distributed.fetch({**metrics, "status": state.status, "best": state.best_val_acc})
        run.train_loss[:, e] = got["train_loss"][: pop.k]
        run.val_accuracy[:, e] = got["val_accuracy"][: pop.k]
        run.state = state     # the epoch counts from here: the state and its curves agree
        run.seconds += time.perf_counter() - t0
        e += 1
        active = got["status"][: pop.k] == training.ACTIVE
        alive = int(active.sum())
        if self.store and alive and e < s.epochs and (
            e == end or (e % self.config.checkpoint_every == 0 and self._commit_due())):
          self.commit([gi])
        if self.progress:
          self.progress({
              "group": gi, "num_groups": len(self.groups), "epoch": e, "epochs": s.epochs,
              "alive": alive, "members": pop.k,
              "best_val_accuracy": float(np.max(got["best"][: pop.k])),
              "seconds": run.seconds})
    except KeyboardInterrupt:
      # Ctrl-C keeps every epoch trained: the last one is committed as the run ends (a
      # kill keeps those of the last commit, at most `checkpoint_seconds` earlier).
      if self.store and not distributed.is_multiprocess() and e > self.on_disk[gi]:
        self.commit([gi])
      raise
    if e == s.epochs or not active.any():
      self.finish(gi)

  def _commit_due(self) -> bool:
    """Whether `config.checkpoint_seconds` have passed since the last commit (or start):
    epochs of a few milliseconds would otherwise spend more time committing than training.
    With several processes, always: a commit is a collective, which every process must
    decide alike, and their clocks differ."""
    if distributed.is_multiprocess():
      return True
    return time.perf_counter() - self.committed >= self.config.checkpoint_seconds

  def finish(self, gi: int) -> None:
    """Evaluates group gi's members, keeps its best member's parameters, frees its devices."""
    run, pop, g = self.runs[gi], self.pops.pop(gi), self.groups[gi]
    k = pop.k
    # The pass over the training rows that scores each member's selected parameters:
    # `config.train_accuracy = False` skips it (and the column).
    scored = ({"train_accuracy": pop.accuracy(run.state.best_params, pop.data.x_train,
                                              pop.data.y_train)}
              if self.config.get("train_accuracy", True) else {})
    solver = (lbfgs.report(run.state.opt_state) if g.structure.optimizer == "lbfgs" else {})
    st, solver = distributed.fetch((run.state._replace(opt_state=None, prev_params=None),
                                    solver))
    run.outcome = {
        **scored,
        "val_accuracy": st.best_val_acc[:k],
        "final_loss": st.last_loss[:k],
        "status": st.status[:k],
        "epochs_run": st.epochs_run[:k],
        "best_epoch": st.best_epoch[:k],
        "train_loss_history": run.train_loss,
        "val_accuracy_history": run.val_accuracy,
        **{name: v[:k] for name, v in solver.items()}}
    best = selection.best([row for row, _ in self.rows(gi)])
    if best is not None:
      j = g.members.index(best["member"])
      run.outcome.update({f"params_{n}": v[j] for n, v in st.best_params.items()})
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
      status, acc = distributed.fetch((st.status, st.best_val_acc))
      live.update({m: float(acc[j]) for j, m in enumerate(self.groups[gi].members)
                   if status[j] == training.ACTIVE})
    keep = selection.survivors(live, eta)
    for gi in training_groups:
      st = self.runs[gi].state
      status = np.array(distributed.fetch(st.status))
      for j, m in enumerate(self.groups[gi].members):
        if m in live and m not in keep:
          status[j] = training.PRUNED
      self.runs[gi].state = st._replace(status=status)
    self.meta["halved"] = [*self.meta["halved"], rung]
    if self.store:
      self.commit(training_groups)

  def commit(self, gis: list[int]) -> None:
    """Commits the progress of groups `gis`, and the seconds worked so far, in one step.

    Every process gathers the states (a collective); process 0 writes them.
    """
    files = {}
    for gi in gis:
      run = self.runs[gi]
      if run.outcome is not None:
        files[f"group{gi}"] = run.outcome
        self.meta["groups"][str(gi)] = {"finished": True, "seconds": run.seconds}
      else:
        k = self.groups[gi].size
        state = jax.tree.map(lambda a: a[:k], distributed.fetch(run.state))
        files[f"group{gi}"] = {**checkpoint.tree_arrays(state, "state_"),
                               "train_loss": run.train_loss, "val_accuracy": run.val_accuracy}
        self.meta["groups"][str(gi)] = {"finished": False, "seconds": run.seconds,
                                        "epoch": int(state.epoch[0])}
    self.meta["seconds"] = self.earlier_seconds + time.perf_counter() - self.started
    self.committed = time.perf_counter()
    if self.writer:
      self.store.commit(self.meta, files)
      self._append_events(gis)
    for gi in gis:
      self.on_disk[gi] = self.meta["groups"][str(gi)].get("epoch")

  def _rewrite_events(self, gi: int, train_loss, val_accuracy, upto=None) -> None:
    """Group gi's event files as its checkpoint left them (a resumed sweep's): whatever
    an earlier process wrote past its last commit is gone."""
    if self.live:
      k = self.groups[gi].size
      self.live.rewrite(gi, self.groups[gi].members, train_loss[:k], val_accuracy[:k],
                        train_loss.shape[1] if upto is None else upto)

  def _append_events(self, gis: list[int]) -> None:
    """Appends the epochs just committed to the event files (`lincv.events.Live`)."""
    if not self.live:
      return
    for gi in gis:
      run, members = self.runs[gi], self.groups[gi].members
      if run.outcome is not None:
        h = run.outcome
        self.live.append(gi, members, h["train_loss_history"], h["val_accuracy_history"],
                         h["train_loss_history"].shape[1], force=True)
      else:
        self.live.append(gi, members, run.train_loss, run.val_accuracy,
                         int(self.meta["groups"][str(gi)]["epoch"]))

  def rows(self, gi: int) -> list[tuple[dict, dict]]:
    """(row, history) of each member of finished group gi."""
    g, run = self.groups[gi], self.group_run(gi)
    out = run.outcome
    rows = []
    for j, m in enumerate(g.members):
      n = int(out["epochs_run"][j])    # a member trains epochs 1..n, then no more
      # Below 0: no epoch kept (it diverged in its first), so no parameters of it to
      # score: no validation accuracy, and no training accuracy (that of its initial ones).
      kept = out["val_accuracy"][j] >= 0
      row = dict(
          member=m, group=gi, **{f: self.members[m][f] for f in config_lib.SWEEPABLE},
          **({"train_accuracy": float(out["train_accuracy"][j]) if kept else math.nan}
             if "train_accuracy" in out else {}),
          val_accuracy=float(out["val_accuracy"][j]) if kept else math.nan,
          final_loss=float(out["final_loss"][j]),
          status=training.STATUS_NAMES[int(out["status"][j])],
          epochs_run=n, best_epoch=int(out["best_epoch"][j]), seconds=run.seconds / g.size)
      if "iterations" in out:    # a full-batch solver's: steps taken, |grad| / |grad_0|
        row.update(iterations=int(out["iterations"][j]),
                   grad_norm=float(out["grad_norm"][j]))
      rows.append((row, {"train_loss": out["train_loss_history"][j, :n].tolist(),
                         "val_accuracy": out["val_accuracy_history"][j, :n].tolist()}))
    return rows

  def best_params(self, gi: int) -> dict:
    """The best-validation parameters of finished group gi's best member."""
    out = self.group_run(gi).outcome
    return {n[len("params_"):]: v for n, v in out.items() if n.startswith("params_")}

  def train_all(self, rungs: tuple[int, ...], eta: float) -> None:
    """Trains every group to its last epoch, halving the sweep at each rung."""
    if rungs:
      # This runner's members (`members` holds the coarse stage's too in the refined one).
      n = sum(g.size for g in self.groups)
      for _ in rungs:
        n = math.ceil(n / eta)
      self.min_members = n
    for stop in (*rungs, None):
      for gi, g in enumerate(self.groups):
        self.train(gi, g.structure.epochs if stop is None else stop)
      if stop is not None and stop not in self.meta["halved"]:
        self.halve(stop, eta)

  def table(self) -> tuple[list[dict], list[dict]]:
    """(rows, histories) of every member, in member order, once every group finished."""
    rows, history = [None] * len(self.members), [None] * len(self.members)
    for gi in range(len(self.groups)):
      for row, h in self.rows(gi):
        rows[row["member"]], history[row["member"]] = row, h
    return rows, history

  def select(self, rows: list[dict]) -> dict:
    """`selection.select(rows)`; if every member diverged, the checkpoint is cleared too."""
    try:
      return selection.select(rows)
    except selection.Diverged:
      self.discard()
      raise

  def discard(self) -> None:
    """Forgets the committed progress (the checkpoint's files, the event files)."""
    if self.store and self.writer:
      self.store.clear()
    if self.live:
      self.live.clear()


