"""Full-batch L-BFGS for one linear member: pure, so a population of members vmaps.

`optimizer = "lbfgs"` trains a linear model on all training rows at once: one epoch is
`Structure.lbfgs_iters` L-BFGS iterations, so checkpoints, curves, halving and selection
work by epochs as for the minibatch optimizers. The direction is optax's
(`optax.scale_by_lbfgs`, memory `MEMORY`, its first step capped at unit length); the
objective is the sweep's own, `lincv.objective` with the hand-derived gradient (mean data
loss plus `reg_strength` times the penalty on W).

Preconditioning. The rows' second moment X^T X / N (`Basis`: its eigenvectors and
eigenvalues, computed once for the rows, `training.with_basis`) gives a model of the
objective's curvature, c X^T X / N + 2 lambda I for the weights. optax's L-BFGS runs in
coordinates where that model is a multiple of the identity (`_coordinates`), so it starts
from the model's inverse where it would start from the identity's, and only has to learn
what the model misses; the objective, its gradient, the stopping test and the minimum are
those of W and b. A member's iteration costs two (C, D) x (D, D) products more, the
direction's and the gradient's change of coordinates, against the rows' two (C, D) x
(D, N). On the bench's CIFAR-10 pixels (5,000 rows of 3,072, mean image subtracted, the
16 strengths 1e-4..1 of `bench.probe`, tol 1e-6, float32) the path took 494 iterations,
its slowest member 52, where unpreconditioned it took 4,211 (slowest 983): 9.5 s against
30.2 s on a 2-core CPU, compilation and the basis (1.3 s) included, the objectives within
2e-10 of each other (7.3 s since such a population compiles no smaller programs for its
last few epochs, `lincv.sweep.population.COMPACT_AFTER_FLOPS`). c = `CURVATURE` (0.02) was
chosen on those rows: 0.005, 0.01 and 0.05 took 630, 539 and 481 iterations (slowest 48,
41 and 63). Pixels' and a network's features' second moments span orders of magnitude
(these pixels': 55 down to 3e-7, 190 eigenvalues above a thousandth of the top one),
which the ten pairs of L-BFGS's memory learn slowly. On rows that are better conditioned
the gain is small: digits (400 rows of 64, float64, 8 strengths 1e-5..3, tol 1e-6) took
512 iterations against 524, the weakest strength's 193 against 156. The basis is one
Gram matrix (N D^2) and one eigendecomposition (D^3, float32: 1.1 s at D = 3,072 and
14 s at 6,400 on the 2-core CPU), and holds D^2 floats: rows of more than
`MAX_BASIS_COLUMNS` columns (1 GiB of float32 at that width) run unpreconditioned. With
fewer rows than columns it is that of X X^T / N instead (N^2 D and N^3, `basis`), N
directions, the others left as they are, and an iteration costs four (C, D) x (D, N)
products more: on 1,800 k-means rows of 6,400
(the 16 strengths, tol 1e-6) the path took 23.7 s and 2,134 iterations, where the whole
(D, D) basis took 38.3 s (its eigendecomposition 14 s of them) and 2,124 iterations.

The line search uses that the scores are linear in the parameters: with `u = x d_W + d_b`
(one product, all members' directions as one (K*C, D) x (D, N) GEMM under `vmap`), the
objective along the ray is `mean L(s + t u) + lambda R(W + t d_W)`, so the `STEPS` step
sizes of `step_sizes` (1 down to 2^-27) cost no further product, and neither do slopes
`phi'(t)` there. The largest that passes Armijo's test (`phi(t) <= phi(0) + C1 t phi'(0)`,
and a strict decrease) is taken. Where none does, the slopes at 0 and 1 place the ray's
minimum on the quadratic model, and the largest step size not beyond it is taken if it
passes Hager and Zhang's approximate Wolfe test (`phi'(t) <= (2 C1 - 1) phi'(0)`, a
decrease on that model, with `phi(t)` at most `NOISE` roundings above `phi(0)`). Near the
minimum a step's decrease is smaller than the rounding of the objective itself: with
Armijo's test alone, float32 members stalled at 1e-4 to 7e-4 of the gradient at zero
(digits), or 1e-5 to 9e-4 (k-means features), their objectives up to 1e-6 above the
minimum; with the slopes they reach a tol of 1e-6 (digits, `tests/test_lbfgs.py`; 2e-6 on
a CPU without AVX-512, whose order of summation rounds otherwise) and
1e-7 (k-means features), for 1% more time per iteration (10,000 rows of 1,000 and of
6,400 features, 8 members, a 2-core CPU). An iteration is thus one forward and one
backward product, about one batched function-and-gradient evaluation (1.1 to 1.35 of
them measured, 10,000 x 1,000 features, K = 8 or 16 members, softmax), where optax's own
line searches, vmapped, run every member through every branch of their loops:
`optax.lbfgs`'s zoom took 9.2 evaluations' time per iteration,
`scale_by_backtracking_linesearch` 37.

Each member stops on its own test: its gradient norm relative to the objective's gradient
norm at W = 0, b = 0 is at most `tol` (as `bench.probe` gives scikit-learn its tolerance),
or no step size passes either test (the direction is exhausted at the precision of the
arithmetic). The reference at zero is the data loss's gradient alone, the same for
every strength and every start: relative to the gradient at a random start, which a
strong penalty dominates (2 lambda W0), a member at lambda = 1e6 stopped after 2
iterations with its objective 69% above its minimum, its bias never fitted. Where the
gradient at zero is within its own rounding (at most `NOISE` log2(N) eps times the size
of its terms, sum_i |g_i| |x_i| / N, bounded by Cauchy-Schwarz), the objective's minimum
is W = 0, b = 0 up to that rounding (balanced labels on all-zero or constant rows), and
the reference is the size of its terms instead. Relative to the rounding of a sum that
cancels (or, where it cancelled exactly, to the gradient at the random start, 2 lambda
W0), no member could pass: members solved in their first steps stalled at
|grad|/|grad_0| of 0.5 to 7e4 and were named in `NotConverged`. Where every score's
gradient is exactly 0 at zero (a hinge of margin 0, whose minimum that is), the reference
is the member's gradient at its start: relative to 0, members stopped after one
iteration at their random start, "ok" with a grad_norm of 0. Rows whose gradient at
zero does not cancel to its rounding keep that gradient as the reference, bit for bit:
the largest ratio of the gradient at zero to its terms' size measured on balanced labels
over all-zero or constant rows was 17 eps (300,000 rows), against `NOISE` log2(N) = 146
eps there. A member that stops
stays frozen (status STOPPED, reported "ok"); the iteration cap is `epochs *
lbfgs_iters`. Members that end above `tol`, at the cap or stalled, are counted in one
`NotConverged` warning at the end of the sweep (`warn_unconverged`), as scikit-learn's
ConvergenceWarning does for one fit. A member whose objective or gradient norm is not
finite at the start (its scores, or a huge strength's gradient, overflow) is marked
DIVERGED and takes no step. A member reports its last iterate, not its best-validation
one: a solver's answer is its solution.

Members start cold, all at once. Starting each strength from its neighbour's solution
saved 23% (digits, float64) to 48% (random 10,000 x 1,000, float32) of the iterations
of a path of 8 strengths, but solves the path one strength after another, where the
population solves it in the iterations of its slowest member; an iteration of 8
members cost 2.6 to 4.4 times one member's there (a loaded 2-core CPU), so the two
came out even, and the warm start is not used.

A population may mix losses (`Structure.loss` a tuple, each member's `loss_index` choosing
its own, see `lincv.objective.loss_values`): the line search then evaluates every loss
of the tuple on the (N, C) scores and keeps each member's.

The solver's state (`State`) lives in the member's `opt_state`, in the training loop's
layout (W as (C, D), see `lincv.objective.transpose_input`).
"""

