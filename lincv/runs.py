"""A finished run, read back: its config, results, selected classifier and predictions.

    run = lincv.Run.load("runs/default-20261125-120000")
    run.best["hparams"], run.best["test_accuracy"]
    labels_N = run.predict(images_NxHxWxC)     # uint8 images, image files, or rows
    run.evaluate("val")                        # {"split", "accuracy", "num_examples", ...}

`predict` and `scores` apply the run's own preprocessing (the statistics fitted on its
training images) and features (its fitted k-means model and standardisation), saved in
`checkpoint/inputs.npz`, so classifying new images needs neither the dataset nor
training. A run on pre-extracted features (`data.features`) takes float rows like its
file's and applies its own centring and scaling to them. `evaluate` and a k-NN run's `predict` load the run's dataset (its labelled rows
vote), once.
"""

import csv
import dataclasses
import functools
import io
import json
import math
import os
import warnings

import ml_collections
import numpy as np

from lincv import checkpoint, data as data_lib, features as features_lib
from lincv import inputs as inputs_lib
from lincv import methods, metrics, objective, precision
from lincv import config as config_lib

SPLITS = ("train", "val", "test")


def _typed(text: str):
  """A results.csv cell as the value it was written from."""
  for kind in (int, float):
    try:
      return kind(text)
    except ValueError:
      pass
  return {"True": True, "False": False, "None": None}.get(text, text)


