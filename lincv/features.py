"""Image features: a hue histogram, HOG, and k-means patch features (Coates, Lee and Ng, 2011).

Every feature function takes a batch of RGB images (N, H, W, 3), uint8 or float in the
0-255 scale, is pure and jittable, and returns float32 rows (N, F). `extract` applies
one to a large image array in fixed-size jitted batches, so memory stays bounded.
`fit_standardize` / `standardize` centre and scale features with training statistics,
and `cached` stores an expensive result on disk under a key of everything it depends on
(`CACHE_VERSION`, the images, the settings, and the fitted model it was computed with).

k-means patch features, as in the paper's pipeline:

  1. `sample_patches`: random s x s patches (s = 6) of the training images, as rows of
     s*s*3 pixels in (row, column, channel) order.
  2. `normalize_patches`: per patch, x = (p - mean(p)) / sqrt(var(p) + 10)  (0-255 scale).
  3. `fit_zca`: ZCA whitening of the normalised patches, z = (x - mu) W with
     W = V diag(1 / sqrt(lambda + 0.1)) V^T from the eigendecomposition of their covariance.
  4. `kmeans`: Lloyd's algorithm on the whitened patches, in JAX.
  5. `kmeans_encode`: every patch at stride 1 (27 x 27 of them in a 32 x 32 image) is
     normalised and whitened, its distances z_k = |z - c_k| to the K centroids give the
     triangle code f_k = max(0, mean_j(z_j) - z_k), and the codes are summed over the four
     quadrants of the image: 4 K features.

In step 5 the whitening is folded into the centroids (z . c_k = x (W c_k) - mu W c_k),
the mean over centroids and the quadrant sums are matrix products too, so the work is
two products per image, x (W C^T) and x W (for |z|^2), plus elementwise passes.
"""

import functools
import hashlib
import json
import os
import warnings
from collections.abc import Callable, Mapping
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from lincv import checkpoint
from lincv._checks import check_name

GRAY_WEIGHTS = (0.299, 0.587, 0.114)
# Part of every cache key of lincv's features: raise it when a feature function gives
# other numbers for the same inputs and settings (a new algorithm, another random stream).
CACHE_VERSION = 2
BLOCK_NORMS = ("none", "l2-hys")


def _rgb(images) -> jax.Array:
  """Images as float32 (N, H, W, 3), after checking their rank and channels."""
  images = jnp.asarray(images)
  chex.assert_rank(images, 4)
  if images.shape[-1] != 3:
    raise ValueError(f"images must be RGB (N, H, W, 3), got shape {images.shape}")
  return images.astype(jnp.float32)


# --------------------------------------------------------------------------- colour


def hue(images_NxHxWx3) -> jax.Array:
  """Hue of every pixel in [0, 1), as in HSV (`colorsys.rgb_to_hsv`), (N, H, W).

  With M = max(r, g, b), m = min(r, g, b), c = M - m:

    h = ((g - b) / c mod 6) / 6   if M = r
        ((b - r) / c + 2) / 6     if M = g
        ((r - g) / c + 4) / 6     if M = b

  and h = 0 for grey pixels (c = 0). Hue does not depend on the intensity scale.
  """
  x = _rgb(images_NxHxWx3)
  r, g, b = x[..., 0], x[..., 1], x[..., 2]
  top = jnp.max(x, axis=-1)
  c = top - jnp.min(x, axis=-1)
  safe_c = jnp.where(c > 0, c, 1.0)
  h = jnp.where(top == r, jnp.mod((g - b) / safe_c, 6.0),
                jnp.where(top == g, (b - r) / safe_c + 2.0, (r - g) / safe_c + 4.0))
  h = jnp.where(c > 0, h / 6.0, 0.0)
  return jnp.where(h >= 1.0, h - 1.0, h)


