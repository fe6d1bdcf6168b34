"""The configuration schema: every field a run understands, its default and its kind.

Configs in `configs/` start from `base()` and override a few fields. Training fields are
flat so that a sweep names them directly (`config.sweep = {"learning_rate": [...]}`).
Fields are of two kinds:

  structural  change the compiled program; a sweep over them makes separate groups;
  numeric     plain numbers; a sweep stacks them along the population axis of a group.

Some fields matter only for some members (`ONLY_WITH`): the SVM margin for the SVM
losses, momentum for the momentum optimizers, ... `lincv.sweep.expand` refuses a sweep
over such a field where it does nothing.

On the command line (`train.py`), `load` reads a config file and `override` applies
`--config.FIELD=VALUE` (both live in `lincv.overrides`, and are reachable from here).
"""

import dataclasses
import difflib
import json

import ml_collections

from lincv import optim, training

STRUCTURAL = tuple(f.name for f in dataclasses.fields(training.Structure)) + ("features",)
NUMERIC = tuple(training.HPARAM_DEFAULTS)
SWEEPABLE = STRUCTURAL + NUMERIC
FEATURES = ("pixels", "hog_color", "kmeans")

# Fields that matter only for some members: field -> (the field that decides, the values
# of that field for which it matters, what the field is).
ONLY_WITH = {
    "margin": ("loss", ("svm", "squared_svm"), "the SVM margin"),
    "reg_strength": ("reg", ("l2", "l1", "elastic_net"), "the regularization strength"),
    "beta": ("reg", ("elastic_net",), "the elastic net's weight of the squared term"),
    "momentum": ("optimizer", ("momentum", "nesterov"),
                 "the momentum of the momentum and nesterov optimizers"),
    "b1": ("optimizer", ("adam",), "Adam's first-moment decay"),
    "b2": ("optimizer", ("adam",), "Adam's second-moment decay"),
    "rms_decay": ("optimizer", ("rmsprop",), "RMSProp's decay"),
    "lr_decay": ("schedule", ("step", "exponential"),
                 "the decay factor of the step and exponential schedules"),
    "decay_every": ("schedule", ("step",), "the period of the step schedule"),
    "init_scale": ("model", ("linear",),
                   "the scale of the linear model's initial weights; the mlp starts He-normal"),
    "hidden": ("model", ("mlp",), "the width of the mlp's hidden layer"),
    "tol": ("optimizer", ("lbfgs",), "L-BFGS's stopping tolerance"),
    "lbfgs_iters": ("optimizer", ("lbfgs",), "L-BFGS's iterations per epoch"),
}
# What the minibatch optimizers read and the full-batch ones (lbfgs, closed_form) do not.
ONLY_WITH.update({
    field: ("optimizer", optim.OPTIMIZERS,
            f"{what}, which the full-batch optimizers lbfgs and closed_form do not use")
    for field, what in (("learning_rate", "the learning rate"),
                        ("batch_size", "the minibatch size"),
                        ("schedule", "the learning-rate schedule"),
                        ("warmup_epochs", "the learning-rate warm-up"),
                        ("patience", "early stopping on validation"),
                        ("grad", "the source of the minibatch step's gradient (L-BFGS "
                                 "takes the hand-derived one)"),
                        ("diverge_factor", "the minibatch loss's divergence test"))})
# What closed_form (one exact solve, from no start) does not read either.
ONLY_WITH.update({
    field: ("optimizer", optim.OPTIMIZERS + ("lbfgs",),
            f"{what}, which closed_form (one exact solve) does not use")
    for field, what in (("epochs", "the number of epochs"),
                        ("seed", "the seed of the initial weights and data order"))})