import math
import warnings
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from lincv import objective, precision, regularizers, training
from lincv._checks import as_float, check_nonnegative, working_float

MEMORY = 10          # (s, y) pairs kept, as scikit-learn's and optax's default
CURVATURE = 0.02     # the data loss's curvature the preconditioner assumes (see `Basis`)
FLOOR = 1e-6         # the preconditioner's least damping, relative to the model's top
                     # curvature: the rows' top eigenvalue, or the bias's 1 if larger
MAX_BASIS_COLUMNS = 16384   # wider rows run unpreconditioned (the basis holds D^2 floats)
RANK_FLOOR = 1e-7    # fewer rows than columns: eigenvalues kept, relative to the top one
STEPS = 16           # step sizes tried per iteration: 1, 1/2, 1/4, 1/8, 1/32, ..., 2^-27
C1 = 1e-4            # Armijo's sufficient-decrease constant
NOISE = 8            # the objective's rounding, in units of eps times its value (and
                     # per log2(N), the gradient at zero's, in eps times its terms' size)


class NotConverged(UserWarning):
  """Members of a run ended with their gradient above `tol`: not their objective's minimum."""


class Basis(NamedTuple):
  """Eigenvectors (columns of `vectors`, (D, r)) and eigenvalues (`values`, (r,), at least
  0) of the training rows' second moment X^T X / N: the preconditioner's basis, computed
  once for the rows and shared by every member (`training.Data.basis`). r = D where the
  rows are at least as many as their columns; else r = N, the rank of X^T X at most, and
  the directions outside the columns' span have eigenvalue 0."""
  vectors: jax.Array
  values: jax.Array


