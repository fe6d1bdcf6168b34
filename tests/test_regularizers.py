"""Regularizers: hand values and gradients, sign(0) = 0."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from lincv import regularizers, testing

W = jnp.array([[1.0, -2.0], [0.0, 0.5]])


class RegularizerTest(parameterized.TestCase):

  def test_values_by_hand(self):
    np.testing.assert_allclose(regularizers.l2(W), 1 + 4 + 0 + 0.25)
    np.testing.assert_allclose(regularizers.l1(W), 1 + 2 + 0 + 0.5)
    np.testing.assert_allclose(regularizers.elastic_net(W, beta=2.0), 2 * 5.25 + 3.5)
    np.testing.assert_allclose(regularizers.value("none", W), 0.0)

  def test_l1_sign_of_zero_is_zero(self):
    np.testing.assert_array_equal(regularizers.l1_grad(W), [[1, -1], [0, 1]])
    np.testing.assert_allclose(regularizers.elastic_net_grad(W, beta=0.5),
                               [[2.0, -3.0], [0.0, 1.5]])

  @parameterized.product(name=("l2", "l1", "elastic_net"), dtype=("float32", "float64"))
  def test_grad_matches_autodiff_away_from_zero(self, name, dtype):
    # Elementwise formulas: equal to a couple of ulps in either dtype.
    with jax.enable_x64(dtype == "float64"):
      w = jax.random.normal(jax.random.key(0), (6, 4), dtype)
      hand = regularizers.grad(name, w, beta=0.3)
      auto = jax.grad(lambda w: regularizers.value(name, w, beta=0.3))(w)
    self.assertEqual(hand.dtype, jnp.dtype(dtype))
    np.testing.assert_allclose(hand, auto, rtol=4 * np.finfo(dtype).eps)

  def test_unknown_name(self):
    with self.assertRaisesRegex(ValueError, "expected one of: none, l2, l1, elastic_net"):
      regularizers.value("l3", W)

  @parameterized.product(fn=(regularizers.value, regularizers.grad),
                         bad=(-1.0, float("nan"), float("inf")))
  def test_beta_out_of_range(self, fn, bad):
    # beta = -1 made the elastic net reward large weights (1.08 for these), silently.
    with self.assertRaisesRegex(ValueError, "beta must be a finite number >= 0, got"):
      fn("elastic_net", W, beta=bad)

  @parameterized.product(fn=(regularizers.value, regularizers.grad),
                         name=regularizers.REGULARIZERS)
  def test_integer_weights_are_refused(self, fn, name):
    # The elastic net cast beta = 0.5 to the weights' int32, 0; l2 of int32 weights of
    # 50,000 overflowed to a negative penalty.
    w = jnp.array([[50_000, -2], [0, 1]], jnp.int32)
    with self.assertRaisesRegex(ValueError, r"weights must be floating, got dtype int32 \(an "
                                            "integer dtype would truncate beta"):
      fn(name, w, beta=0.5)


class ContractTest(parameterized.TestCase):

  @parameterized.product(name=regularizers.REGULARIZERS, dtype=("float32", "float64"))
  def test_every_regularizer_keeps_the_contract(self, name, dtype):
    with jax.enable_x64(dtype == "float64"):
      testing.assert_regularizer_contract(
          functools.partial(regularizers.value, name, beta=0.3),
          functools.partial(regularizers.grad, name, beta=0.3), dtype=dtype, name=name)


def test_weights_that_are_not_an_array_are_refused_by_name():
  # A list raised "Cannot determine dtype of [[1.0, 2.0]]".
  for name in ("l2", "l1", "elastic_net"):
    with pytest.raises(TypeError, match="w must be a JAX or NumPy array, got a list of 1"):
      regularizers.value(name, [[1.0, 2.0]])
