"""From a config to results: the one place that knows the whole pipeline.

    load data -> split and preprocess (train statistics) -> features -> sweep (grouped,
    vmapped, checkpointed) -> select on validation -> test once -> run directory

The run directory (see DESIGN.md): config.json, results.csv, summary.json, metrics.jsonl,
checkpoint/ (resumable sweep state, best parameters), plots/*.png.
"""

import csv
import dataclasses
import importlib.metadata
import io
import json
import os
import platform
import shutil
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lincv import baselines, checkpoint, data as data_lib, knn, metrics, plots, seeds, sweep
from lincv import training
from lincv import config as config_lib
from lincv.progress import Progress

EVAL_SPLITS = ("train", "val", "test")


class ConfigError(ValueError):
  """A configuration that cannot run; the message says what is valid."""


def check(config: ml_collections.ConfigDict) -> list[dict]:
  """Validates everything that can be checked before touching data; returns the members."""
  try:
    members = sweep.expand(config)
    sweep.halving(config, members)
  except ValueError as e:
    raise ConfigError(str(e)) from None
  d = config.data
  if not d.folder and d.name not in data_lib.DATASETS:
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
    for metric in config.knn.metrics:
      if metric not in knn.METRICS:
        raise ConfigError(f"unknown knn metric {metric!r}; expected one of: "
                          f"{', '.join(knn.METRICS)}")
    if not config.knn.ks or min(config.knn.ks) < 1:
      raise ConfigError(f"knn.ks must be positive integers, got {config.knn.ks}")
  if config.dtype not in ("float32", "float64"):
    raise ConfigError(f"dtype must be float32 or float64, got {config.dtype!r}")
  try:
    checkpoint.strict(_config_json(config), path="config")
  except ValueError as e:
    raise ConfigError(f"{e}; config.json is written as strict JSON, use a finite number "
                      "(e.g. 1e30)") from None
  if config.method in baselines.METHODS and int(config.random.num_tries) < 1:
    raise ConfigError(f"random.num_tries must be >= 1, got {config.random.num_tries}")
  for name, value in (("shuffle_seed", config.get("shuffle_seed")),
                      ("search_seed", config.search_seed), ("data.split_seed", d.split_seed)):
    if value is not None and not 0 <= value < 2**32:
      raise ConfigError(f"{name} must be an integer in [0, 2**32), got {value}")
  return members


def _config_json(config) -> dict:
  return json.loads(config.to_json_best_effort(sort_keys=True))