@dataclasses.dataclass(eq=False)
class Run:
  """The read side of a run directory; build it with `Run.load(workdir)`."""
  workdir: str
  config: ml_collections.ConfigDict
  summary: dict

  @classmethod
  def load(cls, workdir) -> "Run":
    """Opens the finished run in `workdir`.

    Raises:
      config.ConfigError: `workdir` is not a finished run (a file it needs is missing), or
        its config.json names a method this lincv does not know.
      checkpoint.Damaged: config.json or summary.json is not the JSON lincv wrote (or lacks
        a field `Run` reads).
    """
    workdir = os.fspath(workdir)
    config_path = os.path.join(workdir, "config.json")
    method = (checkpoint.load_json(config_path).get("method", "sweep")
              if os.path.exists(config_path) else "sweep")
    if method not in config_lib.METHODS:   # else read, and applied, as a sweep
      raise config_lib.ConfigError(
          f"{config_path} names method {method!r}, not one this lincv knows "
          f"({', '.join(config_lib.METHODS)}): a run of another lincv, or a damaged file")
    needed = ["config.json", "summary.json", "results.csv"]
    if method != "knn":
      needed.append(os.path.join("checkpoint", "best.npz"))
    for name in needed:
      if not os.path.exists(os.path.join(workdir, name)):
        raise config_lib.ConfigError(
            f"{os.path.join(workdir, name)} not found: {workdir} is not a finished run "
            "(train it first)")
    # A field added by a later lincv, missing from an earlier run's config.json, takes its
    # default, as when such a run resumes (`config.fingerprint`).
    saved = checkpoint.load_json(config_path, keys=("data",))
    config = ml_collections.ConfigDict(_over(config_lib.as_json(config_lib.base()), saved))
    summary_path = os.path.join(workdir, "summary.json")
    summary = checkpoint.load_json(summary_path, keys=("best", "data"))
    _check_summary(summary_path, summary)
    if config.get("method", "sweep") == "sweep":
      # Likewise a member's field added later (lbfgs_iters, tol): an earlier run's selected
      # member had the config's value, as every member has for a field it does not sweep.
      hparams = summary["best"]["hparams"]
      hparams.update({f: config[f] for f in config_lib.SWEEPABLE
                      if f not in hparams and f in config})
    return cls(workdir, config, summary)

  def __repr__(self) -> str:
    b = self.best
    acc = b.get("test_accuracy")
    # k-NN selects by its accuracy cross-validated on the training rows; with
    # eval_split="val" the summary's val_accuracy is the validation split's.
    by = "cv" if "cv_accuracy" in b else "val"
    return (f"Run({self.workdir!r}, method={self.method}, member {b['member']}, "
            f"{by} {metrics.accuracy_text(b.get('cv_accuracy', b['val_accuracy']))}"
            + (f", test {metrics.accuracy_text(acc)})" if acc is not None else ")"))

  # ------------------------------------------------------------------ what it recorded

  @property
  def method(self) -> str:
    return self.config.get("method", "sweep")

  @property
  def best(self) -> dict:
    """The selected member: member, hparams, train/val/test accuracy, ..."""
    return self.summary["best"]

  @property
  def class_names(self) -> tuple[str, ...]:
    return tuple(self.summary["data"]["classes"])

  @functools.cached_property
  def results(self) -> list[dict]:
    """results.csv: one dict per member, numbers as numbers.

    Raises `lincv.checkpoint.Damaged` unless it holds one whole row per member of the
    run (summary.json's count), members 0..n-1 in order, in UTF-8: a file cut short lost
    members, or ended in half a row."""
    path = os.path.join(self.workdir, "results.csv")
    damaged = functools.partial(_damaged, path)
    text = _read_text(path, damaged)
    header, *table = list(csv.reader(io.StringIO(text))) or [[]]
    members = self.summary.get("num_members", len(table))
    cut = next((i for i, cells in enumerate(table) if len(cells) != len(header)), None)
    problem = None
    if cut is not None:
      problem = f"row {cut + 1} has {len(table[cut])} cells where the header names {len(header)}"
    elif not text.endswith("\n"):   # cut inside its last cell: the row's count is whole
      problem = "it ends inside a row (no line break after its last)"
    elif len(table) != members:
      problem = f"it holds {len(table)} rows, where this run has {members} members"
    elif "member" not in header:
      problem = "its header names no member column"
    elif [cells[header.index("member")] for cells in table] != [str(m) for m in range(members)]:
      problem = f"its member column is not 0..{members - 1} in order"
    if problem:
      raise damaged(problem)
    return [{k: _typed(v) for k, v in zip(header, cells)} for cells in table]

  @functools.cached_property
  def history(self) -> list[dict]:
    """Per member: {"epoch": [...], "train_loss": [...], "val_accuracy": [...]} of the
    epochs it trained (empty lists for a method that does not train by epochs).

    Raises `lincv.checkpoint.Damaged` unless metrics.jsonl holds, for every member,
    epochs 1 to the epochs it trained (results.csv's epochs_run; a last epoch whose loss
    is NaN has no line, as the report writes it). The file is written whole, before
    summary.json, so a finished run's is complete: one cut short, even between lines,
    lost the last members' epochs (a run killed while training has no summary.json, and
    `Run.load` refuses it)."""
    out = [{"epoch": [], "train_loss": [], "val_accuracy": []} for _ in self.results]
    path = os.path.join(self.workdir, "metrics.jsonl")
    damaged = functools.partial(_damaged, path)
    if os.path.exists(path):
      for i, line in enumerate(_read_text(path, damaged).split("\n")):
        if not line.strip():
          continue
        try:
          r = json.loads(line)
          m = r["member"]
          if isinstance(m, bool) or not isinstance(m, int) or not 0 <= m < len(out):
            # -1 indexed the last member's list, and was blamed on it
            raise IndexError(f"member {m!r}, where this run has members 0..{len(out) - 1}")
          for key in ("epoch", "train_loss", "val_accuracy"):
            out[m][key].append(r[key])
        except (ValueError, KeyError, IndexError, TypeError) as e:
          raise damaged(f"line {i + 1} is not one member's epoch of this run "
                        f"({type(e).__name__}: {e})") from None
    for row, h in zip(self.results, out):
      want = _epochs_written(row)
      if want is not None and h["epoch"] != list(range(1, want + 1)):
        got = h["epoch"]
        held = (f"{len(got)} epochs" if got == list(range(1, len(got) + 1))
                else f"epochs {got[:8]}{' ...' if len(got) > 8 else ''}")
        if not os.path.exists(path):
          raise damaged(f"missing, though results.csv says member {row['member']} trained "
                        f"{want} epochs")
        raise damaged(f"it holds {held} of member {row['member']}, where results.csv says "
                      f"it trained {want} (epochs_run)")
    return out

  @functools.cached_property
  def params(self) -> dict | None:
    """The selected member's parameters (NumPy, the run's dtype); None for k-NN."""
    if self.method == "knn":
      return None
    path = os.path.join(self.workdir, "checkpoint", "best.npz")
    params = checkpoint.load_arrays(path)
    model = self.best["hparams"].get("model", self.config.get("model", "linear"))
    last = objective.OUTPUT_LAYER.get(model)
    c = len(self.class_names)
    if last is None or any(n not in params for n in last):
      raise checkpoint.Damaged(f"{path} is damaged: no {' and '.join(last or ('weights',))} "
                               f"of the run's {model} model (holds {', '.join(params)})")
    w, b = (params[n] for n in last)
    if w.ndim != 2 or w.shape[1] != c or b.shape != (c,):
      raise checkpoint.Damaged(f"{path} is damaged: {last[0]} {w.shape} and {last[1]} "
                               f"{b.shape} do not score the run's {c} classes")
    for name, a in params.items():
      if not np.isfinite(a).all():
        raise checkpoint.Damaged(f"{path} is damaged: {name} holds non-finite values "
                                 "(the selected member never diverges)")
    return params

  @property
  def features(self) -> str:
    return self.best["hparams"].get("features", self.config.features)

  # ------------------------------------------------------------------ applying it

  @functools.cached_property
  def inputs(self) -> inputs_lib.Inputs:
    """The run's dataset, prepared as in training (loaded on first use).

    Raises:
      config.ConfigError: its rows are not those the run was trained on (the config names
        its data, a folder or file, which may have changed since, or a relative path
        read from another directory): the accuracy would be of other rows.
    """
    with self._precision():
      inputs = inputs_lib.load(self.config, cache_dir=inputs_lib.cache_dir(self.config))
    recorded = inputs_lib.recorded_rows(self.workdir)
    if recorded is not None and recorded != inputs.fingerprint():
      raise config_lib.ConfigError(
          f"the data this run's config names ({inputs_lib.source(self.config)}, from "
          f"{os.getcwd()}) is not what it "
          f"was trained on: its rows differ from those recorded in "
          f"{inputs_lib.DATA_FILE}; evaluate on the data the run was trained on")
    return inputs

  def rows(self, x) -> np.ndarray:
    """The rows the classifier takes, from uint8 images (N, H, W, C) or (H, W, C), image
    files (paths, or a folder of them), or rows (N, D) as they are."""
    if isinstance(x, (str, os.PathLike)) or (isinstance(x, (list, tuple)) and x
                                             and isinstance(x[0], (str, os.PathLike))):
      if self.config.data.get("features"):
        raise ValueError(f"this run was trained on the features in "
                         f"{self.config.data.features}; it takes float rows (N, {self._dim}) "
                         "like theirs, not image files")
      x = data_lib.read_images(_image_paths(x), channels=self._image_shape[-1])
    x = np.asarray(x)
    if self.config.data.get("features"):
      return self._feature_rows(x)
    if x.dtype == np.uint8 and x.ndim in (3, 4):
      return self._featurize(x[None] if x.ndim == 3 else x)
    if x.ndim == 2 and np.issubdtype(x.dtype, np.floating):
      if x.shape[1] != self._dim:
        raise ValueError(f"rows have {x.shape[1]} columns; this run's classifier takes "
                         f"{self._dim} ({self.features})")
      rows = _checked(x, self.config.dtype).astype(self.config.dtype, copy=False)
      if (self.features == inputs_lib.PIXELS and self.config.data.center != "none"
          and rows.size > rows.shape[1] and rows.min() >= 0):
        warnings.warn(
            f"the {len(rows)} rows hold no negative value, where this run's rows are centred "
            f"(data.center={self.config.data.center!r}): raw pixels? Rows are taken as they "
            "are; pass uint8 images (N, H, W, C) for the run's own preprocessing",
            UserWarning, stacklevel=3)
      return rows
    raise ValueError(f"expected uint8 images (N, H, W, C) of shape {self._image_shape}, "
                     "image file paths, or float rows (N, D); got "
                     f"{x.dtype} with shape {x.shape}")

  def scores(self, x) -> np.ndarray:
    """Class scores (N, C) of the selected member (k-NN: the share of neighbours per class)."""
    with self._precision():
      rows = self._fitting(self.rows(x))
      return methods.scores(self.config, self.best["hparams"], self.params, rows,
                            self._pool("test"), len(self.class_names))

  def predict(self, x) -> np.ndarray:
    """Class indices (N,) of the selected member for images, image files or rows."""
    with self._precision():
      rows = self._fitting(self.rows(x))
      return methods.predict(self.config, self.best["hparams"], self.params, rows,
                             self._pool("test"), len(self.class_names))

  def evaluate(self, split: str = "test") -> dict:
    """Accuracy of the selected member on `split` of the run's dataset, no training:
    {"split", "accuracy", "num_examples", "member"}."""
    if split not in SPLITS:
      raise config_lib.ConfigError(f"unknown split {split!r}; expected one of: "
                                   f"{', '.join(SPLITS)}")
    with self._precision():
      self._fitting(self.inputs.split(self.features, split)[0])
      out = methods.evaluate(self.config, self.best["hparams"], self.params, self.inputs, split)
    return {"split": split, "accuracy": out["accuracy"], "num_examples": len(out["labels"]),
            "member": self.best["member"]}

  # ------------------------------------------------------------------ internals

  def _fitting(self, rows):
    """`rows`, if the saved weights take their width; else best.npz is damaged (a
    traceback from deep inside the product would not say so)."""
    if self.params is not None and rows.shape[1] != self._dim:
      raise checkpoint.Damaged(
          f"{os.path.join(self.workdir, 'checkpoint', 'best.npz')} is damaged: its "
          f"weights take rows of {self._dim} columns, where the run's {self.features} rows "
          f"have {rows.shape[1]}")
    return rows

  def _precision(self):
    return precision.run_scope(self.config)

  def _pool(self, split):
    return methods.pool(self.config, self.inputs, split) if self.method == "knn" else None

  @property
  def _image_shape(self) -> tuple[int, ...]:
    return tuple(self.summary["data"]["image_shape"])

  @property
  def _dim(self) -> int:
    if self.params is not None:
      return int(next(iter(self.params.values())).shape[0])
    return int(self.inputs.arrays(self.features)["train"].shape[1])

  @functools.cached_property
  def _saved_inputs(self) -> dict | None:
    path = os.path.join(self.workdir, "checkpoint", "inputs.npz")
    return checkpoint.load_arrays(path) if os.path.exists(path) else None

  def _feature_rows(self, x) -> np.ndarray:
    """Rows of a run on pre-extracted features, as in its file, through its centring and
    scaling."""
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.floating) or x.shape[1] != self._dim:
      raise ValueError(f"this run was trained on the features in {self.config.data.features}"
                       f"; it takes float rows (N, {self._dim}) like theirs, got {x.dtype} "
                       f"with shape {x.shape}")
    saved = self._saved_inputs
    pre = (_row_preprocessor(saved) if saved is not None
           else self.inputs.prepared.preprocessor)
    rows = np.asarray(pre(_checked(x, np.float32)), self.config.dtype)   # read as float32
    return _checked(rows, rows.dtype, " after the run's centring and scaling")

  def _featurize(self, images) -> np.ndarray:
    """Rows of uint8 images through the run's own preprocessing and features."""
    if images.shape[1:] != self._image_shape:
      raise ValueError(f"images have shape {images.shape[1:]}; this run was trained on "
                       f"images of shape {self._image_shape}")
    saved = self._saved_inputs
    if self.features == inputs_lib.PIXELS:
      pre = (_preprocessor(saved) if saved is not None
             else self.inputs.prepared.preprocessor)
      out = pre(images)
    else:
      featurizer = (features_lib.Featurizer.from_arrays(saved) if saved is not None
                    else self.inputs.featurizer(self.features))
      with precision.float32():
        out = featurizer(images)
    return np.asarray(out, self.config.dtype)


