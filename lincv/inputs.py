"""The inputs of a run: its dataset, prepared, with features computed on demand and cached.

    inputs = lincv.inputs.load(config)            # loads and prepares config.data
    x_NxD, y_N = inputs.split("hog_color", "val")
    data = inputs.data("pixels")                  # training.Data for a sweep

A run's rows come from `lincv.data.prepare` (train/val split, statistics fitted on the
training images) and, for image features, from `lincv.features.compute` (a `Featurizer`
fitted on the training images, its features cached in the data directory).
"""

import dataclasses
import os

import jax
import ml_collections
import numpy as np

from lincv import aligned, checkpoint, precision
from lincv import config as config_lib
from lincv import data as data_lib
from lincv import features as features_lib
from lincv import training

PIXELS = "pixels"

DATA_FILE = os.path.join("checkpoint", "data.json")   # a run's `Inputs.fingerprint`


def recorded_rows(workdir: str) -> str | None:
  """The fingerprint (`Inputs.fingerprint`) of the rows the run in `workdir` was trained
  on, as its `DATA_FILE` records it; None where it records none (an earlier run)."""
  path = os.path.join(workdir, DATA_FILE)
  return checkpoint.load_json(path).get("rows") if os.path.exists(path) else None


def cache_dir(config) -> str:
  """Where image features are cached: `lincv_features/` in the tfds data directory.

  Entries are keyed by a hash of everything they depend on: the images, the feature
  settings and, for codes of a fitted k-means model, that model's arrays (so a model
  fitted on other training images never reuses them). Runs with other training settings
  reuse them; other data never reads them.
  """
  return os.path.join(data_lib.resolve_data_dir(config.data.data_dir or None), "lincv_features")