def _check_workdir(config, workdir: str) -> bool:
  """True if `workdir` holds this config's run (to resume); refuses another config's."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    return False
  saved = checkpoint.load_json(path)
  mine = _config_json(config)
  ignore = {"checkpoint_every"}
  if {k: v for k, v in saved.items() if k not in ignore} != {
      k: v for k, v in mine.items() if k not in ignore}:
    diff = sorted(k for k in set(saved) | set(mine)
                  if k not in ignore and saved.get(k) != mine.get(k))
    raise ConfigError(f"workdir {workdir} holds a run of a different configuration "
                      f"(fields differ: {', '.join(diff)}); use a new --workdir, or the "
                      "same configuration to resume")
  return True


@dataclasses.dataclass
class Inputs:
  """The prepared data of a run, with features computed on demand and cached."""
  config: ml_collections.ConfigDict
  prepared: data_lib.Prepared
  cache_dir: str | None = None

  def __post_init__(self):
    self._features = {}

  @property
  def flip(self) -> bool:
    return bool(self.config.data.get("flip", False))

  def arrays(self, features: str) -> dict[str, np.ndarray]:
    """x_train, x_val, x_test of `features` (float rows), cached per name.

    With `data.flip`, x_train holds the training rows and then the rows of the same
    images mirrored left-right (labels: `labels()["train"]`).
    """
    if features not in self._features:
      p = self.prepared
      if features == "pixels":
        xs = {"train": p.x_train, "val": p.x_val, "test": p.x_test}
        if self.flip:
          xs["train"] = np.concatenate([p.x_train, p.preprocessor(mirror(p.images["train"]))])
      else:
        with jax.enable_x64(False):  # features are float32, the same in every run
          xs = image_features(features, p, self.config.features_cfg, self.cache_dir,
                              flip=self.flip, seed=self.config.data.split_seed)
      dtype = np.dtype(self.config.dtype)
      self._features[features] = {k: np.asarray(v, dtype) for k, v in xs.items()}
    return self._features[features]

  def labels(self) -> dict[str, np.ndarray]:
    """y_train, y_val, y_test, the rows of `arrays` (y_train twice with `data.flip`)."""
    p = self.prepared
    y_train = np.concatenate([p.y_train, p.y_train]) if self.flip else p.y_train
    return {"train": y_train, "val": p.y_val, "test": p.y_test}

  def data(self, features: str) -> training.Data:
    xs, ys = self.arrays(features), self.labels()
    return training.Data(jnp.asarray(xs["train"]), jnp.asarray(ys["train"]),
                         jnp.asarray(xs["val"]), jnp.asarray(ys["val"]))

  def split(self, features: str, split: str):
    return self.arrays(features)[split], self.labels()[split]


mirror = data_lib.mirror


def image_features(name: str, prepared: data_lib.Prepared, cfg, cache_dir: str | None, *,
                   flip: bool = False, seed: int = 0):
  """Features `name` of the train/val/test images, standardised with training statistics.

  hog_color: HOG (8x8 cells, 9 orientations) and a hue histogram of `cfg.hist_bins` bins;
  kmeans: Coates-Lee-Ng k-means patch features with `cfg.kmeans_centroids` centroids fitted
  on the training images, patches and initial centroids drawn from `seeds.key(seed,
  "kmeans")`. With `flip`, "train" also holds the features of the training
  images mirrored left-right, after those of the images themselves (the k-means model is
  still fitted on the unmirrored images). Cached in `cache_dir` per (images, settings,
  fitted model); the standardisation is recomputed from the training features each time.
  """
  from lincv import features as features_lib

  images = dict(prepared.images)
  if not images or images["train"].shape[-1] != 3:
    raise ConfigError(f"features {name!r} need RGB images; this dataset has shape "
                      f"{prepared.image_shape}")
  splits = ("train", "val", "test")
  if flip:
    images["train_mirrored"] = mirror(images["train"])
    splits += ("train_mirrored",)
  ident = {s: features_lib.fingerprint(images[s]) for s in splits}
  if name == "hog_color":
    settings = {"name": name, "bins": int(cfg.hist_bins), "version": features_lib.CACHE_VERSION}
    args, model_id = (), None
    fn = lambda x: jnp.concatenate(
        [features_lib.hog(x), features_lib.color_histogram(x, settings["bins"])], axis=1)
  else:
    settings = {"name": name, "centroids": int(cfg.kmeans_centroids),
                "patches": int(cfg.kmeans_patches), "iterations": int(cfg.kmeans_iters),
                "version": features_lib.CACHE_VERSION, "seed": int(seed)}
    key = seeds.key(settings["seed"], "kmeans")

    def fit():
      model = features_lib.kmeans_fit(
          key, images["train"], settings["centroids"],
          num_patches=settings["patches"], iterations=settings["iterations"])
      return np.concatenate([np.asarray(m).reshape(-1) for m in model[:3]])

    flat = _cached(features_lib, fit,
                   {"images": ident["train"], **settings, "part": "model",
                    "prng": features_lib.fingerprint(jax.random.key_data(key))}, cache_dir)
    d = 6 * 6 * 3
    k = settings["centroids"]
    model = features_lib.KMeansFeatures(
        jnp.asarray(flat[:d]), jnp.asarray(flat[d:d + d * d].reshape(d, d)),
        jnp.asarray(flat[d + d * d:].reshape(k, d)), jnp.zeros(0))
    fn = features_lib.kmeans_encode
    args, model_id = (model,), features_lib.fingerprint(flat)
  # Codes depend on the model they were encoded with, not only on the images: a model
  # fitted on other training images (another val_fraction, limit or split) gives others.
  raw = {s: _cached(features_lib,
                    lambda s=s: features_lib.extract(fn, images[s], *args, batch_size=250),
                    {"images": ident[s], **settings, "model": model_id}, cache_dir)
         for s in splits}
  if flip:
    raw["train"] = np.concatenate([raw["train"], raw.pop("train_mirrored")])
  mean, scale = features_lib.fit_standardize(raw["train"])
  return {s: np.asarray(features_lib.standardize(v, mean, scale)) for s, v in raw.items()}


def _cached(features_lib, fn, key, cache_dir):
  return features_lib.cached(fn, key, cache_dir) if cache_dir else np.asarray(fn())


def feature_cache_dir(config) -> str:
  """Where image features are cached: `lincv_features/` in the tfds data directory.

  Entries are keyed by a hash of everything they depend on: the images, the feature
  settings and, for codes of a fitted k-means model, that model's arrays (so a model
  fitted on other training images never reuses them). Runs with other training settings
  reuse them; other data never reads them.
  """
  return os.path.join(data_lib.resolve_data_dir(config.data.data_dir or None), "lincv_features")


def load_inputs(config, cache_dir=None) -> Inputs:
  """Loads and prepares the config's dataset (raises data_lib.DataError on bad data)."""
  d = config.data
  ds = (data_lib.load(folder=d.folder, data_dir=d.data_dir or None) if d.folder
        else data_lib.load(d.name, data_dir=d.data_dir or None))
  prepared = data_lib.prepare(ds, val_fraction=d.val_fraction, seed=d.split_seed,
                              center=d.center, scale=d.scale, limit=d.limit or None)
  return Inputs(config, prepared, cache_dir)


