r"""Numerical gradient checks that know about kinks.

A hand-derived gradient is compared with centered differences,

.. math:: \frac{\partial f}{\partial \theta_k} \approx
          \frac{f(\theta + h e_k) - f(\theta - h e_k)}{2h},

coordinate by coordinate. Hinge losses, ReLUs and |w| have kinks where the centered
difference is meaningless; `check` spots the coordinates whose step crosses one and
reports them apart instead of failing on them.

Kink test: for a function that is smooth on [-2h, 2h], the second differences at steps h
and 2h agree to O(h^2). A kink inside that interval makes them disagree by a factor of
about two, and the one-sided slopes (f(+h) - f(0))/h and (f(0) - f(-h))/h differ by the
jump in slope, far more than rounding explains. Both must hold to call it a kink.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

_TINY = 1e-30


def relative_error(a, b) -> jax.Array:
  """Scalar relative error of two arrays (or pytrees): `max|a - b| / max(|a| + |b|)`.

  The denominator is the largest magnitude present, so coordinates that are zero in
  both do not blow the ratio up; it is floored at a tiny number.
  """
  a, _ = ravel_pytree(a)
  b, _ = ravel_pytree(b)
  if a.shape != b.shape:
    raise ValueError(f"relative_error needs equal sizes, got {a.shape} and {b.shape}")
  num = jnp.max(jnp.abs(a - b), initial=0.0)
  den = jnp.max(jnp.abs(a) + jnp.abs(b), initial=0.0)
  return num / jnp.maximum(den, _TINY)


def _evaluate(f, params, indices, steps):
  """f at params + step * e_k for every (k, step) pair, as an array (len(indices), len(steps))."""
  flat, unravel = ravel_pytree(params)
  fun = jax.jit(lambda v: f(unravel(v)))
  idx = jnp.asarray(indices, dtype=jnp.int32)
  steps = jnp.asarray(steps, dtype=flat.dtype)

  def at(k):
    return jax.vmap(lambda s: fun(flat.at[k].add(s)))(steps)

  out = jax.lax.map(at, idx, batch_size=64)
  return np.asarray(out, dtype=np.float64)


def numerical_grad(f, params, h: float = 1e-5):
  """Centered-difference gradient of scalar `f` at `params`, shaped like `params`.

  Args:
    f: a JAX-traceable function of the parameter pytree returning a scalar.
    params: a pytree of floating arrays (use float64 for tight checks).
    h: the step.
  """
  flat, unravel = ravel_pytree(params)
  vals = _evaluate(f, params, np.arange(flat.size), (h, -h))
  return unravel(jnp.asarray((vals[:, 0] - vals[:, 1]) / (2 * h), dtype=flat.dtype))


def coordinate_name(params, index: int) -> str:
  """Readable name of flat coordinate `index` of `params`, e.g. "W[3, 1]"."""
  offset = 0
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    size = int(np.size(leaf))
    if index < offset + size:
      where = np.unravel_index(index - offset, np.shape(leaf))
      return f"{jax.tree_util.keystr(path)}[{', '.join(map(str, where))}]"
    offset += size
  raise IndexError(f"coordinate {index} out of range for {offset} parameters")


@dataclasses.dataclass(frozen=True)
class Report:
  """Outcome of `check`.

  Attributes:
    max_relative_error: `relative_error` of analytic vs numerical gradient over the
      checked coordinates that are not kinks (0 if there are none).
    num_checked: coordinates compared (kinks excluded).
    num_kinks: coordinates skipped because their step crosses a kink.
    kink_indices: flat indices (in `ravel_pytree` order) of those coordinates.
    worst: name of the coordinate with the largest absolute error, or None.
  """
  max_relative_error: float
  num_checked: int
  num_kinks: int
  kink_indices: tuple[int, ...]
  worst: str | None

  def passed(self, tol: float) -> bool:
    """True if at least one coordinate was checked and the error is at most `tol`."""
    return self.num_checked > 0 and self.max_relative_error <= tol


def check(f, params, grad, *, num_checks: int | None = None, h: float = 1e-5,
          seed: int = 0) -> Report:
  """Compares the gradient `grad` of `f` at `params` with centered differences.

  Args:
    f: scalar function of the parameter pytree (JAX-traceable).
    params: the point to check at.
    grad: the analytic gradient at `params`, a pytree like `params`.
    num_checks: check this many coordinates drawn at random without replacement
      (seeded by `seed`); None checks all of them.
    h: the finite-difference step.
    seed: seed of the coordinate sample.

  Returns:
    a `Report`; nothing is printed.
  """
  flat, _ = ravel_pytree(params)
  g_flat, _ = ravel_pytree(grad)
  if g_flat.shape != flat.shape:
    raise ValueError(
        f"grad has {g_flat.size} coordinates but params has {flat.size}; "
        "grad must be shaped like params")
  size = flat.size
  if num_checks is None or num_checks >= size:
    indices = np.arange(size)
  else:
    if num_checks <= 0:
      raise ValueError(f"num_checks must be positive or None, got {num_checks}")
    indices = np.sort(np.random.default_rng(seed).choice(size, num_checks, replace=False))

  v = _evaluate(f, params, indices, (2 * h, h, 0.0, -h, -2 * h))
  f2, f1, f0, fm1, fm2 = v.T
  numeric = (f1 - fm1) / (2 * h)
  d2_h = (f1 - 2 * f0 + fm1) / h**2
  d2_2h = (f2 - 2 * f0 + fm2) / (2 * h) ** 2
  slope_jump = np.abs((f1 - f0) - (f0 - fm1)) / h
  eps = np.finfo(np.dtype(flat.dtype)).eps
  rounding = 1e3 * eps * (np.abs(f0) + 1.0) / h
  curvature_disagrees = np.abs(d2_h - d2_2h) > 0.1 * np.maximum(np.abs(d2_h), np.abs(d2_2h))
  kink = curvature_disagrees & (slope_jump > rounding)

  analytic = np.asarray(g_flat, dtype=np.float64)[indices]
  keep = ~kink
  if keep.any():
    err = float(relative_error(jnp.asarray(analytic[keep]), jnp.asarray(numeric[keep])))
    worst_pos = int(np.argmax(np.abs(analytic[keep] - numeric[keep])))
    worst = coordinate_name(params, int(indices[keep][worst_pos]))
  else:
    err, worst = 0.0, None
  return Report(max_relative_error=err, num_checked=int(keep.sum()),
                num_kinks=int(kink.sum()), kink_indices=tuple(int(i) for i in indices[kink]),
                worst=worst)
