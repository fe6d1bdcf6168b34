"""lincv.testing: each assertion passes on a right function and fails, with the message its
docstring documents, on a broken copy (wrong sign, 1% off, wrong shape, impure), in
float32 and in float64.

Tolerances are the assertions' own (sqrt(eps) for gradients, 256 eps for jit/vmap); the
broken copies miss them by orders of magnitude (a 1% error is 5e-3 in relative error, a
numpy random number 1e-2 or more), so these tests cannot pass by luck.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lincv import losses, objective, regularizers, scores, testing


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
  if request.param == "float64":
    request.getfixturevalue("x64")
  return np.dtype(request.param)


def _params(dtype):
  key = jax.random.key(0)
  return {"W": jax.random.normal(key, (3, 2), dtype), "b": jnp.asarray([0.3, -0.7], dtype)}


def _f(p):
  return jnp.sum(jnp.sin(p["W"])) + jnp.sum(p["b"] ** 3)


def _grad(p):
  return {"W": jnp.cos(p["W"]), "b": 3 * p["b"] ** 2}


# ------------------------------------------------------------------ assert_grad_correct


def test_grad_correct_passes_on_the_right_gradient(dtype):
  p = _params(dtype)
  report = testing.assert_grad_correct(_f, p, _grad(p))
  assert report.num_checked == 8 and report.dtype == dtype.name
  assert testing.assert_grad_correct(_f, p) is not None       # jax.grad itself


@pytest.mark.parametrize("against,says", [("jax", "jax.grad"),
                                          ("numerical", "centred differences")])
@pytest.mark.parametrize("broken", ["sign", "1%"])
def test_grad_correct_fails_on_a_wrong_gradient(dtype, against, says, broken):
  p = _params(dtype)
  scale = -1.0 if broken == "sign" else 1.01
  bad = jax.tree.map(lambda g: scale * g, _grad(p))
  tol = {"float32": "0.00035", "float64": "1.5e-08"}[dtype.name]
  pattern = (rf"grad of _f differs from {says} at \['[Wb]'\]\[[\d, ]+\]: grad \S+, "
             rf"(jax.grad|numerical) \S+ \(relative error \S+ > tolerance {tol} for {dtype}")
  with pytest.raises(AssertionError, match=pattern):
    testing.assert_grad_correct(_f, p, bad, against=against)


def test_grad_correct_names_the_worst_coordinate_and_both_values(dtype):
  p = _params(dtype)
  good = _grad(p)
  bad = {**good, "W": good["W"].at[2, 1].add(0.5)}
  want, got = float(good["W"][2, 1]), float(bad["W"][2, 1])
  with pytest.raises(AssertionError) as e:
    testing.assert_grad_correct(_f, p, bad, against="numerical")
  message = str(e.value)
  assert "at ['W'][2, 1]: grad " in message
  values = re.search(r"grad (\S+), numerical (\S+) ", message).groups()
  np.testing.assert_allclose([float(v) for v in values], [got, want], rtol=1e-6)


def test_grad_correct_fails_on_a_wrong_shape(dtype):
  p = _params(dtype)
  bad = {**_grad(p), "W": _grad(p)["W"].T}
  with pytest.raises(AssertionError, match=re.escape(
      f"grad of _f['W'] has shape (2, 3) and dtype {dtype}, but params['W'] has shape "
      f"(3, 2) and dtype {dtype}")):
    testing.assert_grad_correct(_f, p, bad)
  with pytest.raises(AssertionError, match="grad of _f is not structured like params"):
    testing.assert_grad_correct(_f, p, {"W": _grad(p)["W"]})


def test_grad_correct_reports_kinks_apart(dtype):
  w = jnp.asarray([0.0, 1.5, -2.0], dtype)
  l1 = lambda w: jnp.sum(jnp.abs(w))
  report = testing.assert_grad_correct(l1, w, jnp.sign(w))
  assert report.kink_indices == (0,) and report.num_checked == 2
  with pytest.raises(AssertionError, match="all 1 coordinates checked are at kinks"):
    testing.assert_grad_correct(l1, jnp.zeros(1, dtype), jnp.zeros(1, dtype))


@pytest.mark.parametrize("reg", ["l1", "elastic_net"])
def test_a_wrong_gradient_at_the_kinks_of_zero_weights_fails(reg):
  # Zero weights with an L1 penalty put every weight at the kink of |w|: the kinks were
  # skipped, and a weight gradient of the wrong sign, or all zeros, passed on the biases.
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((50, 6)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 3, 50))
  p = {"W": jnp.zeros((6, 3)), "b": jnp.zeros(3)}
  kw = dict(loss="softmax", reg=reg, reg_strength=1e-3)
  f = lambda q: objective.loss(q, x, y, **kw)
  g = objective.grad(p, x, y, **kw)
  report = testing.assert_grad_correct(f, p, g)       # 0 at |w| = 0: a subgradient
  assert report.num_kinks == 18 and report.kink_error == 0
  for wrong in (-5 * g["W"], jnp.zeros_like(g["W"]), g["W"] + 0.01):
    with pytest.raises(AssertionError, match=re.escape(
        "grad of <lambda> is no subgradient at the kink ['W'][")):
      testing.assert_grad_correct(f, p, {"W": wrong, "b": g["b"]}, against="numerical")
  # Within the slopes: d +- lambda are the one-sided derivatives at |w| = 0.
  edge = {"W": g["W"] + 1e-3 * np.sign(rng.standard_normal(g["W"].shape)), "b": g["b"]}
  testing.assert_grad_correct(f, p, edge, against="numerical")


def test_grad_correct_refuses_an_unknown_reference():
  with pytest.raises(ValueError, match="against takes a non-empty subset of"):
    testing.assert_grad_correct(_f, _params(np.float32), against="autodiff")


# ---------------------------------------------------------- assert_jit_vmap_consistent


def test_jit_vmap_consistent_passes_on_a_pure_function(dtype):
  x = jax.random.normal(jax.random.key(1), (3, 5, 4), dtype)
  testing.assert_jit_vmap_consistent(lambda x, w: jnp.tanh(x @ w), x,
                                     jnp.ones((4, 2), dtype), in_axes=(0, None))


def test_jit_vmap_consistent_fails_on_numpy_randomness(dtype):
  noisy = lambda x: x * (1 + 0.1 * np.random.default_rng().normal())
  with pytest.raises(AssertionError, match=r"noisy is not pure: a second plain call with "
                     r"the same arguments differs at \[\d+, \d+\]: .* > tolerance"):
    testing.assert_jit_vmap_consistent(noisy, jnp.ones((2, 3, 4), dtype), name="noisy")


def test_jit_vmap_consistent_fails_on_a_global_it_changes(dtype):
  calls = []

  def counted(x):
    calls.append(1)
    return x * len(calls)

  with pytest.raises(AssertionError, match="counted is not pure"):
    testing.assert_jit_vmap_consistent(counted, jnp.ones((2, 3), dtype))


def test_jit_vmap_consistent_fails_on_a_global_cache(dtype):
  cache = {}

  def memoised(x):     # reads a global: the result of the first call with an array
    return cache.setdefault(type(x).__name__, 2 * x)

  x = jax.random.normal(jax.random.key(2), (3, 4), dtype)
  with pytest.raises(AssertionError, match=r"memoised: jax.jit\(fn\) differs from the "
                     r"plain call at \[\d\]"):
    testing.assert_jit_vmap_consistent(memoised, x)


def test_jit_vmap_consistent_fails_on_a_callback_vmapped_wrongly(dtype):
  def host_unit(x):    # a host function that normalises the whole array it is given
    return np.asarray(x / np.linalg.norm(x), x.dtype)

  def unit(x):         # declares host_unit vectorised, which it is not
    return jax.pure_callback(host_unit, jax.ShapeDtypeStruct(x.shape, x.dtype), x,
                             vmap_method="expand_dims")

  x = jax.random.normal(jax.random.key(3), (3, 4), dtype)
  with pytest.raises(AssertionError, match=r"unit: jax.vmap\(fn\) differs from a loop of "
                     r"plain calls at \[\d, \d\]: \S+ vs \S+ \(relative error"):
    testing.assert_jit_vmap_consistent(unit, x)


def test_jit_vmap_consistent_fails_when_tracing_changes_the_result(dtype):
  def scaled(x):       # falls back to another scale when its input is traced
    try:
      scale = float(jnp.max(jnp.abs(x)))
    except jax.errors.ConcretizationTypeError:
      scale = 1.0
    return x / scale

  x = jnp.full((2, 3), 4.0, dtype)
  with pytest.raises(AssertionError, match=r"scaled: jax.jit\(fn\) differs from the plain "
                     r"call at \[0\]: 4 vs 1 \(relative error 0.6 > tolerance"):
    testing.assert_jit_vmap_consistent(scaled, x)


def test_jit_vmap_consistent_fails_on_python_control_flow(dtype):
  def relu_if(x):
    return x if bool(jnp.all(x > 0)) else jnp.zeros_like(x)

  with pytest.raises(AssertionError, match="relu_if fails under jax.jit or jax.vmap: "):
    testing.assert_jit_vmap_consistent(relu_if, jnp.ones((2, 3), dtype))


# ------------------------------------------------------------ the contracts, broken


def _naive_softmax(s, y):  # overflows at scores of 1e4
  losses.check_scores_labels(s, y)
  correct = jnp.take_along_axis(s, y[:, None], axis=1)[:, 0]
  return jnp.log(jnp.sum(jnp.exp(s), axis=1)) - correct


def _unchecked_squares(s, y):  # never refuses a label
  return jnp.sum(jnp.square(s - jax.nn.one_hot(y, s.shape[1], dtype=s.dtype)), axis=1)


def _noisy_softmax(s, y):
  return losses.softmax(s, y) + 0.1 * np.random.default_rng().normal()


def _summed_softmax(s, y):
  return jnp.sum(losses.softmax(s, y))


def _sign(s, y):
  return -losses.softmax_grad(s, y)


def _off(s, y):
  return 1.01 * losses.softmax_grad(s, y)


def _transposed(s, y):
  return losses.softmax_grad(s, y).T


@pytest.mark.parametrize("value,grad,pattern", [
    (losses.softmax, _sign, r"grad of loss softmax differs from jax.grad at \[\d, \d\]: "),
    (losses.softmax, _off, r"grad of loss softmax differs from jax.grad at .* \(relative "
     r"error 0.00[45]\d* > tolerance"),
    (_summed_softmax, None, r"loss _summed_softmax returned shape \(\) and dtype float\d\d, "
     r"expected shape \(8,\)"),
    (losses.softmax, _transposed, r"grad _transposed of loss softmax returned shape \(3, 8\)"),
    (_noisy_softmax, None, "loss _noisy_softmax is not pure"),
    (_unchecked_squares, None, r"loss _unchecked_squares accepted label 3 \(example 1\) for 3 "
     r"classes; an eager call must raise ValueError for labels outside \[0, 2\]: call "
     r"lincv.losses.check_scores_labels"),
    (_naive_softmax, None, r"loss _naive_softmax is not finite at scores of 10000 in "
     r"float32: inf at \[0\]"),
], ids=["sign", "1%", "shape", "grad shape", "impure", "labels", "overflow"])
def test_loss_contract_fails_on_a_broken_loss(dtype, value, grad, pattern):
  with pytest.raises(AssertionError, match=pattern):
    testing.assert_loss_contract(value, grad, num_classes=3)


def _l2_sign(w):
  return -regularizers.l2_grad(w)


def _l2_off(w):
  return 1.01 * regularizers.l2_grad(w)


def _unsummed(w):
  return jnp.square(w)


def _noisy_l2(w):
  return regularizers.l2(w) * (1 + 0.1 * np.random.default_rng().normal())


@pytest.mark.parametrize("value,grad,pattern", [
    (regularizers.l2, _l2_sign, "grad of regularizer l2 differs from jax.grad"),
    (regularizers.l2, _l2_off, r"grad of regularizer l2 differs from jax.grad .* \(relative "
     r"error 0.00[45]"),
    (_unsummed, None, r"regularizer _unsummed returned shape \(5, 3\) and dtype float\d\d, "
     r"expected shape \(\)"),
    (_noisy_l2, None, "regularizer _noisy_l2 is not pure"),
], ids=["sign", "1%", "shape", "impure"])
def test_regularizer_contract_fails_on_a_broken_penalty(dtype, value, grad, pattern):
  with pytest.raises(AssertionError, match=pattern):
    testing.assert_regularizer_contract(value, grad)


def _transposed_scores(params, x):
  return scores.linear(params, x).T


def _centred_scores(params, x):  # subtracts the batch mean: an example's scores move
  s = scores.linear(params, x)
  return s - jnp.mean(s, axis=0, keepdims=True)


def _noisy_scores(params, x):
  return scores.linear(params, x) + np.random.default_rng().normal()


def _numpy_init(key, d, c, dtype):
  del key
  w = np.random.default_rng().normal(size=(d, c))
  return {"W": jnp.asarray(w, dtype), "b": jnp.zeros(c, dtype)}


def _fixed_init(key, d, c, dtype):
  del key
  return scores.init_linear(jax.random.key(0), d, c, dtype=dtype)


@pytest.mark.parametrize("score,init,pattern", [
    (_transposed_scores, scores.init_linear, r"score _transposed_scores returned shape "
     r"\(3, 6\) and dtype float\d\d, expected shape \(6, 3\)"),
    (_centred_scores, scores.init_linear, r"score _centred_scores mixes examples: the scores "
     r"of the first 3 rows change when the other rows are left out"),
    (_noisy_scores, scores.init_linear, "score _noisy_scores is not pure"),
    (scores.linear, _numpy_init, "init _numpy_init is not a function of its key: two calls "
     "with the same key differ"),
    (scores.linear, _fixed_init, "init _fixed_init ignores its key"),
], ids=["shape", "mixes", "impure", "numpy init", "keyless init"])
def test_score_contract_fails_on_a_broken_model(dtype, score, init, pattern):
  with pytest.raises(AssertionError, match=pattern):
    testing.assert_score_contract(score, init)


@pytest.mark.parametrize("against", ["jax", "numerical", ("jax", "numerical")])
def test_a_nan_gradient_is_not_correct(against):
  # NaN in the hand gradient and in jax.grad counted as equal: against="jax" passed.
  w = jnp.array([0.5, -1.0, 2.0])
  f = lambda w: jnp.sum(jnp.sqrt(w - 3.0))
  with pytest.raises(AssertionError, match=r"grad of f is not finite at \[0\]: nan"):
    testing.assert_grad_correct(f, w, 0.5 / jnp.sqrt(w - 3.0), against=against, name="f")
  with pytest.raises(AssertionError, match=r"grad of f is not finite"):
    testing.assert_grad_correct(f, w, against=against, name="f")


def test_integer_outputs_must_agree_exactly():
  # Integer outputs raised "data type int32 not inexact" from the tolerance.
  x = jnp.asarray(np.random.default_rng(0).standard_normal((3, 5)), jnp.float32)
  testing.assert_jit_vmap_consistent(lambda x: jnp.argmax(x), x)
  calls = []

  def drifting(x):  # an impure integer function: a second call counts one more
    calls.append(1)
    return jnp.argmax(x) + len(calls)
  with pytest.raises(AssertionError, match="drifting is not pure"):
    testing.assert_jit_vmap_consistent(drifting, x)


def test_an_integer_output_beside_large_floats_must_still_agree_exactly():
  # Pooled with floats of 1e6 into one relative error, an argmax off by one under jit
  # was 1e-6 of the scale, and passed.
  x = jnp.arange(12.0).reshape(3, 4)
  off_by_one = lambda x: (jnp.argmax(x) + (0 if isinstance(x, jax.core.Tracer) else 1),
                          x * 1e6)
  with pytest.raises(AssertionError, match=r"differs from the plain call at \[0\]\[\]: 3 vs 4 "
                                           r"\(relative error 0.143 > tolerance 0\)"):
    testing.assert_jit_vmap_consistent(off_by_one, x, name="f")
  testing.assert_jit_vmap_consistent(lambda x: (jnp.argmax(x), x * 1e6), x)


def test_bfloat16_consistency_can_fail_and_tol_is_checked():
  # bfloat16's tolerance was 256 eps = 2, above any relative error (at most 1): numpy
  # noise and a flipped sign passed.
  assert testing.consistency_tolerance(jnp.bfloat16) == 1 / 8
  x = jnp.ones((3, 4), jnp.bfloat16)
  flipped = lambda x: -x if isinstance(x, jax.core.Tracer) else x
  with pytest.raises(AssertionError, match="differs from the plain call"):
    testing.assert_jit_vmap_consistent(flipped, x, name="f")
  testing.assert_jit_vmap_consistent(lambda x: 2 * x + 1, x)
  for tol in (float("nan"), -1.0, 1.0):
    with pytest.raises(ValueError, match=r"tol must be a number in \[0, 1\)"):
      testing.assert_jit_vmap_consistent(lambda x: x, x, tol=tol)


def test_bfloat16_contracts():
  # Each raised "data type bfloat16 not inexact" from its tolerance.
  testing.assert_loss_contract(losses.softmax, losses.softmax_grad, num_classes=3,
                               dtype=jnp.bfloat16)
  testing.assert_regularizer_contract(regularizers.l2, regularizers.l2_grad,
                                      dtype=jnp.bfloat16)
  with pytest.raises(AssertionError, match="differs from"):
    testing.assert_regularizer_contract(regularizers.l2, lambda w: 3 * w, dtype=jnp.bfloat16)


def test_a_float64_contract_without_64_bit_jax_is_refused():
  with pytest.raises(ValueError, match="float64 needs 64-bit JAX, which is off"):
    testing.assert_loss_contract(losses.softmax, num_classes=3, dtype="float64")