def _versions() -> dict:
  out = {}
  for pkg in ("lincv", "jax", "jaxlib", "optax", "chex", "tensorflow-datasets", "numpy",
              "ml-collections"):
    try:
      out[pkg] = importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
      pass
  out["python"] = platform.python_version()
  return out


def _device() -> str:
  devs = jax.devices()
  return f"{len(devs)} x {devs[0].platform} ({devs[0].device_kind})"


def _swept(config) -> list[str]:
  return list(config.sweep.keys())


_LEADING = ("member", "group", "status", "val_accuracy", "train_accuracy", "final_loss",
            "epochs_run", "best_epoch", "seconds")


def _write_csv(path, rows):
  buf = io.StringIO()
  fields = list(_LEADING) + [k for k in rows[0] if k not in _LEADING]
  writer = csv.DictWriter(buf, fieldnames=fields)
  writer.writeheader()
  writer.writerows(rows)
  checkpoint.atomic_write(path, lambda f: f.write(buf.getvalue().encode()))


def _table(rows, fields, top: int) -> str:
  cols = ["member"] + fields + ["val_accuracy", "train_accuracy", "status"]
  best = sorted(rows, key=lambda r: (-r["val_accuracy"], r["member"]))[:top]
  fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
  cells = [[fmt(r[c]) for c in cols] for r in best]
  widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
  line = lambda vals: "  ".join(v.rjust(w) for v, w in zip(vals, widths))
  return "\n".join([line(cols)] + [line(r) for r in cells])


