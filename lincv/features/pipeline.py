"""The feature pipeline of a run, and a `Featurizer` that applies it to new images.

    featurizer, arrays = pipeline.compute("kmeans", prepared, cfg, cache_dir, seed=0)
    arrays["train"], arrays["val"], arrays["test"]  # standardised float32 (N, F)
    featurizer(images_NxHxWx3)                       # the same features of other images
    np.savez(path, **featurizer.to_arrays())         # and back: Featurizer.from_arrays

`compute` fits what the features need on the training images (the k-means model),
extracts the features of every split, caches them (`lincv.features.cache`) and
standardises them with training statistics. The returned `Featurizer` holds everything
fitted, so `featurizer(prepared.images["test"])` equals `arrays["test"]`.
"""

import dataclasses
import functools
import json
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from lincv import precision, seeds
from lincv._checks import check_name
from lincv.data import mirror, records
from lincv.features.cache import CACHE_VERSION, cached, fingerprint
from lincv.features.color import color_histogram
from lincv.features.extraction import extract, fit_standardize, standardize
from lincv.features.hog import hog
from lincv.features.kmeans import KMeansFeatures, kmeans_encode, kmeans_fit

NAMES = ("hog_color", "kmeans")
BATCH_SIZE = 250  # images per jitted call of a feature function
PATCH_SIZE = 6
HOG_CELL = 8  # pixels per side of a HOG cell
PREFIX = "featurizer_"  # of the keys of `Featurizer.to_arrays`
_MODEL_FIELDS = KMeansFeatures._fields[:4]   # the arrays; norm_eps goes in the meta


def hog_color(images_NxHxWx3, bins: int = 10) -> jax.Array:
  """HOG (8x8 cells, 9 orientations, no block norm) then a hue histogram of `bins`, (N, F)."""
  return jnp.concatenate([hog(images_NxHxWx3, cell=HOG_CELL),
                          color_histogram(images_NxHxWx3, bins)], axis=1)


@functools.lru_cache(maxsize=None)
def _hog_color(bins: int):
  """One function object per `bins`, so repeated calls reuse its compiled program."""
  return functools.partial(hog_color, bins=bins)


@dataclasses.dataclass(frozen=True, eq=False)
class Featurizer:
  """A fitted feature pipeline: uint8 images (N, H, W, 3) in, standardised float32 (N, F) out.

  Attributes:
    name: one of `NAMES`, "hog_color" or "kmeans".
    settings: the feature settings, JSON-able, as in the cache keys: "bins" for
      hog_color; "centroids", "patches", "iterations", "seed" for kmeans; "version".
    image_shape: (H, W, C) of the images it was fitted on; it takes only those.
    mean_F, scale_F: the standardisation, fitted on the training features (float32).
    model: the fitted k-means model, None for hog_color.
  """

  name: str
  settings: dict
  image_shape: tuple[int, int, int]
  mean_F: np.ndarray
  scale_F: np.ndarray
  model: KMeansFeatures | None = None

  def __post_init__(self):
    check_name("features", self.name, NAMES)
    if (self.model is None) != (self.name == "hog_color"):
      raise ValueError(f"features {self.name!r} "
                       f"{'need a k-means model' if self.model is None else 'take no model'}")

  @property
  def num_features(self) -> int:
    return int(self.mean_F.shape[0])

  def __repr__(self) -> str:
    h, w, c = self.image_shape
    return (f"Featurizer({self.name!r}, {json.dumps(self.settings, sort_keys=True)}, "
            f"images {h}x{w}x{c} -> {self.num_features} features)")

  def raw(self, images_NxHxWx3) -> np.ndarray:
    """The features before standardisation, float32 (N, F)."""
    images = self.check(images_NxHxWx3)
    if self.name == "hog_color":
      fn, args = _hog_color(int(self.settings["bins"])), ()
    else:
      fn, args = kmeans_encode, (self.model,)
    with precision.float32():  # features are float32 whatever the caller's mode
      return extract(fn, images, *args, batch_size=BATCH_SIZE)

  def __call__(self, images_NxHxWx3) -> np.ndarray:
    """Standardised features of `images` (uint8, (N, H, W, C) as fitted), float32 (N, F)."""
    return self.standardize(self.raw(images_NxHxWx3))

  def standardize(self, raw_NxF) -> np.ndarray:
    with precision.float32():
      return np.asarray(standardize(raw_NxF, self.mean_F, self.scale_F))

  def check(self, images) -> np.ndarray:
    """`images` as a NumPy array, or a one-line ValueError saying what they should be."""
    images = np.asarray(images)
    h, w, c = self.image_shape
    if images.dtype != np.uint8 or images.ndim != 4:
      raise ValueError(f"{self.name} features take uint8 images (N, {h}, {w}, {c}); got "
                       f"{images.dtype} of shape {images.shape}")
    if images.shape[1:] != tuple(self.image_shape):
      raise ValueError(f"{self.name} features were fitted on {h}x{w}x{c} images (N, {h}, "
                       f"{w}, {c}); got shape {images.shape}")
    if images.shape[0] == 0:
      raise ValueError(f"no images to compute {self.name} features of: shape {images.shape}")
    return images

  def to_arrays(self) -> dict[str, np.ndarray]:
    """Everything, as arrays to save in an .npz: keys start with `PREFIX`."""
    meta = {"name": self.name, "settings": self.settings,
            "image_shape": [int(s) for s in self.image_shape]}
    if self.model is not None:   # the patch normalisation its centroids were fitted with
      meta["norm_eps"] = float(self.model.norm_eps)
    out = {PREFIX + "meta": np.array(json.dumps(meta, sort_keys=True)),
           PREFIX + "mean_F": np.asarray(self.mean_F, np.float32),
           PREFIX + "scale_F": np.asarray(self.scale_F, np.float32)}
    if self.model is not None:
      out.update({PREFIX + f: np.asarray(getattr(self.model, f)) for f in _MODEL_FIELDS})
    return out

  @classmethod
  def from_arrays(cls, arrays: Mapping) -> "Featurizer":
    """The Featurizer `to_arrays` saved (other keys of `arrays` are ignored)."""
    for k in ("meta", "mean_F", "scale_F"):
      if PREFIX + k not in arrays:
        raise ValueError(f"no saved featurizer: {PREFIX + k!r} is missing")
    meta = json.loads(str(np.asarray(arrays[PREFIX + "meta"])))
    model = None
    if meta["name"] == "kmeans":
      missing = [f for f in _MODEL_FIELDS if PREFIX + f not in arrays]
      if missing:
        raise ValueError(f"the saved kmeans featurizer has no {PREFIX + missing[0]!r}")
      # Saved before norm_eps was: the pipeline fits at its default.
      norm_eps = float(meta.get("norm_eps", KMeansFeatures._field_defaults["norm_eps"]))
      model = KMeansFeatures(*(jnp.asarray(arrays[PREFIX + f]) for f in _MODEL_FIELDS),
                             norm_eps)
    return cls(meta["name"], meta["settings"], tuple(meta["image_shape"]),
               np.asarray(arrays[PREFIX + "mean_F"], np.float32),
               np.asarray(arrays[PREFIX + "scale_F"], np.float32), model)


