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
`--config.FIELD=VALUE`, parsing VALUE by the type of the field's current value;
`--config.sweep.FIELD=VALUES` adds or replaces one axis of the sweep.
"""

import ast
import dataclasses
import difflib
import importlib.util
import json
import os
import re

import ml_collections

from lincv import training

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
}


def used(field: str, member) -> bool:
  """Whether `field` changes anything for `member` (a dict of every sweepable field)."""
  if field not in ONLY_WITH:
    return True
  decider, values, _ = ONLY_WITH[field]
  return member[decider] in values


def unused_message(field: str, members, what: str) -> str | None:
  """If `field` does nothing for every member: a line saying so, naming `what` set it
  (e.g. "sweep.margin"); else None."""
  if any(used(field, m) for m in members):
    return None
  decider, values, meaning = ONLY_WITH[field]
  seen = " or ".join(repr(v) for v in sorted({m[decider] for m in members}))
  return (f"{what} does nothing with {decider}={seen} (it is {meaning}); remove it, or use "
          f"{decider} {' or '.join(values)}")


_RANDOM_METHODS = ("random_search", "random_local_search")
# Fields of the config outside a member that matter only sometimes: field (or group.) ->
# (whether it matters, for the config and its members; when it does).
_MATTERS = {
    "knn.": (lambda c, ms: c.method == "knn", "method='knn'"),
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
    "halving.eta": (lambda c, ms: c.method == "sweep" and len(c.halving.rungs) > 0,
                    "method='sweep' and halving.rungs"),
}
# The member fields each baseline method reads; it ignores the others.
_BASELINE_FIELDS = {"knn": ("features",), "random_search": ("features", "loss", "seed"),
                    "random_local_search": ("features", "loss", "seed")}


def idle_override(config: ml_collections.ConfigDict, path: str, members) -> str | None:
  """If `--config.PATH` changes nothing for this config, whose members (as
  `lincv.sweep.expand` gives them) are `members`: a line saying so; else None."""
  flag = f"--config.{path}"
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


class ConfigError(ValueError):
  """A configuration that cannot run; the message says what is valid."""


RESUMABLE = ("checkpoint_every",)  # fields a resumed run may change


def as_json(config) -> dict:
  """The configuration as `config.json` holds it (sorted keys, tuples as lists)."""
  if isinstance(config, ml_collections.ConfigDict):
    return json.loads(config.to_json_best_effort(sort_keys=True))
  return json.loads(json.dumps(dict(config), sort_keys=True))


def fingerprint(config) -> dict:
  """What makes two runs the same run: the configuration without `RESUMABLE` fields.

  A workdir resumes only a run of the same fingerprint; this is the one definition of
  "the same configuration" (the run directory's `config.json` and the sweep checkpoint
  both compare by it).
  """
  return {k: v for k, v in as_json(config).items() if k not in RESUMABLE}


def differences(a, b) -> list[str]:
  """The top-level fields in which the fingerprints of configs `a` and `b` differ."""
  fa, fb = fingerprint(a), fingerprint(b)
  return sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))


def base() -> ml_collections.ConfigDict:
  """Every field with its default value.

  Training (flat, so that a sweep names them): `model` (linear | mlp, with `hidden`
  units), `loss` (svm | squared_svm | softmax, with `margin` for the SVMs), `reg`
  (none | l2 | l1 | elastic_net, `reg_strength`, `beta` for the elastic net),
  `optimizer` (sgd | momentum | nesterov, with `momentum` | adam, with `b1`, `b2` |
  rmsprop, with `rms_decay` | adagrad), `learning_rate`, `schedule` (constant | step,
  with `lr_decay` every `decay_every` epochs | exponential, with `lr_decay` per epoch |
  cosine), `warmup_epochs`, `batch_size`, `epochs`, `patience` (0 = never stop early),
  `grad` (hand | autodiff), `diverge_factor`, `init_scale` (linear only), `seed`,
  `features` (pixels | hog_color | kmeans, with `features_cfg`), `dtype`. See
  `lincv.training.Structure`, `lincv.optim` and `ONLY_WITH`.

  Sweep: `sweep` (field -> values), `search` (grid | random), `num_samples`,
  `search_seed`, `halving` (`rungs`, `eta`). Data: `data.*`. Methods: `method` (sweep |
  knn | random_search | random_local_search) with `knn.*` and `random.*`.
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

  c.sweep = ml_collections.ConfigDict()  # field -> list of values or {"log_uniform": [lo, hi]} ...
  c.search = "grid"                      # grid | random
  c.num_samples = 16                     # members drawn by a random search
  c.search_seed = 0
  c.halving = ml_collections.ConfigDict({"rungs": (), "eta": 2})

  c.data = ml_collections.ConfigDict({
      "name": "digits",
      "folder": "",           # an image folder root/{train,test}/<class>/*; overrides name
      "data_dir": "",         # where tfds keeps prepared data; "" = TFDS_DATA_DIR or default
      "val_fraction": 0.1,
      "split_seed": 0,
      "center": "image",      # image | channel | none
      "scale": "none",        # none | std
      "limit": 0,             # cap on training examples (0 = all), for smoke runs
      "flip": False,          # also train on every training image mirrored left-right
  })
  c.features_cfg = ml_collections.ConfigDict({
      "hist_bins": 10,
      "kmeans_centroids": 1600,
      "kmeans_patches": 400000,
      "kmeans_iters": 10,
  })
  c.checkpoint_every = 1       # epochs between sweep checkpoints
  c.eval_split = "test"
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
      "examples": 5000,      # training rows the loss is measured on (0 = all)
  })
  return c


