"""A sweep's search space: its members, their checks, and their groups.

A sweep is a list of members, each a full assignment of the sweepable fields
(`lincv.config.SWEEPABLE`). Members that agree on every structural field form a
`Group`, whose numeric fields are stacked into arrays of shape (K,).

Search spaces (`config.sweep`), per field:
  [v1, v2, ...]                 values (grid: all combinations; random: a uniform choice)
  {"choice": [v1, v2, ...]}     the same, spelled out
  {"log_uniform": [lo, hi]}     random search only: exp(U(log lo, log hi))
  {"uniform": [lo, hi]}         random search only: U(lo, hi)
"""

import dataclasses
import math
import numbers
import itertools
from collections.abc import Mapping

import ml_collections
import numpy as np

from lincv import losses, ridge, seeds, training
from lincv import config as config_lib
from lincv._checks import check_name, repeated
from lincv.sweep import closed_form

SEARCHES = ("grid", "random")
_DISTRIBUTIONS = ("choice", "log_uniform", "uniform")


class SweepError(ValueError):
  """A sweep specification that cannot run; the message says what is valid."""


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
      args = list(args) if isinstance(args, (list, tuple)) else [args]
      if kind == "choice":
        space[field] = ("values", args)
      else:
        if (field not in config_lib.NUMERIC or len(args) != 2
            or not all(_is_number(a) and math.isfinite(a) for a in args)
            or not args[0] < args[1]):
          # An infinite bound (1e400) raised NumPy's OverflowError from the draw.
          raise SweepError(f"sweep field {field!r}: {kind} needs a numeric field and "
                           f"[low, high], finite, with low < high, got {args}")
        if kind == "log_uniform" and args[0] <= 0:
          raise SweepError(f"sweep field {field!r}: log_uniform needs low > 0, got {args}")
        if field == "seed":   # 7.19...: refused member by member, after the draw
          raise SweepError(f"sweep field 'seed': {kind} draws real numbers, and a seed is an "
                           "integer; list the seeds instead, e.g. [0, 1, 2]")
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
      # A random search too: drawn by repr, 32 and 32.0 were two settings, one member
      # trained twice.
      twice = repeated(values)
      if twice:
        raise SweepError(f"sweep.{field} lists {twice[0]!r} twice; list each value once")
  return space


def _is_number(v) -> bool:
  return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


_FLOATS = {name for name in training.HPARAM_DEFAULTS if name != "seed"} | {
    f.name for f in dataclasses.fields(training.Structure) if isinstance(f.default, float)}
_NAMES = {f.name for f in dataclasses.fields(training.Structure)
          if isinstance(f.default, str)} | {"features"}