def color_histogram(images_NxHxWx3, bins: int = 10) -> jax.Array:
  """Fraction of each image's pixels in each of `bins` equal hue bins over [0, 1), (N, bins).

  Bin b holds hues in [b / bins, (b + 1) / bins); grey pixels have hue 0 (bin 0), as in
  `colorsys` and `matplotlib.colors.rgb_to_hsv`. Each row sums to 1; a pure-red image
  puts all its mass in bin 0.
  """
  if not isinstance(bins, int) or bins < 1:
    raise ValueError(f"bins must be a positive integer, got {bins!r}")
  h_NxHxW = hue(images_NxHxWx3)
  n = h_NxHxW.shape[0]
  idx = jnp.clip(jnp.floor(h_NxHxW * bins).astype(jnp.int32), 0, bins - 1).reshape(n, -1)
  counts_NxB = jnp.sum(idx[:, :, None] == jnp.arange(bins)[None, None, :], axis=1)
  return counts_NxB.astype(jnp.float32) / idx.shape[1]


# --------------------------------------------------------------------------- HOG


def grayscale(images_NxHxWx3) -> jax.Array:
  """Luma `0.299 r + 0.587 g + 0.114 b`, (N, H, W), in the scale of the input."""
  x = _rgb(images_NxHxWx3)
  return jnp.einsum("nhwc,c->nhw", x, jnp.asarray(GRAY_WEIGHTS, jnp.float32))


def gradients(gray_NxHxW) -> tuple[jax.Array, jax.Array]:
  """Centred differences (gx, gy) = ((I[y, x+1] - I[y, x-1]) / 2, (I[y+1, x] - I[y-1, x]) / 2).

  x runs along columns and y down the rows; the image edge is replicated beyond the
  border, so border pixels take half a one-sided difference.
  """
  chex.assert_rank(gray_NxHxW, 3)
  p = jnp.pad(gray_NxHxW, ((0, 0), (1, 1), (1, 1)), mode="edge")
  gx = (p[:, 1:-1, 2:] - p[:, 1:-1, :-2]) / 2
  gy = (p[:, 2:, 1:-1] - p[:, :-2, 1:-1]) / 2
  return gx, gy


def _l2_hys(v, eps=1e-5, clip=0.2):
  """Dalal and Triggs' L2-Hys over the last axis: L2-normalise, clip at 0.2, renormalise."""
  v = v / jnp.sqrt(jnp.sum(v * v, axis=-1, keepdims=True) + eps**2)
  v = jnp.minimum(v, clip)
  return v / jnp.sqrt(jnp.sum(v * v, axis=-1, keepdims=True) + eps**2)