def _damaged(path: str, why: str) -> checkpoint.Damaged:
  """The Damaged error of a run's file `path`, saying `why` and what to do."""
  return checkpoint.Damaged(
      f"{path} is damaged: {why}; remove the run (or use a new --workdir) and run it again")


def _read_text(path: str, damaged) -> str:
  """The text of a run's file, as lincv wrote it (UTF-8); `damaged(why)` if it is not text."""
  try:
    with open(path, encoding="utf-8", newline="") as f:
      return f.read()
  except UnicodeDecodeError as e:
    raise damaged(f"not text ({e.reason} at byte {e.start})") from None


def _epochs_written(row: dict) -> int | None:
  """The epochs of a results.csv row that metrics.jsonl holds: 1..epochs_run, less the
  last where its loss is NaN (`lincv.report` writes no line for a NaN loss: a closed-form
  member whose weights are not finite); None for a row without epochs_run (k-NN, random
  search: no metrics.jsonl)."""
  n = row.get("epochs_run")
  if not isinstance(n, int) or isinstance(n, bool):
    return None
  loss = row.get("final_loss")
  return max(0, n - 1) if isinstance(loss, float) and math.isnan(loss) else n


# summary.json's fields that `Run` reads: (where, name, the types it holds).
_SUMMARY_FIELDS = (("best", "member", (int,)), ("best", "val_accuracy", (int, float)),
                   ("best", "hparams", (dict,)), ("data", "classes", (list,)),
                   ("data", "image_shape", (list,)))