def with_loss_names(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config` with the loss functions in `sweep.loss` replaced by the names they are
  registered under (`lincv.losses.register`), in a copy; `config` itself if it has none.

  A config is written as JSON and compared by its fingerprint, and results.csv names a
  member's loss: a registered function is swept by callable, and recorded by name.
  """
  spec = config.sweep.get("loss") if "loss" in config.sweep else None
  values = list(spec) if isinstance(spec, (list, tuple)) else [spec]
  if not any(callable(v) for v in values):
    return config
  names = []
  for v in values:
    try:
      names.append(losses.resolve(v) if callable(v) else v)
    except ValueError as e:
      raise SweepError(f"sweep.loss: {e}") from None
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.sweep.loss = tuple(names) if isinstance(spec, (list, tuple)) else names[0]
  return config


def _check_type(field: str, value) -> None:
  """Refuses a value of the wrong kind: a name where a number belongs, or the reverse."""
  if field in _NAMES:
    if not isinstance(value, str):
      named = f"the function {value.__name__}; use the name it is registered under" if (
          callable(value) and hasattr(value, "__name__")) else repr(value)
      raise SweepError(f"sweep.{field} takes names, got {named}")
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
  space = _space(_as_dict(config.sweep))
  base = {f: config[f] for f in config_lib.SWEEPABLE}
  validate_member(base)
  _check_bounds(space, base)
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
    # Draws of lists alone repeat: a setting drawn again is drawn anew (a member trained
    # twice would be compute for nothing), so there must be enough distinct settings.
    if all(kind == "values" for kind, _ in space.values()):
      distinct = math.prod(len({repr(v) for v in args}) for _, args in space.values())
      if config.num_samples > distinct:
        raise SweepError(f"num_samples {config.num_samples} exceeds the {distinct} distinct "
                         "settings of a random search over lists of values; lower "
                         "num_samples, or use search='grid' for all of them")
    members, seen = [], set()
    while len(members) < config.num_samples:
      m = dict(base)
      for field, (kind, args) in space.items():
        if kind == "values":
          m[field] = args[int(rng.integers(len(args)))]
        elif kind == "uniform":
          m[field] = float(rng.uniform(*args))
        else:
          m[field] = float(np.exp(rng.uniform(np.log(args[0]), np.log(args[1]))))
      setting = repr(sorted(m.items()))
      if setting not in seen:
        seen.add(setting)
        members.append(m)
  for m in members:
    validate_member(m)
  members, notes = _collapse(members, space, base)
  message = closed_form.check_members(members, space)
  if message:
    raise SweepError(message)
  return members, notes


def _check_bounds(space: dict, base: dict) -> None:
  """Refuses a distribution whose range holds invalid values (momentum {"uniform": [0.5,
  1.5]}): its draws were refused member by member, so a small sample could pass and a
  larger one of the same space fail. A range's high end is not drawn (U[low, high)), so
  the value checked there is the one just below it."""
  for field, (kind, args) in space.items():
    if kind == "values":
      continue
    low, high = args
    for value in (low, float(np.nextafter(high, low))):
      try:
        validate_member(dict(base, **{field: value}))
      except SweepError as e:
        raise SweepError(f"sweep field {field!r}: {kind} [{low:g}, {high:g}] holds values "
                         f"that are not valid: {e}") from None


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
    idle = {}                      # decider -> the values for which the field is idle
    for m in members:
      reason = config_lib.idle_reason(field, m)
      if reason:
        idle.setdefault(reason[0], set()).add(m[reason[0]])
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
    where = " or ".join(f"{d}={' or '.join(repr(v) for v in sorted(vs))}"
                        for d, vs in idle.items())
    notes.append(
        f"sweep.{field} does nothing with {where}; "
        f"those members take {field}={base[field]!r}, the config's value"
        + (f", and the {dropped} that became identical to another are dropped "
           f"({len(kept)} members remain)" if dropped else ""))
    members = kept
  return members, notes


BELOW_ONE = ("momentum", "b1", "b2", "rms_decay")   # decay rates: in [0, 1)


def validate_member(m: Mapping) -> None:
  """Checks one member's values; raises SweepError naming the field and what is valid."""
  for field in config_lib.SWEEPABLE:
    _check_type(field, m[field])
  try:
    structure(m)
  except ValueError as e:
    raise SweepError(str(e)) from None
  check_name("features", m["features"], config_lib.FEATURES)
  if not 0 < m["learning_rate"] < math.inf:
    raise SweepError(f"learning_rate must be a finite number > 0, got {m['learning_rate']}")
  for field in ("reg_strength", "margin", "beta", "init_scale"):
    if not 0 <= m[field] < math.inf:
      raise SweepError(f"{field} must be a finite number >= 0, got {m[field]}")
  for field in BELOW_ONE:
    if not 0 <= m[field] < 1:
      raise SweepError(f"{field} must be in [0, 1), got {m[field]}")
  if not 0 < m["lr_decay"] <= 1:
    raise SweepError(f"lr_decay must be in (0, 1] (the factor the step and exponential "
                     f"schedules multiply the rate by; above 1 it grows), got {m['lr_decay']}")
  if not 0 <= m["tol"] < np.inf:
    raise SweepError(f"tol must be a finite number >= 0 (L-BFGS stops at |grad| <= tol * "
                     f"|grad at W = 0, b = 0|; 0 runs every iteration), got {m['tol']}")
  if not _whole(m["seed"]) or not 0 <= m["seed"] < 2**32:
    raise SweepError(f"seed must be an integer in [0, 2**32), got {m['seed']}")


def _whole(v) -> bool:
  """Whether `v` is a whole number (NaN and the infinities are not)."""
  return (isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
          and int(v) == v)


def structure(m: Mapping) -> training.Structure:
  """The static training settings of a member."""
  fields = {f.name: m[f.name] for f in dataclasses.fields(training.Structure)}
  for name in ("batch_size", "epochs", "hidden", "warmup_epochs", "decay_every", "patience",
               "lbfgs_iters"):
    if not _whole(fields[name]):
      raise SweepError(f"{name} must be an integer, got {fields[name]}")
    fields[name] = int(fields[name])
  return training.Structure(**fields)


@dataclasses.dataclass(frozen=True)
class Group:
  """Members sharing their structural fields, their loss aside; they train together.

  A group whose members differ in their loss has the tuple of its losses as
  `structure.loss` and each member's position in it as `hparams["loss_index"]`.
  """
  structure: training.Structure
  features: str
  members: tuple[int, ...]          # indices into the member list
  hparams: dict                     # field -> np.ndarray (K,)

  @property
  def size(self) -> int:
    return len(self.members)

  def in_order(self, members: list[dict], idx) -> "Group":
    """This group with members `idx` (indices into `members`), in that order."""
    loss = self.structure.loss
    names = loss if isinstance(loss, tuple) else ()
    hparams = {f: np.asarray([members[i][f] for i in idx],
                             np.uint32 if f == "seed" else np.float64)
               for f in config_lib.NUMERIC}
    if len(names) > 1:
      hparams["loss_index"] = np.asarray([names.index(members[i]["loss"]) for i in idx],
                                         np.int32)
    return dataclasses.replace(self, members=tuple(int(i) for i in idx), hparams=hparams)


def _key(m: Mapping, mix_losses: bool) -> tuple:
  """The fields that set a member's group apart: the structural ones, less the loss
  where losses mix (every optimizer but closed_form, which solves least_squares alone)."""
  mixed = mix_losses and m["optimizer"] != ridge.OPTIMIZER
  return tuple(m[f] for f in config_lib.STRUCTURAL if not (mixed and f == "loss"))


def group(members: list[dict], mix_losses: bool = True) -> list[Group]:
  """Splits members by structural fields, in order of first appearance; within a group,
  by seed (stably).

  Members that differ in their loss only share a group, so a sweep over losses compiles
  one program: its structure holds the tuple of the group's losses (in order of first
  appearance) and its hparams "loss_index" (int32) each member's position in that
  tuple, which picks the member's loss inside the step (`lincv.objective.loss_values`).
  A group of one loss has that loss's name and no index, as with `mix_losses=False`,
  which gives each loss its own groups (as runs written before losses mixed did).
  """
  keys: dict[tuple, list[int]] = {}
  for i, m in enumerate(members):
    keys.setdefault(_key(m, mix_losses), []).append(i)
  groups = []
  for idx in keys.values():
    first = members[idx[0]]
    names = tuple(dict.fromkeys(members[i]["loss"] for i in idx))
    s = structure(dict(first, loss=names if len(names) > 1 else names[0]))
    # Each seed's members together (in order), so that they share its data order in
    # blocks (`lincv.sweep.population.seed_block`).
    by_seed = sorted(idx, key=lambda i: members[i]["seed"])
    groups.append(Group(s, first["features"], (), {}).in_order(members, by_seed))
  return groups
