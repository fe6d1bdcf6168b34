"""Pre-extracted feature rows, prepared like images: split, centred and scaled on train.

    ds = lincv.data.load(features="feats.npz")
    data = lincv.data.prepare(ds, val_fraction=0.1, seed=0, center="image", scale="std")

`prepare` (reached through `lincv.data.prepare`) splits validation from the training rows
with the same indices an image dataset of the same labels gets (`split_indices`), and
applies a `RowPreprocessor` fitted on the training part: a row's columns play the part of
an image's pixels, so center="image" subtracts the mean training row and scale="std"
divides each column by its standard deviation on train (standardisation). center="channel"
and the bias trick are for images only.

With `flip` (`data.flip`), the training part is followed by the file's `x_train_mirrored`
rows of the same indices, in that order, as an image run appends its mirrored images
(`Prepared.x_train_flip`); the statistics are fitted on both. Validation and test rows are
never mirrored.

Rows are read a chunk at a time and written once into a float32 array per split (the
training part and its mirrored rows into one), so a memory-mapped float16 file costs one
float32 copy of the rows a run uses, no more. With `dtype=float64` (a run's
`config.dtype`), the arrays, the statistics and the arithmetic are float64: float64 rows
keep their digits.
"""

import dataclasses
import warnings

import numpy as np

from lincv import aligned
from lincv.data.dataset import DataError
from lincv.data.feature_files import FeatureDataset, chunk_rows
from lincv.data.preprocess import _CONSTANT, Prepared, split_indices

CENTERS = ("image", "none")
SAMPLE = 4096   # float64 training rows `_warn_collapsed` reads
SCALES = ("none", "std")