def _check_summary(path: str, summary: dict) -> None:
  """Raises `checkpoint.Damaged` unless summary.json holds the fields `Run` reads, of
  their types (a KeyError or a TypeError from deep inside `predict` would not say so)."""
  why = None
  for where, name, kinds in _SUMMARY_FIELDS:
    part = summary[where]
    if not isinstance(part, dict):
      why = f"{where} is {type(part).__name__}, not an object"
    elif name not in part:
      why = f"no field '{where}.{name}'"
    elif isinstance(part[name], bool) or not isinstance(part[name], kinds):
      why = f"'{where}.{name}' is {part[name]!r}"
    if why:
      break
  members = summary.get("num_members")
  if why is None and members is not None and (
      isinstance(members, bool) or not isinstance(members, int) or members < 1):
    why = f"'num_members' is {members!r}"
  if why:
    raise checkpoint.damaged(path, "JSON", why)


def _over(defaults: dict, saved: dict) -> dict:
  """`saved` (a config as JSON) over `defaults`, nested dicts merged."""
  out = dict(defaults)
  for k, v in saved.items():
    out[k] = _over(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
  return out


def _checked(x_NxD: np.ndarray, dtype, where: str = "") -> np.ndarray:
  """`x_NxD` if every value is finite and within the range of `dtype`, else a ValueError
  naming the first that is not (a NaN row would otherwise be classified, silently, as
  class 0)."""
  bad = ~np.isfinite(x_NxD)
  if bad.any():
    r, c = np.argwhere(bad)[0]
    raise ValueError(f"row {r}, column {c} holds {x_NxD[r, c]}{where}; the classifier takes "
                     "finite values only")
  top = np.finfo(dtype).max
  if np.finfo(x_NxD.dtype).max > top and (np.abs(x_NxD) > top).any():
    r, c = np.argwhere(np.abs(x_NxD) > top)[0]
    raise ValueError(f"row {r}, column {c} holds {x_NxD[r, c]:.3g}, beyond the range of "
                     f"{np.dtype(dtype).name} (+-{top:.3g}) that this run computes in")
  return x_NxD


def _preprocessor(saved: dict) -> data_lib.Preprocessor:
  s = json.loads(str(saved["pre_settings"]))
  return data_lib.Preprocessor(image_shape=tuple(s["image_shape"]), center=s["center"],
                               scale=s["scale"], bias_trick=s["bias_trick"],
                               mean_D=saved["pre_mean_D"], std_D=saved["pre_std_D"])


def _row_preprocessor(saved: dict) -> data_lib.RowPreprocessor:
  s = json.loads(str(saved["pre_settings"]))
  return data_lib.RowPreprocessor(s["center"], s["scale"], saved["pre_mean_D"],
                                  saved["pre_std_D"])


def _image_paths(x) -> list[str]:
  """Image files: the paths given, or the image files of a folder (sorted)."""
  if isinstance(x, (str, os.PathLike)):
    x = os.fspath(x)
    if os.path.isdir(x):
      names = sorted(n for n in os.listdir(x) if n.lower().endswith(data_lib.folder.EXTENSIONS))
      if not names:
        raise ValueError(f"{x}: no .png, .jpg or .jpeg files in this folder")
      return [os.path.join(x, n) for n in names]
    return [x]
  return [os.fspath(p) for p in x]
