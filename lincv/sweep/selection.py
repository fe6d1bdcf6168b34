"""Which members go on and which one is chosen: successive halving's rungs, the selection.

Members that diverged are never ranked; ties go to the lower member index.
"""

import dataclasses
import math
import numbers
from collections.abc import Mapping

import ml_collections

from lincv import training
from lincv._checks import repeated
from lincv.sweep.space import SweepError


def halving(config: ml_collections.ConfigDict,
            members: list[dict]) -> tuple[tuple[int, ...], float]:
  """The rungs (sorted epochs: they may be listed in any order) and eta of `config.halving`.

  Raises:
    SweepError: eta below 2, a rung that is not an epoch before the last of every member,
      or a rung listed twice.
  """
  eta, rungs = config.halving.eta, config.halving.rungs
  if (isinstance(eta, bool) or not isinstance(eta, numbers.Real) or not eta >= 2
      or not math.isfinite(eta)):
    raise SweepError(f"halving.eta must be a finite number >= 2 (each rung keeps the best "
                     f"1/eta of the members still training), got {eta!r}")
  rungs = tuple(rungs) if isinstance(rungs, (list, tuple)) else (rungs,)
  epochs = min(int(m["epochs"]) for m in members)
  for r in rungs:
    if (isinstance(r, bool) or not isinstance(r, numbers.Real) or not 1 <= r < epochs
        or int(r) != r):
      valid = f"epochs 1..{epochs - 1}" if epochs > 1 else "none"
      raise SweepError(f"halving.rungs must be epochs before the last ({valid} for "
                       f"epochs={epochs}), got {rungs}")
  twice = repeated([int(r) for r in rungs])
  if twice:   # taken once, as a grid refuses a value listed twice
    raise SweepError(f"halving.rungs lists {twice[0]} twice, got {rungs}; list each rung once")
  return tuple(sorted(int(r) for r in rungs)), float(eta)


def rank(accuracy: float) -> float:
  """A validation accuracy as a sort key, higher is better: NaN (no accuracy, e.g. a member
  that diverged in its first epoch) ranks below every number, where in `max` or `sorted`
  it would compare as neither above nor below and leave the order to the rows' order."""
  return -math.inf if math.isnan(accuracy) else accuracy


def survivors(live: Mapping[int, float], eta: float) -> set[int]:
  """The best ceil(n / eta) of the n live members (member -> validation accuracy so far);
  ties go to the lower member index."""
  order = sorted(live, key=lambda m: (-rank(live[m]), m))
  return set(order[: math.ceil(len(order) / eta)])


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


def best(rows: list[dict]) -> dict | None:
  """The row `select` chooses, or None if every member diverged."""
  ok = [r for r in rows if r["status"] != "diverged"]
  return max(ok, key=lambda r: (rank(r["val_accuracy"]), -r["member"])) if ok else None


def select(rows: list[dict]) -> dict:
  """The member with the highest validation accuracy (ties: the lower index), not diverged.

  Raises:
    Diverged: every member diverged.
  """
  chosen = best(rows)
  if chosen is None:
    raise Diverged(f"all {len(rows)} members diverged; {_advice(rows)}")
  return chosen


def _advice(rows: list[dict]) -> str:
  """What to change, by the members' optimizers: a full-batch solver has no learning
  rate; its members diverge where the objective or its gradient overflows at the start."""
  full = {r.get("optimizer") for r in rows} & set(training.FULL_BATCH)
  minibatch = any(r.get("optimizer") not in training.FULL_BATCH for r in rows)
  out = ["lower the learning rate"] if minibatch else []
  if full:
    out.append(f"for {' and '.join(sorted(full))}, whose objective or gradient overflowed "
               "(a NaN or an infinity), lower reg_strength or scale the rows "
               "(data.scale='std')")
  return "; ".join(out)

