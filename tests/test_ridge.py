"""The closed-form ridge path: against numpy's lstsq and scikit-learn, in both of its forms;
its solution is the minimiser of lincv's objective; and a sweep solved with it.

float64 tests (the `x64` fixture) hold the closed form to 1e-6 relative: it is exact up
to the rounding of a Gram matrix of condition ~1e2 here, about 1e-13. scikit-learn sums
its data loss where lincv averages it, so `alpha = N * reg_strength`.
"""

import re
import warnings

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import Ridge, RidgeClassifier

from lincv import experiment, losses, objective, ridge, sweep, training
from lincv import config as config_lib
from lincv.data import DataError

STRENGTHS = np.array([1e-3, 0.03, 1.0, 10.0])
FORMS = {"gram_DxD": (60, 12), "gram_NxN": (15, 40)}   # (N, D): N > D and N < D


def _problem(n, d, c=4, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, d)) + rng.uniform(-2, 2, size=d)   # off-centre columns
  y = np.arange(n) % c
  return x, y


def _form(monkeypatch):
  """Records the shape of every matrix `ridge` reduces."""
  shapes = []
  reduce = ridge._tridiagonal
  monkeypatch.setattr(ridge, "_tridiagonal", lambda g: shapes.append(g.shape) or reduce(g))
  return shapes


def _rel(a, b):
  return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))


@pytest.mark.parametrize("block", [ridge.BLOCK, 6, 4])   # Gram blocks a side: 1, 2 or 3
@pytest.mark.parametrize("form", FORMS)
def test_path_equals_lstsq_of_the_augmented_system(x64, monkeypatch, form, block):
  n, d = FORMS[form]
  x, y = _problem(n, d)
  monkeypatch.setattr(ridge, "BLOCK", block)
  shapes = _form(monkeypatch)
  got = ridge.path(x, y, STRENGTHS, 4, chunk=7)   # N = 60: 9 chunks of 7, the last 4 new
  assert shapes == [(d, d) if n >= d else (n, n)]
  t = np.asarray(losses.targets(y, 4, np.float64))
  for k, lam in enumerate(STRENGTHS):
    # min ||X W + 1 b - T||^2 + N lam ||W||^2: rows [X 1] over [sqrt(N lam) I 0].
    a = np.block([[x, np.ones((n, 1))], [np.sqrt(n * lam) * np.eye(d), np.zeros((d, 1))]])
    sol = np.linalg.lstsq(a, np.vstack([t, np.zeros((d, 4))]), rcond=None)[0]
    assert _rel(got["W"][k], sol[:d]) < 1e-6
    assert _rel(got["b"][k], sol[d]) < 1e-6


@pytest.mark.parametrize("form", FORMS)
def test_path_equals_sklearn_ridge_at_alpha_n_lambda(x64, form):
  n, d = FORMS[form]
  x, y = _problem(n, d, seed=1)
  got = ridge.path(x, y, STRENGTHS, 4)
  t = np.asarray(losses.targets(y, 4, np.float64))
  for k, lam in enumerate(STRENGTHS):
    ref = Ridge(alpha=n * lam).fit(x, t)
    assert _rel(got["W"][k], ref.coef_.T) < 1e-6
    assert _rel(got["b"][k], ref.intercept_) < 1e-6


def test_zero_strength_is_least_squares(x64):
  x, y = _problem(60, 12)
  got = ridge.path(x, y, [0.0], 4)
  a = np.hstack([x, np.ones((60, 1))])
  sol = np.linalg.lstsq(a, np.asarray(losses.targets(y, 4, np.float64)), rcond=None)[0]
  assert _rel(got["W"][0], sol[:12]) < 1e-6


@pytest.mark.parametrize("form", FORMS)
def test_the_gradient_of_lincv_objective_vanishes_at_the_solution(x64, form):
  n, d = FORMS[form]
  x, y = _problem(n, d, seed=2)
  got = ridge.path(x, y, STRENGTHS, 4)
  kw = dict(loss="least_squares", reg="l2")
  f = jax.jit(lambda p, lam: objective.loss(p, x, y, reg_strength=lam, **kw))
  grad = jax.jit(lambda p, lam: objective.grad(p, x, y, reg_strength=lam, **kw))
  zero = {"W": jnp.zeros((d, 4)), "b": jnp.zeros(4)}
  for k, lam in enumerate(STRENGTHS):
    scale = float(jnp.max(jnp.abs(grad(zero, lam)["W"])))
    best = {"W": got["W"][k], "b": got["b"][k]}
    g = grad(best, lam)
    assert max(float(jnp.max(jnp.abs(v))) for v in g.values()) < 1e-10 * scale
    for step in (1e-3, -1e-3):     # and it is the minimum: a step either way costs more
      assert float(f({"W": best["W"] + step, "b": best["b"]}, lam)) > float(f(best, lam))
      assert float(f({"W": best["W"], "b": best["b"] + step}, lam)) > float(f(best, lam))