def feature_settings(name: str, cfg, seed: int = 0) -> dict:
  """The feature settings of `cfg` (a config's `features_cfg`), as in the cache keys."""
  check_name("features", name, NAMES)
  if name == "hog_color":
    return {"name": name, "bins": int(cfg.hist_bins), "version": CACHE_VERSION}
  return {"name": name, "centroids": int(cfg.kmeans_centroids),
          "patches": int(cfg.kmeans_patches), "iterations": int(cfg.kmeans_iters),
          "version": CACHE_VERSION, "seed": int(seed)}


# The modules whose code computes the cached arrays: a change to any of them (a constant,
# an algorithm) changes the cache keys, so that no entry the earlier code wrote is served.
CODE_MODULES = ("lincv.features.color", "lincv.features.extraction", "lincv.features.hog",
                "lincv.features.kmeans", "lincv.features.pipeline", "lincv.data.preprocess",
                "lincv.precision", "lincv.seeds")


@functools.cache
def code_fingerprint() -> str:
  """A short hash of what computes the features besides their inputs and settings: the
  source of `CODE_MODULES` and the versions of JAX, jaxlib and NumPy (a new JAX can draw
  other random numbers from the same key, or round otherwise). Part of every cache key of
  the pipeline, beside `CACHE_VERSION`, which a change elsewhere still needs."""
  import jaxlib  # pylint: disable=import-outside-toplevel
  return records.code_fingerprint(CODE_MODULES, jax.__version__, jaxlib.__version__,
                                  np.__version__)


def _cached(fn, key, cache_dir):
  if not cache_dir:
    return np.asarray(fn())
  return cached(fn, {**key, "code": code_fingerprint()}, cache_dir)


def _fit_kmeans(train_NxHxWx3, s: dict, cache_dir) -> tuple[KMeansFeatures, np.ndarray]:
  """The k-means model of settings `s` fitted on the training images (cached), and its
  arrays flattened (mean, whitening, centroids), which identify it in cache keys."""
  key = seeds.key(s["seed"], "kmeans")

  def fit():
    model = kmeans_fit(key, train_NxHxWx3, s["centroids"], num_patches=s["patches"],
                       iterations=s["iterations"], patch_size=PATCH_SIZE)
    return np.concatenate([np.asarray(m).reshape(-1) for m in model[:3]])

  flat = _cached(fit, {"images": fingerprint(train_NxHxWx3), **s, "part": "model",
                       "prng": fingerprint(jax.random.key_data(key))}, cache_dir)
  d, k = PATCH_SIZE * PATCH_SIZE * 3, s["centroids"]
  model = KMeansFeatures(jnp.asarray(flat[:d]), jnp.asarray(flat[d:d + d * d].reshape(d, d)),
                         jnp.asarray(flat[d + d * d:].reshape(k, d)), jnp.zeros(0))
  return model, flat