# Fields that need a second condition too: field -> (decider, values, what the field is),
# as in ONLY_WITH; the field matters only where both hold.
ALSO_ONLY_WITH = {
    "init_scale": ("optimizer", optim.OPTIMIZERS + ("lbfgs",),
                   "the scale of the initial weights, which closed_form (one exact solve, "
                   "from no start) does not use"),
    # A schedule's fields, under a schedule of the config's with a full-batch optimizer
    # (which uses none): swept, they trained identical members.
    "lr_decay": ("optimizer", optim.OPTIMIZERS,
                 "the decay factor of the step and exponential schedules, which the "
                 "full-batch optimizers lbfgs and closed_form do not use"),
    "decay_every": ("optimizer", optim.OPTIMIZERS,
                    "the period of the step schedule, which the full-batch optimizers lbfgs "
                    "and closed_form do not use"),
}


def idle_reason(field: str, member) -> tuple[str, tuple, str] | None:
  """The condition of `ONLY_WITH` (or `ALSO_ONLY_WITH`) that `member` fails for `field`,
  as (decider, the values where the field matters, what it is); None if it matters."""
  for table in (ONLY_WITH, ALSO_ONLY_WITH):
    if field in table and member[table[field][0]] not in table[field][1]:
      return table[field]
  return None


def used(field: str, member) -> bool:
  """Whether `field` changes anything for `member` (a dict of every sweepable field)."""
  return idle_reason(field, member) is None


def unused_message(field: str, members, what: str) -> str | None:
  """If `field` does nothing for every member: a line saying so, naming `what` set it
  (e.g. "sweep.margin"); else None."""
  if any(used(field, m) for m in members):
    return None
  decider, values, meaning = idle_reason(field, members[0])
  seen = " or ".join(repr(v) for v in sorted({m[decider] for m in members}))
  return (f"{what} does nothing with {decider}={seen} (it is {meaning}); remove it, or use "
          f"{decider} {' or '.join(values)}")


_RANDOM_METHODS = ("random_search", "random_local_search")
# Fields of the config outside a member that matter only sometimes: field (or group.) ->
# (whether it matters, for the config and its members; when it does).
_MATTERS = {
    "knn.": (lambda c, ms: c.method == "knn", "method='knn'"),
    "random.step": (lambda c, ms: c.method == "random_local_search",
                    "method='random_local_search'"),
    "random.": (lambda c, ms: c.method in _RANDOM_METHODS,
                "method='random_search' or 'random_local_search'"),
    "features_cfg.hist_bins": (lambda c, ms: any(m["features"] == "hog_color" for m in ms),
                               "features='hog_color'"),
    "features_cfg.kmeans_": (lambda c, ms: any(m["features"] == "kmeans" for m in ms),
                             "features='kmeans'"),
    "num_samples": (lambda c, ms: c.method == "sweep" and c.search == "random",
                    "search='random'"),
    "search_seed": (lambda c, ms: c.method == "sweep" and c.search == "random",
                    "search='random'"),
    "search": (lambda c, ms: c.method == "sweep", "method='sweep'"),
    "halving.rungs": (lambda c, ms: c.method == "sweep", "method='sweep'"),
    "refine.field": (lambda c, ms: c.method == "sweep", "method='sweep'"),
    "refine.points": (lambda c, ms: c.method == "sweep" and bool(c.refine.field),
                      "method='sweep' and refine.field"),
    "halving.eta": (lambda c, ms: c.method == "sweep" and len(c.halving.rungs) > 0,
                    "method='sweep' and halving.rungs"),
    "data.name": (lambda c, ms: not (c.data.folder or c.data.get("features")),
                  "neither data.folder nor data.features, which override it"),
    "data.placement": (lambda c, ms: c.method == "sweep", "method='sweep'"),
    "train_accuracy": (lambda c, ms: c.method != "knn",
                       "method='sweep', 'random_search' or 'random_local_search'"),
    "data.block_steps": (lambda c, ms: c.method == "sweep" and c.data.placement != "device"
                         and _minibatches(ms),
                         "method='sweep', a minibatch optimizer and data.placement 'host' or "
                         "'auto'"),
    "shuffle_seed": (lambda c, ms: c.method == "sweep" and _minibatches(ms),
                     "method='sweep' and a minibatch optimizer (the data order)"),
}