@dataclasses.dataclass
class Inputs:
  """The prepared data of a run, with features computed on demand and cached."""
  config: ml_collections.ConfigDict
  prepared: data_lib.Prepared
  cache_dir: str | None = None

  def __post_init__(self):
    self._arrays = {}
    self._featurizers = {}

  def __repr__(self) -> str:
    return (f"Inputs({source(self.config)}, "
            f"{self.prepared!r}, features computed: {sorted(self._arrays) or 'none'})")

  @property
  def flip(self) -> bool:
    return bool(self.config.data.get("flip", False))

  def arrays(self, features: str) -> dict[str, np.ndarray]:
    """x_train, x_val, x_test of `features` (float rows), computed once per name.

    With `data.flip`, x_train holds the training rows and then the rows of the same
    images mirrored left-right (labels: `labels()["train"]`). Mirrored pixels are
    preprocessed as any image's, with the statistics of the unmirrored training images
    (as a mirrored validation image's are): with center="image" the mean of the mirrored
    rows is mirror(mean image) - mean image, not 0 (on digits up to 0.19 a pixel, about
    the mean |value| of a centred pixel). Image features fit their standardisation on
    both halves instead.
    """
    if features not in self._arrays:
      p = self.prepared
      if features == PIXELS:
        xs = {"train": p.x_train, "val": p.x_val, "test": p.x_test}
        if self.flip:
          xs["train"] = (p.x_train_flip if p.x_train_flip is not None else
                         aligned.stacked(p.x_train, self._mirrored_pixels("train")))
      else:
        with precision.float32():  # features are float32, the same in every run
          self._featurizers[features], xs = _image_features(
              features, p, self.config.features_cfg, self.cache_dir, flip=self.flip,
              seed=self.config.data.split_seed)
      dtype = np.dtype(self.config.dtype)
      self._arrays[features] = {k: aligned.asarray(v, dtype) for k, v in xs.items()}
    return self._arrays[features]

  def _mirrored_pixels(self, split: str) -> np.ndarray:
    p = self.prepared
    return p.preprocessor(data_lib.mirror(p.images[split]))

  def mirrored(self, features: str, split: str) -> np.ndarray:
    """The rows of `features` of the images of `split` mirrored left-right, computed as
    training with `data.flip` computes them: for "train" (which needs `data.flip`) the
    mirrored rows `arrays` appends; for "val" and "test" the same pipeline (and cache)
    applied to the mirrored images.
    """
    if split == "train":
      if not self.flip:
        raise ValueError("mirrored training rows need data.flip")
      return self.arrays(features)["train"][len(self.prepared.y_train):]
    if not self.prepared.images:
      raise ValueError("mirrored rows of pre-extracted features exist for training rows only")
    if features == PIXELS:
      rows = self._mirrored_pixels(split)
    else:
      with precision.float32():
        rows = features_lib.features_of(self.featurizer(features),
                                        data_lib.mirror(self.prepared.images[split]),
                                        self.cache_dir)
    return aligned.asarray(rows, np.dtype(self.config.dtype))

  def featurizer(self, features: str):
    """The fitted `features.Featurizer` of `features`; None for pixels."""
    self.arrays(features)
    return self._featurizers.get(features)

  def labels(self) -> dict[str, np.ndarray]:
    """y_train, y_val, y_test, the rows of `arrays` (y_train twice with `data.flip`)."""
    p = self.prepared
    y_train = np.concatenate([p.y_train, p.y_train]) if self.flip else p.y_train
    return {"train": y_train, "val": p.y_val, "test": p.y_test}

  def data(self, features: str) -> training.Data:
    """The training rows of `features` (host arrays) and validation rows (on the default
    device).

    The rows are aligned (see `lincv.aligned`), so on CPU the device arrays share
    their memory with `arrays(features)` rather than copying it.
    """
    xs, ys = self.arrays(features), self.labels()
    # Training rows stay on the host here: the population puts them on the devices, or
    # streams them in blocks, as data.placement says.
    return training.Data(xs["train"], ys["train"], *jax.device_put((xs["val"], ys["val"])))

  def split(self, features: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    return self.arrays(features)[split], self.labels()[split]

  def fingerprint(self) -> str:
    """A hash of the prepared rows and labels of every split (mirrored rows too): a run
    resumes only on the data it started on (`lincv.experiment`)."""
    p = self.prepared
    arrays = (p.x_train, p.y_train, p.x_val, p.y_val, p.x_test, p.y_test, p.x_train_flip)
    parts = [features_lib.fingerprint(a) for a in arrays if a is not None]
    return features_lib.fingerprint(np.frombuffer("|".join(parts).encode(), np.uint8))

  def describe(self) -> str:
    """One line: how many rows of each split, classes and dimensions."""
    p = self.prepared
    return (f"{len(p.y_train)} train{' (and mirrored)' if self.flip else ''}, "
            f"{len(p.y_val)} val, {len(p.y_test)} test, {p.num_classes} classes, "
            f"{p.x_train.shape[1]} dims")


def _image_features(name, prepared, cfg, cache_dir, *, flip, seed):
  """(fitted featurizer, {split: standardised features}) of image features `name`."""
  if not prepared.images or prepared.images["train"].shape[-1] != 3:
    raise config_lib.ConfigError(f"features {name!r} need RGB images; this dataset has shape "
                     f"{prepared.image_shape}")
  h, w, _ = prepared.image_shape
  pipeline = features_lib.pipeline
  side, what = ((pipeline.HOG_CELL, "one HOG cell") if name == "hog_color" else
                (pipeline.PATCH_SIZE, "one k-means patch"))
  if min(h, w) < side:
    raise config_lib.ConfigError(f"features {name!r} need images of at least {side}x{side} "
                                 f"pixels ({what}); this dataset's are {h}x{w}")
  return features_lib.compute(name, prepared, cfg, cache_dir, flip=flip, seed=seed)


def _check_feature_settings(cfg, names) -> None:
  """Raises ConfigError for `features_cfg` values the image features `names` cannot use."""
  f = cfg.features_cfg
  bounds = []
  if "hog_color" in names:
    bounds.append(("hist_bins", f.hist_bins, 1))
  if "kmeans" in names:
    bounds += [("kmeans_centroids", f.kmeans_centroids, 1),
               ("kmeans_patches", f.kmeans_patches, max(1, f.kmeans_centroids)),
               ("kmeans_iters", f.kmeans_iters, 0)]
  for field, value, low in bounds:
    if value < low:
      need = (f"at least kmeans_centroids ({low})" if field == "kmeans_patches" and low > 1
              else f">= {low}")
      raise config_lib.ConfigError(f"features_cfg.{field} must be {need}, got {value}")


def source(config) -> str:
  """What the config's data are: its features file, image folder or dataset name."""
  d = config.data
  return d.get("features") or d.folder or d.name


def check(config, members) -> None:
  """Raises ConfigError for options that need images, with pre-extracted features, and
  for feature settings (`features_cfg`) that the members' image features cannot use.

  With `data.features` the rows are used as they are (`features` stays "pixels", which
  here means the file's rows), centred and scaled per column as `lincv.data.rows` says;
  `data.flip` takes the file's `x_train_mirrored` rows (`load` checks it has them).
  """
  d = config.data
  if not d.get("features"):
    _check_feature_settings(config, {m["features"] for m in members})
    return
  if d.folder:
    raise config_lib.ConfigError("data.features and data.folder both name the data; give one")
  for m in members:
    if m["features"] != PIXELS:
      raise config_lib.ConfigError(
          f"features={m['features']!r} is computed from images; with data.features the "
          "file's rows are used as they are: use features='pixels'")
  try:
    data_lib.rows.check_options(d.center, d.scale)
  except data_lib.DataError as e:
    raise config_lib.ConfigError(f"with data.features: {e}") from None


def dataset(config):
  """The config's dataset, loaded: a `lincv.data.Dataset`, or a `FeatureDataset` with
  `data.features` (raises data_lib.DataError on bad data)."""
  d = config.data
  if d.get("features"):
    return data_lib.load(features=d.features)
  if d.folder:
    return data_lib.load(folder=d.folder, data_dir=d.data_dir or None)
  return data_lib.load(d.name, data_dir=d.data_dir or None)


def load(config, cache_dir: str | None = None, ds=None) -> Inputs:
  """Loads (unless `ds`, its `dataset`, is given) and prepares the config's dataset
  (raises data_lib.DataError on bad data, and on an empty validation split, or an empty
  test split with eval_split "test": nothing to select or evaluate on)."""
  d = config.data
  ds = dataset(config) if ds is None else ds
  options = dict(val_fraction=d.val_fraction, seed=d.split_seed, center=d.center,
                 scale=d.scale, limit=d.limit or None)
  if isinstance(ds, data_lib.FeatureDataset):
    prepared = data_lib.rows.prepare(ds, flip=bool(d.get("flip", False)),
                                     dtype=np.dtype(config.get("dtype", "float32")), **options)
  else:
    prepared = data_lib.prepare(ds, **options)
  if not len(prepared.y_val):
    n = len(prepared.y_train)
    raise data_lib.DataError(
        f"the validation split is empty: data.val_fraction={d.val_fraction} of {n} training "
        f"examples{f' (data.limit={d.limit})' if d.limit else ''} rounds to no example (a class "
        "keeps its only example for training); raise data.val_fraction or data.limit")
  if not len(prepared.y_test) and config.get("eval_split", "test") == "test":
    raise data_lib.DataError(
        f"the test split of {source(config)} is empty, and eval_split='test' evaluates the "
        "selected member on it; add test rows, or set eval_split='val'")
  return Inputs(config, prepared, cache_dir)