def test_evaluate_is_lincv_objective_and_accuracy(x64):
  x, y = _problem(60, 12, seed=3)
  got = ridge.path(x, y, STRENGTHS, 4)
  values, acc = ridge.evaluate(got, x, y, STRENGTHS, chunk=7)   # the last chunk overlaps
  s = training.Structure(loss="least_squares", optimizer="closed_form")
  want = jax.jit(jax.vmap(lambda p, lam: (
      objective.loss(p, x, y, loss="least_squares", reg="l2", reg_strength=lam),
      training.accuracy(s, p, x, y))))(got, STRENGTHS)
  np.testing.assert_allclose(values, want[0], rtol=1e-12)
  np.testing.assert_allclose(acc, want[1], rtol=1e-12)


def test_predictions_equal_sklearn_ridge_classifier(x64):
  digits = load_digits()
  x, y = digits.data / 16.0, digits.target
  lams = np.array([1e-4, 1e-2, 1.0])
  got = ridge.path(x, y, lams, 10)
  for k, lam in enumerate(lams):
    ref = RidgeClassifier(alpha=len(y) * lam).fit(x, y)
    pred = training.predict(training.Structure(), {"W": got["W"][k], "b": got["b"][k]}, x)
    np.testing.assert_array_equal(pred, ref.predict(x))


@pytest.mark.parametrize("shape", [(300, 20), (20, 60)])
def test_float32_error_is_that_of_the_float32_gram_matrix(shape):
  # A float32 Gram matrix of condition ~1e2 (these rows) has relative error ~1e-7 times
  # it: 1e-4 bounds the weights' error with a margin; the predictions are the same.
  x, y = _problem(*shape, seed=4)
  with jax.enable_x64(True):
    ref = ridge.path(x, y, STRENGTHS, 4)
  got = ridge.path(x.astype(np.float32), y, STRENGTHS, 4)
  assert got["W"].dtype == jnp.float32
  for k in range(len(STRENGTHS)):
    assert _rel(got["W"][k], ref["W"][k]) < 1e-4
    label = lambda p, k=k: np.argmax(x @ np.asarray(p["W"][k]) + np.asarray(p["b"][k]), 1)
    np.testing.assert_array_equal(label(got), label(ref))


def test_memory_mapped_rows_in_chunks_give_the_in_memory_result(tmp_path):
  x, y = _problem(50, 6, seed=5)
  x = x.astype(np.float32)
  np.save(tmp_path / "x.npy", x)
  mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
  whole = ridge.path(x, y, STRENGTHS, 4, chunk=4096)
  chunked = ridge.path(mapped, y, STRENGTHS, 4, chunk=7)     # 8 of 7 rows, the last 1 new
  np.testing.assert_allclose(chunked["W"], whole["W"], rtol=0,
                             atol=64 * float(np.finfo(np.float32).eps) * np.abs(whole["W"]).max())


def test_a_path_and_its_evaluation_compile_one_program_each_over_many_chunks(compiled):
  """The sums over chunks run inside the chunk's own program, and the host arrays move
  to the device without one: no program per shape of a sum, none per array moved."""
  x, y = _problem(43, 9, c=3, seed=11)          # shapes no other test compiles for
  x = x.astype(np.float32)
  for lam in ([1e-3, 0.1], [0.2, 5.0]):     # the second path compiles nothing
    params = ridge.path(x, y, lam, 3, chunk=5)                     # 9 chunks of 5
    ridge.evaluate(params, x, y, lam, chunk=5)
  assert sorted(compiled) == ["jit(_column_stats)", "jit(_gram_update)", "jit(_stats)"]


def test_bad_input_is_one_line():
  x, y = _problem(20, 3)
  with pytest.raises(ValueError, match=r"label 4 \(example 2\) is out of range for 4 classes"):
    ridge.path(x, np.where(np.arange(20) == 2, 4, y), STRENGTHS, 4)
  for bad in ([-1.0], [1.0, np.inf], [np.nan], []):   # no strength: W of shape (0, D, C)
    with pytest.raises(ValueError, match="strengths must be a vector of at least one finite "
                                         "number >= 0"):
      ridge.path(x, y, bad, 4)
  with pytest.raises(ValueError, match="num_classes must be a positive integer, got 4.0"):
    ridge.path(x, y, STRENGTHS, 4.0)          # a TypeError from NumPy
  # An infinite strength solved to W = 0 and then scored a NaN objective (inf * 0).
  params = ridge.path(x.astype(np.float32), y, [1.0], 4)
  with pytest.raises(ValueError, match="strengths must be a vector of at least one finite "
                                       "number >= 0"):
    ridge.evaluate(params, x.astype(np.float32), y, [np.inf])
  with pytest.raises(ValueError, match="optimizer 'closed_form' solves model='linear' with "
                     "loss='least_squares' and reg='l2' only; got model='linear', "
                     "loss='softmax', reg='l2'"):
    training.Structure(loss="softmax", optimizer="closed_form")