def basis(x_NxD) -> Basis:
  """The `Basis` of the rows `x_NxD`, in their working float (float32, or float64 for
  float64 rows; the preconditioner changes the path to the minimum, not the minimum).

  N >= D: one (D, N) x (N, D) product and one eigendecomposition of the (D, D) result.
  N < D: of X X^T / N (N, N), which has the same nonzero eigenvalues, with eigenvectors u
  where X^T X / N has X^T u; those are orthonormalised (a QR), and the directions whose
  eigenvalue is below `RANK_FLOOR` of the top one, where X^T u is mostly rounding, are
  left out (eigenvalue 0).
  """
  # uint8 rows made a uint8 Gram matrix that wrapped; float16 has no eigh on CPU.
  x_NxD = jnp.asarray(x_NxD)
  x_NxD = x_NxD.astype(working_float(x_NxD.dtype))
  n, d = x_NxD.shape
  if n == 0:
    raise ValueError("basis needs at least one row, got 0")
  with precision.exact():
    if n >= d:
      gram = x_NxD.T @ x_NxD / n
      values, vectors = jnp.linalg.eigh(gram)     # symmetrised by eigh itself
      return Basis(vectors=vectors, values=jnp.maximum(values, 0))
    kernel = x_NxD @ x_NxD.T / n
    values, u = jnp.linalg.eigh(kernel)
    values, u = values[::-1], u[:, ::-1]      # largest first: the QR keeps their directions
    kept = values > RANK_FLOOR * jnp.max(values)
    vectors, r = jnp.linalg.qr(x_NxD.T @ (u * kept[None, :]))
    kept = kept & (jnp.abs(jnp.diagonal(r)) > 0)
  return Basis(vectors=vectors * kept[None, :], values=jnp.where(kept, values, 0))


class State(NamedTuple):
  """One member's solver state, parameter-shaped parts in the loop's layout."""
  memory: optax.OptState    # optax.scale_by_lbfgs's state, in the preconditioned coordinates
  value: jax.Array          # the objective at the current parameters
  grad: dict                # its gradient there
  direction: dict           # the next search direction in the preconditioned coordinates
  grad_norm0: jax.Array     # the stopping test's reference: |gradient at W = 0, b = 0|,
                            # or its terms' size where it cancels to rounding (`_reference`)
  iterations: jax.Array     # int32, steps taken


def _direction_fn():
  return optax.scale_by_lbfgs(memory_size=MEMORY)