def compute(name: str, prepared, cfg, cache_dir: str | None, *, flip: bool = False,
            seed: int = 0) -> tuple[Featurizer, dict[str, np.ndarray]]:
  """Features `name` of the train/val/test images, standardised with training statistics.

  hog_color: HOG (8x8 cells, 9 orientations) and a hue histogram of `cfg.hist_bins` bins;
  kmeans: Coates-Lee-Ng k-means patch features with `cfg.kmeans_centroids` centroids fitted
  on the training images, patches and initial centroids drawn from `seeds.key(seed,
  "kmeans")`. With `flip`, "train" also holds the features of the training images
  mirrored left-right, after those of the images themselves (the k-means model and the
  standardisation are still fitted as described: the model on the unmirrored images,
  the statistics on all of "train"). Cached in `cache_dir` (None: no cache) per (images,
  settings, fitted model); the standardisation is recomputed from the training features.

  Args:
    name: one of `NAMES`.
    prepared: a `lincv.data.Prepared` with uint8 RGB `images` for "train", "val", "test".
    cfg: the feature settings (a config's `features_cfg`).

  Returns:
    (the fitted `Featurizer`, {"train", "val", "test"}: standardised float32 (N, F)).
  """
  s = feature_settings(name, cfg, seed)
  images = dict(prepared.images)
  if not images or images["train"].ndim != 4 or images["train"].shape[-1] != 3:
    raise ValueError(f"features {name!r} need RGB images; this dataset has shape "
                     f"{prepared.image_shape}")
  splits = ("train", "val", "test")
  if flip:
    images["train_mirrored"] = mirror(images["train"])
    splits += ("train_mirrored",)
  with precision.float32():  # features are float32, the same in every run
    model, model_id = None, None
    if name == "kmeans":
      model, flat = _fit_kmeans(images["train"], s, cache_dir)
      model_id = fingerprint(flat)
    shape = tuple(int(v) for v in images["train"].shape[1:])
    unfitted = Featurizer(name, s, shape, np.zeros(0, np.float32), np.zeros(0, np.float32),
                          model)
    raw = {sp: _raw(unfitted, images[sp], model_id, cache_dir) for sp in splits}
    if flip:
      raw["train"] = np.concatenate([raw["train"], raw.pop("train_mirrored")])
    mean, scale = fit_standardize(raw["train"])
    featurizer = dataclasses.replace(unfitted, mean_F=mean, scale_F=scale)
    return featurizer, {sp: featurizer.standardize(v) for sp, v in raw.items()}


def _raw(featurizer, images, model_id, cache_dir) -> np.ndarray:
  """The features of `images` before standardisation, cached per (images, settings, model)."""
  # Codes depend on the model they were encoded with, not only on the images: a model
  # fitted on other training images (another val_fraction, limit or split) gives others.
  key = {"images": fingerprint(images), **featurizer.settings, "model": model_id}
  eps = None if featurizer.model is None else float(featurizer.model.norm_eps)
  if eps is not None and eps != KMeansFeatures._field_defaults["norm_eps"]:
    # A model's arrays with another patch normalisation give other codes. Named only
    # where it is not the pipeline's own, so that the entries cached before stay valid.
    key["norm_eps"] = eps
  return _cached(lambda: featurizer.raw(images), key, cache_dir)


def features_of(featurizer: Featurizer, images, cache_dir: str | None) -> np.ndarray:
  """`featurizer(images)`, its raw features cached in `cache_dir` (None: no cache) as
  `compute` caches those of the splits it was fitted with: the same values."""
  model_id = None
  if featurizer.model is not None:
    model_id = fingerprint(np.concatenate(
        [np.asarray(m).reshape(-1) for m in featurizer.model[:3]]))
  with precision.float32():
    return featurizer.standardize(_raw(featurizer, featurizer.check(images), model_id,
                                       cache_dir))


def image_features(name: str, prepared, cfg, cache_dir: str | None, *, flip: bool = False,
                   seed: int = 0) -> dict[str, np.ndarray]:
  """The arrays of `compute` alone: {"train", "val", "test"}, standardised float32 (N, F)."""
  return compute(name, prepared, cfg, cache_dir, flip=flip, seed=seed)[1]