def test_no_rows_bad_labels_and_a_strength_per_member_are_refused_by_evaluate():
  x, y = _problem(20, 3)
  x = x.astype(np.float32)
  with pytest.raises(ValueError, match=r"ridge needs at least one row, got rows of shape \(0, 3\)"):
    ridge.path(x[:0], y[:0], STRENGTHS, 4)    # b was NaN
  params = ridge.path(x, y, STRENGTHS, 4)
  # Out-of-range labels were scored against a row of -1 targets, and one strength was
  # broadcast to every member: both gave numbers.
  with pytest.raises(ValueError, match=r"label 4 \(example 0\) is out of range for 4 classes"):
    ridge.evaluate(params, x, y + 4, STRENGTHS)
  with pytest.raises(ValueError, match=r"label -1 \(example 0\) is out of range"):
    ridge.evaluate(params, x, y - 1, STRENGTHS)
  with pytest.raises(ValueError, match=r"one strength per member: 4 members, got strengths "
                     r"of shape \(1,\)"):
    ridge.evaluate(params, x, y, STRENGTHS[:1])
  with pytest.raises(ValueError, match="ridge needs at least one row"):
    ridge.evaluate(params, x[:0], y[:0], STRENGTHS)


def test_int64_rows_past_2_31_are_solved_as_float32_and_evaluate_checks_shapes():
  # int64 rows went to JAX as int32, wrapped (2**33 + 5 became 5): other weights and
  # another accuracy, silently. A W or b of the wrong shape raised a TypeError from XLA.
  rng = np.random.default_rng(3)
  x, y = rng.integers(0, 2**33, (200, 3)), rng.integers(0, 2, 200)
  got, want = (ridge.path(rows, y, [1e14], 2) for rows in (x, x.astype(np.float32)))
  np.testing.assert_array_equal(got["W"], want["W"])
  assert ridge.evaluate(got, x, y, [1e14]) == ridge.evaluate(want, x.astype(np.float32), y,
                                                             [1e14])
  with pytest.raises(ValueError, match=r"evaluate needs params W \(K, D, C\) and b \(K, C\)"):
    ridge.evaluate({"W": got["W"][0], "b": got["b"]}, x, y, [1e14])
  with pytest.raises(ValueError, match=r"evaluate needs rows of the 3 columns W has, got rows "
                                       r"of shape \(200, 2\)"):
    ridge.evaluate(got, x[:, :2], y, [1e14])


def test_float16_rows_are_solved_in_float32():
  # A float16 Gram matrix overflows past 65,504 (sums of squares of 0..255 pixels over a
  # few rows): the weights were NaN. Rows that float16 holds exactly (multiples of 1/16
  # below 16) give float32's solution, bit for bit.
  x, y = _digits()
  x = np.round(x[:300] * 255)
  # The smallest strengths are within the float32 Gram matrix's rounding: warned of.
  with pytest.warns(ridge.LowPrecision, match="2 of the strengths"):
    want = ridge.path(x.astype(np.float32), y[:300], STRENGTHS, 10)
  for rows in (x[:300], x[:20]):    # D <= N and N < D
    with pytest.warns(ridge.LowPrecision, match="2 of the strengths"):
      got = ridge.path(rows.astype(np.float16), y[:len(rows)], STRENGTHS, 10)
    assert got["W"].dtype == jnp.float32
    if len(rows) == 300:
      np.testing.assert_array_equal(got["W"], want["W"])
    assert np.isfinite(got["W"]).all() and np.isfinite(got["b"]).all()


def _digits(dtype=np.float32):
  digits = load_digits()
  order = np.random.default_rng(0).permutation(len(digits.target))
  x, y = (digits.data / 16.0).astype(dtype), digits.target.astype(np.int32)
  return x[order], y[order]


def _config(**sweep_fields):
  c = config_lib.base()
  c.model, c.loss, c.reg, c.optimizer = "linear", "least_squares", "l2", "closed_form"
  c.sweep = ml_collections.ConfigDict(sweep_fields)
  return c


def test_digits_sweep_solved_in_closed_form(tmp_path):
  x, y = _digits()
  data = training.Data(x[:1200], y[:1200], x[1200:1500], y[1200:1500])
  lams = [1e-5, 1e-3, 1e-1, 10.0]
  result = sweep.run(_config(reg_strength=lams), lambda _: data, 10, workdir=str(tmp_path),
                     test_for=lambda _: (x[1500:], y[1500:]))
  rows = result.rows
  assert [r["status"] for r in rows] == ["ok"] * 4
  assert [r["epochs_run"] for r in rows] == [1] * 4
  # every member's final_loss is lincv's objective at its solution, and the solution is
  # the path's
  lams = np.asarray(lams, np.float32)        # the sweep holds them in the rows' dtype
  path = ridge.path(data.x_train, data.y_train, lams, 10)
  loss, val = jax.jit(jax.vmap(lambda p, lam: (
      objective.loss(p, data.x_train, data.y_train, loss="least_squares", reg="l2",
                     reg_strength=lam),
      training.accuracy(training.Structure(), p, data.x_val, data.y_val))))(path, lams)
  np.testing.assert_allclose([r["final_loss"] for r in rows], loss, rtol=1e-5)
  np.testing.assert_allclose([r["val_accuracy"] for r in rows], val, rtol=1e-6)
  best = max(range(4), key=lambda k: (rows[k]["val_accuracy"], -k))
  assert result.best["member"] == best
  np.testing.assert_array_equal(result.best_params["W"], path["W"][best])
  assert result.best["val_accuracy"] > 0.9 and result.test_accuracy > 0.9
  assert rows[3]["val_accuracy"] < rows[best]["val_accuracy"]   # too strong a penalty shows
  assert (tmp_path / "checkpoint").exists()


