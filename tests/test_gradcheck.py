"""gradcheck: numerical gradients, relative error, sampling, kink detection, and a check
that tells a right gradient from a 1%-wrong one in float32 as in float64.

Tolerances: a float32 gradient is good to a few float32 ulps (eps = 1.2e-7) of its largest
coordinate; `check` takes its differences in float64 and its default tolerance is
sqrt(eps) of the gradient's dtype (3.5e-4 in float32), between that rounding and the
~5e-3 relative error of a gradient scaled by 1.01.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lincv import gradcheck, losses, objective

F32_EPS = float(np.finfo(np.float32).eps)


def test_numerical_grad_of_a_polynomial():
  params = {"a": jnp.array([1.0, -2.0]), "b": jnp.array(3.0)}
  f = lambda p: jnp.sum(p["a"] ** 3) + p["a"][0] * p["b"]
  g = gradcheck.numerical_grad(f, params)
  assert g["a"].dtype == jnp.float32
  # Differences in float64: the result is the exact derivative rounded to float32.
  np.testing.assert_allclose(g["a"], [3.0 + 3.0, 12.0], rtol=4 * F32_EPS)
  np.testing.assert_allclose(g["b"], 1.0, rtol=4 * F32_EPS)


def test_numerical_grad_float64(x64):
  params = {"a": jnp.array([1.0, -2.0]), "b": jnp.array(3.0)}
  f = lambda p: jnp.sum(p["a"] ** 3) + p["a"][0] * p["b"]
  g = gradcheck.numerical_grad(f, params)
  assert g["a"].dtype == jnp.float64
  np.testing.assert_allclose(g["a"], [6.0, 12.0], rtol=1e-9)


def test_relative_error():
  assert float(gradcheck.relative_error(jnp.array([1.0, 0.0]), jnp.array([1.0, 0.0]))) == 0.0
  np.testing.assert_allclose(
      gradcheck.relative_error(jnp.array([1.0, 2.0]), jnp.array([1.0, 2.2])), 0.2 / 4.2,
      rtol=4 * F32_EPS)
  assert float(gradcheck.relative_error(jnp.zeros(3), jnp.zeros(3))) == 0.0


def test_relative_error_of_float64_arrays_is_float64_with_64_bit_jax_off():
  # They were rounded to float32 first: 1 and 1 + 1e-12 compared as equal.
  a = {"w": np.array([1.0, 2.0]), "b": np.array(3.0)}
  b = {"w": np.array([1.0 + 1e-12, 2.0]), "b": np.array(3.0)}
  np.testing.assert_allclose(gradcheck.relative_error(a, b), 1e-12 / 6.0, rtol=1e-3)
  # Under jit the values are traced: the error is an array of the traced precision.
  traced = jax.jit(gradcheck.relative_error)(jnp.array([1.0, 2.0]), jnp.array([1.0, 2.2]))
  np.testing.assert_allclose(traced, 0.2 / 4.2, rtol=4 * F32_EPS)
  with pytest.raises(ValueError, match=r"arrays of one shape, got \[\(2,\)\] and \[\(3,\)\]"):
    gradcheck.relative_error(np.zeros(2), np.zeros(3))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_check_tells_right_from_one_percent_wrong(dtype):
  with jax.enable_x64(dtype == "float64"):
    w = jax.random.normal(jax.random.key(0), (5, 3), dtype)
    f = lambda w: jnp.sum(jnp.sin(w)) + 3.0 * jnp.sum(w ** 2)
    right = jnp.cos(w) + 6.0 * w
    good = gradcheck.check(f, w, right)
    scaled = gradcheck.check(f, w, 1.01 * right)
    wrong = np.array(right)
    wrong[2, 1] *= 1.01
    one = gradcheck.check(f, w, jnp.asarray(wrong))
  assert good.dtype == dtype and good.eval_dtype == "float64"
  assert good.tol == pytest.approx(np.sqrt(np.finfo(dtype).eps))
  assert good.passed() and good.num_checked == 15 and good.num_kinks == 0, good
  assert not scaled.passed(), scaled
  assert not one.passed() and one.worst == "[2, 1]", one
  np.testing.assert_allclose(one.worst_analytic, wrong[2, 1], rtol=1e-6)
  np.testing.assert_allclose(one.worst_numerical, right[2, 1], rtol=1e-5)
  assert "FAILED" in str(one) and "[2, 1]" in str(one) and "passed" in str(good)


def test_float32_check_was_blind_at_a_fixed_step_in_float32():
  # The failure this module is built against: evaluated in float32 at h = 1e-5 the
  # differences carry a rounding error of order eps * |f| / h, far above 1%.
  w = jax.random.normal(jax.random.key(0), (40,), jnp.float32)
  f = lambda w: jnp.sum(jnp.sin(w)) + 100.0
  with pytest.warns(UserWarning, match="differences taken in float32"):
    fixed = gradcheck.check(f, w, jnp.cos(w), h=1e-5, eval_dtype=jnp.float32)
  assert fixed.max_relative_error > 1e-3
  assert gradcheck.check(f, w, jnp.cos(w)).max_relative_error < 10 * F32_EPS


def test_native_float32_differences_use_a_step_from_float32():
  w = jax.random.normal(jax.random.key(2), (30,), jnp.float32)
  f = lambda w: jnp.sum(jnp.sin(w))
  with pytest.warns(UserWarning, match=r"in float32 \(eval_dtype=float32 was asked\)"):
    report = gradcheck.check(f, w, jnp.cos(w), eval_dtype=jnp.float32)
  assert report.eval_dtype == "float32"
  assert report.step == pytest.approx(F32_EPS ** (1 / 3))
  assert report.passed(), report
  with pytest.warns(UserWarning, match="differences taken in float32"):
    assert not gradcheck.check(f, w, 1.01 * jnp.cos(w), eval_dtype=jnp.float32).passed()


def test_function_that_casts_to_float32_is_differenced_in_float32():
  w = jax.random.normal(jax.random.key(3), (10,), jnp.float32)
  f = lambda w: jnp.sum(jnp.sin(w.astype(jnp.float32)))
  with pytest.warns(UserWarning, match=r"float32 \(f returns float32 from float64"):
    report = gradcheck.check(f, w, jnp.cos(w))
  assert report.eval_dtype == "float32" and report.passed(), report


def test_differences_in_float32_are_warned_of_as_unable_to_judge_a_hinge_mean():
  # Why the warning: a mean SVM objective over 200 rows, differenced in float32 (step
  # 5e-3), fails its correct gradient by about 3e-3, near a 1%-wrong one's 5e-3. In
  # float64 (the default) the two are 1e-7 and 5e-3 apart.
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(200, 30)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 10, 200))
  params = {"W": jnp.asarray(0.1 * rng.normal(size=(30, 10)), jnp.float32),
            "b": jnp.zeros(10, jnp.float32)}
  f = lambda p: objective.loss(p, x, y, loss="svm", reg_strength=1e-3)
  right = objective.grad(params, x, y, loss="svm", reg_strength=1e-3)
  with warnings.catch_warnings():
    warnings.simplefilter("error")                 # float64 differences: no warning
    assert gradcheck.check(f, params, right).passed()
  with pytest.warns(UserWarning, match="a correct gradient of a mean of many hinges"):
    narrow = gradcheck.check(f, params, right, eval_dtype=jnp.float32)
  assert not narrow.passed() and narrow.max_relative_error > 1e-3


def test_check_sampled_coordinates():
  w = jax.random.normal(jax.random.key(1), (40, 30))
  report = gradcheck.check(lambda w: jnp.sum(w ** 2), w, 2 * w, num_checks=50, seed=3)
  assert report.num_checked == 50
  assert report.passed()
  again = gradcheck.check(lambda w: jnp.sum(w ** 2), w, 2 * w, num_checks=50, seed=3)
  assert again == report


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kinks_of_abs_are_reported_apart(dtype):
  with jax.enable_x64(dtype == "float64"):
    w = jnp.array([0.0, 1.0, -2.0, 3e-6, 0.5], dtype)
    report = gradcheck.check(lambda w: jnp.sum(jnp.abs(w)), w, jnp.sign(w))
  assert report.kink_indices == (0, 3)
  assert report.num_checked == 3 and report.max_relative_error < 1e-9


def test_hinge_kink_is_reported_apart():
  # Margin of class 1 is exactly 0 at this point: s_1 - s_0 + 1 = 0.
  scores = jnp.array([[2.0, 1.0, -5.0]])
  f = lambda s: jnp.sum(losses.svm(s, jnp.array([0])))
  report = gradcheck.check(f, scores, losses.svm_grad(scores, jnp.array([0])))
  assert report.kink_indices == (0, 1)
  assert report.passed()


def test_relu_kink_is_reported_apart():
  x = jnp.array([-1.0, 0.0, 2.0, 1e-7])
  report = gradcheck.check(lambda x: jnp.sum(jax.nn.relu(x) * 3.0), x,
                           3.0 * (x > 0).astype(x.dtype))
  assert report.kink_indices == (1, 3)
  assert report.passed()


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_gradients_are_checked(dtype):
  # A bfloat16 gradient was refused as "not floating". Tolerance sqrt(eps): 0.088 for
  # bfloat16, 0.031 for float16; a gradient scaled by 1.2 is ~0.09 off and fails.
  w = jnp.array([0.5, -1.0, 2.0], dtype)
  f = lambda w: jnp.sum(jnp.sin(w))
  good = gradcheck.check(f, w, jnp.cos(w))
  assert good.passed() and good.dtype == dtype, good
  assert not gradcheck.check(f, w, (1.2 * jnp.cos(w)).astype(dtype)).passed()


@pytest.mark.parametrize("h", [0.0, -1e-3, float("nan")])
def test_a_step_that_is_not_positive_is_refused(h):
  # numerical_grad(h=0) was NaN everywhere, with a numpy warning at most.
  w = jnp.array([0.5, -1.0, 2.0])
  f = lambda w: jnp.sum(jnp.sin(w))
  with pytest.raises(ValueError, match="h must be a finite step > 0, or None, got"):
    gradcheck.numerical_grad(f, w, h=h)
  with pytest.raises(ValueError, match="h must be a finite step > 0, or None, got"):
    gradcheck.check(f, w, jnp.cos(w), h=h)


def test_mismatched_grad_shape():
  with pytest.raises(ValueError, match=r"grad has 2 coordinates of shapes \[\(2,\)\] but "
                     r"params has 3 of shapes \[\(3,\)\]"):
    gradcheck.check(lambda w: jnp.sum(w), jnp.zeros(3), jnp.zeros(2))


def test_non_scalar_function():
  with pytest.raises(ValueError, match=r"f must return a scalar, got shape \(3,\)"):
    gradcheck.check(lambda w: w * 2, jnp.zeros(3), jnp.zeros(3))


def test_arrays_of_equal_size_and_other_shapes_are_refused():
  # They were flattened and compared entry by entry: a (2, 3) against its (3, 2) reshape
  # had error 0, and a bias gradient shaped (1, 3) for a (3,) bias passed.
  a = jnp.arange(6.0)
  with pytest.raises(ValueError, match="relative_error needs arrays of one shape"):
    gradcheck.relative_error(a.reshape(2, 3), a.reshape(3, 2))
  params = {"W": jnp.ones((2, 3)), "b": jnp.ones(3)}
  f = lambda p: jnp.sum(p["W"] ** 2) + jnp.sum(p["b"])
  with pytest.raises(ValueError, match="grad must be shaped like params"):
    gradcheck.check(f, params, {"W": 2 * params["W"], "b": jnp.ones((1, 3))})


def test_a_step_below_the_resolution_of_theta_is_refused():
  # theta + h rounded back to theta: every difference, and so the gradient, was 0.
  with pytest.raises(ValueError, match=r"h=1e-20 is below float64's resolution at \|theta\| "
                                       r"up to 2 \(theta \+ h == theta\)"):
    gradcheck.numerical_grad(lambda w: jnp.sum(w ** 2), jnp.array([0.5, 1.0, 2.0]), h=1e-20)



@pytest.mark.parametrize("params", [jnp.zeros((0, 3)), {"W": jnp.zeros((2, 0)), "b": jnp.zeros(0)}])
def test_parameters_without_entries_are_refused(params):
  # An IndexError came from deep inside; a check of nothing must not pass either.
  f = lambda p: sum(jnp.sum(leaf ** 2) for leaf in jax.tree.leaves(p))
  with pytest.raises(ValueError, match=r"params hold no entries \(leaf shapes \[\(.*there is "
                                       "no gradient to check"):
    gradcheck.check(f, params, params)
  with pytest.raises(ValueError, match="params hold no entries"):
    gradcheck.numerical_grad(f, params)


@pytest.mark.parametrize("kw, message", [
    (dict(num_checks=0), r"num_checks \(or None: every coordinate\) must be a positive integer, "
                         "got 0"),
    (dict(num_checks=1.5), r"num_checks \(or None: every coordinate\) must be a positive "
                           "integer, got 1.5"),
    (dict(num_checks=2, seed=-1), "seed must be an integer >= 0, got -1")])
def test_a_sample_size_or_seed_that_is_not_a_count_is_refused(kw, message):
  # 1.5 and a seed of -1 failed inside NumPy's sampler with its own words.
  with pytest.raises(ValueError, match=message):
    gradcheck.check(lambda p: jnp.sum(p ** 2), jnp.ones(3), 2 * jnp.ones(3), **kw)


def test_a_numpy_float64_gradient_is_held_to_float64_with_64_bit_jax_off():
  # jnp.result_type read a NumPy float64 gradient as float32 with 64-bit JAX off: one
  # that forgot its penalty (0.025% of the gradient's scale) passed at float32's 3.5e-4.
  assert not jax.config.jax_enable_x64
  rng = np.random.default_rng(0)
  x, t, w = rng.standard_normal((50, 4)), rng.standard_normal(50), rng.standard_normal(4)
  lam = 5e-4
  f = lambda w: jnp.mean((x @ w - t) ** 2) + lam * jnp.sum(w ** 2)
  no_penalty = 2 * x.T @ (x @ w - t) / 50
  report = gradcheck.check(f, w, no_penalty)
  assert report.dtype == "float64" and report.tol == pytest.approx(1.5e-8, rel=0.01)
  assert not report.passed()
  assert gradcheck.check(f, w, no_penalty + 2 * lam * w).passed()
  numerical = gradcheck.numerical_grad(f, w)
  assert isinstance(numerical, np.ndarray) and numerical.dtype == np.float64
  np.testing.assert_allclose(numerical, no_penalty + 2 * lam * w, rtol=1e-8)
