"""gradcheck: numerical gradients, relative error, sampling and kink detection."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lincv import gradcheck, losses


def test_numerical_grad_of_a_polynomial():
  params = {"a": jnp.array([1.0, -2.0]), "b": jnp.array(3.0)}
  f = lambda p: jnp.sum(p["a"] ** 3) + p["a"][0] * p["b"]
  g = gradcheck.numerical_grad(f, params)
  np.testing.assert_allclose(g["a"], [3.0 + 3.0, 12.0], rtol=1e-8)
  np.testing.assert_allclose(g["b"], 1.0, rtol=1e-8)


def test_relative_error():
  assert float(gradcheck.relative_error(jnp.array([1.0, 0.0]), jnp.array([1.0, 0.0]))) == 0.0
  np.testing.assert_allclose(
      gradcheck.relative_error(jnp.array([1.0, 2.0]), jnp.array([1.0, 2.2])), 0.2 / 4.2)
  assert float(gradcheck.relative_error(jnp.zeros(3), jnp.zeros(3))) == 0.0


def test_check_fails_on_a_wrong_gradient():
  w = jax.random.normal(jax.random.key(0), (5, 3), jnp.float64)
  f = lambda w: jnp.sum(jnp.sin(w))
  good = gradcheck.check(f, w, jnp.cos(w))
  bad = gradcheck.check(f, w, jnp.cos(w).at[2, 1].add(0.01))
  assert good.passed(1e-8) and good.num_checked == 15 and good.num_kinks == 0
  assert not bad.passed(1e-4)
  assert bad.worst == "[2, 1]"


def test_check_sampled_coordinates():
  w = jax.random.normal(jax.random.key(1), (40, 30), jnp.float64)
  report = gradcheck.check(lambda w: jnp.sum(w ** 2), w, 2 * w, num_checks=50, seed=3)
  assert report.num_checked == 50
  assert report.max_relative_error <= 1e-8
  again = gradcheck.check(lambda w: jnp.sum(w ** 2), w, 2 * w, num_checks=50, seed=3)
  assert again == report


def test_kinks_of_abs_are_reported_apart():
  w = jnp.array([0.0, 1.0, -2.0, 3e-6, 0.5])
  report = gradcheck.check(lambda w: jnp.sum(jnp.abs(w)), w, jnp.sign(w))
  assert report.kink_indices == (0, 3)
  assert report.num_checked == 3 and report.max_relative_error < 1e-9


def test_hinge_kink_is_reported_apart():
  # Margin of class 1 is exactly 0 at this point: s_1 - s_0 + 1 = 0.
  scores = jnp.array([[2.0, 1.0, -5.0]])
  f = lambda s: jnp.sum(losses.svm(s, jnp.array([0])))
  report = gradcheck.check(f, scores, losses.svm_grad(scores, jnp.array([0])))
  assert report.kink_indices == (0, 1)
  assert report.passed(1e-9)


def test_relu_kink_is_reported_apart():
  x = jnp.array([-1.0, 0.0, 2.0, 1e-7])
  report = gradcheck.check(lambda x: jnp.sum(jax.nn.relu(x) * 3.0), x,
                           3.0 * (x > 0).astype(x.dtype))
  assert report.kink_indices == (1, 3)
  assert report.passed(1e-9)


def test_mismatched_grad_shape():
  with pytest.raises(ValueError, match="grad has 2 coordinates but params has 3"):
    gradcheck.check(lambda w: jnp.sum(w), jnp.zeros(3), jnp.zeros(2))