def _value_from_scores(structure, hparams, w_t, s_NxC, y_N):
  """The objective from the scores and the weight (the linear model's penalty is on W)."""
  lam = as_float(hparams["reg_strength"], w_t)
  data = jnp.mean(objective.loss_values(structure.loss, s_NxC, y_N, margin=hparams["margin"],
                                        loss_index=hparams.get("loss_index")))
  return data + lam * regularizers.value(structure.reg, w_t, beta=hparams["beta"])


def _score_grads(structure, hparams, s_NxC, y_N):
  """The mean data loss's gradient with respect to the scores, (N, C)."""
  return objective.loss_grads(structure.loss, s_NxC, y_N, margin=hparams["margin"],
                              loss_index=hparams.get("loss_index")) / s_NxC.shape[0]


def _grad_from_scores(structure, hparams, params_t, s_NxC, x_NxD, y_N):
  """The hand-derived gradient (loop layout) from the scores: one (C, N) x (N, D) product."""
  lam = as_float(hparams["reg_strength"], x_NxD)
  g_NxC = _score_grads(structure, hparams, s_NxC, y_N)
  w_t = params_t["W"]
  return {"W": g_NxC.T @ x_NxD + lam * regularizers.grad(structure.reg, w_t,
                                                         beta=hparams["beta"]),
          "b": jnp.sum(g_NxC, axis=0)}


def _slope(structure, hparams, w_t, d_w, s_NxC, u_NxC, y_N, t):
  """The slope phi'(t) of the objective along the ray at W + t d_W, scores s + t u: no
  product with the rows."""
  lam = as_float(hparams["reg_strength"], w_t)
  g_NxC = objective.loss_grads(structure.loss, s_NxC + t * u_NxC, y_N,
                               margin=hparams["margin"], loss_index=hparams.get("loss_index"))
  penalty = regularizers.grad(structure.reg, w_t + t * d_w, beta=hparams["beta"])
  return jnp.sum(g_NxC * u_NxC) / s_NxC.shape[0] + lam * jnp.vdot(penalty, d_w)


def _scores(params_t, x_NxD):
  return objective.scores_t(params_t, x_NxD, "linear")


class _Coordinates(NamedTuple):
  """A member's preconditioned coordinates Z. With a whole basis (V (D, D)): W (loop
  layout, (C, D)) = (Z_W * w) V^T. With a partial one (V (D, r), r < D, the directions
  outside its span at scale 1): W = Z_W + ((Z_W V) * (w - 1)) V^T. Both ways b = Z_b *
  b_scale; no basis: Z = the parameters."""
  vectors: jax.Array | None
  w: jax.Array | None
  b: jax.Array | None

  @property
  def _is_partial(self) -> bool:
    """Whether the basis spans fewer directions than the weights have (r < D)."""
    return self.vectors.shape[1] < self.vectors.shape[0]

  def _partial(self, a_CxD):
    """a (I + V diag(w - 1) V^T): a partial basis's map, the same both ways (symmetric)."""
    return a_CxD + ((a_CxD @ self.vectors) * (self.w - 1)[None, :]) @ self.vectors.T

  def gradient(self, g):
    """A gradient (loop layout) as the gradient with respect to Z: one (C, D) x (D, D)
    product (a partial basis: two of (C, D) x (D, r))."""
    if self.vectors is None:
      return g
    w = (self._partial(g["W"]) if self._is_partial
         else (g["W"] @ self.vectors) * self.w[None, :])
    return {"W": w, "b": g["b"] * self.b}

  def step(self, d):
    """A step in Z as the step of the parameters (loop layout): as many products."""
    if self.vectors is None:
      return d
    w = (self._partial(d["W"]) if self._is_partial
         else (d["W"] * self.w[None, :]) @ self.vectors.T)
    return {"W": w, "b": d["b"] * self.b}