def run(config: ml_collections.ConfigDict, workdir: str, *, progress: Progress | None = None,
        stream=None) -> dict:
  """Runs the config's sweep into `workdir` (resuming it if it holds this config's run).

  A run that stops on an error the user must fix leaves no run behind: a workdir that
  was absent or empty is left so, and a sweep whose every member diverged removes its
  run directory's files, so that a corrected configuration runs in the same workdir.

  With `config.dtype = "float64"` the whole run is in 64-bit JAX: data, parameters and
  arithmetic are float64 (features are computed in float32 and then converted).

  Returns:
    the summary (also written to summary.json).
  """
  with jax.enable_x64(config.get("dtype") == "float64"):
    return _run_or_undo(config, workdir, progress=progress, stream=stream)


def _run_or_undo(config, workdir, *, progress, stream) -> dict:
  """`_run`, leaving no run behind when it stops on an error the user must fix."""
  t_start = time.perf_counter()
  progress = progress or Progress(stream)
  check(config)
  resuming = _check_workdir(config, workdir)
  existed = os.path.isdir(workdir)
  fresh = not existed or not os.listdir(workdir)
  try:
    return _run(config, workdir, progress, stream, resuming, t_start)
  except sweep.Diverged as e:
    _discard(workdir, fresh, existed)
    raise ConfigError(str(e)) from None
  except (ConfigError, data_lib.DataError):
    if fresh:
      _discard(workdir, fresh, existed)
    raise


RUN_FILES = ("config.json", "results.csv", "summary.json", "metrics.jsonl")
RUN_FOLDERS = ("checkpoint", "plots")


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


def _run(config, workdir, progress, stream, resuming, t_start) -> dict:
  progress.log("loading data" + (" (resuming)" if resuming else ""))
  inputs = load_inputs(config, cache_dir=feature_cache_dir(config))
  p = inputs.prepared
  t_data = time.perf_counter() - t_start
  progress.log(f"data: {len(p.y_train)} train{' (and mirrored)' if inputs.flip else ''}, "
               f"{len(p.y_val)} val, {len(p.y_test)} test, {p.num_classes} classes, "
               f"{p.x_train.shape[1]} dims")

  os.makedirs(workdir, exist_ok=True)
  if not resuming:
    checkpoint.save_json(os.path.join(workdir, "config.json"), _config_json(config))
  t0 = time.perf_counter()
  if config.method != "sweep":
    rows, best, params = _baseline(config, inputs, progress)
    timings = {"data": t_data, "train": time.perf_counter() - t0}
    return _report_baseline(config, workdir, inputs, rows, best, params, progress, stream,
                            timings, t_start)
  try:
    result = sweep.run(config, inputs.data, p.num_classes, workdir=workdir,
                       test_for=lambda f: inputs.split(f, config.eval_split),
                       progress=progress, started=t_start)
  except sweep.Diverged:
    raise
  except sweep.SweepError as e:
    raise ConfigError(str(e)) from None
  t_train = time.perf_counter() - t0
  return _report(config, workdir, inputs, result, progress, stream,
                 {"data": t_data, "train": t_train, "total": time.perf_counter() - t_start})