def hog(images_NxHxWx3, cell: int = 8, orientations: int = 9,
        block_norm: str = "none") -> jax.Array:
  """Histograms of oriented gradients (Dalal and Triggs, 2005), (N, F).

  The image is turned to grey (`grayscale`) and differentiated (`gradients`). Each pixel
  has magnitude sqrt(gx^2 + gy^2) and unsigned orientation atan2(gy, gx) mod 180 degrees;
  it adds its magnitude to bin floor(angle / (180 / orientations)) of its cell's
  histogram, which is then divided by the cell's area. A vertical edge (intensity
  changing along x) has a horizontal gradient, angle 0: bin 0; a horizontal edge has
  angle 90: bin 4 of 9. Rows and columns beyond the last whole cell are ignored.

  Args:
    images_NxHxWx3: RGB images, H and W at least `cell`.
    cell: cell side in pixels.
    orientations: number of bins over [0, 180).
    block_norm: "none" returns the cell histograms, (N, H/cell * W/cell * orientations);
      "l2-hys" groups 2 x 2 cells into overlapping blocks (stride one cell) normalised
      by L2-Hys, (N, (H/cell - 1) * (W/cell - 1) * 4 * orientations).
  """
  check_name("block_norm", block_norm, BLOCK_NORMS)
  gray = grayscale(images_NxHxWx3)
  n, h, w = gray.shape
  hc, wc = h // cell, w // cell
  if hc < 1 or wc < 1:
    raise ValueError(f"images of {h}x{w} pixels are smaller than one {cell}x{cell} cell")
  if block_norm == "l2-hys" and (hc < 2 or wc < 2):
    raise ValueError(f"l2-hys blocks need at least 2x2 cells, got {hc}x{wc}")
  gx, gy = gradients(gray)
  magnitude = jnp.sqrt(gx * gx + gy * gy)[:, :hc * cell, :wc * cell]
  angle = jnp.arctan2(gy, gx)[:, :hc * cell, :wc * cell]
  angle = jnp.where(angle < 0, angle + jnp.pi, angle)
  angle = jnp.where(angle >= jnp.pi, angle - jnp.pi, angle)
  idx = jnp.clip(jnp.floor(angle * (orientations / jnp.pi)).astype(jnp.int32),
                 0, orientations - 1)
  votes = jnp.where(idx[..., None] == jnp.arange(orientations)[None, None, None, :],
                    magnitude[..., None], 0.0)
  cells = votes.reshape(n, hc, cell, wc, cell, orientations).sum(axis=(2, 4)) / cell**2
  if block_norm == "none":
    return cells.reshape(n, -1)
  blocks = jnp.stack([cells[:, :-1, :-1], cells[:, :-1, 1:],
                      cells[:, 1:, :-1], cells[:, 1:, 1:]], axis=3)
  blocks = _l2_hys(blocks.reshape(n, hc - 1, wc - 1, 4 * orientations))
  return blocks.reshape(n, -1)


# --------------------------------------------------------------------------- k-means


def patches(images_NxHxWxC, size: int = 6) -> jax.Array:
  """All size x size patches at stride 1, (N, H - size + 1, W - size + 1, size * size * C).

  Each patch is flattened in (row, column, channel) order, as `sample_patches` does.
  """
  x = jnp.asarray(images_NxHxWxC)
  chex.assert_rank(x, 4)
  n, h, w, c = x.shape
  p, q = h - size + 1, w - size + 1
  if p < 1 or q < 1:
    raise ValueError(f"patches of {size}x{size} do not fit images of {h}x{w}")
  shifted = [x[:, i:i + p, j:j + q, :] for i in range(size) for j in range(size)]
  return jnp.stack(shifted, axis=3).reshape(n, p, q, size * size * c)


def sample_patches(key: jax.Array, images_NxHxWxC, num_patches: int,
                   size: int = 6) -> jax.Array:
  """`num_patches` random size x size patches of random images, float32 (P, size*size*C).

  Image, row and column are drawn uniformly and independently, as in the paper.
  """
  images = jnp.asarray(images_NxHxWxC)
  chex.assert_rank(images, 4)
  n, h, w, c = images.shape
  if size > min(h, w):
    raise ValueError(f"patches of {size}x{size} do not fit images of {h}x{w}")
  k_img, k_row, k_col = jax.random.split(key, 3)
  img = jax.random.randint(k_img, (num_patches,), 0, n)
  row = jax.random.randint(k_row, (num_patches,), 0, h - size + 1)
  col = jax.random.randint(k_col, (num_patches,), 0, w - size + 1)

  def one(i, r, q):
    return jax.lax.dynamic_slice(images, (i, r, q, 0), (1, size, size, c)).reshape(-1)

  return jax.vmap(one)(img, row, col).astype(jnp.float32)


def normalize_patches(x_PxD, eps: float = 10.0) -> jax.Array:
  """Contrast normalisation per patch, `(x - mean(x)) / sqrt(var(x) + eps)`, (P, D).

  The variance has the n - 1 normaliser, as in the authors' code; eps = 10 suits pixels
  in the 0-255 scale.
  """
  chex.assert_rank(x_PxD, 2)
  d = x_PxD.shape[1]
  centred = x_PxD - jnp.mean(x_PxD, axis=1, keepdims=True)
  var = jnp.sum(centred * centred, axis=1, keepdims=True) / (d - 1)
  return centred / jnp.sqrt(var + eps)