def _coordinates(basis_: Basis | None, structure, hparams) -> _Coordinates:
  """The member's coordinates: L-BFGS in them starts from the inverse Hessian of a model of
  the objective, c X^T X / N + 2 lambda I for the weights (c = `CURVATURE`) and c for the
  bias, up to a scale, where optax's starts from a multiple of the identity.

  In the basis's coordinates the model is diagonal, c (s_i + d) with d = 2 lambda / c, and
  the weights' coordinates are scaled by sqrt(d / (s_i + d)), the bias's by
  sqrt(d / (1 + d)): every coordinate of the model then has the curvature c d. The rows'
  second moment X^T X / N of pixels or of a network's features spans many orders of
  magnitude, which L-BFGS's ten pairs of memory learn slowly.

  d is at least `FLOOR` times the model's largest curvature, the largest s_i or the
  bias's 1, whichever is larger, so that a member without a penalty keeps finite steps.
  Relative to the largest s_i alone, float32 members on rows of small values (400 digits
  rows times 0.01: top eigenvalue 4.6e-4) at strengths of 1e-12 and below stopped after
  one iteration, "ok", at their random start: the bias's coordinate, scaled by sqrt(d),
  made the first step so short that the gradient's change was float32 rounding, and the
  next direction went uphill. Rows whose top eigenvalue is at least 1 are solved as
  before.
  """
  if basis_ is None:
    return _Coordinates(None, None, None)
  values = basis_.values
  lam = as_float(hparams["reg_strength"], values) if structure.reg == "l2" else 0.0
  top = jnp.maximum(jnp.max(values), 1)
  damping = jnp.maximum(jnp.maximum(2 * lam / CURVATURE, FLOOR * top),
                        jnp.finfo(values.dtype).tiny)
  return _Coordinates(basis_.vectors, jnp.sqrt(damping / (values + damping)),
                      jnp.sqrt(damping / (1 + damping)))


def init(params, hparams, x_NxD, y_N, structure, basis_: Basis | None = None) -> State:
  """The solver's state at `params` (the usual (D, C) layout): value, gradient, direction;
  preconditioned where `basis_` (the rows' `Basis`) is given. Concrete hyperparameters out
  of range are a ValueError (a negative reg_strength ended "ok", its weights unmoved)."""
  for name in ("reg_strength", "margin", "tol"):
    if name in hparams:
      check_nonnegative(name, hparams[name])
  with precision.exact():
    return _init(params, hparams, x_NxD, y_N, structure, basis_)


def _init(params, hparams, x_NxD, y_N, structure, basis_) -> State:
  params_t = objective.transpose_input(params)
  s_NxC = _scores(params_t, x_NxD)
  value = _value_from_scores(structure, hparams, params_t["W"], s_NxC, y_N)
  grad = _grad_from_scores(structure, hparams, params_t, s_NxC, x_NxD, y_N)
  opt = _direction_fn()
  zero = jax.tree.map(jnp.zeros_like, params_t)     # the penalty's gradient is 0 there
  # optax's L-BFGS reads its parameters' differences only: Z starts at 0.
  z = _coordinates(basis_, structure, hparams)
  p_grad, memory = opt.update(z.gradient(grad), opt.init(zero), zero)
  ref = _reference(structure, hparams, zero, jnp.zeros_like(s_NxC), x_NxD, y_N)
  # Every score's gradient is 0 at zero (a hinge of margin 0): W = 0, b = 0 is the minimum
  # and the gradient there no scale. Relative to 0, any member "converged" at once, at
  # its random start; it is held to its gradient at the start instead.
  ref = jnp.where(ref == 0, optax.tree.norm(grad), ref)
  return State(memory=memory, value=value, grad=grad, direction=optax.tree.scale(-1.0, p_grad),
               grad_norm0=ref, iterations=jnp.zeros((), jnp.int32))


