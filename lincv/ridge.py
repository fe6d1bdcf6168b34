r"""Ridge regression in closed form: a whole regularization path from one reduction of the
Gram matrix.

The objective is lincv's own with `loss="least_squares"`, `reg="l2"` (see
`lincv.objective`; the l2 penalty is :math:`\sum w^2`, no 1/2):

.. math::
   J(W, b) = \frac{1}{N} \lVert X W + 1 b^\top - T \rVert_F^2 + \lambda \lVert W \rVert_F^2,

with T the +1/-1 targets of `lincv.losses.targets`. The bias is not penalised, so
:math:`\partial J / \partial b = 0` gives :math:`b = \bar t - \bar x W`, and with the
centred rows :math:`X_c = X - 1 \bar x^\top` and targets :math:`T_c = T - 1 \bar t^\top`,

.. math:: (X_c^\top X_c + N \lambda I) W = X_c^\top T_c.

D <= N: with :math:`G = X_c^\top X_c` (D, D), :math:`W(\lambda) = (G + N\lambda I)^{-1}
X_c^\top T_c`. N < D: with :math:`G = X_c X_c^\top` (N, N), :math:`W(\lambda) = X_c^\top
(G + N\lambda I)^{-1} T_c`. Every strength shares one reduction :math:`G = Q T Q^\top`,
T tridiagonal and Q orthogonal (LAPACK's `sytrd`, the first stage of an
eigendecomposition), because :math:`G + N\lambda I = Q (T + N\lambda I) Q^\top`: a
strength costs one tridiagonal solve, O(M C), and all of them one product with Q each
way. With :math:`T = U \mathrm{diag}(e) U^\top`, the weights are
:math:`Q U \mathrm{diag}(1 / (e + N\lambda)) U^\top Q^\top r`, the eigendecomposition's
formula; the solve gets them without the eigenvectors, whose computation and products
made up two thirds of an eigendecomposition's time (2.3 s against 0.7 s for the
reduction at D = 3,072 in float64 on a 2-core CPU).

A positive strength keeps every direction, as a Cholesky solve of the regularised
system does. The eigenvectors of T are still computed for the strengths that need them:
at :math:`\lambda = 0` the directions whose eigenvalue is within rounding of 0, at most
:math:`8 \epsilon \max e` (`NOISE`), are dropped, the minimum-norm least-squares
solution; and where rounding left an eigenvalue of G below :math:`-N\lambda / 2` (the
shifted matrix would not be safely positive definite), that eigenvalue counts as 0.
Weights that the Gram matrix's rounding (eps max e, eps the rows' dtype's) sets are
warned of (`LowPrecision`), for float32 and float64 rows alike: a positive strength whose
N lambda lies below `ROUNDING` eps max e, and lambda = 0 where eigenvalues lie between eps
and `ROUNDING` eps max e (dropped up to `NOISE`, kept above: either way the rounding's) or
where a column's own sum of squares lies below `ROUNDING` eps max e (the directions it
carries lie that low, and are dropped as rounding though they are the data's: the cutoff
is relative to the largest eigenvalue, `_warn_small_columns`).

Two earlier rules dropped directions at positive strengths too, and both left the weak
strengths' weights silently wrong on float32 rows. :math:`e + N\lambda \le \epsilon
\sqrt{\max(N, D)} \max e` (71 eps max e on 5,000 x 3,072 CIFAR-10 pixels) dropped 2,010
of their 3,072 directions at :math:`\lambda = 10^{-4}`, leaving the objective 6% above
its minimum. :math:`e + N\lambda \le 8 \epsilon \max e` left it 20% above at
:math:`10^{-5}` on those pixels, and 4% above at :math:`10^{-4}` on the 45,000 x 6,400
k-means features (92% of the test predictions as float64's). The directions it dropped
are not rounding: a float32 Gram matrix's eigenvalues, decomposed in float64, are off by
0.005 eps max e on those features (the Gram matrix by 0.07 eps max e in norm), while
1,491 of the 6,400 lie below 8 eps max e.

scikit-learn sums its data loss where lincv averages it: `Ridge(alpha=N * reg_strength)`
on the targets T gives these weights, and `RidgeClassifier(alpha=N * reg_strength)` (which
uses +1/-1 targets too) these predictions.

Precision. The Gram matrix and the products with X are computed by JAX in the rows'
dtype, on their device, in chunks of rows; the reduction and the solves run on the
host (SciPy's LAPACK) in float64. With float64 rows (64-bit JAX on) everything is
float64 (1e-14 against lstsq in the tests). With float32 rows the error is that of the
float32 Gram matrix, which only strengths with N lambda near or below its rounding feel.
Measured against the float64 path on the same rows (objective above its minimum; test
predictions that differ):

- 45,000 x 6,400 k-means features, lambda = 1e-8 to 1e-4: at most 1.5e-5, and 4.8e-7
  at 1e-4;
- 4,500 x 3,072 CIFAR-10 pixels: 3.7e-3 and 6.6% at 1e-8, 3.2e-4 and 2.6% at 1e-6,
  6e-6 and 0.1% at 1e-5, 4e-8 and none from 1e-4 (scikit-learn's `RidgeClassifier` on
  the same float32 rows: 24%, 6% and 0.6% of the predictions at 1e-8, 1e-6, 1e-5);
- the test's rows, whose spectrum falls over eight decades in random directions:
  1.7e-3 at N lambda = eps max e.

For those strengths, pass float64 rows with 64-bit JAX on. Decomposing in float32 would
add its own rounding, up to 2 eps32 max e on each eigenvalue: a float32
eigendecomposition on the pixels at lambda = 1e-4 left the objective 1.4e-4 above its
minimum and 0.9% of the test predictions different from float64 scikit-learn's, for
1.7 to 2x less time. Refining that float32 reduction's solves in float64 (iterative
refinement against the float64 Gram matrix, as LAPACK's `dsposv` refines a float32
Cholesky) gives float64's weights back (to 6e-9 of their norm on 5,000 x 3,072 pixels),
but does not pay: its corrections apply Q to every strength's residual, four times at
the weak end, and cost what the float32 reduction saves (2.69 s against 2.85 s for the
path, on a 2-core CPU without AVX-512).

Scale. The centred rows are multiplied by the power of two s that brings their largest
magnitude into [1, 2) before the Gram matrix is formed (bounded by the columns' extremes,
which the pass for the mean also finds), and each strength is solved as lambda s^2:
the scaled problem's weights are W / s, exactly. Multiplying by a power of two is exact,
so the path is exactly equivariant to the rows' scale: rows times 2^k at lambda 4^k give
W / 2^k bit for bit, and rows of ordinary size the same weights as without the scaling.
Without it, float32 rows of values about 1e-20 had products below float32's smallest
normal number (1.2e-38): their Gram matrix was 0, and reg_strength 0 gave all-zero
weights (the positive strengths' weights, (X^T X + N lambda I)^{-1} X^T T with X^T X
lost, were wrong too), without a word; rows of values about 1e19 had a Gram matrix past
float32's range, and were refused. What scaling cannot help: rows whose values span more
than float32's range of products (a value of 1e20 beside values of 1, whose products
underflow once the rows are scaled to 1). Those small directions lie far below eps max e
(the float32 Gram matrix cannot hold them either way) and a strength that reaches them is
warned of (`LowPrecision`). Weights past the dtype's range are warned of (`Overflow`;
a sweep marks those members diverged), and a strength that scaled passes float64's
(float64 rows of values beyond about 1e+-150) is refused (`BadRows`).

Memory: one (D, D) or (N, N) Gram matrix (on the device, then as a float64 host copy
that the reduction overwrites with Q's reflectors, with 32 D float64 of workspace), one
more if some strength needs T's eigenvectors, and the rows a chunk at a time: a memory
map is read a chunk at a time, twice (once for the mean, once for the Gram matrix). The
N < D form holds the centred rows, fewer numbers than the (D, D) matrix it avoids.
"""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from lincv import chunked, losses, precision
from lincv._checks import (check_count, check_dtype, check_labels, wide_ints_as_float32,
                           working_float)

