"""From uint8 images to float32 rows: scaling, centering, flattening, the bias trick.

  x = (images / 255 - mean) / std,  flattened to rows of D = H * W * C values,
  with a column of ones appended when bias_trick=True (then D + 1 columns).

`mean` and `std` are fitted on training images only and reused unchanged on
validation and test images. All work is in float32, a few thousand rows at a time, so
CIFAR-10's 50,000 x 3,072 training matrix costs its own 600 MB and little more.

Rows are allocated on 64-byte boundaries (`lincv.aligned`): JAX's CPU backend then
takes them as they are, `jax.device_put(x)` aliasing the NumPy buffer where an unaligned
array would be copied, so a run on CPU holds its rows once.
"""

import dataclasses
import warnings
from collections.abc import Mapping

import numpy as np

from lincv import aligned, seeds
from lincv.data import splits as splits_lib
from lincv.data.dataset import DataError, Dataset

CENTERS = ("image", "channel", "none")
SCALES = ("none", "std")

_CHUNK = 4096  # rows per step when fitting and transforming
_CONSTANT = 2 * float(np.finfo(np.float32).eps)   # a spread this much of the level is rounding
def _check_images(images, what="images") -> np.ndarray:
  images = np.asarray(images)
  if images.dtype != np.uint8 or images.ndim != 4:
    raise DataError(
        f"{what} must be uint8 (N, H, W, C), got {images.dtype} with shape {images.shape}")
  return images


def _range(counts) -> str:
  lo, hi = int(np.min(counts)), int(np.max(counts))
  return f"{lo}" if lo == hi else f"{lo} to {hi}"


def _shape(a) -> str:
  """`float32(1000, 64)`: an array's dtype and shape, not its values."""
  a = np.asarray(a)
  return f"{a.dtype}({', '.join(str(n) for n in a.shape)}{',' if a.ndim == 1 else ''})"


def mirror(images_NxHxWxC) -> np.ndarray:
  """The images mirrored left-right, (N, H, W, C)."""
  images = np.asarray(images_NxHxWxC)
  if images.ndim != 4:   # one (H, W, C) image had its channels reversed instead
    raise ValueError(f"mirror takes images (N, H, W, C), got shape {images.shape}"
                     + ("; a single image needs a batch axis, image[None]"
                        if images.ndim == 3 else ""))
  return np.ascontiguousarray(images[:, :, ::-1])


@dataclasses.dataclass(frozen=True, eq=False)
class Preprocessor:
  """Fitted preprocessing: `pre(images_NxHxWxC) -> x_NxD` float32 rows.

  Build it with `Preprocessor.fit(train_images, ...)`. Attributes:
    image_shape: (H, W, C) of the images it accepts.
    center: "image" (subtract the mean training image), "channel" (subtract the
      per-channel mean) or "none".
    scale: "none" or "std" (divide by the per-channel standard deviation of the
      centered training values, so each channel has unit variance on train).
    bias_trick: append a column of ones, so a bias folds into the weights.
    mean_D: float32 (D,), the value subtracted from each row scaled to [0, 1].
    std_D: float32 (D,), the value each centered row is divided by (ones if scale="none").
  """

  image_shape: tuple[int, int, int]
  center: str
  scale: str
  bias_trick: bool
  mean_D: np.ndarray
  std_D: np.ndarray

  @classmethod
  def fit(cls, images_uint8, center: str = "image", scale: str = "none",
          bias_trick: bool = False) -> "Preprocessor":
    """Fits the statistics on training images (N, H, W, C) uint8; returns the Preprocessor.

    Means and variances are accumulated in float64 over chunks of rows, then stored in
    float32.

    Raises:
      DataError: images that are not uint8 (N, H, W, C) with N >= 1, or an unknown
        center/scale, or scale="std" without centering.
    """
    if center not in CENTERS:
      raise DataError(f"unknown center {center!r}; valid: {', '.join(CENTERS)}")
    if scale not in SCALES:
      raise DataError(f"unknown scale {scale!r}; valid: {', '.join(SCALES)}")
    if scale == "std" and center == "none":
      raise DataError('scale="std" needs centering; use center="channel" or center="image"')
    images = _check_images(images_uint8, "training images")
    n, h, w, c = images.shape
    if n == 0:
      raise DataError("cannot fit preprocessing statistics on 0 training images")
    d = h * w * c
    rows = images.reshape(n, d)

    sum_D = np.zeros(d, np.float64)
    for i in range(0, n, _CHUNK):
      sum_D += rows[i:i + _CHUNK].sum(axis=0, dtype=np.float64)
    pixel_mean_D = sum_D / (255.0 * n)
    if center == "image":
      mean_D = pixel_mean_D
    elif center == "channel":
      mean_D = np.tile(pixel_mean_D.reshape(h * w, c).mean(axis=0), h * w)
    else:
      mean_D = np.zeros(d, np.float64)

    std_D = np.ones(d, np.float64)
    if scale == "std":
      sq_C = np.zeros(c, np.float64)
      mean_f32 = mean_D.astype(np.float32)
      for i in range(0, n, _CHUNK):
        r = rows[i:i + _CHUNK].astype(np.float32) * np.float32(1 / 255) - mean_f32
        sq_C += np.einsum("nd,nd->d", r, r, dtype=np.float64).reshape(h * w, c).sum(axis=0)
      std_C = np.sqrt(sq_C / (n * h * w))
      # Constant where the spread is within float32 rounding of the channel's level, as
      # for feature rows (`lincv.data.rows`).
      level_C = np.abs(pixel_mean_D.reshape(h * w, c)).max(axis=0)
      constant = (std_C == 0) | (std_C <= _CONSTANT * level_C)
      std_D = np.tile(np.where(constant, 1.0, std_C), h * w)

    return cls(image_shape=(h, w, c), center=center, scale=scale, bias_trick=bool(bias_trick),
               mean_D=mean_D.astype(np.float32), std_D=std_D.astype(np.float32))

  def __repr__(self) -> str:
    return (f"Preprocessor(image_shape={tuple(self.image_shape)}, center={self.center!r}, "
            f"scale={self.scale!r}, bias_trick={self.bias_trick}, mean_D={_shape(self.mean_D)}, "
            f"std_D={_shape(self.std_D)})")

  @property
  def dim(self) -> int:
    """Number of output columns: H * W * C, plus one with the bias trick."""
    h, w, c = self.image_shape
    return h * w * c + int(self.bias_trick)

  def __call__(self, images) -> np.ndarray:
    """Transforms uint8 images (N, H, W, C) into float32 rows (N, D)."""
    images = _check_images(images)
    if images.shape[1:] != tuple(self.image_shape):
      raise DataError(
          f"images have shape {images.shape[1:]}, this Preprocessor was fitted on "
          f"{tuple(self.image_shape)}")
    n = images.shape[0]
    d = self.mean_D.shape[0]
    rows = images.reshape(n, d)
    x_NxD = aligned.empty((n, self.dim), np.float32)
    inv_std_D = (1.0 / self.std_D).astype(np.float32) if self.scale == "std" else None
    for i in range(0, n, _CHUNK):
      out = x_NxD[i:i + _CHUNK, :d]
      np.multiply(rows[i:i + _CHUNK], np.float32(1 / 255), out=out, dtype=np.float32)
      out -= self.mean_D
      if inv_std_D is not None:
        out *= inv_std_D
    if self.bias_trick:
      x_NxD[:, d] = 1.0
    return x_NxD