def fit_zca(x_PxD, eps: float = 0.1) -> tuple[jax.Array, jax.Array]:
  """ZCA whitening fitted on rows x: `z = (x - mu) W`, `W = V diag(1/sqrt(lambda + eps)) V^T`.

  V, lambda: eigenvectors and eigenvalues of the covariance of x (n - 1 normaliser).
  Returns (mu (D,), W (D, D)); W is symmetric.
  """
  chex.assert_rank(x_PxD, 2)
  p = x_PxD.shape[0]
  mu_D = jnp.mean(x_PxD, axis=0)
  centred = x_PxD - mu_D[None, :]
  cov_DxD = centred.T @ centred / (p - 1)
  lam_D, v_DxD = jnp.linalg.eigh(cov_DxD)
  scale_D = 1.0 / jnp.sqrt(jnp.maximum(lam_D, 0) + eps)
  return mu_D, (v_DxD * scale_D[None, :]) @ v_DxD.T


def _first_min(part_PxK):
  """(index of the first minimum, minimum) of every row.

  Written as two plain reductions (a min, then a min over the positions that attain
  it) rather than `argmin`, which is several times slower on CPU.
  """
  k = part_PxK.shape[1]
  low_Px1 = jnp.min(part_PxK, axis=1, keepdims=True)
  iota_K = jnp.arange(k, dtype=part_PxK.dtype)
  first = jnp.min(jnp.where(part_PxK == low_Px1, iota_K[None, :], k), axis=1)
  return first.astype(jnp.int32), low_Px1[:, 0]


def _assign(x_PxD, c_KxD):
  """(nearest centroid, squared distance to it) for every row, |x|^2 - 2 x.c + |c|^2."""
  cn_K = jnp.sum(c_KxD * c_KxD, axis=1)
  nearest, low = _first_min(cn_K[None, :] - 2 * x_PxD @ c_KxD.T)
  return nearest, jnp.maximum(low + jnp.sum(x_PxD * x_PxD, axis=1), 0)