@dataclasses.dataclass(frozen=True, eq=False)
class RowPreprocessor:
  """Fitted row preprocessing: `pre(rows_NxD) -> (rows - mean_D) / std_D`, in the dtype of
  its statistics (float32, or float64 where fitted so).

  Attributes:
    center: "image" (subtract the mean training row) or "none".
    scale: "none" or "std" (divide each centred column by its training standard deviation).
    mean_D, std_D: float32 or float64 (D,); zeros and ones where they do nothing.
  """

  center: str
  scale: str
  mean_D: np.ndarray
  std_D: np.ndarray
  bias_trick: bool = False
  image_shape: tuple = ()

  @classmethod
  def fit(cls, x_NxD, center: str = "image", scale: str = "none",
          dtype=np.float32) -> "RowPreprocessor":
    """Fits the statistics on training rows (accumulated in float64, a chunk at a time),
    to apply in `dtype`."""
    check_options(center, scale)
    n, d = x_NxD.shape
    if n == 0:
      raise DataError("cannot fit preprocessing statistics on 0 training rows")
    step = chunk_rows(x_NxD)
    total_D = np.zeros(d, np.float64)
    for i in range(0, n, step):
      total_D += x_NxD[i:i + step].sum(axis=0, dtype=np.float64)
    if not np.isfinite(total_D).all():
      # The column's statistics were NaN, and applying them raised a misleading error
      # about float32's range.
      raise DataError(f"column {int(np.argmin(np.isfinite(total_D)))} of the training rows "
                      "holds a NaN or infinite value; rows must be finite")
    mean_D = total_D / n if center == "image" else np.zeros(d, np.float64)
    std_D = np.ones(d, np.float64)
    if scale == "std":
      sq_D = np.zeros(d, np.float64)
      mean = mean_D.astype(dtype)      # the centred rows as `apply_` computes them
      for i in range(0, n, step):
        with np.errstate(over="ignore", invalid="ignore"):  # `apply_` says so, in one line
          r = np.asarray(x_NxD[i:i + step], dtype) - mean
        sq_D += np.einsum("nd,nd->d", r, r, dtype=np.float64)
      std_D = np.sqrt(sq_D / n)
      # A column is constant where its spread is within the dtype's rounding of its level
      # (the centred values are then rounding), or exactly 0; a small spread around a
      # small level is signal and is scaled like any other.
      rounding = _CONSTANT * float(np.finfo(dtype).eps / np.finfo(np.float32).eps)
      constant = (std_D == 0) | (std_D <= rounding * np.abs(mean_D))
      std_D = np.where(constant, 1.0, std_D)
    return cls(center, scale, mean_D.astype(dtype), std_D.astype(dtype))

  @property
  def dim(self) -> int:
    return int(self.mean_D.shape[0])

  def __repr__(self) -> str:
    return (f"RowPreprocessor(center={self.center!r}, scale={self.scale!r}, "
            f"dim={self.dim})")

  def __call__(self, rows_NxD, index=None, name: str = "") -> np.ndarray:
    """The preprocessed rows (of `rows_NxD[index]`, if given) as a new array of the
    statistics' dtype; `name` (e.g. "x_test") names them in an error."""
    rows_NxD = rows_NxD if isinstance(rows_NxD, np.ndarray) else np.asarray(rows_NxD)
    if rows_NxD.ndim != 2 or rows_NxD.shape[1] != self.dim:
      raise ValueError(f"rows must have shape (N, {self.dim}), got {rows_NxD.shape}")
    where = lambda p: f"{name + ' ' if name else ''}row {p if index is None else index[p]}"
    return self.apply_(gather(rows_NxD, index, dtype=self.mean_D.dtype), where)

  def apply_(self, x_NxD: np.ndarray, where=None) -> np.ndarray:
    """Preprocesses rows of the statistics' dtype in place; returns them.

    Raises:
      DataError: a preprocessed value beyond the dtype's range (finite rows near its edge,
        less a training mean of the other sign): one line naming the row (`where(i)`
        names row i of `x_NxD` in the file it came from) and the column.
    """
    dtype = self.mean_D.dtype
    inv_std_D = (1.0 / self.std_D).astype(dtype)
    step = chunk_rows(x_NxD)
    for i in range(0, len(x_NxD), step):
      part = x_NxD[i:i + step]
      with np.errstate(over="ignore", invalid="ignore"):
        if self.center != "none":
          part -= self.mean_D
        if self.scale != "none":
          part *= inv_std_D
      if self.center != "none" and not np.isfinite(part).all():
        r, c = np.argwhere(~np.isfinite(part))[0]
        row = where(int(i + r)) if where else f"row {i + r}"
        raise DataError(
            f"preprocessing the rows (data.center={self.center!r}, data.scale="
            f"{self.scale!r}) left {row}, column {c} beyond {dtype.name}'s range (the "
            f"training mean of the column is {self.mean_D[c]:.3g}): the rows hold values "
            f"too large for {dtype.name} arithmetic; scale them down before saving them")
    return x_NxD


def _warn_collapsed(ds, x_NxD, index) -> None:
  """Warns if float64 rows have columns that vary only within float32's rounding of
  their level: lincv keeps rows in float32, where those columns are constant (values
  1 + 1e-9 noise trained at chance, silently)."""
  index = index[:SAMPLE]    # a column that rounding makes constant does so in any sample
  step = chunk_rows(x_NxD)
  n, d = len(index), x_NxD.shape[1]
  total, sq = np.zeros(d), np.zeros(d)
  for i in range(0, n, step):
    total += np.asarray(x_NxD[index[i:i + step]], np.float64).sum(axis=0)
  mean = total / max(n, 1)
  for i in range(0, n, step):
    sq += np.square(np.asarray(x_NxD[index[i:i + step]], np.float64) - mean).sum(axis=0)
  std = np.sqrt(sq / max(n, 1))
  lost = np.flatnonzero((std > 0) & (std <= _CONSTANT * np.abs(mean)))
  if lost.size:
    c = int(lost[0])
    warnings.warn(
        f"features {ds.path or ds.name}: {lost.size} of {d} float64 columns vary only within "
        f"float32's rounding of their level (column {c}: mean {mean[c]:.6g}, standard "
        f"deviation {std[c]:.3g}); a float32 run keeps rows in float32, where they are "
        "constant: subtract each column's mean in float64 before saving the rows, or run "
        "in float64 (--config.dtype=float64)", UserWarning,
        stacklevel=3)