def _report(config, workdir, inputs, result, progress, stream, timings) -> dict:
  p, best, rows = inputs.prepared, result.best, result.rows
  fields = _swept(config)
  _write_csv(os.path.join(workdir, "results.csv"), rows)
  lines = []
  for r, h in zip(rows, result.history):
    for e, (loss, acc) in enumerate(zip(h["train_loss"], h["val_accuracy"])):
      if not np.isnan(loss):
        lines.append(checkpoint.dumps_line({"member": r["member"], "epoch": e + 1,
                                            "train_loss": loss, "val_accuracy": acc}))
  checkpoint.atomic_write(os.path.join(workdir, "metrics.jsonl"),
                           lambda f: f.write(("\n".join(lines) + "\n").encode()))
  checkpoint.save_arrays(os.path.join(workdir, "checkpoint", "best.npz"), result.best_params)

  s = result.best_structure
  x_eval, y_eval = inputs.split(best["features"], config.eval_split)
  pred = np.asarray(training.predict(s, jax.tree.map(jnp.asarray, result.best_params),
                                     jnp.asarray(x_eval)))
  confusion = metrics.confusion_matrix(pred, y_eval, p.num_classes)
  plots.curves(rows, result.history, fields, os.path.join(workdir, "plots", "curves.png"))
  plots.heatmap(rows, os.path.join(workdir, "plots", "val_accuracy_heatmap.png"))
  if s.model == "linear" and best["features"] == "pixels":
    plots.templates(result.best_params["W"], p.image_shape, p.class_names,
                    os.path.join(workdir, "plots", "templates.png"))
  plots.confusion(confusion, p.class_names, os.path.join(workdir, "plots", "confusion.png"),
                  title=f"confusion matrix ({config.eval_split})")

  hparams = {f: best[f] for f in config_lib.SWEEPABLE}
  summary = {
      "best": {"member": best["member"], "hparams": hparams,
               "train_accuracy": best["train_accuracy"], "val_accuracy": best["val_accuracy"],
               f"{config.eval_split}_accuracy": result.test_accuracy,
               "test_accuracy": result.test_accuracy if config.eval_split == "test" else None,
               "epochs_run": best["epochs_run"], "best_epoch": best["best_epoch"]},
      "eval_split": config.eval_split,
      "num_members": len(rows),
      "num_groups": len({r["group"] for r in rows}),
      "num_diverged": sum(r["status"] == "diverged" for r in rows),
      "num_pruned": sum(r["status"] == "pruned" for r in rows),
      "data": {"name": config.data.folder or config.data.name, "classes": list(p.class_names),
               "image_shape": list(p.image_shape), "train": len(p.y_train),
               "val": len(p.y_val), "test": len(p.y_test), "mirrored": inputs.flip},
      "seconds": timings["total"] + result.earlier_seconds,   # every process's
      "timings": dict(timings, earlier_processes=result.earlier_seconds),
      "device": _device(),
      "versions": _versions(),
  }
  checkpoint.save_json(os.path.join(workdir, "summary.json"), summary)
  out = stream or progress.stream
  out.write("\nbest members by validation accuracy:\n" + _table(rows, fields, 5) + "\n")
  out.write(f"\nselected member {best['member']}: val {best['val_accuracy']:.4f}, "
            f"{config.eval_split} {result.test_accuracy:.4f}  "
            f"({summary['num_members']} members, {summary['num_diverged']} diverged, "
            f"{summary['num_pruned']} pruned, {timings['total']:.1f}s)\n")
  out.write(f"wrote {workdir}\n")
  out.flush()
  return summary


def evaluate(workdir: str, split: str = "test", stream=None) -> dict:
  """Reloads a finished run's best parameters and reports accuracy on `split`, no training.

  A run of `dtype = "float64"` is evaluated in 64-bit JAX, as it was trained.
  """
  config_path = os.path.join(workdir, "config.json")
  saved = checkpoint.load_json(config_path) if os.path.exists(config_path) else {}
  with jax.enable_x64(saved.get("dtype") == "float64"):
    return _evaluate(workdir, split, stream)