# --------------------------------------------------------------------------- command line


class OverrideError(ValueError):
  """A config file or command-line override that cannot apply; the message says why."""


def load(spec: str) -> ml_collections.ConfigDict:
  """The locked config of `spec`: "path/to/file.py", or "path/to/file.py:variant".

  Calls the file's `get_config()`, or `get_config(variant)`.

  Raises:
    OverrideError: the file is missing, or it fails to give a config (the last line of
      its error).
  """
  path, _, variant = spec.partition(":")
  if not os.path.isfile(path):
    raise OverrideError(f"cannot load --config {spec}: no such file {path}")
  try:
    module_spec = importlib.util.spec_from_file_location("lincv_config_file", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    config = module.get_config(variant) if variant else module.get_config()
  except Exception as e:  # noqa: BLE001 - any failure of the user's config file
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    raise OverrideError(f"cannot load --config {spec}: "
                        f"{lines[-1] if lines else type(e).__name__}") from None
  if not isinstance(config, ml_collections.ConfigDict):
    raise OverrideError(f"cannot load --config {spec}: get_config() returned "
                        f"{type(config).__name__}, not an ml_collections.ConfigDict")
  config.lock()
  return config


def _unknown(path: str, known) -> OverrideError:
  """The error for an unknown field: the closest known name, if one is close."""
  *parents, name = path.split(".")
  prefix = "".join(p + "." for p in parents)
  close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
  if close:
    return OverrideError(f"unknown field {path!r} (did you mean {prefix + close[0]!r}?)")
  where = f"{prefix[:-1]} has: {', '.join(known)}" if parents else (
      "the fields and their defaults are in lincv/config.py")
  return OverrideError(f"unknown field {path!r}; {where}")


def parse_values(text: str) -> tuple:
  """VALUES of `--config.sweep.FIELD=VALUES` or of a tuple field, as a tuple.

  A Python literal: "(1e-3, 1e-2)", "('sgd', 'adam')", a single value ("0.1" gives
  (0.1,)), or a distribution "{'log_uniform': (1e-4, 1e-1)}" (returned as a dict).
  Names may go unquoted: "(sgd, adam)" and "sgd" work too.
  """
  value = _literal(text)
  if isinstance(value, str) and value[:1] + value[-1:] in ("()", "[]"):
    inner = value[1:-1].strip()
    value = tuple(_literal(v.strip()) for v in inner.split(",") if v.strip()) if inner else ()
  if isinstance(value, dict):
    return value
  return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _literal(text: str):
  """A Python literal, or the text itself where it is not one (a bare name)."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
    return text


def _parse(flag: str, text: str, current):
  """`text` as a value of the type of `current`, the field's value in the config."""
  if isinstance(current, bool):
    if text.lower() in ("true", "1", "yes"):
      return True
    if text.lower() in ("false", "0", "no"):
      return False
    raise OverrideError(f"{flag} takes true or false, got {text!r}")
  if isinstance(current, int):
    try:
      return int(text)
    except ValueError:
      raise OverrideError(f"{flag} takes an integer, got {text!r}") from None
  if isinstance(current, float):
    try:
      return float(text)
    except ValueError:
      raise OverrideError(f"{flag} takes a number, got {text!r}") from None
  if isinstance(current, str):
    return text
  if isinstance(current, (tuple, list)):
    value = parse_values(text)
    if isinstance(value, dict):
      raise OverrideError(f"{flag} takes a tuple of values, e.g. {flag}=\"(1, 2)\", got {text!r}")
    return list(value) if isinstance(current, list) else value
  return _literal(text)


def override(config: ml_collections.ConfigDict, path: str, text: str) -> None:
  """Applies `--config.PATH=TEXT` to `config` in place.

  TEXT is parsed by the type of the field's value in the config (an int field takes an
  integer, a tuple field a tuple literal, ...). `sweep.FIELD` names one axis of the
  sweep, which may be new: TEXT is parsed by `parse_values`; `sweep` itself takes a
  whole dict literal.

  Raises:
    OverrideError: an unknown field (with the closest name), a value of the wrong type.
  """
  flag = f"--config.{path}"
  parts = path.split(".")
  if parts[0] == "sweep" and len(parts) <= 2:
    _override_sweep(config, parts[1:], flag, text)
    return
  holder = config
  for i, name in enumerate(parts):
    if not isinstance(holder, ml_collections.ConfigDict) or name not in holder:
      known = holder.keys() if isinstance(holder, ml_collections.ConfigDict) else ()
      raise _unknown(".".join(parts[: i + 1]), known)
    if i < len(parts) - 1:
      holder = holder[name]
  current = holder[parts[-1]]
  if isinstance(current, ml_collections.ConfigDict):
    raise OverrideError(f"{flag} is a group of fields; set them one at a time, e.g. "
                        f"{flag}.{next(iter(current.keys()), 'FIELD')}=VALUE")
  value = _parse(flag, text, current)
  try:
    holder[parts[-1]] = value
  except (TypeError, ValueError) as e:
    raise OverrideError(f"{flag}: cannot set {text!r}: {e}") from None


def _override_sweep(config, axis: list, flag: str, text: str) -> None:
  if not axis:
    spec = _literal(text)
    if not isinstance(spec, dict):
      raise OverrideError(f"{flag} takes a dict, e.g. {flag}=\"{{'loss': ('svm', 'softmax')}}\", "
                          f"got {text!r}")
    for name in spec:
      if name not in SWEEPABLE:
        raise _unknown(f"sweep.{name}", SWEEPABLE)
    with config.unlocked():
      config.sweep = ml_collections.ConfigDict(
          {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})
    return
  (name,) = axis
  if name not in SWEEPABLE:
    raise _unknown(f"sweep.{name}", SWEEPABLE)
  values = parse_values(text)
  with config.sweep.unlocked():
    if name in config.sweep:
      del config.sweep[name]
    config.sweep[name] = values


def swept_overrides(config: ml_collections.ConfigDict, paths) -> None:
  """Refuses `--config.FIELD` for a FIELD that the sweep sets for every member.

  Raises:
    OverrideError: naming the `--config.sweep.FIELD` to use instead.
  """
  for path in paths:
    if path in SWEEPABLE and path in config.sweep:
      raise OverrideError(
          f"--config.{path} has no effect: the sweep sets {path} for every member; use "
          f"--config.sweep.{path}=VALUE (one value or a tuple) instead")


_CONFIG_ARG = re.compile(r"--?config(?:=(.*))?", re.S)
_OVERRIDE_ARG = re.compile(r"--?(no)?config\.([^=]+)(?:=(.*))?", re.S)


def split_args(args: list[str]) -> tuple[str | None, list[tuple[str, str]], list[str]]:
  """Takes the config arguments out of a command line (without the program name).

  `--config FILE[:VARIANT]` (or `--config=...`) names the config; `--config.PATH=VALUE`
  (or `--config.PATH VALUE`) overrides a field; a bare `--config.PATH` followed by
  another flag, or by nothing, means "true", and `--noconfig.PATH` means "false".

  Returns:
    (the config spec or None, [(path, value text)] in order, the other arguments).

  Raises:
    OverrideError: `--config` without a file.
  """
  spec, overrides, rest = None, [], []
  i = 0
  while i < len(args):
    arg = args[i]
    config = _CONFIG_ARG.fullmatch(arg)
    override = _OVERRIDE_ARG.fullmatch(arg)
    if config:
      spec = config.group(1)
      if spec is None:
        if i + 1 == len(args):
          raise OverrideError("--config needs a file: --config configs/NAME.py[:VARIANT]")
        spec, i = args[i + 1], i + 1
    elif override:
      negated, path, text = override.groups()
      if negated:
        text = "false" if text is None else text
      elif text is None:
        if i + 1 < len(args) and not args[i + 1].startswith("-"):
          text, i = args[i + 1], i + 1
        else:
          text = "true"
      overrides.append((path, text))
    else:
      rest.append(arg)
    i += 1
  return spec, overrides, rest
