"""From a config to a run directory: the one place that knows the whole pipeline.

    experiment.run(config, workdir)

      check     the config, before touching data (`check`)
      inputs    load the dataset, split and preprocess with training statistics,
                features on demand (`lincv.inputs`)
      method    sweep, k-NN or random search: train, select on validation (`lincv.methods`)
      evaluate  the selected member on `config.eval_split`, once
      report    results.csv, summary.json, metrics.jsonl, checkpoint/, plots/, tensorboard/
                (`lincv.report`, `lincv.events`)

With several processes (`lincv.distributed`), each runs every step on the same data and
takes the same decisions; process 0 alone writes the run directory.

A finished run is read back with `lincv.Run.load(workdir)`.
"""

import importlib
import numbers
import os
import shutil
import tempfile
import time
import warnings

import ml_collections

from lincv import baselines, checkpoint, data as data_lib, distributed, inputs as inputs_lib
from lincv import compile_cache, knn, methods, metrics, placement, precision, report, sweep
from lincv import training
from lincv import config as config_lib
from lincv._checks import repeated
from lincv.progress import Progress

EVAL_SPLITS = ("train", "val", "test")
ConfigError = config_lib.ConfigError
RUN_FILES = ("config.json", "results.csv", "summary.json", "metrics.jsonl")
RUN_FOLDERS = ("checkpoint", "plots", "tensorboard")

# Names that lived here before the pipeline was split into modules: old name -> new home.
MOVED = {"Inputs": ("lincv.inputs", "Inputs"), "load_inputs": ("lincv.inputs", "load"),
         "feature_cache_dir": ("lincv.inputs", "cache_dir"),
         "image_features": ("lincv.features", "image_features"),
         "mirror": ("lincv.data", "mirror")}


def __getattr__(name: str):
  if name in MOVED:
    module, attr = MOVED[name]
    warnings.warn(f"lincv.experiment.{name} has moved to {module}.{attr}; the old name "
                  "will be removed", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(module), attr)
  raise AttributeError(f"module 'lincv.experiment' has no attribute {name!r}")


def run(config: ml_collections.ConfigDict, workdir: str, *, progress: Progress | None = None,
        stream=None) -> dict:
  """Runs the config's method into `workdir` (resuming it if it holds this config's run).

  A run that stops on an error the user must fix leaves no run behind: a workdir that
  was absent or empty is left so, and a sweep whose every member diverged removes its
  run directory's files, so that a corrected configuration runs in the same workdir.

  With `config.dtype = "float64"` the whole run is in 64-bit JAX: data, parameters and
  arithmetic are float64 (features are computed in float32 and then converted). Float32
  matrix products are float32 on every device unless `config.matmul_precision` asks for
  an accelerator's reduced mode (`lincv.precision`).

  Returns:
    the summary (also written to summary.json).
  """
  compile_cache.enable()
  try:
    config = sweep.with_loss_names(config)
  except sweep.SweepError as e:
    raise ConfigError(str(e)) from None
  _matmul_precision(config)
  with precision.run_scope(config):
    try:
      return _run_or_undo(config, workdir, progress or Progress(stream), stream)
    except checkpoint.Damaged as e:     # a file of the run resumed; it stays for the user
      raise ConfigError(str(e)) from None


def _matmul_precision(config) -> str:
  try:
    return precision.of(config)
  except ValueError as e:
    raise ConfigError(str(e)) from None


def _run_or_undo(config, workdir, progress, stream) -> dict:
  """`_pipeline`, leaving no run behind when it stops on an error the user must fix."""
  t_start = time.perf_counter()
  members = check(config)
  check_writable(workdir, "workdir")   # in every process: each sees it and ends on it
  resuming = _check_workdir(config, workdir)
  existed = os.path.isdir(workdir)
  fresh = not existed or not os.listdir(workdir)
  try:
    return _pipeline(config, members, workdir, progress, stream or progress.stream, resuming,
                     t_start)
  except sweep.Diverged as e:
    if distributed.is_writer():
      _discard(workdir, fresh, existed)
    raise ConfigError(str(e)) from None
  except (ConfigError, data_lib.DataError):
    if fresh and distributed.is_writer():
      _discard(workdir, fresh, existed)
    raise