def _reference(structure, hparams, zero_t, s0_NxC, x_NxD, y_N):
  """The stopping test's reference: |gradient at W = 0, b = 0|, or, where that gradient
  is within its own rounding (at most `NOISE` log2(N) eps times the size of its terms),
  the size of its terms: sqrt(|g| |X| bound^2 + |sum_i |g_i| / N|^2), the weights' part
  bounded by Cauchy-Schwarz, |g|_F |X|_F (one pass over the rows, no product, no copy).
  NaN where the rows or the gradient are not finite."""
  ref = optax.tree.norm(_grad_from_scores(structure, hparams, zero_t, s0_NxC, x_NxD, y_N))
  n = x_NxD.shape[0]
  g_NxC = _score_grads(structure, hparams, s0_NxC, y_N)   # the same terms (one op to XLA)
  top = jnp.max(jnp.abs(x_NxD))              # |X|_F, safe from overflow and underflow
  x_norm = top * jnp.sqrt(jnp.sum(jnp.square(x_NxD / jnp.where(top > 0, top, 1))))
  terms = jnp.sqrt(jnp.sum(jnp.square(g_NxC)) * jnp.square(x_norm)
                   + jnp.sum(jnp.square(jnp.sum(jnp.abs(g_NxC), axis=0))))
  floor = NOISE * max(1.0, math.log2(n)) * jnp.finfo(g_NxC.dtype).eps * terms
  return jnp.where(ref > floor, ref, terms)


def relative_grad_norm(state: State) -> jax.Array:
  """The stopping test's quantity: |grad| / |grad at W = 0, b = 0| (see the module's
  docstring for where the gradient at zero cancels to rounding, and `_init` for where it
  is 0); where the reference is 0, 0 for a gradient of 0 and infinity for any other; NaN
  if it is not finite: a member whose rows or labels overflow or are NaN is not
  "converged")."""
  norm0 = state.grad_norm0
  norm = optax.tree.norm(state.grad)
  ratio = norm / jnp.where(norm0 > 0, norm0, 1)
  return jnp.where(norm0 > 0, ratio, jnp.where(jnp.isnan(norm0), jnp.nan,
                                               jnp.where(norm > 0, jnp.inf, 0)))


def step_sizes(dtype) -> jax.Array:
  """The `STEPS` step sizes the line search tries, largest first: halving from 1 to 1/8,
  then quartering (so the first step, whose scale is not known yet, can be small)."""
  j = jnp.arange(STEPS)
  return (0.5 ** jnp.where(j < 4, j, 2 * j - 3)).astype(dtype)


def _iteration(structure, hparams, x_NxD, y_N, basis_=None):
  """(carry, _) -> carry: one L-BFGS iteration of a member; carry = (params_t, scores,
  State, done)."""
  opt = _direction_fn()
  steps_T = step_sizes(x_NxD.dtype)
  tol = hparams["tol"]
  z = _coordinates(basis_, structure, hparams)

  def step(carry, _):
    params_t, s_NxC, st, done = carry
    d = z.step(st.direction)
    u_NxC = _scores(d, x_NxD)
    slope = optax.tree.vdot(st.grad, d)
    phi = lambda t: _value_from_scores(structure, hparams, params_t["W"] + t * d["W"],
                                       s_NxC + t * u_NxC, y_N)
    phi_T = jax.vmap(phi)(steps_T)
    armijo_T = (phi_T <= st.value + C1 * steps_T * slope) & (phi_T < st.value)
    # Near the minimum the decrease a step makes drops below the rounding of the objective
    # itself (float32: about 1e-7 of it), and every step fails Armijo's test while the
    # gradient is still well above tol. The slope along the ray keeps its accuracy there.
    # The slopes at 0 and 1 place the ray's minimum on the quadratic model; the largest
    # step size not beyond it is taken if it passes Hager and Zhang's approximate Wolfe
    # test: its slope says that the objective decreased on that model (phi(t) - phi(0) =
    # t (phi'(0) + phi'(t)) / 2 <= C1 t phi'(0)), and its value rose by no more than its
    # rounding.
    dphi = lambda t: _slope(structure, hparams, params_t["W"], d["W"], s_NxC, u_NxC, y_N, t)
    curvature = dphi(steps_T[0]) - slope          # phi'(1) - phi'(0)
    t_min = jnp.where(curvature > 0, -slope / jnp.where(curvature > 0, curvature, 1), 1)
    below_T = steps_T <= t_min
    k = jnp.argmax(below_T)
    noise = NOISE * jnp.finfo(phi_T.dtype).eps * jnp.abs(st.value)
    wolfe = (below_T[k] & (dphi(steps_T[k]) <= (2 * C1 - 1) * slope)
             & (phi_T[k] <= st.value + noise))
    j = jnp.where(jnp.any(armijo_T), jnp.argmax(armijo_T), k)
    ok = jnp.where(jnp.any(armijo_T), True, wolfe) & (slope < 0)
    t = steps_T[j]
    new_params = optax.tree.add_scale(params_t, t, d)
    new_s = s_NxC + t * u_NxC
    grad = _grad_from_scores(structure, hparams, new_params, new_s, x_NxD, y_N)
    new_z = optax.tree.add_scale(st.memory.params, t, st.direction)   # Z after the step
    p_grad, memory = opt.update(z.gradient(grad), st.memory, new_z)
    new = State(memory=memory, value=phi_T[j], grad=grad,
                direction=optax.tree.scale(-1.0, p_grad), grad_norm0=st.grad_norm0,
                iterations=st.iterations + 1)
    move = ~done & ok
    keep = lambda a, b: jax.tree.map(lambda x, y: jnp.where(move, x, y), a, b)
    params_t, s_NxC, st = keep(new_params, params_t), keep(new_s, s_NxC), keep(new, st)
    done = done | ~ok | (relative_grad_norm(st) <= tol)
    return (params_t, s_NxC, st, done), None
  return step