def _minibatches(members) -> bool:
  """Whether a member trains on minibatches (not lbfgs or closed_form)."""
  return any(m["optimizer"] in optim.OPTIMIZERS for m in members)
# The member fields each baseline method reads; it ignores the others.
_BASELINE_FIELDS = {"knn": ("features",), "random_search": ("features", "loss", "seed"),
                    "random_local_search": ("features", "loss", "seed")}


# What `--mode features` (`lincv.features.export`) reads, as fields and groups ("data."):
# the data, the feature family and its settings, the dtype of the rows, and eval_split (an
# empty test split is refused with eval_split="test"); of the sweep, its features only.
_FEATURES_MODE = ("data.", "features", "features_cfg.", "dtype", "eval_split",
                  "sweep.features")
_FEATURES_MODE_IDLE = ("data.placement", "data.block_steps")   # where training rows live


def idle_override(config: ml_collections.ConfigDict, path: str, members,
                  mode: str = "train") -> str | None:
  """If `--config.PATH` changes nothing for this config, whose members (as
  `lincv.sweep.expand` gives them) are `members`, in `train.py --mode` `mode` ("train",
  or "features", which writes the config's features and trains nothing): a line saying
  so; else None."""
  flag = f"--config.{path}"
  message = idle_in_mode(config, path, mode)
  if message:
    return message
  if config.method != "sweep" and path in SWEEPABLE:
    if path not in _BASELINE_FIELDS.get(config.method, SWEEPABLE):
      return f"{flag} does nothing with method={config.method!r}; remove it"
    return None
  if path in ONLY_WITH:
    return unused_message(path, members, flag)
  for prefix, (matters, when) in _MATTERS.items():
    if (path == prefix or (prefix[-1] in "._" and path.startswith(prefix))) and not matters(
        config, members):
      return f"{flag} does nothing here: it matters only with {when}; remove it"
  return None


def idle_in_mode(config: ml_collections.ConfigDict, path: str, mode: str) -> str | None:
  """If `--config.PATH` is a field that `train.py --mode` `mode` does not read (in "features"
  mode: every field but those `_FEATURES_MODE` names): a line saying so; else None."""
  if mode == "features" and not _used_by_features(config, path):
    return (f"--config.{path} does nothing with --mode features, which writes the config's "
            f"features and trains nothing (it reads data.*, features, features_cfg.*, dtype "
            f"and eval_split); remove it")
  return None


def _used_by_features(config, path: str) -> bool:
  if path == "sweep":    # the whole sweep: it matters only by its features axis
    return "features" in config.sweep
  if path in _FEATURES_MODE_IDLE:
    return False
  return any(path == f or (f.endswith(".") and path.startswith(f)) for f in _FEATURES_MODE)


class ConfigError(ValueError):
  """A configuration that cannot run; the message says what is valid."""


def unknown_field_message(path: str, known) -> str:
  """The error for an unknown field: the closest known name, if one is close."""
  *parents, name = path.split(".")
  prefix = "".join(p + "." for p in parents)
  close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
  if close:
    return f"unknown field {path!r} (did you mean {prefix + close[0]!r}?)"
  where = f"{prefix[:-1]} has: {', '.join(known)}" if parents else (
      "the fields and their defaults are in lincv/config.py")
  return f"unknown field {path!r}; {where}"


def unknown_fields(config, known=None, prefix: str = "") -> list[tuple[str, list[str]]]:
  """(path, the known names beside it) of each field of `config` that `base()` does not
  have: a typo in a config file (`c.epohcs = 3`) would otherwise be kept and ignored,
  the run trained on the default. `sweep` is left to `lincv.sweep.expand`, which names
  the fields a sweep may vary."""
  known = base() if known is None else known
  out = []
  for name in config.keys():
    if name not in known:
      out.append((prefix + name, list(known.keys())))
    elif ((name != "sweep" or prefix) and isinstance(config[name], ml_collections.ConfigDict)
          and isinstance(known[name], ml_collections.ConfigDict)):
      out += unknown_fields(config[name], known[name], f"{prefix}{name}.")
  return out