def _pipeline(config, members, workdir, progress, stream, resuming, t_start) -> dict:
  """inputs -> method -> evaluation -> report."""
  progress.resuming = resuming
  progress.log("loading data" + (" (resuming)" if resuming else ""))
  with distributed.writer_first("lincv: inputs"):
    inputs = inputs_lib.load(config, cache_dir=inputs_lib.cache_dir(config))
  t_data = time.perf_counter() - t_start
  progress.log(f"data: {inputs.describe()}")
  check_rows(config, members, inputs)     # before the run directory's first file
  _check_data(workdir, inputs.fingerprint(), resuming)
  if not resuming and distributed.is_writer():
    checkpoint.save_json(os.path.join(workdir, "config.json"), config_lib.as_json(config))

  t0 = time.perf_counter()
  try:
    outcome = methods.train(config, inputs, workdir=workdir, progress=progress,
                            started=t_start)
  except sweep.Diverged:
    raise
  except sweep.SweepError as e:
    raise ConfigError(str(e)) from None
  t_train = time.perf_counter() - t0
  evaluation = methods.evaluate(config, outcome.hparams, outcome.params, inputs,
                                config.eval_split)
  timings = {"data": t_data, "train": t_train, "total": time.perf_counter() - t_start}
  return report.write(config, workdir, inputs, outcome, evaluation, timings, stream)


def check(config: ml_collections.ConfigDict) -> list[dict]:
  """Validates everything that can be checked before touching data; returns the members."""
  unknown = config_lib.unknown_fields(config)
  if unknown:
    raise ConfigError(config_lib.unknown_field_message(*unknown[0]))
  try:
    members = sweep.expand(config)
    sweep.halving(config, members)
    sweep.refine.check(config)
    placement.options(config.data)
  except ValueError as e:
    raise ConfigError(str(e)) from None
  inputs_lib.check(config, members)
  d = config.data
  if not (d.folder or d.get("features") or d.name):
    raise ConfigError("this config reads pre-extracted features: pass "
                      "--config.data.features=PATH (an .npz or a folder of .npy files)")
  if not d.folder and not d.get("features") and d.name not in data_lib.DATASETS:
    raise ConfigError(f"unknown dataset {d.name!r}; expected one of: "
                      f"{', '.join(data_lib.DATASETS)}, or --config.data.folder=PATH")
  if d.center not in data_lib.CENTERS:
    raise ConfigError(f"unknown data.center {d.center!r}; expected one of: "
                      f"{', '.join(data_lib.CENTERS)}")
  if d.scale not in data_lib.SCALES:
    raise ConfigError(f"unknown data.scale {d.scale!r}; expected one of: "
                      f"{', '.join(data_lib.SCALES)}")
  if not 0 < d.val_fraction < 1:
    raise ConfigError(f"data.val_fraction must be in (0, 1), got {d.val_fraction}")
  if d.limit < 0:
    raise ConfigError(f"data.limit must be >= 0 (0 = all), got {d.limit}")
  if config.eval_split not in EVAL_SPLITS:
    raise ConfigError(f"unknown eval_split {config.eval_split!r}; expected one of: "
                      f"{', '.join(EVAL_SPLITS)}")
  if config.method not in config_lib.METHODS:
    raise ConfigError(f"unknown method {config.method!r}; expected one of: "
                      f"{', '.join(config_lib.METHODS)}")
  if config.method != "sweep" and len(config.sweep):
    raise ConfigError(f"sweep does nothing with method={config.method!r}, which runs once "
                      f"with the config's own fields; remove sweep."
                      f"{', sweep.'.join(config.sweep.keys())}, or use method='sweep'")
  if config.method == "knn":
    if not config.knn.metrics:    # max() of an empty sequence, a run directory left behind
      raise ConfigError(f"knn.metrics is empty; give one or more of: {', '.join(knn.METRICS)}")
    for metric in config.knn.metrics:
      if metric not in knn.METRICS:
        raise ConfigError(f"unknown knn metric {metric!r}; expected one of: "
                          f"{', '.join(knn.METRICS)}")
    ks = config.knn.ks
    whole = lambda k: isinstance(k, numbers.Integral) and not isinstance(k, bool)
    if not ks or not all(whole(k) for k in ks) or min(ks) < 1:
      raise ConfigError(f"knn.ks must be positive integers, got {ks}")
    for name, values in (("metrics", config.knn.metrics), ("ks", ks)):
      twice = repeated(values)
      if twice:   # a member cross-validated twice for nothing, as a grid refuses
        raise ConfigError(f"knn.{name} lists {twice[0]!r} twice; list each once")
    if config.knn.num_folds < 2:
      raise ConfigError(f"knn.num_folds must be >= 2 (folds of the cross-validation of k), "
                        f"got {config.knn.num_folds}")
    if config.knn.cv_limit < 0:
      raise ConfigError(f"knn.cv_limit must be >= 0 (training rows of the cross-validation; "
                        f"0 = all), got {config.knn.cv_limit}")
  if int(config.checkpoint_every) != config.checkpoint_every or config.checkpoint_every < 1:
    raise ConfigError(f"checkpoint_every must be an integer >= 1 (epochs between sweep "
                      f"checkpoints), got {config.checkpoint_every}")
  seconds = config.checkpoint_seconds
  if (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
      or not 0 <= seconds < float("inf")):
    raise ConfigError(f"checkpoint_seconds must be a number >= 0 (the least time between "
                      f"sweep checkpoints; 0: every checkpoint_every epochs), got {seconds!r}")
  if config.dtype not in ("float32", "float64"):
    raise ConfigError(f"dtype must be float32 or float64, got {config.dtype!r}")
  _matmul_precision(config)
  try:
    checkpoint.strict(config_lib.as_json(config), path="config")
  except ValueError as e:
    raise ConfigError(f"{e}; config.json is written as strict JSON, use a finite number "
                      "(e.g. 1e30)") from None
  if config.method in baselines.METHODS and int(config.random.num_tries) < 1:
    raise ConfigError(f"random.num_tries must be >= 1, got {config.random.num_tries}")
  fields = {"random_search": ("scale",), "random_local_search": ("scale", "step")}
  for name in fields.get(config.method, ()):
    value = config.random[name]
    if not 0 < value < float("inf"):
      raise ConfigError(f"random.{name} must be a finite number > 0, got {value}")
  if config.method in baselines.METHODS and config.random.examples < 0:
    raise ConfigError(f"random.examples must be >= 0 (training rows the loss is measured "
                      f"on; 0 = all), got {config.random.examples}")
  for name, value in (("shuffle_seed", config.get("shuffle_seed")),
                      ("search_seed", config.search_seed), ("data.split_seed", d.split_seed)):
    if value is not None and not 0 <= value < 2**32:
      raise ConfigError(f"{name} must be an integer in [0, 2**32), got {value}")
  return members


