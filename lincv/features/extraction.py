"""Applying a feature function to many images, and standardising its output.

`extract` runs a feature function over a large image array in fixed-size jitted
batches, so memory stays bounded; `fit_standardize` / `standardize` centre and scale
features with training statistics.
"""

import functools
from collections.abc import Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np

from lincv._checks import check_count, check_hparam, wide_ints_as_float32


def extract(fn: Callable[..., jax.Array], images, *args, batch_size: int = 256) -> np.ndarray:
  """`fn(*args, batch)` over `images` in jitted batches of `batch_size`; float32 NumPy (N, F).

  The last batch is padded to full size, so `fn` compiles once; only one batch of
  inputs and outputs is on the device at a time. Arrays in `args` (e.g. a fitted
  model) are passed as arguments, not baked into the program:

    hog_NxF = extract(hog, images)
    codes_NxF = extract(kmeans_encode, images, model)

  Inside the jitted batches a feature function sees no values, so the checks it makes of
  concrete images (`kmeans_encode` refuses images in the 0-1 scale) are made here, once,
  on all of `images`: a function (or a `functools.partial` of one) with a `check_images`
  attribute has it called with them first.
  """
  batch_size = check_count("batch_size", batch_size)   # True was a batch of 1
  # int64 images as float32 on the host: jit would wrap them to 32 bits.
  images = wide_ints_as_float32(np.asarray(images))
  n = images.shape[0] if images.ndim else 0
  if n == 0:
    raise ValueError(f"no images to extract features from: shape {images.shape}")
  base = fn
  while isinstance(base, functools.partial):
    base = base.func
  check_images = getattr(base, "check_images", None)
  if check_images is not None:
    # Under jit the function skipped them: kmeans codes of 0-1 images came back silently.
    check_images(images)
  batch_size = min(batch_size, n)
  f = jax.jit(fn)
  out = None
  for start in range(0, n, batch_size):
    batch = images[start:start + batch_size]
    m = batch.shape[0]
    if m < batch_size:
      batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - m, axis=0)])
    rows = np.asarray(f(*args, batch))[:m]
    if out is None:
      out = np.empty((n,) + rows.shape[1:], np.float32)
    out[start:start + m] = rows
  return out


def fit_standardize(features_NxF, eps: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
  """Training statistics `(mean (F,), scale (F,))`, `scale = sqrt(var + eps)`.

  eps, a finite number > 0, keeps constant features finite (the authors' code uses
  var + 0.01); features must be finite.
  """
  # At eps = 0 a constant feature had scale 0, and standardize made it 0 / 0 = NaN.
  check_hparam("eps", eps, "a finite number > 0 (added to each feature's variance)",
               lambda v: 0 < v < np.inf)
  x = np.asarray(features_NxF)
  if x.ndim != 2 or x.shape[0] < 1:
    raise ValueError(f"features must have shape (N, F) with N >= 1, got {x.shape}")
  step = 4096  # rows at a time, accumulated in float64
  mean = sum(x[i:i + step].sum(axis=0, dtype=np.float64)
             for i in range(0, len(x), step)) / len(x)
  if not np.isfinite(mean).all():
    raise ValueError(f"feature {int(np.argmin(np.isfinite(mean)))} holds a NaN or infinite "
                     "value (or sums past float64's range); features must be finite")
  sq = sum(np.square(x[i:i + step] - mean).sum(axis=0) for i in range(0, len(x), step))
  return mean.astype(np.float32), np.sqrt(sq / len(x) + eps).astype(np.float32)


def standardize(features_NxF, mean_F, scale_F) -> jax.Array:
  """`(x - mean) / scale` with statistics from `fit_standardize` on the training split."""
  x = jnp.asarray(features_NxF)
  chex.assert_rank(x, 2, custom_message="features_NxF must be rows (N, F)")
  chex.assert_shape([mean_F, scale_F], (x.shape[1],),
                    custom_message=f"inputs 0, 1: mean_F, scale_F (F,) for the {x.shape[1]} "
                    "columns of features_NxF")
  if not isinstance(scale_F, jax.core.Tracer):
    # A scale of 0 made that feature inf (or NaN) in every row.
    scale = np.asarray(scale_F)
    bad = np.flatnonzero(~(np.isfinite(scale) & (scale > 0)))
    if bad.size:
      raise ValueError(f"scale_F[{bad[0]}] is {scale[bad[0]]!r}; every scale must be a "
                       "finite number > 0 (fit_standardize's are)")
  if not isinstance(mean_F, jax.core.Tracer):
    # A NaN or infinite mean made that feature NaN or -inf in every row, as a scale of 0 did.
    mean = np.asarray(mean_F)
    bad = np.flatnonzero(~np.isfinite(mean))
    if bad.size:
      raise ValueError(f"mean_F[{bad[0]}] is {mean[bad[0]]!r}; every mean must be finite "
                       "(fit_standardize's are)")
  return (x - jnp.asarray(mean_F)[None, :]) / jnp.asarray(scale_F)[None, :]