OPTIMIZER = "closed_form"   # the sweep's name for this solver (`config.optimizer`)
CHUNK = 4096                # rows per Gram update
BLOCK = 768                 # columns per block of the Gram matrix (`_upper`)
NOISE = 8                   # eigenvalues within NOISE * eps * max e of 0 are rounding
ROUNDING = 10               # N lambda (at lambda = 0: an eigenvalue) below ROUNDING * eps *
                            # max e is warned of (eps: the rows' dtype's)


class LowPrecision(UserWarning):
  """Strengths of a path that the Gram matrix's rounding reaches (eps of the rows' dtype)."""


class Overflow(UserWarning):
  """Strengths whose weights pass the range of the rows' dtype: they are not finite."""


class BadRows(ValueError):
  """Rows the path cannot solve: a NaN or an infinity in them, or sums past their dtype's
  range (a float32 Gram matrix that overflows)."""


def check_structure(model: str, loss: str, reg: str) -> None:
  """Raises a one-line ValueError unless (model, loss, reg) is what the closed form solves."""
  if (model, loss, reg) != ("linear", "least_squares", "l2"):
    raise ValueError(
        f"optimizer {OPTIMIZER!r} solves model='linear' with loss='least_squares' and "
        f"reg='l2' only; got model={model!r}, loss={loss!r}, reg={reg!r}")