def split_indices(labels, test_labels, val_fraction: float, seed: int, limit: int | None,
                  class_names=None):
  """The examples `prepare` keeps and how it splits them: (keep, keep_test, train_idx,
  val_idx).

  With `limit` below the number of training examples, `keep` and `keep_test` are the
  stratified subsets of train and test (else None, keeping all); train_idx and val_idx
  index the kept training examples. Images and pre-extracted features split alike.

  Warns when the training part lacks a class of `class_names` (a `limit` below the number
  of classes, or a Dataset whose train split has none of it): the classifier never learns
  that class. Warns too when the validation split is not empty
  but lacks a class that training has: the validation accuracy that selects a member
  then does not measure that class.
  """
  keep = keep_test = None
  if limit is not None:
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
      raise DataError(f"limit must be a positive integer or None, got {limit!r}")
    if limit < len(labels):
      n_test = max(1, int(round(len(test_labels) * limit / len(labels)))) if len(test_labels) else 0
      keep = splits_lib.stratified_subset(labels, int(limit), seeds.integer(seed, "subset"))
      keep_test = splits_lib.stratified_subset(test_labels, n_test,
                                               seeds.integer(seed, "test_subset"))
      labels = labels[keep]
  train_idx, val_idx = splits_lib.train_val_split(labels, val_fraction,
                                                   seeds.integer(seed, "split"))
  name = lambda k: f"{k} ({class_names[k]!r})" if class_names is not None else f"{k}"
  listed = lambda ks: ", ".join(name(int(k)) for k in ks[:5]) + (" ..." if ks.size > 5 else "")
  if class_names is not None and len(train_idx):
    unseen = np.setdiff1d(np.arange(len(class_names)), labels[train_idx])
    if unseen.size:
      shown = listed(unseen)
      cause = (f": data.limit={limit} keeps {len(labels)} examples of {len(class_names)} "
               f"classes; raise data.limit to at least {len(class_names)}"
               if keep is not None else "")
      warnings.warn(
          f"lincv: the training part has no example of {unseen.size} of the "
          f"{len(class_names)} classes: {shown}; the classifier never learns "
          f"{'them' if unseen.size > 1 else 'it'}{cause}", UserWarning, stacklevel=3)
  missing = np.setdiff1d(labels[train_idx], labels[val_idx])
  if len(val_idx) and missing.size:
    shown = listed(missing)
    counts = np.bincount(labels, minlength=int(missing.max()) + 1)[missing]
    warnings.warn(
        f"lincv: the validation split ({len(val_idx)} of {len(labels)} training examples, "
        f"val_fraction={val_fraction}) has no example of {missing.size} class"
        f"{'es' * (missing.size > 1)} of {len(np.unique(labels))}: {shown}, of "
        f"{_range(counts)} example{'s' * (int(counts.max()) > 1)}"
        f"{' each' * (missing.size > 1)}; the validation accuracy "
        "that selects the best member does not measure "
        f"{'them' if missing.size > 1 else 'it'}: raise val_fraction (data.val_fraction)",
        UserWarning, stacklevel=3)
  return keep, keep_test, train_idx, val_idx


