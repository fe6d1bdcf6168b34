"""k-means patch features (Coates, Lee and Ng, 2011), as in the paper's pipeline:

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

`kmeans_fit` runs steps 1-4 and returns a `KMeansFeatures`. In step 5 the whitening is
folded into the centroids (z . c_k = x (W c_k) - mu W c_k), the mean over centroids and
the quadrant sums are matrix products too, so the work is two products per image,
x (W C^T) and x W (for |z|^2), plus elementwise passes.
"""

import functools
import warnings
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from lincv import chunked, precision
from lincv._checks import (check_count, check_hparam, check_key, first_nonfinite_row,
                           wide_ints_as_float32, working_float)
from lincv.features.color import as_rgb, check_rgb

_IMAGES = "images_NxHxWxC must be images (N, H, W, C); one image needs a batch axis, image[None]"


def patches(images_NxHxWxC, size: int = 6) -> jax.Array:
  """All size x size patches at stride 1, (N, H - size + 1, W - size + 1, size * size * C).

  Each patch is flattened in (row, column, channel) order, as `sample_patches` does.
  """
  x = jnp.asarray(wide_ints_as_float32(images_NxHxWxC))   # int64 pixels wrapped to 32 bits
  chex.assert_rank(x, 4, custom_message=_IMAGES)
  check_count("patch size", size)
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
  images = jnp.asarray(wide_ints_as_float32(images_NxHxWxC))
  chex.assert_rank(images, 4, custom_message=_IMAGES)
  n, h, w, c = images.shape
  check_count("patch size", size)
  check_count("num_patches", num_patches)
  check_key(key)
  if size > min(h, w):
    raise ValueError(f"patches of {size}x{size} do not fit images of {h}x{w}")
  k_img, k_row, k_col = jax.random.split(key, 3)
  img = jax.random.randint(k_img, (num_patches,), 0, n)
  row = jax.random.randint(k_row, (num_patches,), 0, h - size + 1)
  col = jax.random.randint(k_col, (num_patches,), 0, w - size + 1)

  def one(i, r, q):
    return jax.lax.dynamic_slice(images, (i, r, q, 0), (1, size, size, c)).reshape(-1)

  return jax.vmap(one)(img, row, col).astype(jnp.float32)


def _check_eps(name: str, eps, zero_for: str) -> None:
  # At 0 (or below, or NaN) the division by sqrt(variance + eps) of `zero_for` gave NaN
  # or inf, and every k-means centroid became NaN.
  check_hparam(name, eps, f"a finite number > 0 (the variance added before dividing, so "
                          f"that {zero_for} stays finite)", lambda v: 0 < v < np.inf)


def _check_scale(images) -> None:
  """A ValueError for concrete float images whose values lie within [-1, 1] and are not
  all 0 (the 0-1 scale; black images are the same in either scale)."""
  xp = np if isinstance(images, np.ndarray) else jnp    # host images on the host
  if (jnp.issubdtype(images.dtype, jnp.floating) and images.size
      and not isinstance(images, jax.core.Tracer)
      and 0.0 < float(xp.max(xp.abs(images))) <= 1.0):
    raise ValueError("float images with no value beyond 1 look like the 0-1 scale; k-means "
                     "features expect the 0-255 scale (norm_eps=10): pass images * 255")


def normalize_patches(x_PxD, eps: float = 10.0) -> jax.Array:
  """Contrast normalisation per patch, `(x - mean(x)) / sqrt(var(x) + eps)`, (P, D).

  The variance has the n - 1 normaliser, as in the authors' code; eps = 10 suits pixels
  in the 0-255 scale.
  """
  x_PxD = jnp.asarray(x_PxD)      # a list was read by chex as several inputs
  chex.assert_rank(x_PxD, 2, custom_message="x_PxD must be patches (P, D)")
  _check_eps("norm_eps", eps, "a flat patch")
  d = x_PxD.shape[1]
  if d < 2:      # the n - 1 normaliser divided by 0: every value was NaN
    raise ValueError(f"patches need at least 2 values each for a variance, got shape "
                     f"{x_PxD.shape}")
  centred = x_PxD - jnp.mean(x_PxD, axis=1, keepdims=True)
  var = jnp.sum(centred * centred, axis=1, keepdims=True) / (d - 1)
  return centred / jnp.sqrt(var + eps)