# An epoch trains the N // batch_size full batches of a fresh shuffle of the N training
# rows: the N mod batch_size left over sit out. More than this share of N is warned of.
DROPPED_SHARE = 0.1


def check_rows(config: ml_collections.ConfigDict, members: list[dict], inputs) -> None:
  """What `check` could not see before the rows were loaded (`inputs`, a
  `lincv.inputs.Inputs`): refuses a batch_size above the N training rows, where an epoch
  would train no step, and warns of data.limit (`warn_limit`) and random.examples above the
  rows there are, and of a batch_size that leaves more than `DROPPED_SHARE` of N out of
  every epoch.

  Raises:
    ConfigError: naming the batch size, N and where N comes from.
  """
  warn_limit(config, inputs)
  n = len(inputs.labels()["train"])
  say = distributed.is_writer()    # every process checks; one warns
  if config.method == "sweep":
    for b in sorted({int(m["batch_size"]) for m in members
                     if m["optimizer"] not in training.FULL_BATCH}):
      if b > n:
        raise ConfigError(f"batch_size={b} is more than the {n} training rows "
                          f"({_training_rows(config, inputs)}): an epoch would train no step; "
                          f"choose batch_size <= {n}")
      steps, dropped = divmod(n, b)
      if dropped > DROPPED_SHARE * n and say:
        fit = n // steps
        warnings.warn(
            f"lincv: batch_size={b} leaves {dropped} of the {n} training rows "
            f"({dropped / n:.0%}) out of every epoch, which trains the {steps} full "
            f"batch{'es' * (steps > 1)} of a fresh shuffle (a different {dropped} sit out "
            f"each time); batch_size={fit} would leave out {n - steps * fit}",
            UserWarning, stacklevel=2)
  examples = config.random.examples
  if config.method in baselines.METHODS and examples > n and say:
    warnings.warn(f"lincv: random.examples={examples} is more than the {n} training rows: "
                  f"the loss is measured on all {n} (random.examples=0 means all)",
                  UserWarning, stacklevel=2)


def warn_limit(config: ml_collections.ConfigDict, inputs) -> None:
  """Warns when data.limit, a cap on the training examples, is above the examples there
  are: it caps nothing, and every one is used."""
  p = inputs.prepared
  available, limit = len(p.y_train) + len(p.y_val), config.data.limit
  if limit > available and distributed.is_writer():
    warnings.warn(f"lincv: data.limit={limit} is more than the {available} training examples "
                  f"of {inputs_lib.source(config)}: all {available} are used (data.limit=0 "
                  "means all)", UserWarning, stacklevel=2)