@dataclasses.dataclass(frozen=True, eq=False)
class Prepared:
  """Float32 rows ready for training, from `prepare`.

  x_* are float32 (N, D) rows, y_* int32 (N,) labels; validation comes from the `train`
  split, test from `test`. `preprocessor` holds the statistics fitted on x_train's images.
  `images` maps "train", "val" and "test" to the uint8 images behind those rows, for
  feature extractors that work on images. `x_train_flip`, for feature rows prepared with
  `flip` only (else None): x_train's rows and then the same images' rows mirrored, (2N, D),
  one array whose first N rows x_train is a view of.
  """

  x_train: np.ndarray
  y_train: np.ndarray
  x_val: np.ndarray
  y_val: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  class_names: tuple[str, ...]
  image_shape: tuple[int, int, int]
  preprocessor: Preprocessor
  images: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
  x_train_flip: np.ndarray | None = None

  @property
  def num_classes(self) -> int:
    """Number of classes C."""
    return len(self.class_names)

  def __repr__(self) -> str:
    arrays = ", ".join(f"{f}={_shape(getattr(self, f))}" for f in
                       ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"))
    images = ", ".join(f"{k}={_shape(v)}" for k, v in self.images.items())
    return (f"Prepared({arrays}, num_classes={self.num_classes}, "
            f"image_shape={tuple(self.image_shape)}, images={{{images}}}, "
            f"preprocessor={self.preprocessor!r})")


def _warn_unread_splits(ds) -> None:
  """Warns of the dataset's splits that `prepare` does not read: a validation split of the
  user's own would otherwise be dropped without a word, the selection made on rows split
  from train instead (as a features file's extra arrays are warned of)."""
  unread = sorted(set(ds.splits) - {"train", "test"})
  if unread:
    names = ", ".join(map(repr, unread))
    warnings.warn(
        f"lincv: dataset {ds.name!r}: split{'s' * (len(unread) > 1)} {names} not read: "
        "prepare reads 'train' and 'test' only, and splits the validation rows from "
        "'train' (val_fraction)", UserWarning, stacklevel=3)


def prepare(ds: Dataset, *, val_fraction: float = 0.1, seed: int = 0, center: str = "image",
            scale: str = "none", bias_trick: bool = False, limit: int | None = None) -> Prepared:
  """Splits `ds` into train/validation/test and preprocesses all three with train statistics.

  Steps: optionally cap `train` to `limit` examples and `test` to the same share of its
  size (both stratified); split `train` into train and validation with
  `train_val_split(labels, val_fraction, seeds.integer(seed, "split"))`; fit a
  `Preprocessor` on the training part only; transform all three parts. The subsets and
  the split draw from their own streams of `seed` ("subset", "test_subset", "split",
  see `lincv.seeds`).

  Args:
    ds: a Dataset with "train" and "test" splits, e.g. from `lincv.data.load`; or a
      `FeatureDataset` of pre-extracted rows, prepared by `lincv.data.rows.prepare`.
    val_fraction: share of `train` held out for validation, in [0, 1).
    seed: the root seed of the subsets and of the validation split.
    center, scale, bias_trick: see `Preprocessor.fit`.
    limit: if given, at most this many `train` examples (before the validation split),
      for smoke runs.

  Returns:
    Prepared.
  """
  if "test" not in ds.splits:
    raise DataError(f"dataset {ds.name!r} has no 'test' split; splits: {sorted(ds.splits)}")
  if not isinstance(ds, Dataset):
    from lincv.data import rows  # pylint: disable=import-outside-toplevel
    return rows.prepare(ds, val_fraction=val_fraction, seed=seed, center=center, scale=scale,
                        bias_trick=bias_trick, limit=limit)
  _warn_unread_splits(ds)
  images, labels = ds["train"]
  test_images, test_labels = ds["test"]
  keep, keep_test, train_idx, val_idx = split_indices(labels, test_labels, val_fraction,
                                                      seed, limit, ds.class_names)
  if keep is not None:
    images, labels = images[keep], labels[keep]
    test_images, test_labels = test_images[keep_test], test_labels[keep_test]
  train_images = images[train_idx]
  pre = Preprocessor.fit(train_images, center=center, scale=scale, bias_trick=bias_trick)
  return Prepared(
      x_train=pre(train_images), y_train=labels[train_idx],
      x_val=pre(images[val_idx]), y_val=labels[val_idx],
      x_test=pre(test_images), y_test=test_labels,
      class_names=ds.class_names, image_shape=ds.image_shape, preprocessor=pre,
      images={"train": train_images, "val": images[val_idx], "test": test_images})