def fit_zca(x_PxD, eps: float = 0.1) -> tuple[jax.Array, jax.Array]:
  """ZCA whitening fitted on rows x: `z = (x - mu) W`, `W = V diag(1/sqrt(lambda + eps)) V^T`.

  V, lambda: eigenvectors and eigenvalues of the covariance of x (n - 1 normaliser).
  Returns (mu (D,), W (D, D)); W is symmetric.
  """
  x_PxD = jnp.asarray(x_PxD)
  chex.assert_rank(x_PxD, 2, custom_message="x_PxD must be rows (P, D)")
  _check_eps("zca_eps", eps, "a direction of zero variance")
  p = x_PxD.shape[0]
  if p < 2:      # the n - 1 normaliser divided by 0: the whitening was NaN
    raise ValueError(f"fit_zca needs at least 2 rows for a covariance, got shape "
                     f"{x_PxD.shape}")
  with precision.exact():     # float32 products on every device (lincv.precision)
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


def kmeans(key: jax.Array, x_PxD, num_centroids: int, iterations: int = 50,
           chunk_size: int = 2048, init=None) -> tuple[jax.Array, jax.Array]:
  """Lloyd's k-means on the rows of x; returns (centroids (K, D), objective (iterations,)).

  The centroids start at K distinct random rows (or at `init`, (K, D)); with 0 iterations
  they are the result (random patches as the dictionary, which Coates and Ng found a
  fair baseline). Each iteration assigns every row to its nearest centroid and moves each
  centroid to the mean of its rows. A centroid left with no rows is moved onto a row far
  from its centroid (the rows farthest from their centroids are taken in order, one per
  empty cluster), so no centroid is wasted; where the rows have fewer distinct values than
  K, some must repeat, and a warning says how many. Rows and `init` must be finite (and
  small enough that squared distances do not overflow: an objective that is not finite
  raises); integer and 16-bit float rows are clustered in float32.

  objective[t] = mean_i min_k |x_i - c_k|^2 for the centroids entering iteration t. It
  never increases: the assignment step minimises over k, the mean minimises the sum of
  squares of each cluster, and a re-seeded centroid had no rows to lose.

  Rows are processed `chunk_size` at a time, so memory is about chunk_size * K.
  """
  # Integer rows (uint8 pixels) failed inside the loop, whose centroids are means.
  x_PxD = jnp.asarray(wide_ints_as_float32(x_PxD))
  x_PxD = x_PxD.astype(working_float(x_PxD.dtype))
  if not isinstance(x_PxD, jax.core.Tracer) and x_PxD.size and (
      first_nonfinite_row(x_PxD) is not None):
    # A NaN row took no centroid, silently, and the objective came back NaN.
    raise ValueError("x holds a NaN or infinite value; k-means needs finite rows")
  check_key(key)
  check_count("num_centroids", num_centroids)
  check_count("chunk_size", chunk_size)     # True was a chunk of 1 row
  if init is not None and not isinstance(init, jax.core.Tracer) and np.size(init):
    row = first_nonfinite_row(np.asarray(init))
    if row is not None:
      # A NaN centroid took no rows and was re-seeded, silently; objective[0] was NaN.
      raise ValueError(f"init row {row} holds a NaN or infinite value; starting centroids "
                       "must be finite")
  centroids, objective = _kmeans(key, x_PxD, num_centroids, iterations, chunk_size, init)
  if not isinstance(centroids, jax.core.Tracer):
    _check_result(x_PxD, centroids, objective)
  return centroids, objective


def _check_result(x_PxD, centroids_KxD, objective) -> None:
  """A ValueError for an objective that is not finite (the squared distances overflowed),
  and a warning for centroids that repeat another (fewer distinct rows than centroids)."""
  obj = np.asarray(objective)
  if not np.isfinite(obj).all():
    # Rows near 1e20 in float32: every distance was inf - inf = NaN, and every centroid
    # collapsed onto one row, silently.
    raise ValueError(f"the k-means objective is {obj[~np.isfinite(obj)][0]}: the squared "
                     f"distances overflow {x_PxD.dtype} for rows as large as "
                     f"{float(jnp.max(jnp.abs(x_PxD))):.3g}; scale the rows down")
  c = np.asarray(centroids_KxD)
  k, distinct = c.shape[0], np.unique(c, axis=0).shape[0]
  if distinct < k:
    warnings.warn(f"k-means: {k - distinct} of {k} centroids repeat another (the rows have "
                  f"fewer than {k} distinct values, e.g. constant images or patches); their "
                  "features repeat too: ask for fewer centroids", UserWarning, stacklevel=3)