# Fields a resumed run may change: they change how it runs, not what it computes.
RESUMABLE = ("checkpoint_every", "checkpoint_seconds", "data.placement", "data.block_steps")


def as_json(config) -> dict:
  """The configuration as `config.json` holds it (sorted keys, tuples as lists)."""
  if isinstance(config, ml_collections.ConfigDict):
    return json.loads(config.to_json_best_effort(sort_keys=True))
  return json.loads(json.dumps(dict(config), sort_keys=True))


def fingerprint(config) -> dict:
  """What makes two runs the same run: the configuration without `RESUMABLE` fields, and
  without the fields at their default value (`base()`).

  A workdir resumes only a run of the same fingerprint; this is the one definition of
  "the same configuration" (the run directory's `config.json` and the sweep checkpoint
  both compare by it). Leaving the defaults out means that a field added by a later
  version of lincv, at its default, does not make a run begun before it another run.
  The fingerprint of a fingerprint is itself.
  """
  out = as_json(config)
  for path in RESUMABLE:
    *parents, last = path.split(".")
    inner = out
    for p in parents:
      inner = inner.get(p) if isinstance(inner, dict) else None
    if isinstance(inner, dict):
      inner.pop(last, None)
  return _without_defaults(out, as_json(base()))


def _without_defaults(values: dict, defaults) -> dict:
  out = {}
  for name, value in values.items():
    default = defaults.get(name, _ABSENT) if isinstance(defaults, dict) else _ABSENT
    if isinstance(value, dict) and isinstance(default, dict):
      inner = _without_defaults(value, default)
      if inner:
        out[name] = inner
    elif value != default:
      out[name] = value
  return out


_ABSENT = object()


def differences(a, b) -> list[str]:
  """The top-level fields in which the fingerprints of configs `a` and `b` differ."""
  fa, fb = fingerprint(a), fingerprint(b)
  return sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))