def test_a_run_on_rows_whose_column_sums_overflow_is_one_line_and_leaves_no_run(tmp_path):
  # Every value is finite float32 (up to 1e36), their column sums over 1,350 training rows
  # are not: ridge's ValueError was a traceback, with config.json and checkpoint/ left in
  # the workdir. (Rows of 1e19, whose Gram matrix overflowed, are now solved: see
  # test_rows_of_any_scale_give_the_weights_of_rows_of_ordinary_size.)
  x, y = _digits()
  path = str(tmp_path / "huge.npz")
  np.savez(path, x_train=x[:1500] * np.float32(1e36), y_train=y[:1500],
           x_test=x[1500:] * np.float32(1e36), y_test=y[1500:])
  c = _config(reg_strength=[1e-3, 1.0])
  c.data.features, c.data.center = path, "none"
  with pytest.raises(DataError, match=r"^ridge needs finite rows: inf in their column sums "
                                      r"at column \d+, from .* or sums past float32's"):
    experiment.run(c, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_a_sweep_on_fewer_rows_than_the_ignored_batch_size_is_solved():
  # The closed form takes no minibatches: the config's batch_size (256) does not bound N.
  x, y = _digits()
  data = training.Data(x[:100], y[:100], x[100:300], y[100:300])
  result = sweep.run(_config(reg_strength=[1e-3, 1e-1]), lambda _: data, 10)
  path = ridge.path(data.x_train, data.y_train, np.float32([1e-3, 1e-1]), 10)
  np.testing.assert_array_equal(result.best_params["W"], path["W"][result.best["member"]])
  assert [r["status"] for r in result.rows] == ["ok", "ok"]


@pytest.mark.parametrize("field,values,why", [
    ("learning_rate", [0.1, 0.2], "the learning rate, which the full-batch optimizers"),
    ("seed", [0, 1], "which closed_form \\(one exact solve\\) does not use"),
    ("batch_size", [32, 64], "the minibatch size, which the full-batch optimizers")])
def test_a_sweep_over_what_the_closed_form_ignores_is_refused(field, values, why):
  with pytest.raises(sweep.SweepError, match=rf"^sweep.{field} does nothing with "
                     rf"optimizer='closed_form'.*{why}"):
    sweep.expand(_config(reg_strength=[0.1, 1.0], **{field: values}))


@pytest.mark.parametrize("scale, bound", [(1, 1e-2), (4, 1e-3), (32, 1e-4), (1000, 1e-6)])
def test_float32_rows_keep_the_small_directions_a_strength_holds(scale, bound):
  # Rows whose spectrum falls over eight decades, as pixels' and many features' do, at a
  # strength with N lambda `scale` times float32's eps of the largest eigenvalue e: the
  # directions below N lambda still carry the solution. Measured excess of the objective
  # over its minimum at scale 1 / 4 / 32 / 1000:
  #   a cutoff of eps sqrt(max(N, D)) max e (63 eps here), float32 eigendecomposition:
  #   dropped them as rounding, 4e-2 at 32;
  #   a cutoff of 8 eps max e on e + N lambda, float64 eigendecomposition: 0.46 / 5.5e-2 /
  #   5.6e-6 / 6.4e-9;
  #   every direction kept (lambda > 0), the same decomposition: 1.7e-3 / 2.1e-4 / 5.6e-6 /
  #   6.4e-9, what the float32 Gram matrix's own rounding (0.4 eps max e in norm) leaves.
  n, d = 4000, 200
  rng = np.random.default_rng(5)
  q, _ = np.linalg.qr(rng.normal(size=(d, d)))
  x = (rng.normal(size=(n, d)) * np.logspace(0, -4, d)) @ q.T
  y = rng.integers(0, 4, n)
  x[np.arange(n), y] += 0.05                      # labels the rows can partly predict
  eps = float(np.finfo(np.float32).eps)
  lams = np.array([scale]) * eps * np.linalg.norm(x - x.mean(0), 2) ** 2 / n
  with warnings.catch_warnings(record=True) as caught:   # below 10 eps max e: warned of
    warnings.simplefilter("always", ridge.LowPrecision)
    got = jax.tree.map(np.asarray, ridge.path(x.astype(np.float32), y, lams, 4))
  assert [w.category for w in caught] == [ridge.LowPrecision] * (scale < ridge.ROUNDING)
  with jax.enable_x64(True):
    ref = ridge.path(x, y, lams, 4)
    want, _ = ridge.evaluate(ref, x, y, lams)
    value, _ = ridge.evaluate(got, x, y, lams)
  assert (value[0] - want[0]) / want[0] < bound
  label = lambda p: np.argmax(x @ np.asarray(p["W"][0]) + np.asarray(p["b"][0]), 1)
  np.testing.assert_array_equal(label(got), label(ref))


def test_a_zero_eigenvalue_with_a_positive_strength_is_still_the_minimum():
  # A repeated column makes X^T X singular. lambda = 0 drops its null direction (the
  # minimum-norm solution); a positive strength keeps it, with 1 / (N lambda) times the
  # null component of X^T T, 0 up to rounding: in float32, exactly 0 on a CPU whose
  # products summed the two equal columns alike, 1e-7 of X^T T on one that did not, and
  # then 1 at lambda = 1e-9. The scores do not see that direction: the objective is the
  # minimum all the same, and the weights along every other direction are float64's.
  x, y = _problem(80, 6, seed=6)
  x = np.hstack([x, x[:, :1]]).astype(np.float32)
  lams = np.array([0.0, 1e-12, 1e-9, 1e-6, 1e-2])
  with pytest.warns(ridge.LowPrecision):                   # 1e-12 .. 1e-6: N lambda < 10 eps
    got = jax.tree.map(np.asarray, ridge.path(x, y, lams, 4))
  assert np.all(np.isfinite(got["W"])) and np.all(np.isfinite(got["b"]))
  with jax.enable_x64(True):
    ref = jax.tree.map(np.asarray, ridge.path(x.astype(np.float64), y, lams, 4))
    value, _ = ridge.evaluate(got, x.astype(np.float64), y, lams)
    want, _ = ridge.evaluate(ref, x.astype(np.float64), y, lams)
  np.testing.assert_allclose(value, want, rtol=1e-6)
  null = (np.eye(7)[0] - np.eye(7)[-1]) / np.sqrt(2)
  seen = np.eye(7) - np.outer(null, null)
  xc = x.astype(np.float64) - x.mean(0)
  rhs = np.abs(xc.T @ (2 * np.eye(4)[y] - 1)).max()
  eps = float(np.finfo(np.float32).eps)
  for k, lam in enumerate(lams):
    assert _rel(seen @ got["W"][k], seen @ ref["W"][k]) < (1e-4 if k == 1 else 1e-5)
    along = np.abs(null @ got["W"][k]).max()
    assert along <= (eps * np.abs(got["W"][k]).max() if lam == 0
                     else 10 * eps * rhs / (len(y) * lam))


def test_float32_strengths_within_the_gram_matrix_rounding_are_warned_of(x64):
  """A spectrum over 4 decades: N lambda = 3e-7 and 3e-5 lie below 10 eps32 max e (about
  4e-3), 3e-1 and 3e3 above; float64 rows are exact there and warn of nothing."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=(3000, 400)) * np.logspace(0, -4, 400)
  y = rng.integers(0, 4, 3000).astype(np.int32)
  strengths = [1e-10, 1e-8, 1e-4, 1.0]
  with pytest.warns(ridge.LowPrecision, match=r"2 of the strengths \(1e-10, 1e-08\) have "
                                               r"N lambda below 10 eps max e"):
    ridge.path(x.astype(np.float32), y, strengths, 4)
  with warnings.catch_warnings():
    warnings.simplefilter("error", ridge.LowPrecision)
    ridge.path(x, y, strengths, 4)
  # lambda = 0 drops, as rounding, eigenvalues up to 8 eps max e: here some of them are the
  # data's (the spectrum falls 8 decades, full rank), and it says so; exact null
  # directions (constant columns, fewer rows than columns, centred) are dropped silently.
  # Its columns of scale below about 1.1e-3 of the largest's (296 on) hold directions
  # below that.
  with pytest.warns(ridge.LowPrecision, match=r"reg_strength 0 meets \d+ directions whose "
                    r"eigenvalues lie between eps and 10 eps .*\(\d+ of them dropped as "
                    r"rounding, \d+ kept\)"), \
       pytest.warns(ridge.LowPrecision, match=r"reg_strength 0 meets \d+ columns \(2\d\d, "
                    r".*whose sums of squares lie below 10 eps times the Gram matrix's "
                    r"largest eigenvalue"):
    ridge.path(x.astype(np.float32), y, [0.0, 1.0], 4)
  wide = rng.normal(size=(300, 64)).astype(np.float32)
  wide[:, :3] = 0
  with warnings.catch_warnings():
    warnings.simplefilter("error", ridge.LowPrecision)
    ridge.path(rng.normal(size=(3000, 400)).astype(np.float32), y, [0.0, 1.0], 4)
    ridge.path(wide, y[:300], [0.0], 4)
    ridge.path(rng.normal(size=(40, 100)).astype(np.float32), y[:40], [0.0], 4)  # X X^T
    ridge.path(rng.normal(size=(3000, 400)), y, [0.0, 1.0], 4)               # float64
    ridge.path(wide.astype(np.float64), y[:300], [0.0], 4)


def _spectrum(n, d, small, eps, seed=12):
  """Rows (float64) whose centred Gram matrix has eigenvalues N (d - 3 of them) and, in
  3 random directions, `small` eps times that; labels the rows partly predict."""
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 4, n)
  z = rng.normal(size=(n, d))
  z[np.arange(n), y] += 1.0                        # before the spectrum is set
  u, _, vt = np.linalg.svd(z - z.mean(0), full_matrices=False)
  sv = np.ones(d)
  sv[-3:] = np.sqrt(small * eps)
  return (u * sv * np.sqrt(n)) @ vt + 0.5, y


@pytest.mark.parametrize("dtype, small", [(np.float32, 9.5), (np.float64, 5.0)])
def test_zero_strength_within_the_gram_matrix_rounding_is_warned_of_in_both_dtypes(dtype,
                                                                                   small):
  """lambda = 0 where 3 eigenvalues lie a few eps max e above 0 (eps the rows' own): the
  Gram matrix's rounding (about eps max e) sets the weights along them, as it does for a
  positive strength with N lambda there, which is warned of. Before, lambda = 0 warned
  only of the directions it dropped between eps and 8 eps max e, and only for float32
  rows: float32 eigenvalues kept at 9 eps max e (the objective 4e-4 above its minimum,
  0.05% of the predictions other than float64's) and float64 rows were not warned of.
  Measured on these rows (3 seeds): float32's 3 eigenvalues between 9.1 and 9.8 eps max
  e (kept), float64's between 2.8 and 7.1 (dropped): all within (1, 10] eps max e."""
  eps = float(np.finfo(dtype).eps)
  x, y = _spectrum(2000, 40, small, eps)
  with jax.enable_x64(dtype == np.float64):
    with pytest.warns(ridge.LowPrecision, match=rf"ridge on {np.dtype(dtype).name} rows: "
                      r"reg_strength 0 meets 3 directions whose eigenvalues lie between eps "
                      r"and 10 eps times the Gram matrix's largest, where its rounding sets "
                      r"their weights \(\d of them dropped as rounding, \d kept\); give a "
                      r"positive strength"):
      ridge.path(x.astype(dtype), y, [0.0], 4)
    # A positive strength with N lambda below 10 eps max e: float64 rows too.
    n_lam = 2 * eps * 2000                           # N lambda = 2 eps max e, max e = N
    with pytest.warns(ridge.LowPrecision, match=rf"ridge on {np.dtype(dtype).name} rows: "
                                                r"1 of the strengths .* N lambda below 10 eps"):
      ridge.path(x.astype(dtype), y, [n_lam / 2000, 1.0], 4)
    with warnings.catch_warnings():   # far from the rounding: no word, in either dtype
      warnings.simplefilter("error", ridge.LowPrecision)
      ridge.path(_spectrum(2000, 40, 1e4, eps)[0].astype(dtype), y, [0.0, 1.0], 4)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("power", [-70, -40, 40, 64])
def test_rows_of_any_scale_give_the_weights_of_rows_of_ordinary_size(form, power):
  """Rows times 2^k at lambda times 4^k minimise the same objective with W / 2^k. Before,
  float32 rows times 2^-70 (values about 1e-21, products below float32's smallest normal
  1.2e-38) had a Gram matrix of 0: lambda = 0 gave all-zero weights, and the positive
  strengths' weights were off by up to 1e8, silently; rows times 2^64 (values about
  1e19) had a Gram matrix past float32's range, and were refused. The path scales the
  centred rows by a power of two first: the weights are those of the unscaled rows, bit
  for bit."""
  x, y = _problem(*FORMS[form], seed=13)
  x = x.astype(np.float32)
  lams = np.array([0.0, 1e-3, 1.0])
  want = ridge.path(x, y, lams, 4)
  f = 2.0 ** power
  got = ridge.path(x * np.float32(f), y, lams * f**2, 4)
  np.testing.assert_array_equal(np.asarray(got["W"], np.float64) * f, want["W"])
  np.testing.assert_array_equal(got["b"], want["b"])


def test_rows_of_values_near_1e_20_are_solved_not_zeroed():
  # The scale the issue was seen at: not a power of two, so the weights are those of the
  # rows' rounding; at lambda = 0 (scale-free) they predict as the rows of ordinary size.
  x, y = _problem(300, 20, seed=14)
  x = x.astype(np.float32)
  tiny = (x * 1e-20).astype(np.float32)
  want = jax.tree.map(np.asarray, ridge.path(x, y, [0.0], 4))
  got = jax.tree.map(np.asarray, ridge.path(tiny, y, [0.0], 4))
  assert np.abs(got["W"]).max() > 0        # was exactly 0
  label = lambda rows, p: np.argmax(rows @ p["W"][0] + p["b"][0], axis=1)
  np.testing.assert_array_equal(label(tiny.astype(np.float64), got), label(x, want))
  # The weights scale with 1 / the rows: within the float32 rounding of the rows (eps)
  # times the Gram matrix's condition (about 1e2 here): 1e4 eps.
  eps = float(np.finfo(np.float32).eps)
  assert _rel(got["W"][0] * 1e-20, want["W"][0]) < 1e4 * eps


def test_weights_past_the_dtype_are_warned_of_and_the_sweep_marks_them_diverged():
  # Rows of +-2^-125 (float32's smallest normal number is 2^-126) whose least-squares
  # weights are 16 / 2^-125 = 2^129, past float32's 3.4e38 = 2^128. Before, the Gram
  # matrix underflowed to 0 and lambda = 0 gave all-zero weights, silently.
  rng = np.random.default_rng(15)
  y = rng.integers(0, 4, 200)
  x = rng.choice([-1.0, 1.0], size=(200, 12))
  x[:, 1] = x[:, 0] + 0.0625 * np.where(y == 0, 1.0, -1.0)   # along it, weights of 16
  x = (x * 2.0**-125).astype(np.float32)
  with pytest.warns(ridge.Overflow, match=r"^lincv: ridge: the weights of strength 0 pass "
                    r"float32's range \(max 3.4e\+38\) on rows whose centred values reach at "
                    r"most \S+, and are not finite; standardise the rows, or pass float64 "
                    r"rows$"):
    got = ridge.path(x, y, [0.0, 1.0], 4)
  assert not np.isfinite(got["W"][0]).all() and np.isfinite(got["W"][1]).all()
  # A sweep: that member diverged, the other solved.
  data = training.Data(x[:150], y[:150].astype(np.int32), x[150:], y[150:].astype(np.int32))
  with pytest.warns(ridge.Overflow):
    result = sweep.run(_config(reg_strength=[0.0, 1.0]), lambda _: data, 4)
  assert [r["status"] for r in result.rows] == ["diverged", "ok"]


def _solve_both_ways(monkeypatch, gram, rhs, lams, n):
  """`ridge._solve`'s answer, and whether it took T's eigenvectors for any strength."""
  calls = []
  linalg = ridge._linalg()
  eigh = linalg.eigh_tridiagonal
  monkeypatch.setattr(linalg, "eigh_tridiagonal",
                      lambda *a, **k: calls.append(1) or eigh(*a, **k))
  eps = float(np.finfo(np.float64).eps)
  got = ridge._solve(gram.copy(), rhs, np.asarray(lams, np.float64), n, eps, np.float64)
  return got.reshape(gram.shape[0], len(lams), rhs.shape[1]), bool(calls)


@pytest.mark.parametrize("m", [1, 2, 3, 40])
def test_every_positive_strength_is_one_tridiagonal_solve(monkeypatch, m):
  # The path reduces G once to T = Q^T G Q and solves (T + N lambda I) z = Q^T rhs per
  # strength, without T's eigenvectors: each equals the dense solve of (G + N lambda I).
  rng = np.random.default_rng(m)
  a = rng.normal(size=(3 * m, m)) * np.logspace(0, -3, m)
  gram, rhs, n = a.T @ a, rng.normal(size=(m, 3)), 3 * m
  lams = np.array([1e-9, 1e-4, 1.0, 1e3])
  got, eigenvectors = _solve_both_ways(monkeypatch, gram, rhs, lams, n)
  assert not eigenvectors
  for k, lam in enumerate(lams):
    want = np.linalg.solve(gram + n * lam * np.eye(m), rhs)
    assert _rel(got[:, k], want) < 1e-9


def test_zero_strength_and_rounded_negative_eigenvalues_take_the_eigenvectors(monkeypatch):
  # lambda = 0 is the minimum-norm least-squares solution; an eigenvalue that rounding
  # left below -N lambda / 2 would make T + N lambda I indefinite, so that strength is
  # solved as the eigendecomposition's (the eigenvalue clipped at 0); the others, in the
  # same path, by the tridiagonal solve, which keeps that eigenvalue as a Cholesky solve
  # of G + N lambda I does. The first two as `_inverse` says, to the rounding of the zero
  # eigenvalue (1e-14) against N lambda (3e-7).
  rng = np.random.default_rng(7)
  m, n = 12, 30
  q, _ = np.linalg.qr(rng.normal(size=(m, m)))
  e = np.r_[-1e-6, 0.0, np.logspace(-3, 2, m - 2)]           # two "zeros", one negative
  gram, rhs = (q * e) @ q.T, rng.normal(size=(m, 2))
  lams = np.array([0.0, 1e-8, 1e-3, 1.0])                     # N lambda 0, 3e-7, ...
  got, eigenvectors = _solve_both_ways(monkeypatch, gram, rhs, lams, n)
  assert eigenvectors
  clipped = np.maximum(e, 0)
  inv = np.stack([np.where(clipped > 0, 1 / np.where(clipped > 0, clipped, 1), 0),  # 0: drop
                  1 / (clipped + n * lams[1])])
  for k in (0, 1):
    assert _rel(got[:, k], q @ (inv[k][:, None] * (q.T @ rhs))) < 1e-6
  for k in (2, 3):
    assert _rel(got[:, k], np.linalg.solve(gram + n * lams[k] * np.eye(m), rhs)) < 1e-9


@pytest.mark.parametrize("shape", [(30, 1), (1, 5), (2, 2)])
def test_one_feature_one_row_and_two_of_each_are_solved(x64, shape):
  n, d = shape
  x, y = _problem(n, d, c=2, seed=8)
  got = ridge.path(x, y, STRENGTHS, 2)
  t = np.asarray(losses.targets(y, 2, np.float64))
  for k, lam in enumerate(STRENGTHS):
    a = np.block([[x, np.ones((n, 1))], [np.sqrt(n * lam) * np.eye(d), np.zeros((d, 1))]])
    sol = np.linalg.lstsq(a, np.vstack([t, np.zeros((d, 2))]), rcond=None)[0]
    np.testing.assert_allclose(got["W"][k], sol[:d], rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("shape", [(40, 6), (6, 40)])
def test_rows_that_are_not_finite_are_refused_in_one_line(shape):
  # LAPACK failed on them with a message about its own iterations (stebz or syevd did
  # not converge), or in the other form gave NaN weights.
  x, y = _problem(*shape, c=2, seed=9)
  x = x.astype(np.float32)
  for value in (np.nan, np.inf):
    bad = x.copy()
    bad[3, 2] = value
    with pytest.raises(ValueError, match=r"^ridge needs finite rows: (nan|inf) in their "
                       r"column sums at column 2, from a NaN or an infinity"):
      ridge.path(bad, y, STRENGTHS, 2)
  big = x.copy()
  big[4, 1] *= 1e20        # finite; its square passes float32's 3.4e38, and was refused
  # Scaled to 1, the rows' other values' products underflow: a float32 Gram matrix holds
  # 1e40 beside 1 in neither scale. Its rounding, 1e33 here, dwarfs every N lambda: each
  # strength is warned of, and the weights stay finite (the N < D form's solve too).
  with pytest.warns(ridge.LowPrecision, match=r"4 of the strengths \(0.001, 0.03, 1, 10\) "
                                               r"have N lambda below 10 eps max e"):
    got = ridge.path(big, y, STRENGTHS, 2)
  assert np.isfinite(got["W"]).all() and np.isfinite(got["b"]).all()


def test_evaluate_refuses_rows_that_are_not_finite_but_scores_weights_that_are_not():
  # Rows with a NaN or an infinity made every member's objective NaN or inf, silently;
  # a member whose weights are not finite (a sweep marks it diverged) is still scored.
  x, y = _problem(30, 4, c=3, seed=10)
  x = x.astype(np.float32)
  params = jax.tree.map(np.array, ridge.path(x, y, [1e-2, 1.0], 3))     # writable
  for value in (np.nan, np.inf):
    bad = x.copy()
    bad[2, 1] = value
    with pytest.raises(ValueError, match=r"^ridge.evaluate needs finite rows: 1 of their "
                       r"values are NaN or infinite$"):
      ridge.evaluate(params, bad, y, [1e-2, 1.0], chunk=7)
  params["W"][0, 0, 0] = np.nan
  values, _ = ridge.evaluate(params, x, y, [1e-2, 1.0])
  assert np.isnan(values[0]) and np.isfinite(values[1])


def test_float64_rows_without_64_bit_jax_and_rows_without_features_are_refused():
  # float64 rows were solved in float32 (their Gram matrix and weights) with float64's
  # rounding assumed, silently; no column made a LAPACK error about array dimensions.
  x, y = _problem(20, 3)
  with pytest.raises(ValueError, match=r"^ridge: the rows' dtype float64 needs 64-bit "
                     r"JAX, which is off"):
    ridge.path(x, y, STRENGTHS, 4)
  params = ridge.path(x.astype(np.float32), y, STRENGTHS, 4)
  with pytest.raises(ValueError, match=r"^ridge: the rows' dtype float64 needs 64-bit"):
    ridge.evaluate(params, x, y, STRENGTHS)
  with pytest.raises(ValueError, match=r"^ridge needs at least one feature, got rows of "
                     r"shape \(20, 0\)"):
    ridge.path(x[:, :0].astype(np.float32), y, STRENGTHS, 4)


def test_reg_strength_0_warns_of_columns_too_small_for_its_cutoff():
  """A column of 0.3 (y - 0.5) + 0.03 N(0, 1) beside two of 1,000 N(0, 1), float32: its
  direction's eigenvalue is 0.2 eps max e, the data's, and lambda = 0 dropped it as
  rounding without a word (52.5% training accuracy, least squares' 100%). Constant
  columns (0 once centred, or a few ulps) are no such column."""
  rng = np.random.default_rng(0)
  n = 2000
  y = rng.integers(0, 2, n)
  x = np.stack([rng.normal(size=n) * 1000, rng.normal(size=n) * 1000,
                (y - 0.5) * 0.3 + rng.normal(size=n) * 0.03], 1).astype(np.float32)
  for rows in (x, x[:2]):         # the X^T X form and the X X^T form
    with pytest.warns(ridge.LowPrecision, match=re.escape(
        "reg_strength 0 meets 1 columns (2) whose sums of squares lie below 10 eps times "
        "the Gram matrix's largest eigenvalue")):
      ridge.path(rows, y[:len(rows)], [0.0], 2)
  plain = rng.normal(size=(500, 20)).astype(np.float32)
  plain[:, 3], plain[:, 4] = 3.7, 0.0
  with warnings.catch_warnings():
    warnings.simplefilter("error", ridge.LowPrecision)
    ridge.path(plain, rng.integers(0, 3, 500), [0.0], 3)