@functools.partial(jax.jit, static_argnames=("num_centroids", "iterations", "chunk_size"))
def kmeans(key: jax.Array, x_PxD, num_centroids: int, iterations: int = 50,
           chunk_size: int = 2048, init=None) -> tuple[jax.Array, jax.Array]:
  """Lloyd's k-means on the rows of x; returns (centroids (K, D), objective (iterations,)).

  The centroids start at K distinct random rows (or at `init`, (K, D)). Each iteration assigns every row to its
  nearest centroid and moves each centroid to the mean of its rows. A centroid left with
  no rows is moved onto a row far from its centroid (the rows farthest from their
  centroids are taken in order, one per empty cluster), so no centroid is wasted.

  objective[t] = mean_i min_k |x_i - c_k|^2 for the centroids entering iteration t. It
  never increases: the assignment step minimises over k, the mean minimises the sum of
  squares of each cluster, and a re-seeded centroid had no rows to lose.

  Rows are processed `chunk_size` at a time, so memory is about chunk_size * K.
  """
  chex.assert_rank(x_PxD, 2)
  p, d = x_PxD.shape
  if not 1 <= num_centroids <= p:
    raise ValueError(f"num_centroids must be in [1, {p}] for {p} rows, got {num_centroids}")
  chunks = -(-p // chunk_size)
  size = -(-p // chunks)
  pad = chunks * size - p
  x_CxSxD = jnp.pad(x_PxD, ((0, pad), (0, 0))).reshape(chunks, size, d)
  valid_CxS = (jnp.arange(chunks * size) < p).reshape(chunks, size)
  if init is None:
    c0_KxD = x_PxD[jax.random.choice(key, p, (num_centroids,), replace=False)]
  else:
    c0_KxD = jnp.asarray(init, x_PxD.dtype)
    chex.assert_shape(c0_KxD, (num_centroids, d))

  def step(c_KxD, _):
    def chunk(carry, xs):
      sums_KxD, counts_K = carry
      x_SxD, ok_S = xs
      nearest_S, dist_S = _assign(x_SxD, c_KxD)
      seg_S = jnp.where(ok_S, nearest_S, num_centroids)
      sums_KxD = sums_KxD + jax.ops.segment_sum(x_SxD, seg_S, num_centroids)
      counts_K = counts_K + jax.ops.segment_sum(ok_S.astype(x_SxD.dtype), seg_S,
                                                num_centroids)
      return (sums_KxD, counts_K), jnp.where(ok_S, dist_S, -1.0)

    init = (jnp.zeros_like(c_KxD), jnp.zeros((num_centroids,), c_KxD.dtype))
    (sums_KxD, counts_K), dist_CxS = jax.lax.scan(chunk, init, (x_CxSxD, valid_CxS))
    dist_P = dist_CxS.reshape(-1)
    objective = jnp.sum(jnp.maximum(dist_P, 0)) / p
    _, far_K = jax.lax.top_k(dist_P, num_centroids)
    empty_K = counts_K == 0
    rank_K = jnp.cumsum(empty_K) - 1
    reseed_KxD = x_CxSxD.reshape(-1, d)[far_K[jnp.clip(rank_K, 0, num_centroids - 1)]]
    means_KxD = sums_KxD / jnp.maximum(counts_K, 1)[:, None]
    return jnp.where(empty_K[:, None], reseed_KxD, means_KxD), objective

  centroids, objective = jax.lax.scan(step, c0_KxD, None, length=iterations)
  return centroids, objective


def triangle(dist_PxK) -> jax.Array:
  """Triangle encoding of distances to K centroids, `f_k = max(0, mean_j(z_j) - z_k)`, (P, K)."""
  chex.assert_rank(dist_PxK, 2)
  return jnp.maximum(jnp.mean(dist_PxK, axis=1, keepdims=True) - dist_PxK, 0)


class KMeansFeatures(NamedTuple):
  """A fitted k-means patch encoder: the whitening and the centroids (whitened space).

  patch size s and channels follow from D = s * s * 3.
  """
  zca_mean: jax.Array      # (D,)
  zca_matrix: jax.Array    # (D, D)
  centroids: jax.Array     # (K, D)
  objective: jax.Array     # (iterations,) k-means objective per iteration

  @property
  def patch_size(self) -> int:
    return int(round((self.centroids.shape[1] / 3) ** 0.5))

  @property
  def num_features(self) -> int:
    return 4 * self.centroids.shape[0]


def kmeans_fit(key: jax.Array, images_NxHxWx3, num_centroids: int = 1600, *,
               num_patches: int = 400_000, patch_size: int = 6, iterations: int = 50,
               norm_eps: float = 10.0, zca_eps: float = 0.1) -> KMeansFeatures:
  """Samples patches, normalises them, fits ZCA and runs k-means: steps 1-4 of the module.

  Defaults are the paper's CIFAR-10 settings (400,000 patches of 6 x 6, eps 10 and 0.1).
  """
  images = jnp.asarray(images_NxHxWx3)
  chex.assert_rank(images, 4)
  if images.shape[-1] != 3:
    raise ValueError(f"images must be RGB (N, H, W, 3), got shape {images.shape}")
  k_patch, k_means = jax.random.split(key)
  x = normalize_patches(sample_patches(k_patch, images, num_patches, patch_size), norm_eps)
  mu, w = fit_zca(x, zca_eps)
  centroids, objective = kmeans(k_means, (x - mu[None, :]) @ w, num_centroids, iterations)
  return KMeansFeatures(mu, w, centroids, objective)


def _quadrant_matrix(p: int, q: int) -> np.ndarray:
  """(p * q, 4) 0/1 matrix summing a p x q grid over its quadrants, split at ceil(p / 2)."""
  hp, hq = -(-p // 2), -(-q // 2)
  m = np.zeros((p, q, 2, 2), np.float32)
  for i, rows in enumerate((slice(0, hp), slice(hp, None))):
    for j, cols in enumerate((slice(0, hq), slice(hq, None))):
      m[rows, cols, i, j] = 1
  return m.reshape(p * q, 4)


@functools.partial(jax.jit, static_argnames=("norm_eps", "group"))
def kmeans_encode(model: KMeansFeatures, images_NxHxWx3, norm_eps: float = 10.0,
                  group: int | None = None) -> jax.Array:
  """Triangle codes of every patch at stride 1, summed over the image's 4 quadrants, (N, 4K).

  The quadrants split the P x P grid of patch positions at ceil(P / 2) (14 of 27), as
  the authors' code does; features are ordered (quadrant row, quadrant column, k).

  Images are encoded `group` at a time in a loop; every reduction (the mean distance,
  the quadrant sums) is a matrix product. The default, None, is one image at a time on
  CPU, which keeps its (P * P, K) tables in cache, and all N at once on accelerators.
  """
  if group is None:
    group = 1 if jax.default_backend() == "cpu" else max(1, images_NxHxWx3.shape[0])
  if not isinstance(group, int) or group < 1:
    raise ValueError(f"group must be a positive integer or None, got {group!r}")
  x_img = _rgb(images_NxHxWx3)
  s = model.patch_size
  k, d = model.centroids.shape
  chex.assert_shape(model.zca_matrix, (d, d))
  chex.assert_shape(model.zca_mean, (d,))
  if d != s * s * 3:
    raise ValueError(f"centroids of {d} features are not s*s*3 patches")
  n, h, w, _ = x_img.shape
  p, q = h - s + 1, w - s + 1
  # z = (x - mu) W and z.c_k = x (W c_k) - mu W c_k: the whitening folds into the
  # centroids, |z - c_k|^2 = |z|^2 - 2 x (W c_k) + (|c_k|^2 + 2 mu W c_k).
  w_DxD = model.zca_matrix
  wc_DxK = w_DxD @ model.centroids.T
  shift_D = model.zca_mean @ w_DxD
  bias_K = (jnp.sum(model.centroids * model.centroids, axis=1)
            + 2 * model.centroids @ shift_D)
  mean_Kx1 = jnp.full((k, 1), 1.0 / k, jnp.float32)
  pool_RxQ = jnp.asarray(_quadrant_matrix(p, q))

  def encode(imgs_GxHxWx3):
    x_RxD = normalize_patches(patches(imgs_GxHxWx3, s).reshape(-1, d), norm_eps)
    z_RxD = x_RxD @ w_DxD - shift_D[None, :]
    sq_RxK = (jnp.sum(z_RxD * z_RxD, axis=1, keepdims=True) - 2 * (x_RxD @ wc_DxK)
              + bias_K[None, :])
    # |.| rather than max(., 0) for rounding below zero: the same up to rounding, and
    # it needs no (R, K) table of zeros on CPU.
    dist_RxK = jnp.sqrt(jnp.abs(sq_RxK))
    f_RxK = jnp.maximum(dist_RxK @ mean_Kx1 - dist_RxK, 0)  # triangle(dist_RxK)
    if group == 1:  # a plain (4, R) x (R, K) product, no transpose of f
      return (pool_RxQ.T @ f_RxK).reshape(1, 4 * k)
    f_GxPQxK = f_RxK.reshape(-1, p * q, k)
    return jnp.einsum("tq,gtk->gqk", pool_RxQ, f_GxPQxK).reshape(-1, 4 * k)

  groups = -(-n // group)
  padded = jnp.pad(x_img, ((0, groups * group - n), (0, 0), (0, 0), (0, 0)))
  codes = jax.lax.map(encode, padded.reshape(groups, group, h, w, 3))
  return codes.reshape(groups * group, 4 * k)[:n]


# --------------------------------------------------------------------------- plumbing


def extract(fn: Callable[..., jax.Array], images, *args, batch_size: int = 256) -> np.ndarray:
  """`fn(*args, batch)` over `images` in jitted batches of `batch_size`; float32 NumPy (N, F).

  The last batch is padded to full size, so `fn` compiles once; only one batch of
  inputs and outputs is on the device at a time. Arrays in `args` (e.g. a fitted
  model) are passed as arguments, not baked into the program:

    hog_NxF = extract(hog, images)
    codes_NxF = extract(kmeans_encode, images, model)
  """
  if not isinstance(batch_size, int) or batch_size < 1:
    raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
  images = np.asarray(images)
  n = images.shape[0]
  if n == 0:
    raise ValueError("no images to extract features from")
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

  eps keeps constant features finite (the authors' code uses var + 0.01).
  """
  x = np.asarray(features_NxF)
  if x.ndim != 2 or x.shape[0] < 1:
    raise ValueError(f"features must have shape (N, F) with N >= 1, got {x.shape}")
  step = 4096  # rows at a time, accumulated in float64
  mean = sum(x[i:i + step].sum(axis=0, dtype=np.float64)
             for i in range(0, len(x), step)) / len(x)
  sq = sum(np.square(x[i:i + step] - mean).sum(axis=0) for i in range(0, len(x), step))
  return mean.astype(np.float32), np.sqrt(sq / len(x) + eps).astype(np.float32)


def standardize(features_NxF, mean_F, scale_F) -> jax.Array:
  """`(x - mean) / scale` with statistics from `fit_standardize` on the training split."""
  x = jnp.asarray(features_NxF)
  chex.assert_rank(x, 2)
  chex.assert_shape([mean_F, scale_F], (x.shape[1],))
  return (x - jnp.asarray(mean_F)[None, :]) / jnp.asarray(scale_F)[None, :]


def fingerprint(array) -> str:
  """A short hash of an array's shape, dtype and bytes: an identity for `cached` keys.

  Fingerprint whatever a cached value depends on: the images, and fitted models (the
  arrays of a `KMeansFeatures`, the statistics of `fit_standardize`).
  """
  a = np.ascontiguousarray(array)
  h = hashlib.sha256(f"{a.shape}|{a.dtype}|".encode())
  h.update(memoryview(a).cast("B"))
  return h.hexdigest()[:16]


def cache_path(key: Mapping, cache_dir: str, name: str = "features") -> str:
  """Where `cached` keeps the array for `key`: `<cache_dir>/<name>-<hash of key>.npy`.

  The key is hashed as strict JSON; a value JSON cannot hold exactly (an object, NaN)
  raises instead of being hashed by its printed form.
  """
  text = json.dumps(checkpoint.strict(dict(key), path="cache key"), sort_keys=True,
                    allow_nan=False)
  digest = hashlib.sha256(text.encode()).hexdigest()[:20]
  return os.path.join(cache_dir, f"{name}-{digest}.npy")


def cached(fn: Callable[[], np.ndarray], key: Mapping, cache_dir: str,
           name: str = "features") -> np.ndarray:
  """`fn()`, computed once per `key` and then read from `cache_dir`.

  `key` names everything the result depends on: the dataset (e.g. its `fingerprint`
  and split), the feature settings and any fitted model the result is computed with
  (its `fingerprint`); it must be JSON-serialisable. The array is written to a
  temporary file in `cache_dir` and renamed into place, so an interrupted run leaves
  either no file or a whole one; the key is written beside it as JSON. A file that
  cannot be read back (corrupted on disk) is recomputed and replaced, with a warning.
  """
  path = cache_path(key, cache_dir, name)
  if os.path.exists(path):
    try:
      return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
      warnings.warn(f"{path}: unreadable cached features ({e}); computing them again",
                    stacklevel=2)
  value = np.asarray(fn())
  checkpoint.save_json(path[:-4] + ".json", dict(key))
  checkpoint.atomic_write(path, lambda f: np.save(f, value))
  return value