def base() -> ml_collections.ConfigDict:
  """Every field with its default value.

  Training (flat, so that a sweep names them): `model` (linear | mlp, with `hidden`
  units), `loss` (svm | squared_svm | softmax | least_squares, with `margin` for the
  SVMs), `reg` (none | l2 | l1 | elastic_net, `reg_strength`, `beta` for the elastic
  net), `optimizer` (sgd | momentum | nesterov, with `momentum` | adam, with `b1`, `b2` |
  rmsprop, with `rms_decay` | adagrad | lbfgs, full batch, with `lbfgs_iters` per epoch
  and `tol`, see `lincv.lbfgs` | closed_form: the exact solution of every reg_strength
  of a linear least_squares l2 group, see `lincv.sweep.closed_form`), `learning_rate`,
  `schedule` (constant | step, with `lr_decay` every `decay_every` epochs | exponential,
  with `lr_decay` per epoch | cosine), `warmup_epochs`, `batch_size` (an epoch trains
  the N // batch_size full minibatches of a fresh shuffle of the N training rows: the
  N mod batch_size left over sit out that epoch; see `lincv.experiment.check_rows`),
  `epochs`, `patience` (0 = never stop early; below `epochs`, since a larger one could
  never stop a run and is refused),
  `grad` (hand | autodiff), `diverge_factor`, `init_scale` (linear only), `seed`,
  `features` (pixels | hog_color | kmeans, with `features_cfg`), `dtype`. See
  `lincv.training.Structure`, `lincv.optim` and `ONLY_WITH`.

  Sweep: `sweep` (field -> values), `search` (grid | random), `num_samples`,
  `search_seed`, `halving` (`rungs`, `eta`), `refine` (`field`, `points`: a refined
  second stage, see `lincv.sweep.refine`). Data: `data.*`, with `data.placement` and
  `data.block_steps` (see `lincv.placement`). Methods: `method` (sweep |
  knn | random_search | random_local_search) with `knn.*` and `random.*`. Evaluation:
  `eval_split` (the split the selected member is scored on), `train_accuracy` (False: no
  pass over the training rows to score each member's selected parameters, no
  train_accuracy column; a sweep of a few epochs over many rows saves about a fifth).
  """
  c = ml_collections.ConfigDict()
  for f in dataclasses.fields(training.Structure):
    setattr(c, f.name, f.default)
  c.features = "pixels"
  for name, value in training.HPARAM_DEFAULTS.items():
    setattr(c, name, float(value) if name != "seed" else int(value))
  # `seed` draws a member's initial weights and its data order (see lincv/seeds.py);
  # shuffle_seed = N gives every member the data order of seed N instead.
  c.shuffle_seed = ml_collections.config_dict.placeholder(int)
  c.dtype = "float32"                    # float32 | float64 (the whole run in 64-bit JAX)
  c.matmul_precision = "float32"         # float32 | tensorfloat32 | bfloat16: float32
                                         # products on accelerators (lincv.precision)

  c.sweep = ml_collections.ConfigDict()  # field -> list of values or {"log_uniform": [lo, hi]} ...
  c.search = "grid"                      # grid | random
  c.num_samples = 16                     # members drawn by a random search
  c.search_seed = 0
  c.halving = ml_collections.ConfigDict({"rungs": (), "eta": 2.0})
  # A second stage: `field` (swept, numeric) at `points` values log-spaced between the
  # best coarse value's neighbours, selected over both stages; "" = off (lincv.sweep.refine).
  c.refine = ml_collections.ConfigDict({"field": "", "points": 8})

  c.data = ml_collections.ConfigDict({
      "name": "digits",
      "folder": "",           # an image folder root/{train,test}/<class>/*; overrides name
      "features": "",         # pre-extracted features: an .npz or a folder of .npy; overrides name
      "data_dir": "",         # where tfds keeps prepared data; "" = TFDS_DATA_DIR or default
      "val_fraction": 0.1,
      "split_seed": 0,
      "center": "image",      # image | channel | none
      "scale": "none",        # none | std
      "limit": 0,             # cap on training examples (0 = all), for smoke runs; one
                              # above the examples there are is warned of
      "flip": False,          # also train on every training image mirrored left-right (with
                              # data.features: on the file's x_train_mirrored rows, which
                              # --mode features with data.flip writes)
      "placement": "auto",    # auto | device | host: where the training rows live
      "block_steps": 0,       # host: minibatches sent at once (0 = about 64 MiB; else >= 2)
  })
  c.features_cfg = ml_collections.ConfigDict({
      "hist_bins": 10,
      "kmeans_centroids": 1600,
      "kmeans_patches": 400000,
      "kmeans_iters": 10,
  })
  c.checkpoint_every = 1       # epochs between sweep checkpoints,
  c.checkpoint_seconds = 5.0   # and at least these seconds (a rung, a group's end: always)
  c.eval_split = "test"
  c.train_accuracy = True      # score the selected parameters on the training rows too
                               # (results.csv's train_accuracy); False skips that pass
  return add_method_fields(c)


METHODS = ("sweep", "knn", "random_search", "random_local_search")


def add_method_fields(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Fields of the non-sweep methods: k-NN and the random-search baselines."""
  c.method = "sweep"
  c.knn = ml_collections.ConfigDict({
      "metrics": ("l1", "l2"),
      "ks": (1, 3, 5, 8, 10, 12, 15, 20, 50, 100),
      "num_folds": 5,
      "cv_limit": 5000,      # training rows used for cross-validation over k (0 = all)
  })
  c.random = ml_collections.ConfigDict({
      "num_tries": 1000,     # random search: candidates; local search: steps
      "scale": 1e-4,         # std of the random W (in units of preprocessed pixels)
      "step": 1e-4,          # local search step size
      "examples": 5000,      # training rows the loss is measured on (0 = all; more than
                             # there are is warned of)
  })
  return c


# The command line's side of configs lives in `lincv.overrides`; its names stay here too.
from lincv.overrides import (  # pylint: disable=wrong-import-position  # noqa: E402
    OverrideError, load, override, parse_values, refuse_idle, split_args, swept_overrides)