def _training_rows(config, inputs) -> str:
  """Where the training rows come from, for a message: examples less validation rows."""
  p = inputs.prepared
  limit = f", data.limit={config.data.limit}" if config.data.limit else ""
  flip = ", doubled by data.flip" if inputs.flip else ""
  return (f"{len(p.y_train) + len(p.y_val)} examples{limit}, less the {len(p.y_val)} of the "
          f"validation split{flip}")


def _check_workdir(config, workdir: str) -> bool:
  """True if `workdir` holds this config's run (to resume); refuses another config's."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    return False
  diff = config_lib.differences(checkpoint.load_json(path), config)
  if diff:
    raise ConfigError(f"workdir {workdir} holds a run of a different configuration "
                      f"(fields differ: {', '.join(diff)}); use a new --workdir, or the "
                      "same configuration to resume")
  return True


def check_writable(path: str, name: str, folder: bool = True) -> None:
  """Refuses, before any data is loaded, a `path` this process cannot write: a `folder`
  that is a file (or a file that is a folder), one inside a file, or one whose nearest
  existing folder refuses a new file. Creates nothing.

  Raises:
    ConfigError: naming `name` (e.g. "workdir", "--out"), the path and why.
  """
  target = os.path.abspath(path)
  kind, other = ("folder", "file") if folder else ("file", "folder")
  if os.path.exists(target) and os.path.isdir(target) != folder:
    raise ConfigError(f"{name} {path} is a {other}, not a {kind}; choose another {name}")
  above = target if folder else os.path.dirname(target)
  while not os.path.exists(above):
    above = os.path.dirname(above)
  if not os.path.isdir(above):
    raise ConfigError(f"{name} {path} lies inside {above}, which is a file, not a folder; "
                      f"choose another {name}")
  try:
    tempfile.TemporaryFile(dir=above).close()
  except OSError as e:
    raise ConfigError(f"{name} {path} cannot be written: no new file in {above} "
                      f"({e.strerror}); choose another {name}") from None


def _check_data(workdir: str, fingerprint: str, resuming: bool) -> None:
  """Records the fingerprint of a new run's rows; refuses to resume a run on other rows.

  The config names its data (a folder, a features file), not what is in it: a file
  changed since the run started would otherwise mix old groups' results with new rows.
  """
  recorded = inputs_lib.recorded_rows(workdir) if resuming else None
  if recorded is not None:
    if recorded != fingerprint:
      raise ConfigError(
          f"workdir {workdir} holds a run on other data: the rows the config's data "
          f"names have changed since it started ({inputs_lib.DATA_FILE} differs); use a new "
          "--workdir, or the data it started on to resume")
    return
  if distributed.is_writer():
    path = os.path.join(workdir, inputs_lib.DATA_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    checkpoint.save_json(path, {"rows": fingerprint})


def _discard(workdir: str, fresh: bool, existed: bool) -> None:
  """Removes the run in `workdir`: everything in it if it was absent or empty before
  (`fresh`; the folder too unless it `existed`), else the run directory's own files."""
  if not os.path.isdir(workdir):
    return
  if fresh:
    names = os.listdir(workdir)
  else:
    names = [n for n in RUN_FILES + RUN_FOLDERS if os.path.exists(os.path.join(workdir, n))]
  for name in names:
    path = os.path.join(workdir, name)
    if os.path.isdir(path) and not os.path.islink(path):
      shutil.rmtree(path)
    else:
      os.remove(path)
  if not existed and not os.listdir(workdir):
    os.rmdir(workdir)


def evaluate(workdir: str, split: str = "test", stream=None) -> dict:
  """Reloads a finished run and reports its selected member's accuracy on `split`.

  Returns {"split", "accuracy", "num_examples", "member"}; see `lincv.Run.evaluate`.
  """
  from lincv.runs import Run  # pylint: disable=import-outside-toplevel
  compile_cache.enable()
  try:
    out = Run.load(workdir).evaluate(split)
  except checkpoint.Damaged as e:
    raise ConfigError(str(e)) from None
  if stream is not None:
    stream.write(f"{workdir}: member {out['member']} {split} accuracy "
                 f"{metrics.accuracy_text(out['accuracy'])} "
                 f"on {out['num_examples']} examples\n")
  return out