@functools.partial(jax.jit, static_argnames=("num_centroids", "iterations", "chunk_size"))
def _kmeans(key, x_PxD, num_centroids, iterations, chunk_size, init):
  """`kmeans`, its rows checked; its products float32 on every device (`lincv.precision`:
  the setting is read as the program is traced)."""
  with precision.exact():
    return _kmeans_exact(key, x_PxD, num_centroids, iterations, chunk_size, init)


def _kmeans_exact(key, x_PxD, num_centroids, iterations, chunk_size, init):
  chex.assert_rank(x_PxD, 2, custom_message="x_PxD must be rows (P, D)")
  p, d = x_PxD.shape
  if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or (
      iterations < 0):
    raise ValueError(f"iterations must be an integer >= 0 (0: the starting centroids), got "
                     f"{iterations!r}")
  if not 1 <= num_centroids <= p:
    raise ValueError(f"num_centroids must be in [1, {p}] for {p} rows, got {num_centroids}")
  size = -(-p // chunked.num_chunks(p, chunk_size))  # as few chunks as fit, evenly filled
  x_CxSxD = chunked.chunks(x_PxD, size, mode="zeros")
  valid_CxS = chunked.valid(p, size)
  if init is None:
    c0_KxD = x_PxD[jax.random.choice(key, p, (num_centroids,), replace=False)]
  else:
    c0_KxD = jnp.asarray(init, x_PxD.dtype)
    chex.assert_shape(c0_KxD, (num_centroids, d),
                      custom_message="init must be (num_centroids, D) for rows x_PxD (P, D)")

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
  chex.assert_rank(dist_PxK, 2, custom_message="dist_PxK must be distances (P, K)")
  return jnp.maximum(jnp.mean(dist_PxK, axis=1, keepdims=True) - dist_PxK, 0)


class KMeansFeatures(NamedTuple):
  """A fitted k-means patch encoder: the whitening and the centroids (whitened space).

  patch size s and channels follow from D = s * s * 3.
  """
  zca_mean: jax.Array      # (D,)
  zca_matrix: jax.Array    # (D, D)
  centroids: jax.Array     # (K, D)
  objective: jax.Array     # (iterations,) k-means objective per iteration
  norm_eps: float = 10.0   # the patch normalisation it was fitted with; encoding uses it

  @property
  def patch_size(self) -> int:
    return int(round((self.centroids.shape[1] / 3) ** 0.5))

  @property
  def num_features(self) -> int:
    return 4 * self.centroids.shape[0]


# A pytree of the four arrays; norm_eps is static (the encoder is compiled for it), so a
# model passed through `jit` keeps it a number.
jax.tree_util.register_pytree_node(
    KMeansFeatures, lambda m: (tuple(m[:4]), float(m.norm_eps)),
    lambda norm_eps, arrays: KMeansFeatures(*arrays, norm_eps))


def kmeans_fit(key: jax.Array, images_NxHxWx3, num_centroids: int = 1600, *,
               num_patches: int = 400_000, patch_size: int = 6, iterations: int = 50,
               norm_eps: float = 10.0, zca_eps: float = 0.1) -> KMeansFeatures:
  """Samples patches, normalises them, fits ZCA and runs k-means: steps 1-4 of the module.

  Defaults are the paper's CIFAR-10 settings (400,000 patches of 6 x 6, eps 10 and 0.1).
  Images are in the 0-255 scale; float images that never exceed 1 (the 0-1 scale, where
  eps 10 would swamp every patch's variance) are refused, as is num_patches < 2 (no
  covariance) or < num_centroids.
  """
  images = jnp.asarray(wide_ints_as_float32(images_NxHxWx3))
  check_rgb(images)
  if num_patches < 2 or num_patches < num_centroids:
    raise ValueError(f"num_patches must be at least 2 and at least num_centroids="
                     f"{num_centroids}, got {num_patches}")
  _check_scale(images)
  if not isinstance(images, jax.core.Tracer) and first_nonfinite_row(images) is not None:
    raise ValueError("images hold a NaN or infinite value; k-means features need finite "
                     "pixels")
  _check_eps("norm_eps", norm_eps, "a flat patch")
  _check_eps("zca_eps", zca_eps, "a direction of zero variance")
  check_key(key)
  k_patch, k_means = jax.random.split(key)
  x = normalize_patches(sample_patches(k_patch, images, num_patches, patch_size), norm_eps)
  mu, w = fit_zca(x, zca_eps)
  with precision.exact():
    whitened = (x - mu[None, :]) @ w
  centroids, objective = kmeans(k_means, whitened, num_centroids, iterations)
  return KMeansFeatures(mu, w, centroids, objective, float(norm_eps))


def _quadrant_matrix(p: int, q: int) -> np.ndarray:
  """(p * q, 4) 0/1 matrix summing a p x q grid over its quadrants, split at ceil(p / 2)."""
  hp, hq = -(-p // 2), -(-q // 2)
  m = np.zeros((p, q, 2, 2), np.float32)
  for i, rows in enumerate((slice(0, hp), slice(hp, None))):
    for j, cols in enumerate((slice(0, hq), slice(hq, None))):
      m[rows, cols, i, j] = 1
  return m.reshape(p * q, 4)


def kmeans_encode(model: KMeansFeatures, images_NxHxWx3, norm_eps: float | None = None,
                  group: int | None = None) -> jax.Array:
  """Triangle codes of every patch at stride 1, summed over the image's 4 quadrants, (N, 4K).

  The quadrants split the P x P grid of patch positions at ceil(P / 2) (14 of 27), as
  the authors' code does; features are ordered (quadrant row, quadrant column, k).

  Images are encoded `group` at a time in a loop; every reduction (the mean distance,
  the quadrant sums) is a matrix product. The default, None, is one image at a time on
  CPU, which keeps its (P * P, K) tables in cache, and all N at once on accelerators.

  Images are in the 0-255 scale, as in `kmeans_fit` (concrete float images that never
  exceed 1 are refused). Patches are normalised with the `norm_eps` the model was fitted
  with (`model.norm_eps`); a `norm_eps` given that differs from it is refused, as the
  centroids hold patches normalised with the model's.
  """
  if group is None:
    group = 1 if jax.default_backend() == "cpu" else max(1, images_NxHxWx3.shape[0])
  if not isinstance(group, int) or group < 1:
    raise ValueError(f"group must be a positive integer or None, got {group!r}")
  _check_eps("model.norm_eps", model.norm_eps, "a flat patch")
  if norm_eps is not None:
    _check_eps("norm_eps", norm_eps, "a flat patch")
    if float(norm_eps) != float(model.norm_eps):
      raise ValueError(f"norm_eps={norm_eps!r} differs from the model's {model.norm_eps!r}, "
                       "the one its centroids were fitted with; leave norm_eps unset")
  images = jnp.asarray(wide_ints_as_float32(images_NxHxWx3))
  _check_images(images)
  return _encode(model, images, float(model.norm_eps), group)


def _check_images(images) -> None:
  """The checks `kmeans_encode` makes of concrete images: RGB, in the 0-255 scale."""
  check_rgb(images)
  _check_scale(images)


# `extract` runs kmeans_encode under jit, where the images' values are unknown; it calls
# this on the concrete images first.
kmeans_encode.check_images = _check_images


@functools.partial(jax.jit, static_argnames=("norm_eps", "group"))
def _encode(model: KMeansFeatures, images_NxHxWx3, norm_eps: float, group: int) -> jax.Array:
  """`kmeans_encode`, its arguments checked; its products float32 on every device (the
  distances cancel digits: TensorFloat-32 moved a feature by 0.57 of its standard
  deviation on a GPU)."""
  with precision.exact():
    return _encode_exact(model, images_NxHxWx3, norm_eps, group)


def _encode_exact(model, images_NxHxWx3, norm_eps, group):
  x_img = as_rgb(images_NxHxWx3)
  s = model.patch_size
  k, d = model.centroids.shape
  chex.assert_shape(model.zca_matrix, (d, d))
  chex.assert_shape(model.zca_mean, (d,))
  if d != s * s * 3:
    raise ValueError(f"centroids of {d} features are not s*s*3 patches")
  _, h, w, _ = x_img.shape
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

  return chunked.map_rows(encode, x_img, group, mode="zeros")
