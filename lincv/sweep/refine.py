"""A sweep's second stage: one field refined around the coarse stage's best member.

CLIP's linear-probe protocol sweeps the regularization strength over a coarse log grid,
then over a finer one around the best value on validation. With `config.refine.field`
set (a swept numeric field, e.g. "reg_strength") and `config.refine.points` (P), `run`
does the same after the coarse sweep has finished and selected its best member:

  the refined members are the best member's hyperparameters with `field` at P values
  log-spaced over the open interval between the best value's two neighbours in the
  coarse grid (`grid`; a best value at an edge of the grid takes the mirror of its one
  neighbour, so that the interval is as wide on both sides in log scale);

  they train as the sweep's next members (numbered on after the coarse ones, their
  groups too), with halving's rungs as in the coarse stage, in a checkpoint of their own
  (`checkpoint/refine/`): they are a function of the finished coarse stage alone, so a
  run killed in either stage resumes to the same results;

  the selection is over every member of both stages, by the usual rule
  (`lincv.sweep.selection`); each row says its `stage`, "coarse" or "refine".

A value of the refined grid equal to the best value itself (the middle of an odd P
between evenly spaced neighbours) is already trained and is left out; P is at least 2,
since P = 1 is that middle alone. When the field
does nothing for the best member (reg_strength with reg="none"), there is nothing to
refine and the second stage trains no member (a `NothingRefined` warning says so).
"""

import dataclasses
import math
import numbers
import os
import warnings

import numpy as np

from lincv import config as config_lib
from lincv.sweep import runner as runner_lib, selection, space
from lincv.sweep.space import SweepError

FOLDER = os.path.join("checkpoint", "refine")   # the second stage's checkpoint, in workdir
FIELDS = tuple(f for f in config_lib.NUMERIC if f != "seed")


def enabled(config) -> bool:
  """Whether the config asks for a refined second stage."""
  refine = config.get("refine")
  return bool(refine and refine.get("field"))


def coarse_values(config) -> list[float]:
  """The sorted distinct values of the refined field in `config.sweep`."""
  spec = config.sweep.get(config.refine.field)
  return sorted(set(space._space({config.refine.field: spec})[
      config.refine.field][1]))


def check(config) -> None:
  """Refuses, in one line, a `config.refine` that cannot run (nothing when it is off)."""
  if not enabled(config):
    return
  field, points = config.refine.field, config.refine.points
  if field not in FIELDS:
    raise SweepError(f"refine.field={field!r} is not a numeric hyperparameter; refine "
                     f"log-spaces one of: {', '.join(FIELDS)}")
  if field not in config.sweep:
    swept = ", ".join(config.sweep.keys()) or "none"
    raise SweepError(f"refine.field={field!r} is not swept (swept: {swept}); refine needs "
                     f"sweep.{field} with at least 2 values")
  kind = space._space({field: config.sweep[field]})[field][0]
  if kind != "values":
    raise SweepError(f"refine.field={field!r} needs a list of values in sweep.{field}, the "
                     f"coarse grid it refines, got a {kind} distribution")
  values = coarse_values(config)
  if len(values) < 2:
    raise SweepError(f"refine.field={field!r} has {len(values)} value in sweep.{field}; "
                     "refine needs at least 2 (the coarse grid whose neighbours bound it)")
  if min(values) <= 0:
    raise SweepError(f"refine.field={field!r} log-spaces its values, so sweep.{field} must "
                     f"hold values > 0, got {min(values)}")
  if isinstance(points, bool) or not isinstance(points, numbers.Integral) or points < 2:
    # One point is the log midpoint of the neighbours: the best value itself (trained
    # already, so left out) at an edge of the grid and on an evenly spaced grid.
    raise SweepError(f"refine.points must be an integer >= 2 (values tried between the best "
                     f"value's neighbours; 1 would be their log midpoint, the best value "
                     f"itself on an evenly spaced grid, and train nothing), got {points!r}")


