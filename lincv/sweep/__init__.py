"""Hyperparameter sweeps: search spaces, grouping, a vmapped population, halving, selection.

A sweep is a list of members, each a full assignment of the swept fields. Members that
agree on every structural field form a group; a group's K members train together under
one `jit(vmap(...))`, with the population axis sharded over all devices, those of every
process too (`lincv.distributed`). As it trains the sweep state is checkpointed
atomically, so a killed sweep resumes where it stopped and ends with the same results. `run` does all of it; its steps live in

  space.py       the search space: `expand`, `notes`, `validate_member`, `structure`,
                 `group` (its spelling in `config.sweep` is in that module's docstring)
  population.py  a group's compiled, sharded population: `Population`, `chunking`
  closed_form.py a group solved in closed form (optimizer="closed_form"): `ClosedForm`
  selection.py   successive halving's rungs, `select`, `Result`, `Diverged`
  runner.py      training the groups in turn and committing their progress: `Runner`,
                 `check_data`, `shared_order_key`
  refine.py      a second stage of one field refined around the coarse best (`config.refine`)
"""

import dataclasses
import math
import numbers
import time
from collections.abc import Callable

import ml_collections
import numpy as np

from lincv import lbfgs, objective, precision, training
from lincv.sweep import refine
from lincv.sweep.population import MAX_CHUNK, Population, chunking
from lincv.sweep.runner import Runner, check_data, check_test, shared_order_key
from lincv.sweep.selection import Diverged, Result, halving, select
from lincv.sweep.space import (SEARCHES, Group, SweepError, expand, group, notes, structure,
                               validate_member, with_loss_names)

__all__ = ["MAX_CHUNK", "SEARCHES", "Diverged", "Group", "Population", "Result", "SweepError",
           "check_data", "chunking", "expand", "group", "halving", "notes", "run", "select",
           "shared_order_key", "structure", "accuracy_on_test", "validate_member"]


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
  unfinished groups stay compiled and on the devices; after a rung only the members
  still training are computed (see `Population.epoch`). With `config.refine.field`, a
  second stage trains that field refined around the best member, and the selection is
  over both stages (`lincv.sweep.refine`).

  Members that diverge are left out of the selection; only a sweep in which every member
  diverged fails (`Diverged`, and a workdir's checkpoint is cleared).

  Args:
    config: a config (see `lincv.config.base`).
    data_for: features name -> `training.Data` (called once per features name while
      groups of it train).
    num_classes: C.
    workdir: if given, the sweep checkpoints into `workdir/checkpoint/` every
      `config.checkpoint_every` epochs once `config.checkpoint_seconds` have passed since
      the last checkpoint, and at each rung and group's end, and resumes from there: the
      state, the curves and the time worked are committed together, in one atomic step,
      so a process killed at any point resumes to the same results. A workdir holding
      another configuration, or a run on other data (training and validation rows and
      labels, hashed when first fetched), is refused.
    test_for: features name -> (x_test, y_test); evaluated once, for the selected member.
    progress: called after every epoch with {"group", "num_groups", "epoch", "epochs",
      "alive", "members", "best_val_accuracy", "seconds"}.
    started: `time.perf_counter()` when this process began working on the run (default:
      now), for the seconds the checkpoint records.

  Returns:
    a `Result`. Each row holds: member, group, every sweepable field, train_accuracy
    (unless `config.train_accuracy` is False) and val_accuracy (of the member's
    best-validation parameters; a full-batch solver's, of its solution, its last
    iterate; NaN for a member that diverged in its first epoch and kept none),
    final_loss (mean train loss of its last epoch), status (ok / diverged / pruned), epochs_run,
    best_epoch, seconds (the group's training time divided among its members); an
    lbfgs member's also iterations and grad_norm (relative to the gradient at zero, see
    `lincv.lbfgs`); with `config.refine`, stage (coarse / refine). A member's history
    holds the epochs it trained, 1..epochs_run.

  Float32 matrix products are computed at `config.matmul_precision` (`lincv.precision`).

  Raises:
    SweepError: a specification that cannot run; `Diverged` if every member diverged.
  """
  try:
    matmul = precision.of(config)
  except ValueError as e:
    raise SweepError(str(e)) from None
  with precision.scope(matmul):
    return _run(config, data_for, num_classes, workdir=workdir, test_for=test_for,
                progress=progress, started=started)


def _run(config, data_for, num_classes, *, workdir, test_for, progress, started) -> Result:
  """`run` within its precision scope."""
  started = time.perf_counter() if started is None else started
  _check_settings(config)
  config = with_loss_names(config)
  refine.check(config)
  members = expand(config)
  groups = group(members)
  rungs, eta = halving(config, members)
  runner = Runner(config, members, groups, data_for, num_classes, shared_order_key(config),
                  workdir, progress, started)
  runner.train_all(rungs, eta)
  rows, history = runner.table()
  best = runner.select(rows)
  both = refine.Both(rows, history, best, runner, best["group"], runner.earlier_seconds)
  if refine.enabled(config):
    both = refine.run(config, runner, rows, history, best, rungs, eta, workdir)
  chosen = both.runner.groups[both.gi]
  best_params = both.runner.best_params(both.gi)
  test_acc = None if test_for is None else accuracy_on_test(chosen, best_params, test_for)
  lbfgs.warn_unconverged(both.rows, both.best)
  return Result(rows=both.rows, history=both.history, best=both.best,
                best_params=best_params,
                best_structure=dataclasses.replace(chosen.structure, loss=both.best["loss"]),
                test_accuracy=test_acc, earlier_seconds=both.earlier_seconds)


def _check_settings(config) -> None:
  """A SweepError for a run setting out of range (train.py checks these too)."""
  every = config.get("checkpoint_every", 1)
  if (isinstance(every, bool) or not isinstance(every, numbers.Real)
      or not math.isfinite(every) or every < 1 or int(every) != every):
    raise SweepError(f"checkpoint_every must be an integer >= 1 (epochs between sweep "
                     f"checkpoints), got {every!r}")
  if config.get("dtype", "float32") not in ("float32", "float64"):
    raise SweepError(f"dtype must be float32 or float64, got {config.get('dtype')!r}")


def accuracy_on_test(g: Group, params: dict, test_for: Callable[[str], tuple]) -> float:
  """The test accuracy of `params` (a member of group `g`), on `test_for(g.features)`;
  a SweepError if those rows are not what the training rows were (`check_test`: no rows,
  other columns, labels out of range or not one per row, a non-finite value)."""
  x_test, y_test = test_for(g.features)
  model = g.structure.model
  dim = np.shape(params[objective.INPUT_WEIGHT[model]])[0]
  num_classes = np.shape(params[objective.PARAM_KEYS[model][-1]])[-1]    # the output bias
  check_test(x_test, y_test, dim, num_classes, f"test_for({g.features!r})")
  return float(training.accuracy_program(g.structure, params, x_test, y_test))