def check_options(center: str, scale: str, bias_trick: bool = False) -> None:
  """Raises DataError for preprocessing that applies to images only."""
  if center not in CENTERS:
    raise DataError(f"center {center!r} is for images; features take center 'image' (subtract "
                    "the mean training row) or 'none'")
  if scale not in SCALES:
    raise DataError(f"unknown scale {scale!r}; valid: {', '.join(SCALES)}")
  if scale == "std" and center == "none":
    raise DataError('scale="std" needs centering; use center="image"')
  if bias_trick:
    raise DataError("the bias trick is for images; a linear classifier on features has its "
                    "own bias")


def gather(x_NxD, index=None, out=None, dtype=np.float32) -> np.ndarray:
  """`x_NxD[index]` (all rows if None) as one aligned array of `dtype`, read a chunk at a
  time (into `out`, rows of that shape, if given)."""
  n = len(x_NxD) if index is None else len(index)
  if out is None:
    out = aligned.empty((n, x_NxD.shape[1]), dtype)
  step = chunk_rows(out)
  for i in range(0, n, step):
    out[i:i + step] = x_NxD[i:i + step] if index is None else x_NxD[index[i:i + step]]
  return out


def prepare(ds: FeatureDataset, *, val_fraction: float = 0.1, seed: int = 0,
            center: str = "image", scale: str = "none", bias_trick: bool = False,
            limit: int | None = None, flip: bool = False, dtype=np.float32) -> Prepared:
  """Splits feature rows into train/validation/test and preprocesses them with training
  statistics; the same subsets and split as `lincv.data.prepare` gives images.

  Args:
    flip: also train on the file's mirrored rows (`ds.mirrored`) of the training part,
      after its rows; DataError if the file has none.
    dtype: float32, or float64 (a float64 run's): the rows, statistics and arithmetic.

  Returns:
    Prepared, with `image_shape` () and no `images`; its `preprocessor` is the fitted
    `RowPreprocessor`; with `flip`, its `x_train_flip` holds the training rows and then
    their mirrored rows.
  """
  check_options(center, scale, bias_trick)
  if flip and ds.mirrored is None:
    raise DataError(f"features {ds.path or ds.name}: data.flip needs x_train_mirrored (the "
                    "training rows of the images mirrored), which this file does not have; "
                    "export one with --mode features --config.data.flip=True")
  x, labels = ds["train"]
  x_test, test_labels = ds["test"]
  keep, keep_test, train_idx, val_idx = split_indices(labels, test_labels, val_fraction,
                                                      seed, limit, ds.class_names)
  if keep is not None:  # index the file's rows
    train_idx, val_idx, test_labels = keep[train_idx], keep[val_idx], test_labels[keep_test]
  n = len(train_idx)
  dtype = np.dtype(dtype)
  if dtype not in (np.float32, np.float64):
    raise DataError(f"feature rows are prepared in float32 or float64, got dtype {dtype}")
  if x.dtype.itemsize > dtype.itemsize:
    _warn_collapsed(ds, x, train_idx)
  x_flip = aligned.empty((2 * n if flip else n, x.shape[1]), dtype)
  gather(x, train_idx, x_flip[:n])
  if flip:
    gather(ds.mirrored, train_idx, x_flip[n:])
  pre = RowPreprocessor.fit(x_flip, center=center, scale=scale, dtype=dtype)
  pre.apply_(x_flip, lambda p: (f"x_train row {train_idx[p]}" if p < n else
                                f"x_train_mirrored row {train_idx[p - n]}"))
  return Prepared(
      x_train=x_flip[:n] if flip else x_flip, y_train=labels[train_idx],
      x_val=pre(x, val_idx, "x_train"), y_val=labels[val_idx],
      x_test=pre(x_test, keep_test, "x_test"), y_test=test_labels,
      class_names=ds.class_names, image_shape=(), preprocessor=pre,
      x_train_flip=x_flip if flip else None)