def train_epoch(state, hparams, data, structure):
  """`structure.lbfgs_iters` iterations of one member; returns (state, metrics) as
  `lincv.training.train_epoch` does: "train_loss" is the objective at the epoch's end,
  "val_accuracy" that of its parameters (both NaN if the member took no step, but in its
  first epoch, which reports where it starts).

  Its products are float32 whatever the run's `matmul_precision` (`lincv.precision`): the
  stopping test compares gradient norms at 1e-4 to 1e-6 of the gradient's at zero."""
  with precision.exact():
    return _train_epoch(state, hparams, data, structure)


def _train_epoch(state, hparams, data, structure):
  chex.assert_rank([data.x_train, data.y_train], [2, 1])
  params_t = objective.transpose_input(state.params)
  st = state.opt_state
  active = state.status == training.ACTIVE
  # Its objective or its gradient's norm overflowed at the start (a gradient of 2 lambda W
  # at lambda = 1e25 has a finite objective but an infinite norm in float32): it could not
  # take a step, and its relative gradient norm would be NaN.
  bad = active & ~(jnp.isfinite(st.value) & jnp.isfinite(optax.tree.norm(st.grad)))
  # The scores are recomputed from the parameters once per epoch, so the rounding of
  # `s + t u` does not pile up over the iterations.
  # The loop ends when every member is done (under `vmap`, when every member of the
  # chunk is), so an epoch whose members have all stopped costs no further iteration.
  step = _iteration(structure, hparams, data.x_train, data.y_train, data.basis)
  carry = (params_t, _scores(params_t, data.x_train), st, ~active | bad, jnp.int32(0))
  params_t, _, new_st, done, _ = jax.lax.while_loop(
      lambda c: (c[4] < structure.lbfgs_iters) & ~c[3],
      lambda c: (*step(c[:4], None)[0], c[4] + 1), carry)
  # A member that takes no step in its first epoch (its gradient is 0 at the start, or no
  # step decreases its objective) is solved where it starts: that epoch reports it.
  first = active & ~bad & (state.epochs_run == 0)
  updated = (new_st.iterations > st.iterations) | first
  params = objective.transpose_input(params_t)
  val_acc = training.accuracy(structure, params, data.x_val, data.y_val)
  status = jnp.where(bad, training.DIVERGED,
                     jnp.where(active & done, training.STOPPED, state.status))
  epoch = state.epoch + 1
  loss = jnp.where(updated, new_st.value, jnp.nan)
  new_state = state._replace(
      params=params, opt_state=new_st,
      best_params=jax.tree.map(lambda a, b: jnp.where(updated, a, b), params,
                               state.best_params),
      best_val_acc=jnp.where(updated, val_acc, state.best_val_acc),
      best_epoch=jnp.where(updated, epoch, state.best_epoch),
      epoch=epoch, epochs_run=state.epochs_run + updated.astype(jnp.int32), status=status,
      loss_ref=jnp.where(jnp.isnan(state.loss_ref), st.value, state.loss_ref),
      last_loss=jnp.where(updated, new_st.value, state.last_loss), prev_params=params)
  return new_state, {"train_loss": loss, "val_accuracy": jnp.where(updated, val_acc, jnp.nan)}