def _evaluate(workdir: str, split: str, stream) -> dict:
  if split not in EVAL_SPLITS:
    raise ConfigError(f"unknown split {split!r}; expected one of: {', '.join(EVAL_SPLITS)}")
  config_path = os.path.join(workdir, "config.json")
  method = (checkpoint.load_json(config_path).get("method", "sweep")
            if os.path.exists(config_path) else "sweep")
  needed = ["config.json", "summary.json"]
  if method != "knn":
    needed.append(os.path.join("checkpoint", "best.npz"))
  for name in needed:
    if not os.path.exists(os.path.join(workdir, name)):
      raise ConfigError(f"{os.path.join(workdir, name)} not found: {workdir} is not a "
                        "finished run (train it first)")
  config = ml_collections.ConfigDict(checkpoint.load_json(os.path.join(workdir, "config.json")))
  summary = checkpoint.load_json(os.path.join(workdir, "summary.json"))
  hp = summary["best"]["hparams"]
  if config.method != "sweep":
    inputs = load_inputs(config, cache_dir=feature_cache_dir(config))
    params = (checkpoint.load_arrays(os.path.join(workdir, "checkpoint", "best.npz"))
              if config.method != "knn" else None)
    pred, y = _baseline_predict(config, inputs, dict(hp, member=summary["best"]["member"]),
                                params, split)
    return _eval_out(workdir, split, metrics.accuracy(pred, y), len(y),
                     summary["best"]["member"], stream)
  structure = sweep.structure(hp)
  inputs = load_inputs(config, cache_dir=feature_cache_dir(config))
  params = {k: jnp.asarray(v) for k, v in
            checkpoint.load_arrays(os.path.join(workdir, "checkpoint", "best.npz")).items()}
  x, y = inputs.split(hp["features"], split)
  pred = np.asarray(training.predict(structure, params, jnp.asarray(x)))
  return _eval_out(workdir, split, metrics.accuracy(pred, y), len(y),
                   summary["best"]["member"], stream)


def _eval_out(workdir, split, acc, n, member, stream) -> dict:
  out = {"split": split, "accuracy": acc, "num_examples": int(n), "member": member}
  if stream is not None:
    stream.write(f"{workdir}: member {member} {split} accuracy {acc:.4f} on {n} examples\n")
  return out


# --------------------------------------------------------------------------- baselines


def _knn_pool(inputs, features, split):
  """The labelled rows that vote for the rows of `split`: never the rows of `split` itself.

  Validation (and training) rows are labelled by the training rows; test rows by the
  training and validation rows together, every labelled image, as CIFAR-10 k-NN is
  usually reported (k and the metric are chosen by cross-validation on training rows,
  so the validation rows are free to join the pool).
  """
  x_tr, y_tr = inputs.split(features, "train")
  if split != "test":
    return x_tr, y_tr
  x_va, y_va = inputs.split(features, "val")
  return np.concatenate([x_tr, x_va]), np.concatenate([y_tr, y_va])


def _knn_groups(inputs) -> np.ndarray:
  """The image of every training row: a row and its mirrored copy (`data.flip`) share one."""
  n = len(inputs.prepared.y_train)
  return np.arange(len(inputs.labels()["train"])) % n


def _baseline(config, inputs, progress):
  """Runs a non-sweep method; returns (rows, best row, params or None)."""
  p = inputs.prepared
  features = config.features
  x_tr, y_tr = inputs.split(features, "train")
  if config.method == "knn":
    k = config.knn
    groups = _knn_groups(inputs)
    if k.cv_limit and k.cv_limit < len(y_tr):
      keep = data_lib.stratified_subset(y_tr, k.cv_limit, config.data.split_seed)
      x_cv, y_cv, groups = x_tr[keep], y_tr[keep], groups[keep]
    else:
      x_cv, y_cv = x_tr, y_tr
    rows = []
    for metric in k.metrics:
      progress.log(f"{k.num_folds}-fold cross-validation of k over {len(y_cv)} rows, {metric}")
      try:
        accs = knn.cross_validate(x_cv, y_cv, ks=tuple(k.ks), num_folds=k.num_folds,
                                  metric=metric, seed=config.data.split_seed,
                                  num_classes=p.num_classes, groups=groups)["accuracy"]
      except ValueError as e:
        raise ConfigError(f"knn: {e}") from None
      for kk, acc in zip(k.ks, accs):
        rows.append({"member": len(rows), "metric": metric, "k": int(kk),
                     "cv_accuracy": acc, "status": "ok"})
    best = max(rows, key=lambda r: (r["cv_accuracy"], -r["member"]))
    return rows, best, None
  rnd = config.random
  x, y = x_tr, y_tr
  if rnd.examples and rnd.examples < len(y):
    keep = data_lib.stratified_subset(y, rnd.examples,
                                      seeds.integer(config.data.split_seed, "examples"))
    x, y = x[keep], y[keep]
  key = seeds.key(config.seed, "random_search")
  fn = baselines.random_search if config.method == "random_search" else baselines.random_local_search
  kwargs = ({"num_tries": int(rnd.num_tries), "scale": rnd.scale}
            if config.method == "random_search"
            else {"num_steps": int(rnd.num_tries), "scale": rnd.scale, "step": rnd.step})
  progress.log(f"{config.method}: {rnd.num_tries} draws, loss {config.loss} on {len(y)} rows")
  w, loss, _ = fn(key, jnp.asarray(x), jnp.asarray(y), p.num_classes, loss=config.loss, **kwargs)
  params = {"W": np.asarray(w), "b": np.zeros(p.num_classes, np.asarray(w).dtype)}
  s = training.Structure(model="linear")
  row = {"member": 0, "method": config.method, "loss_name": config.loss,
         "final_loss": float(loss), "status": "ok",
         "train_accuracy": float(training.accuracy(s, params, jnp.asarray(x_tr), jnp.asarray(y_tr))),
         "val_accuracy": float(training.accuracy(s, params, *map(jnp.asarray,
                                                                inputs.split(features, "val"))))}
  return [row], row, params