def _check(x_NxD, labels_N, strengths_K, num_classes):
  if len(np.shape(x_NxD)) != 2 or np.shape(labels_N) != (np.shape(x_NxD)[0],):
    raise ValueError(f"ridge needs rows (N, D) and labels (N,), got {np.shape(x_NxD)} and "
                     f"{np.shape(labels_N)}")
  if not np.shape(x_NxD)[0]:
    raise ValueError("ridge needs at least one row, got rows of shape "
                     f"{np.shape(x_NxD)}")
  if not np.shape(x_NxD)[1]:
    raise ValueError("ridge needs at least one feature, got rows of shape "
                     f"{np.shape(x_NxD)}")
  y = np.asarray(labels_N)
  check_count("num_classes", num_classes)
  check_labels(y, num_classes)
  lam = np.asarray(strengths_K, np.float64)
  if lam.ndim != 1 or not lam.size or not np.all(np.isfinite(lam) & (lam >= 0)):
    # No strength gave weights of shape (0, D, C), silently.
    raise ValueError(f"strengths must be a vector of at least one finite number >= 0, got "
                     f"{strengths_K}")
  # float64 rows are solved in float64: with 64-bit JAX off they would silently be
  # float32 (the Gram matrix, the weights), with float64's rounding assumed.
  check_dtype(working_float(x_NxD.dtype), "ridge: the rows' dtype")
  return y, lam


def _check_finite(a, dtype, what: str, unit: str) -> None:
  """Raises a one-line ValueError if the rows' `what` (their column sums, their Gram
  matrix's diagonal) holds a value that is not finite: a NaN or an infinity in the rows,
  or sums past the range of `dtype`. LAPACK would fail on it with a message about its
  own iterations. The diagonal speaks for the whole Gram matrix: its entries are sums of
  squares, none of which is below any partial sum, and an entry off it is at most the
  geometric mean of two of them. `unit` names what the index counts: a column of the
  rows, or a row where the Gram matrix is X X^T."""
  a = np.asarray(a)
  if not np.all(np.isfinite(a)):
    bad = int(np.flatnonzero(~np.isfinite(a))[0])
    raise BadRows(
        f"ridge needs finite rows: {a[bad]} in their {what} at {unit} {bad}, "
        f"from a NaN or an infinity in the rows or sums past {np.dtype(dtype).name}'s "
        f"range (max {float(jnp.finfo(dtype).max):.3g}); check the rows, or scale them")