@jax.jit
def report(opt_state: State) -> dict:
  """Per member of a population's (batched) state: "iterations" (steps taken) and
  "grad_norm" (the gradient norm relative to the gradient's at W = 0, b = 0).

  One program: run op by op, the norm's dozen operations compiled a program each, 1.2 s
  of a probe_clip smoke run's 7 s of compilation on a 2-core CPU."""
  return {"iterations": opt_state.iterations,
          "grad_norm": jax.vmap(relative_grad_norm)(opt_state)}


NOT_SMOOTH = ("svm",)    # losses whose gradient jumps: L-BFGS's curvature model does not hold


def unconverged(rows: list[dict]) -> list[dict]:
  """The rows of full-batch members that ended, not diverged or pruned, with
  |grad| / |grad_0| above their `tol`; a member of tol 0 ran every iteration as asked."""
  return [r for r in rows if "grad_norm" in r and r["status"] == "ok" and r["tol"] > 0
          and not r["grad_norm"] <= r["tol"]]


def warn_unconverged(rows: list[dict], best: dict | None = None) -> list[dict]:
  """Warns (`NotConverged`, once for the run) about the rows of full-batch members that
  ended with |grad| / |grad_0| above their `tol`; returns those rows.

  A member ends so at its iteration cap (`epochs * lbfgs_iters`), or where no step size
  decreased its objective (the arithmetic's precision, e.g. a float32 `tol` of 1e-9). Its
  weights are then not the minimum its strength asks for: its accuracy, and a selection
  that compares it with converged members, say nothing certain about that strength.
  Diverged and pruned members are left out (their status says so already).
  """
  bad = unconverged(rows)
  if not bad:
    return bad
  cap = lambda r: r["iterations"] >= r["epochs"] * r["lbfgs_iters"]
  capped = sum(cap(r) for r in bad)
  # A NaN |grad| (a gradient that overflowed) ranks worst: in `max` it would lose to any.
  worst = max(bad, key=lambda r: (r["grad_norm"] / r["tol"] if r["tol"] and not
                                  math.isnan(r["grad_norm"]) else math.inf, -r["member"]))
  msg = (f"{len(bad)} of {sum('grad_norm' in r for r in rows)} L-BFGS members ended above "
         f"their tol, |grad|/|grad_0| up to {worst['grad_norm']:.2g} (member "
         f"{worst['member']}, tol {worst['tol']:.2g}): {capped} at the iteration cap "
         f"(epochs x lbfgs_iters), {len(bad) - capped} where no step decreased the "
         f"objective any more (the arithmetic's precision)")
  b = next((r for r in bad if best is not None and r["member"] == best["member"]), None)
  if b is not None:
    msg += (f"; the selected member {b['member']} is one of them ({b['grad_norm']:.2g} "
            f"after {b['iterations']} iterations)")
  kinks = sorted({r["loss"] for r in bad if r.get("loss") in NOT_SMOOTH})
  if kinks:     # more iterations rarely help there: L-BFGS assumes a smooth objective
    msg += (f"; {', '.join(kinks)} is not smooth (its hinge has a kink), where L-BFGS may "
            "stall at any precision: softmax or squared_svm suit it")
  fixes = ["raise config.epochs or config.lbfgs_iters"] if capped else []
  if capped < len(bad):    # a stalled member is as far as its arithmetic takes it
    fixes.append("run in float64 (config.dtype) or on standardised rows "
                 "(config.data.scale='std')")
  fixes.append("loosen config.tol")
  warnings.warn(f"lincv: {msg}. Their weights are not the minimum of their objective: "
                f"{', or '.join(fixes)} (results.csv has each member's "
                "iterations and grad_norm)", NotConverged, stacklevel=2)
  return bad