def _baseline_predict(config, inputs, best, params, split):
  x, y = inputs.split(config.features, split)
  if config.method == "knn":
    pool_x, pool_y = _knn_pool(inputs, config.features, split)
    pred = knn.predict(pool_x, pool_y, x, k=best["k"], metric=best["metric"],
                       num_classes=inputs.prepared.num_classes)
  else:
    pred = training.predict(training.Structure(model="linear"),
                            jax.tree.map(jnp.asarray, params), jnp.asarray(x))
  return np.asarray(pred), y


def _report_baseline(config, workdir, inputs, rows, best, params, progress, stream, timings,
                     t_start):
  p = inputs.prepared
  split = config.eval_split
  pred, y = _baseline_predict(config, inputs, best, params, split)
  acc = metrics.accuracy(pred, y)
  timings["total"] = time.perf_counter() - t_start
  _write_csv(os.path.join(workdir, "results.csv"), rows)
  if params is not None:
    checkpoint.save_arrays(os.path.join(workdir, "checkpoint", "best.npz"), params)
    if config.features == "pixels":
      plots.templates(params["W"], p.image_shape, p.class_names,
                      os.path.join(workdir, "plots", "templates.png"))
  plots.confusion(metrics.confusion_matrix(pred, y, p.num_classes), p.class_names,
                  os.path.join(workdir, "plots", "confusion.png"),
                  title=f"confusion matrix ({split})")
  hparams = {k: v for k, v in best.items() if k not in ("member", "status")}
  summary = {
      "method": config.method,
      "best": {"member": best["member"], "hparams": hparams,
               "val_accuracy": best.get("val_accuracy", best.get("cv_accuracy")),
               f"{split}_accuracy": acc, "test_accuracy": acc if split == "test" else None},
      "eval_split": split, "num_members": len(rows), "num_groups": 1,
      "num_diverged": 0, "num_pruned": 0,
      "data": {"name": config.data.folder or config.data.name, "classes": list(p.class_names),
               "image_shape": list(p.image_shape), "train": len(p.y_train),
               "val": len(p.y_val), "test": len(p.y_test), "mirrored": inputs.flip},
      "seconds": timings["total"], "timings": timings, "device": _device(),
      "versions": _versions(),
  }
  checkpoint.save_json(os.path.join(workdir, "summary.json"), summary)
  out = stream or progress.stream
  desc = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                   for k, v in hparams.items())
  out.write(f"\n{config.method}: selected {desc}; {split} accuracy {acc:.4f} "
            f"({timings['total']:.1f}s)\nwrote {workdir}\n")
  out.flush()
  return summary