def _row_sum(fn, arrays, chunk: int, total):
  """`total` (zeros, on the host) plus, over chunks of rows, what
  `fn(total, valid_C, *chunk_of_each_array)` adds to it (`_add`): the sum of its terms
  over the rows where `valid_C` is True.

  The N rows make ceil(N / chunk) chunks of one size, ceil(N / chunks) rows, so one
  program serves them all: the last one ends at row N and overlaps the one before by
  fewer rows than there are chunks, its rows already counted marked not valid. Host
  arrays (a memory map) are read and moved to the device a chunk at a time, without a
  copy (on a CPU the device array shares the chunk's memory: the caller's rows must not
  change until the sum is read, as `path` and `evaluate` read it before they return).
  The sum runs inside `fn`'s program, on a total it is handed (and may reuse, donated):
  an add of its own would compile a program for each shape of total."""
  n = arrays[0].shape[0]
  count = chunked.num_chunks(n, chunk)
  size = -(-n // count)
  total = jax.device_put(total)
  for i in range(count):
    start = min(i * size, n - size)
    valid = jax.device_put(np.arange(start, start + size) >= i * size)
    total = fn(total, valid, *(jax.device_put(a[start:start + size]) for a in arrays))
  return total


def _add(total, part):
  """`total` plus `part`, in `total`'s dtypes: one chunk's terms added to the sum so far."""
  return jax.tree.map(lambda t, p: t + p.astype(t.dtype), total, part)


@functools.partial(jax.jit, donate_argnames="total")
def _column_stats(total, valid_C, x_CxD):
  """`total` (the column sums, maxima and minima so far) updated with one chunk's valid
  rows."""
  x = x_CxD.astype(working_float(x_CxD.dtype))
  sums, high, low = total
  valid = valid_C[:, None]
  return (sums + jnp.sum(jnp.where(valid, x, 0), axis=0).astype(sums.dtype),
          jnp.maximum(high, jnp.max(jnp.where(valid, x, -jnp.inf), axis=0)),
          jnp.minimum(low, jnp.min(jnp.where(valid, x, jnp.inf), axis=0)))


def _scale(mean_D, high_D, low_D, dtype) -> float:
  """The power of two s that brings the centred rows' largest magnitude, at most
  max(high - mean, mean - low) over the columns, into [1, 2) (1 for centred rows that
  are all 0), within the range of `dtype`'s normal numbers (see Scale)."""
  spread = _spread(mean_D, high_D, low_D)
  if not spread > 0:
    return 1.0
  info = np.finfo(dtype)
  exponent = 1 - int(np.frexp(spread)[1])       # spread * 2^exponent in [1, 2)
  return float(np.ldexp(1.0, min(max(exponent, int(info.minexp)), int(info.maxexp) - 1)))


def _bounds(m: int) -> tuple[tuple[int, int], ...]:
  """The column ranges of the Gram matrix's blocks: M // BLOCK of them (at least one), of
  sizes that differ by at most one."""
  edges = np.linspace(0, m, max(1, m // BLOCK) + 1).round().astype(int)
  return tuple(zip(edges[:-1].tolist(), edges[1:].tolist()))


@functools.partial(jax.jit, static_argnames="bounds")
def _upper(z_RxM, bounds):
  """The blocks (i, j >= i) of z^T z, in row order: the Gram matrix is symmetric, so its
  upper blocks are all of it. B blocks a side cost (B + 1) / 2B of the whole product's
  flops: 56% at 8, against 50% for BLAS's `syrk`, which XLA does not use."""
  cols = [z_RxM[:, a:b] for a, b in bounds]
  return [cols[i].T @ cols[j] for i in range(len(cols)) for j in range(i, len(cols))]


@functools.partial(jax.jit, static_argnames=("num_classes", "bounds"),
                   donate_argnames="total")
def _gram_update(mean_D, scale, t_mean_C, total, valid_C, x_CxD, y_C, num_classes, bounds):
  """`total` plus (the upper blocks of X_c^T X_c, X_c^T T_c) of the valid rows of one
  chunk, X_c the centred rows times `scale` (a power of two, see Scale)."""
  xc = jnp.where(valid_C[:, None],
                 (x_CxD.astype(mean_D.dtype) - mean_D[None, :]) * scale, 0)
  tc = losses.targets(y_C, num_classes, xc.dtype) - t_mean_C[None, :]
  return _add(total, (_upper(xc, bounds), xc.T @ tc))


def _linalg():
  """scipy.linalg, imported on first use: it takes 0.2 s, and most runs never solve in
  closed form."""
  import scipy.linalg  # pylint: disable=import-outside-toplevel
  return scipy.linalg


def _lapack(name, info) -> None:
  if info:
    raise RuntimeError(f"lincv.ridge: LAPACK's {name} failed (info={info})")


def _tridiagonal(a):
  """a = Q T Q^T for a symmetric float64 host matrix `a` (from `_host`, overwritten): T's
  diagonal and off-diagonal, and Q as its Householder reflectors (`Reflectors`).

  LAPACK's blocked `sytrd` runs on `a.T`, the same symmetric matrix in Fortran order,
  in place, and reads the lower triangle of `a.T`: the upper triangle of `a`. It is the
  first of the three stages of an eigendecomposition (NumPy's `eigh`): 0.7 s of its
  2.3 s at D = 3,072 in float64 on a 2-core CPU, 10 s at D = 6,400."""
  lapack = _linalg().lapack
  m = a.shape[0]
  lwork, info = lapack.dsytrd_lwork(m, lower=1)
  _lapack("dsytrd_lwork", info)
  c, diag, off, tau, info = lapack.dsytrd(a.T, lower=1, lwork=int(lwork), overwrite_a=1)
  _lapack("dsytrd", info)
  return diag, off, Reflectors(c, tau)


class Reflectors:
  """Q = H_1 ... H_{M-1} of `sytrd` (lower), kept where `sytrd` left them: H_i acts on
  rows i+1.. and leaves row 0 alone, so Q b is LAPACK's `ormqr` on rows 1.. of b, with
  the reflectors' block A[1:, :-1] of the (M, M) Fortran-ordered `c` as its matrix."""

  def __init__(self, c, tau):
    m = c.shape[0]
    # A[1:, :-1] read in place: M - 1 rows of an (M, M - 1) Fortran array (leading
    # dimension M) that starts one number into `c`; its last row is never read.
    self.v = np.ravel(c, order="F")[1:1 + m * (m - 1)].reshape((m, m - 1), order="F")
    self.tau = tau

  def apply(self, b, transpose: bool = False) -> np.ndarray:
    """Q b, or Q^T b, as a new float64 (M, R) array."""
    lapack = _linalg().lapack
    out = np.array(b, np.float64, order="F")
    if out.shape[0] < 2 or not out.shape[1]:
      return out
    trans = "T" if transpose else "N"
    _, work, info = lapack.dormqr("L", trans, self.v, self.tau, out[1:], lwork=-1)
    _lapack("dormqr", info)
    out[1:], _, info = lapack.dormqr("L", trans, self.v, self.tau, out[1:],
                                     lwork=int(work[0]))
    _lapack("dormqr", info)
    return out


def _ends(diag, off) -> tuple[float, float]:
  """The least and the greatest eigenvalue of a tridiagonal matrix (bisection, O(M))."""
  m = diag.size
  end = lambda i: float(_linalg().eigvalsh_tridiagonal(
      diag, off, select="i", select_range=(i, i), check_finite=False)[0])
  return end(0), end(m - 1)


def _positive_solve(diag, off, b):
  """(x, True) with T x = b for a positive definite tridiagonal T (LAPACK's `ptsv`), or
  (_, False) where T is not positive definite after all."""
  if diag.size == 1:
    return b / diag[0], bool(diag[0] > 0)
  _, _, x, info = _linalg().lapack.dptsv(diag, off, b)
  return x, info == 0


def _solve(gram, rhs_MxC, lam_K, n: int, eps: float, dtype, scale: float = 1.0,
           columns=None) -> np.ndarray:
  """(G + N lambda_k s^2 I)^+ rhs for every strength k: (M, K * C) float64, where G is
  `gram` (a float64 host copy, overwritten), ^+ is `_inverse`'s and s is `scale`: the
  power of two the rows were scaled by before G was formed (see Scale), so that G is s^2
  times the unscaled rows' Gram matrix and lambda_k s^2 the strength it takes.

  G = Q T Q^T (`_tridiagonal`), so each strength solves the tridiagonal system
  (T + N lambda I) z = Q^T rhs (LAPACK's `ptsv`, O(M C)) and its weights are Q z: one
  reduction to T serves the whole path. A strength takes T's eigenvectors instead (the
  eigendecomposition of G, without forming its eigenvectors) where the shifted matrix
  is not safely positive definite: at lambda = 0 (the minimum-norm solution), or where
  rounding left an eigenvalue of G below -N lambda / 2."""
  diag, off, q = _tridiagonal(gram)
  low, high = _ends(diag, off)
  _warn_rounding(high / scale**2, lam_K, n, eps, dtype)   # in the unscaled rows' units
  if columns is not None and (lam_K == 0).any():
    _warn_small_columns(*columns, high, eps, dtype)
  lam_K = np.where(lam_K > 0, lam_K * scale**2, 0.0)
  p_MxC = q.apply(rhs_MxC, transpose=True)
  m, c = p_MxC.shape
  z = np.empty((m, lam_K.size, c))
  direct = (lam_K > 0) & (low + n * lam_K / 2 > 0)
  for k in np.flatnonzero(direct):
    z[:, k], direct[k] = _positive_solve(diag + n * lam_K[k], off, p_MxC)
  if not direct.all():
    e_M, u_MxM = _linalg().eigh_tridiagonal(diag, off, check_finite=False)
    if (lam_K == 0).any():
      _warn_zero(e_M, eps, dtype)
    rest = np.flatnonzero(~direct)
    inv_RxM = _inverse(e_M, lam_K[rest], n, eps)
    scaled = inv_RxM[:, :, None] * (u_MxM.T @ p_MxC)[None]          # (R, M, C)
    z[:, rest] = (u_MxM @ scaled.transpose(1, 0, 2).reshape(m, -1)).reshape(m, rest.size, c)
  return q.apply(z.reshape(m, -1))


def _host(upper, bounds) -> np.ndarray:
  """The float64 host Gram matrix of its device blocks `upper` (`_upper`), for
  `_tridiagonal` to reduce (see Precision). Only its upper triangle is written, the
  triangle `_tridiagonal` reads; the lower one is 0."""
  m = bounds[-1][1]
  gram = np.zeros((m, m))
  blocks = iter(upper)
  for i, (a, b) in enumerate(bounds):
    for c, e in bounds[i:]:
      gram[a:b, c:e] = np.asarray(next(blocks))
  return gram


def _inverse(e_D, lam_K, n: int, eps: float) -> np.ndarray:
  """1 / (e + N lambda) (K, D), e clipped at 0 (the Gram matrix is positive
  semidefinite; rounding can leave its zero eigenvalues a little below).

  A positive strength keeps every direction, as a Cholesky solve of the regularised
  system does. At lambda = 0 the directions whose eigenvalue is within rounding of 0,
  at most `NOISE` eps max e, are dropped: the minimum-norm least-squares solution."""
  e_D = np.maximum(e_D, 0.0)
  d = e_D[None, :] + n * lam_K[:, None]
  cutoff = NOISE * eps * float(np.max(e_D, initial=0.0))
  keep = (lam_K[:, None] > 0) | (e_D[None, :] > cutoff)      # then d > 0
  return np.where(keep, 1 / np.where(keep, d, 1), 0)


def _remedy(dtype, zero: bool) -> str:
  """What gives a strength's weights back from the Gram matrix's rounding."""
  fixes = ["give a positive strength" if zero else "give a larger strength"]
  if zero:     # least squares' predictions do not change with the columns' scales
    fixes.append("standardise the columns (--config.data.scale=std)")
  if np.dtype(dtype) != np.float64:
    fixes.append("pass float64 rows with 64-bit JAX on (jax.config.update("
                 "'jax_enable_x64', True), or --config.dtype=float64)")
  return ", or ".join(fixes)


def _warn_zero(e_M, eps: float, dtype) -> None:
  """Warns (`LowPrecision`) where lambda = 0 meets eigenvalues of the Gram matrix that
  lie above its own rounding, eps max e, and below ROUNDING eps max e, as `_warn_rounding`
  does for a positive strength whose N lambda lies there: those directions are either
  dropped as rounding (`_inverse`: at most NOISE eps max e), though they are the data's
  (64 of 256 of a full-rank float32 Gram matrix of condition 1e8 lay below the cutoff,
  the objective 19% above lstsq's), or kept with weights that the rounding sets (at 9 eps
  max e, float32: the objective 4e-4 above its minimum, 0.05% of the predictions
  float64's otherwise). Both dtypes: the rule is relative to the rows' own eps. The exact
  null directions of centred rows (a constant column; fewer rows than columns) lie at a
  tenth of eps max e or less, and are dropped without a word."""
  top = float(np.max(e_M, initial=0.0))
  band = (e_M > eps * top) & (e_M <= ROUNDING * eps * top)
  count = int(np.count_nonzero(band))
  if count:
    dropped = int(np.count_nonzero(band & (e_M <= NOISE * eps * top)))
    warnings.warn(
        f"lincv: ridge on {np.dtype(dtype).name} rows: reg_strength 0 meets {count} "
        f"directions whose eigenvalues lie between eps and {ROUNDING} eps times the Gram "
        f"matrix's largest, where its rounding sets their weights ({dropped} of them "
        f"dropped as rounding, {count - dropped} kept); {_remedy(dtype, zero=True)}",
        LowPrecision, stacklevel=5)


def _warn_small_columns(squares_D, residue_D, high, eps: float, dtype) -> None:
  """Warns (`LowPrecision`) where reg_strength 0 meets columns whose own sums of squares
  (centred and scaled, `squares_D`) lie below `ROUNDING` eps max e, above what centring a
  constant column leaves (`residue_D`): the directions such a column carries have
  eigenvalues that low or lower, where lambda = 0 drops them as rounding (`_inverse`)
  though they are the data's. A column of 0.3 (y - 0.5) + 0.03 N(0, 1) beside two of
  1,000 N(0, 1) (float32) held its label alone, and was dropped without a word: 52.5%
  training accuracy where least squares has 100%. The cutoff is relative to the largest
  eigenvalue; the Gram matrix's rounding is smaller on small columns, which it cannot
  tell apart."""
  squares_D = np.asarray(squares_D, np.float64)
  small = (squares_D > residue_D) & (squares_D < ROUNDING * eps * max(high, 0.0))
  count = int(np.count_nonzero(small))
  if count:
    first = ", ".join(str(i) for i in np.flatnonzero(small)[:5]) + (" ..." if count > 5 else "")
    warnings.warn(
        f"lincv: ridge on {np.dtype(dtype).name} rows: reg_strength 0 meets {count} "
        f"columns ({first}) whose sums of squares lie below {ROUNDING} eps times the Gram "
        f"matrix's largest eigenvalue, where the directions they carry are dropped as "
        f"rounding; {_remedy(dtype, zero=True)}", LowPrecision, stacklevel=5)


def _warn_rounding(high, lam_K, n: int, eps: float, dtype) -> None:
  """Warns (`LowPrecision`) of the positive strengths whose N lambda lies below ROUNDING
  times the Gram matrix's rounding, eps max e (`high`, its greatest eigenvalue): their
  weights carry that rounding (see Precision: 2.6% of the test predictions differ from
  float64's on float32 CIFAR-10 pixels at lambda = 1e-6). Both dtypes, each with its own
  eps: float64 rows reach it only at strengths some 1e9 times weaker."""
  floor = ROUNDING * eps * max(high, 0.0)
  low = lam_K[(lam_K > 0) & (n * lam_K < floor)]
  if low.size:
    listed = ", ".join(f"{v:.3g}" for v in low)
    warnings.warn(
        f"lincv: ridge on {np.dtype(dtype).name} rows: {low.size} of the strengths "
        f"({listed}) have N lambda below {ROUNDING} eps max e = {floor:.3g}, where the Gram "
        f"matrix's rounding changes their weights; {_remedy(dtype, zero=False)} for them",
        LowPrecision, stacklevel=5)


def path(x_NxD, labels_N, strengths_K, num_classes: int, *, chunk: int = CHUNK) -> dict:
  """The minimiser of lincv's least-squares ridge objective for every strength at once.

  Args:
    x_NxD: rows, on a device or on the host (a NumPy array or memory map).
    labels_N: integer labels in [0, num_classes).
    strengths_K: reg_strength values lambda >= 0 (lincv's: the data loss is a mean).
    num_classes: C.
    chunk: rows per Gram update (the D <= N form).

  Returns:
    {"W": (K, D, C), "b": (K, C)} in the rows' dtype (float32 for rows of a narrower
    float or of integers, which are solved in float32): member k's parameters minimise
    `lincv.objective.loss(..., loss="least_squares", reg="l2", reg_strength=lambda_k)`.
  """
  with precision.exact():  # a Gram matrix in an accelerator's reduced precision is no use
    return _path(x_NxD, labels_N, strengths_K, num_classes, chunk)


def _path(x_NxD, labels_N, strengths_K, num_classes, chunk):
  x_NxD = wide_ints_as_float32(x_NxD)
  y, lam = _check(x_NxD, labels_N, strengths_K, num_classes)
  n, d = x_NxD.shape
  dtype = working_float(x_NxD.dtype)
  eps = float(jnp.finfo(dtype).eps)
  counts = np.bincount(y, minlength=num_classes)
  t_mean = 2 * counts / n - 1                                      # (C,) float64
  column_sum, high, low = (np.asarray(a) for a in _row_sum(
      _column_stats, (x_NxD,), chunk,
      (np.zeros(d, dtype), np.full(d, -np.inf, dtype), np.full(d, np.inf, dtype))))
  _check_finite(column_sum, dtype, "column sums", "column")
  mean_host = (column_sum / n).astype(dtype)              # divided and cast on the host:
  mean = jax.device_put(mean_host)                        # no program to compile
  t_mean_dev = jax.device_put(t_mean.astype(dtype))
  scale = _scale(mean_host, high, low, dtype)
  _check_scaled_strengths(lam, scale, mean_host, high, low)
  scale_dev = jax.device_put(np.asarray(scale, dtype))
  # What centring leaves of a constant column, scaled: a few ulps of its magnitude a row.
  magnitude = np.maximum(np.abs(np.asarray(high, np.float64)), np.abs(np.asarray(low, np.float64)))
  residue = n * np.square(4 * eps * magnitude * scale)
  if d <= n:
    bounds = _bounds(d)
    upper, xt_t = _row_sum(functools.partial(_gram_update, mean, scale_dev, t_mean_dev,
                                             num_classes=num_classes, bounds=bounds),
                           (x_NxD, y), chunk,
                           ([np.zeros((b - a, e - c), dtype) for i, (a, b) in enumerate(bounds)
                             for c, e in bounds[i:]], np.zeros((d, num_classes), dtype)))
    xt_t, gram = np.asarray(xt_t, np.float64), _host(upper, bounds)
    del upper                                                       # the device copy
    _check_finite(np.diagonal(gram), dtype, "Gram matrix's diagonal", "column")
    w = _solve(gram, xt_t, lam, n, eps, dtype, scale,
               (np.diagonal(gram).copy(), residue))                 # (D, K * C)
  else:
    x = (x_NxD.astype(dtype) if isinstance(x_NxD, jax.Array)
         else jax.device_put(np.asarray(x_NxD, dtype)))
    xc = (x - mean[None, :]) * scale_dev
    tc = 2 * np.eye(num_classes)[y] - 1 - t_mean[None, :]            # float64 targets
    bounds = _bounds(n)
    gram = _host(_upper(xc.T, bounds), bounds)
    _check_finite(np.diagonal(gram), dtype, "Gram matrix's diagonal", "row")
    squares = np.asarray(jnp.sum(jnp.square(xc), axis=0), np.float64)
    m = _solve(gram, tc, lam, n, eps, dtype, scale, (squares, residue))   # (N, K * C)
    # m to the device as m / 2^k, its largest entry in [1, 2): an m past the dtype's
    # range (N lambda s^2 far below eigenvalues that underflowed, see Scale) stays finite.
    k = int(np.frexp(np.max(np.abs(m), initial=0.0))[1]) - 1 if np.any(m) else 0
    w = np.ldexp(np.asarray(xc.T @ jax.device_put(np.ldexp(m, -k).astype(dtype)),
                            np.float64), k)
  w_KxDxC = w.reshape(d, lam.size, num_classes).transpose(1, 0, 2) * scale   # unscaled
  b_KxC = t_mean[None, :] - np.einsum("d,kdc->kc", np.asarray(mean_host, np.float64),
                                      w_KxDxC)
  with np.errstate(over="ignore", invalid="ignore"):   # past the dtype: warned of below
    params = {"W": w_KxDxC.astype(dtype), "b": b_KxC.astype(dtype)}
  _warn_weights_past_range(params, lam, dtype, mean_host, high, low)
  return jax.tree.map(jax.device_put, params)


def _spread(mean_D, high_D, low_D) -> float:
  """The centred rows' largest magnitude (bounded by the columns' extremes)."""
  mean = np.asarray(mean_D, np.float64)
  return float(np.max(np.maximum(np.asarray(high_D, np.float64) - mean,
                                 mean - np.asarray(low_D, np.float64)), initial=0.0))


def _check_scaled_strengths(lam_K, scale, mean_D, high_D, low_D) -> None:
  """Raises `BadRows` where a positive strength times scale^2 leaves float64's range
  (float64 rows whose centred values are beyond about 1e+-150): the path would solve it
  as 0 or infinity."""
  scaled = lam_K * scale**2
  bad = (lam_K > 0) & ~(np.isfinite(scaled) & (scaled > np.finfo(np.float64).tiny))
  if bad.any():
    raise BadRows(
        f"ridge: the rows' centred values reach at most {_spread(mean_D, high_D, low_D):.3g}"
        f", and scaled to 1 (see lincv.ridge, Scale) strength {lam_K[bad][0]:.3g} would "
        "pass float64's range; scale the rows (standardise them) first")


def _warn_weights_past_range(params, lam_K, dtype, mean_D, high_D, low_D) -> None:
  """Warns (`Overflow`) of the strengths whose weights pass the range of `dtype` (centred
  rows of values near its smallest normal number, at a strength of 0 or about it): they
  are infinite, and a sweep marks those members diverged (`ridge.evaluate` scores them
  NaN or infinity), the others solved as usual."""
  bad = ~(np.all(np.isfinite(params["W"]), axis=(1, 2))
          & np.all(np.isfinite(params["b"]), axis=1))
  if bad.any():
    listed = ", ".join(f"{v:.3g}" for v in lam_K[bad])
    warnings.warn(
        f"lincv: ridge: the weights of strength {listed} pass {np.dtype(dtype).name}'s "
        f"range (max {float(jnp.finfo(dtype).max):.3g}) on rows whose centred values reach "
        f"at most {_spread(mean_D, high_D, low_D):.3g}, and are not finite; standardise "
        "the rows" + (", or pass float64 rows" if np.dtype(dtype) != np.float64 else ""),
        Overflow, stacklevel=4)


def evaluate(params, x_NxD, labels_N, strengths_K, *, chunk: int = CHUNK):
  """lincv's objective and the accuracy of each of K members, in one pass over the rows.

  Args:
    params: {"W": (K, D, C), "b": (K, C)}, e.g. from `path`.
    x_NxD, labels_N: rows (device or host) and their labels.
    strengths_K: the members' reg_strength values.
    chunk: rows per step.

  Returns:
    (objective (K,), accuracy (K,)), float64 NumPy arrays: the mean least-squares loss
    plus lambda ||W||^2, and the fraction of rows whose top score (first on ties, as
    `lincv.training.predict`) is the label.
  """
  with precision.exact():
    w, b = params["W"], params["b"]
    if np.ndim(w) != 3 or np.shape(b) != np.shape(w)[:1] + np.shape(w)[2:]:
      raise ValueError(f"evaluate needs params W (K, D, C) and b (K, C), as `path` gives; "
                       f"got W {np.shape(w)} and b {np.shape(b)}")
    k, d, c = w.shape
    if np.ndim(x_NxD) != 2 or np.shape(x_NxD)[1] != d:
      raise ValueError(f"evaluate needs rows of the {d} columns W has, got rows of shape "
                       f"{np.shape(x_NxD)}")
    x_NxD = wide_ints_as_float32(x_NxD)
    _, lam = _check(x_NxD, labels_N, strengths_K, c)
    if lam.shape != (k,):
      raise ValueError(f"evaluate needs one strength per member: {k} members, got "
                       f"strengths of shape {lam.shape}")
    sums = (np.zeros(k, jnp.result_type(x_NxD.dtype, w.dtype, b.dtype)),   # squares,
            np.zeros(k, np.int32), np.zeros((), np.int32))    # correct, non-finite values
    sq, correct, nonfinite = _row_sum(functools.partial(_stats, w, b),
                                      (x_NxD, np.asarray(labels_N)), chunk, sums)
    if int(nonfinite):     # else every member's objective would be NaN or inf, silently
      raise BadRows(f"ridge.evaluate needs finite rows: {int(nonfinite)} of their values "
                       "are NaN or infinite")
    n = x_NxD.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):  # weights not finite: NaN or inf
      penalty = np.sum(np.square(np.asarray(w, np.float64)), axis=(1, 2))
      return (np.asarray(sq, np.float64) / n + lam * penalty,
              np.asarray(correct, np.float64) / n)


@functools.partial(jax.jit, donate_argnames="total")
def _stats(w_KxDxC, b_KxC, total, valid_C, x_CxD, y_C):
  k, d, c = w_KxDxC.shape
  w_DxKC = jnp.transpose(w_KxDxC, (1, 0, 2)).reshape(d, k * c)
  s = (x_CxD @ w_DxKC + b_KxC.reshape(k * c)[None, :]).reshape(x_CxD.shape[0], k, c)
  t = losses.targets(y_C, c, s.dtype)
  sq = jnp.sum(jnp.where(valid_C[:, None, None], jnp.square(s - t[:, None, :]), 0),
               axis=(0, 2))
  correct = jnp.sum((jnp.argmax(s, axis=2) == y_C[:, None]) & valid_C[:, None], axis=0)
  nonfinite = jnp.sum(~jnp.isfinite(x_CxD) & valid_C[:, None])
  return _add(total, (sq, correct, nonfinite))