def grid(values, best: float, points: int, upper: float | None = None) -> list[float]:
  """`points` values log-spaced over the open interval between `best`'s neighbours in
  `values` (at an edge, the neighbour's mirror image in log scale, but at most `upper`,
  the field's bound), `best` itself left out.

  >>> grid([1e-2, 1e-1, 1.0], 1e-1, 1)   # [1e-1] is the best itself: nothing new
  []
  >>> grid([0.5, 0.9], 0.9, 1, upper=1.0)    # the mirror, 1.62, is past momentum's 1
  [0.7071067811865476]
  """
  logs = np.log(sorted(set(float(v) for v in values)))
  i = int(np.flatnonzero(np.isclose(logs, math.log(best), rtol=0, atol=1e-12))[0])
  lo = logs[i - 1] if i > 0 else 2 * logs[i] - logs[i + 1]
  hi = logs[i + 1] if i + 1 < len(logs) else 2 * logs[i] - logs[i - 1]
  if upper is not None:
    hi = min(hi, math.log(upper))
  inner = np.exp(np.linspace(lo, hi, points + 2)[1:-1])
  return [float(v) for v in inner if not math.isclose(v, best, rel_tol=1e-9)]


class NothingRefined(UserWarning):
  """The refined field does nothing for the best coarse member: no second stage."""


def members(config, coarse: list[dict], best: dict) -> list[dict]:
  """The refined members: the best coarse member with the field over `grid`; none, with
  a `NothingRefined` warning, if the field does nothing for that member."""
  field = config.refine.field
  chosen = coarse[best["member"]]
  if not config_lib.used(field, chosen):
    decider, _, meaning = config_lib.idle_reason(field, chosen)
    warnings.warn(f"lincv: refine.field={field!r} does nothing for the best coarse member "
                  f"(member {best['member']}, {decider}={chosen[decider]!r}; it is {meaning}): "
                  "no member is refined, the selection is the coarse stage's",
                  NothingRefined, stacklevel=2)
    return []
  upper = 1.0 if field in space.BELOW_ONE or field == "lr_decay" else None
  out = [dict(chosen, **{field: v}) for v in grid(coarse_values(config), chosen[field],
                                                  int(config.refine.points), upper)]
  for m in out:
    space.validate_member(m)
  return out


def _progress(progress, offset: int, total: int):
  """`progress` with the refined groups numbered on after the coarse ones."""
  if progress is None:
    return None
  return lambda p: progress({**p, "group": p["group"] + offset, "num_groups": total})


@dataclasses.dataclass
class Both:
  """The two stages' outcome: every member's rows and histories, the selected row, and
  where its parameters are (`runner.best_params(gi)`)."""
  rows: list[dict]
  history: list[dict]
  best: dict
  runner: runner_lib.Runner
  gi: int
  earlier_seconds: float


def run(config, coarse: runner_lib.Runner, rows: list[dict], history: list[dict],
        best: dict, rungs: tuple[int, ...], eta: float, workdir: str | None) -> Both:
  """Trains the refined members of the finished coarse stage and selects over both.

  Args:
    config, rungs, eta: the sweep's.
    coarse: the coarse stage's finished Runner.
    rows, history, best: its table and its selected row.
    workdir: the sweep's (the stage checkpoints into `workdir/checkpoint/refine/`).
  """
  refined = members(config, coarse.members, best)
  n, n_groups = len(coarse.members), len(coarse.groups)
  groups = [dataclasses.replace(g, members=tuple(i + n for i in g.members))
            for g in space.group(refined)]
  second = runner_lib.Runner(
      config, coarse.members + refined, groups, coarse.data_for, coarse.num_classes,
      coarse.key, workdir, _progress(coarse.progress, n_groups, n_groups + len(groups)),
      coarse.started, folder=FOLDER)
  # A fresh second stage goes on from the seconds the coarse one committed.
  second.earlier_seconds = max(second.earlier_seconds, coarse.earlier_seconds)
  second.train_all(rungs, eta)
  rows = [dict(r, stage="coarse") for r in rows]
  history = list(history)
  for gi in range(len(groups)):
    for row, h in second.rows(gi):
      rows.append(dict(row, group=row["group"] + n_groups, stage="refine"))
      history.append(h)
  chosen = selection.select(rows)
  runner, gi = ((coarse, chosen["group"]) if chosen["stage"] == "coarse"
                else (second, chosen["group"] - n_groups))
  return Both(rows, history, chosen, runner, gi, second.earlier_seconds)
