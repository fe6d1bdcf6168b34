"""lbfgs: full-batch L-BFGS over a population: scikit-learn's optimum, independent members,
the sweep's objective, a digits run, resume, refused combinations."""

import csv
import io
import json
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from lincv import config as config_lib
from lincv import experiment, lbfgs, objective, sweep, training
from lincv.sweep import population
from _faults import resumes_at_every_write, share_populations

LAMS = (1e-3, 1e-2, 1e-1)


def _digits(n=400, dtype=jnp.float32):
  x, y = load_digits(return_X_y=True)
  x = jnp.asarray(x[:n] / 16.0 - 0.3, dtype)
  y = jnp.asarray(y[:n], jnp.int32)
  return training.Data(x, y, x[:100], y[:100])


def _hparams(lams, dtype, tol):
  k = len(lams)
  hp = {f: jnp.full((k,), v, jnp.int32 if f == "seed" else dtype)
        for f, v in training.HPARAM_DEFAULTS.items()}
  return {**hp, "reg_strength": jnp.asarray(lams, dtype), "tol": jnp.full((k,), tol, dtype)}


# One compiled program per structure and shape, shared by the tests.
_FIT = jax.jit(jax.vmap(training.fit, in_axes=(0, None, None, None, None)),
               static_argnums=(3, 4))


def _fit(data, lams, structure, tol):
  return _FIT(_hparams(lams, data.x_train.dtype, tol), data, None, structure, 10)[0]


CONVERGED = training.Structure(optimizer="lbfgs", epochs=30, lbfgs_iters=10)


def test_the_basis_is_the_rows_second_moment(x64):
  x = _digits(dtype=jnp.float64).x_train
  b = lbfgs.basis(x)
  v, s = np.asarray(b.vectors), np.asarray(b.values)
  np.testing.assert_allclose(v.T @ v, np.eye(x.shape[1]), atol=1e-12)
  np.testing.assert_allclose((v * s) @ v.T, np.asarray(x.T @ x) / x.shape[0], atol=1e-12)
  assert (s >= 0).all()


def test_with_fewer_rows_than_columns_the_basis_spans_the_rows(x64):
  """N < D: r = N columns from X X^T / N, the second moment the same; a direction whose
  eigenvalue is below `RANK_FLOOR` of the top one (here 0: a row repeated) is left out."""
  x = _digits(dtype=jnp.float64).x_train[:40]
  x = x.at[39].set(x[0])
  b = lbfgs.basis(x)
  assert (np.asarray(b.values) > 0).sum() == 39
  v, s = np.asarray(b.vectors), np.asarray(b.values)
  assert v.shape == (64, 40) and (s >= 0).all()
  kept = s > 0
  np.testing.assert_allclose(v[:, kept].T @ v[:, kept], np.eye(kept.sum()), atol=1e-10)
  np.testing.assert_allclose((v * s) @ v.T, np.asarray(x.T @ x) / 40, atol=1e-10)


@pytest.mark.parametrize("rows", [400, 40])      # a whole basis, and one of 40 directions
@pytest.mark.parametrize("reg", ["l2", "none"])
def test_the_preconditioned_coordinates_follow_the_chain_rule(x64, reg, rows):
  """W = (Z_W w) V^T, b = Z_b b_scale: the gradient with respect to Z is `gradient(g)`, so
  <g, step(d)> = <gradient(g), d> for every g and d; and a step of the first iteration
  (Z's gradient, mapped back) is a descent direction of W's."""
  data = _digits(dtype=jnp.float64)
  structure = training.Structure(optimizer="lbfgs", reg=reg)
  hp = {f: v[0] for f, v in _hparams((1e-3,), jnp.float64, 1e-6).items()}
  coordinates = lbfgs._coordinates  # pylint: disable=protected-access
  z = coordinates(lbfgs.basis(data.x_train[:rows]), structure, hp)
  kg, kd = jax.random.split(jax.random.key(0))
  draw = lambda key: {"W": jax.random.normal(key, (10, 64), jnp.float64),
                      "b": jax.random.normal(jax.random.fold_in(key, 1), (10,), jnp.float64)}
  g, d = draw(kg), draw(kd)
  np.testing.assert_allclose(float(optax.tree.vdot(g, z.step(d))),
                             float(optax.tree.vdot(z.gradient(g), d)), rtol=1e-12)
  assert float(optax.tree.vdot(g, z.step(z.gradient(g)))) > 0
  # The scales are at most 1: no coordinate's step is longer than the gradient's.
  assert 0 < float(jnp.min(z.w)) and float(jnp.max(z.w)) <= 1 and 0 < float(z.b) <= 1


def _mixed_rows(rows=400):
  """Digits whose columns mix with singular values over 1e-2..1e1 (float64)."""
  data = _digits(dtype=jnp.float64)
  q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(64, 64)))
  x, y = (data.x_train @ jnp.asarray(q * np.geomspace(1e-2, 1e1, 64)))[:rows], data.y_train[:rows]
  return training.Data(x, y, x[:100], y[:100])


def _with_and_without_basis(data, lams, cap, monkeypatch, plain=True):
  """(preconditioned, plain) final states of `training.fit`, tol 1e-8, and each member's
  objective in each (plain=False: the preconditioned ones only, None for the others)."""
  s = training.Structure(optimizer="lbfgs", epochs=cap // 10, lbfgs_iters=10)
  hp = _hparams(lams, jnp.float64, 1e-8)
  fit = lambda: jax.jit(jax.vmap(training.fit, in_axes=(0, None, None, None, None)),
                        static_argnums=(3, 4))(hp, data, None, s, 10)[0]
  pre = fit()
  monkeypatch.setattr(training, "with_basis", lambda d, structure: d)    # no basis
  plain = fit() if plain else None
  def at(state):
    member = lambda i: jax.tree.map(lambda a: a[i], state.params)
    return np.array([float(objective.loss(member(i), data.x_train, data.y_train,
                                          reg_strength=lam)) for i, lam in enumerate(lams)])
  return pre, plain, at(pre), at(plain) if plain else None


def _sklearn_params(x, y, lam):
  """scikit-learn's minimiser of lincv's objective (C = 1 / (2 N lam), see
  `test_each_member_reaches_scikit_learns_objective`), as lincv's parameters."""
  ref = LogisticRegression(C=1 / (2 * len(y) * lam), tol=1e-12, max_iter=10000).fit(x, y)
  return {"W": ref.coef_.T, "b": ref.intercept_}


def test_the_preconditioner_changes_the_path_not_the_minimum(x64, monkeypatch):
  """The preconditioned members reach tol 1e-8 in 188 and 53 to 55 iterations, where the
  plain L-BFGS took 460 and 59 on one CPU and ended its weak member at the cap of 500 on
  another (their rounding differs): the weak member in under half the iterations. Both
  end at the same objective."""
  pre, plain, j_pre, j_plain = _with_and_without_basis(_mixed_rows(), (1e-2, 1.0), 500,
                                                       monkeypatch)
  assert (np.asarray(lbfgs.report(pre.opt_state)["grad_norm"]) <= 1e-8).all()
  assert 2 * np.asarray(pre.opt_state.iterations)[0] < np.asarray(plain.opt_state.iterations)[0]
  np.testing.assert_allclose(j_pre, j_plain, rtol=1e-10)


def test_with_fewer_rows_than_columns_the_preconditioner_keeps_the_minimum(x64, monkeypatch):
  data, lams = _mixed_rows(40), (1e-2, 1.0)
  pre, _, j_pre, _ = _with_and_without_basis(data, lams, 500, monkeypatch, plain=False)
  assert (np.asarray(lbfgs.report(pre.opt_state)["grad_norm"]) <= 1e-8).all()
  x, y = np.asarray(data.x_train), np.asarray(data.y_train)
  want = [float(objective.loss(_sklearn_params(x, y, lam), x, y, reg_strength=lam))
          for lam in lams]
  np.testing.assert_allclose(j_pre, want, rtol=1e-9)


def test_a_population_computes_the_basis_once_for_its_full_batch_members():
  data = _digits()
  groups = sweep.group(sweep.expand(_probe_config(
      sweep={"optimizer": ["lbfgs", "sgd"], "reg_strength": [1e-3, 1e-2]})))
  pops = {g.structure.optimizer: sweep.Population(g, data, 10) for g in groups}
  basis = pops["lbfgs"].data.basis
  assert basis is not None and pops["sgd"].data.basis is None
  np.testing.assert_allclose(np.asarray(basis.values), np.asarray(lbfgs.basis(
      data.x_train).values), rtol=1e-4, atol=1e-6 * float(np.max(basis.values)))


def test_rows_wider_than_the_basis_limit_run_unpreconditioned(monkeypatch):
  monkeypatch.setattr(lbfgs, "MAX_BASIS_COLUMNS", 63)     # digits have 64
  (group,) = sweep.group(sweep.expand(_probe_config(epochs=1)))
  pop = sweep.Population(group, _digits(), 10)
  assert pop.data.basis is None
  state, _ = pop.epoch(pop.init())
  assert (np.asarray(state.opt_state.iterations)[:pop.k] == 10).all()


def test_each_member_reaches_scikit_learns_objective(x64):
  """lincv's objective is mean loss + lam |W|^2; scikit-learn's is C sum loss + |W|^2 / 2,
  both leaving the intercept out: the same minimiser for C = 1 / (2 N lam). Both
  solutions are scored by the one function, `lincv.objective.loss`."""
  data = _digits(dtype=jnp.float64)
  x, y = np.asarray(data.x_train), np.asarray(data.y_train)
  state = _fit(data, LAMS, CONVERGED, tol=1e-10)
  for i, lam in enumerate(LAMS):
    ours = objective.loss(jax.tree.map(lambda a: a[i], state.params), x, y, reg_strength=lam)
    theirs = objective.loss(_sklearn_params(x, y, lam), x, y, reg_strength=lam)
    assert abs(float(ours) - float(theirs)) <= 1e-6 * float(theirs), (lam, ours, theirs)
  assert (np.asarray(state.status) == training.STOPPED).all()   # each stopped on its test


def _objective_f64(params, x, y, lam):
  """lincv's softmax objective, computed in float64 NumPy whatever JAX's precision."""
  s = x @ np.asarray(params["W"], np.float64) + np.asarray(params["b"], np.float64)
  s = s - s.max(axis=1, keepdims=True)
  loss = np.log(np.exp(s).sum(axis=1)) - s[np.arange(len(y)), y]
  return loss.mean() + lam * np.sum(np.asarray(params["W"], np.float64) ** 2)


def test_float32_members_reach_a_tol_below_the_rounding_of_their_objective():
  """In float32 the decrease of a step near the minimum is lost in the rounding of the
  objective (about 1e-7 of it): with Armijo's test alone every member stalled at 1e-4 to
  7e-4 of its gradient at zero, its objective up to 1e-6 above scikit-learn's. The slope
  along the ray keeps its accuracy there (the approximate Wolfe test): each member
  reaches tol 1e-6 and scikit-learn's objective to 1e-8, both scored in float64."""
  data = _digits()
  assert data.x_train.dtype == jnp.float32
  lams = (1e-3, 1e-2, 1e-1, 1.0)
  state = _fit(data, lams, CONVERGED, tol=1e-6)
  assert (np.asarray(jax.vmap(lbfgs.relative_grad_norm)(state.opt_state)) <= 1e-6).all()
  assert (np.asarray(state.status) == training.STOPPED).all()
  assert (np.asarray(state.opt_state.iterations) < CONVERGED.epochs * CONVERGED.lbfgs_iters).all()
  x, y = np.asarray(data.x_train, np.float64), np.asarray(data.y_train)
  for i, lam in enumerate(lams):
    ours = _objective_f64(jax.tree.map(lambda a: a[i], state.params), x, y, lam)
    theirs = _objective_f64(_sklearn_params(x, y, lam), x, y, lam)
    assert ours - theirs <= 1e-8 * theirs, (lam, ours, theirs)


@pytest.mark.parametrize("loss", ["softmax", "squared_svm", "least_squares", "svm"])
@pytest.mark.parametrize("reg", ["l2", "none"])
def test_the_slope_along_the_ray_is_the_objectives_derivative(x64, loss, reg):
  """The line search's hand-written slope phi'(t) (from the scores, no product with the
  rows) against JAX's forward derivative of the objective along the ray, in float64."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((50, 7)))
  y = jnp.asarray(rng.integers(0, 4, 50), jnp.int32)
  w, d_w = (jnp.asarray(rng.standard_normal((4, 7))) for _ in range(2))   # (C, D) layout
  b, d_b = (jnp.asarray(rng.standard_normal(4)) for _ in range(2))
  structure = training.Structure(optimizer="lbfgs", loss=loss, reg=reg)
  hp = {**{f: jnp.asarray(v, jnp.float64) for f, v in training.HPARAM_DEFAULTS.items()},
        "reg_strength": jnp.asarray(0.3)}
  s, u = x @ w.T + b[None], x @ d_w.T + d_b[None]
  phi = lambda t: objective.loss({"W": (w + t * d_w).T, "b": b + t * d_b}, x, y, loss=loss,
                                 reg=reg, reg_strength=0.3)
  for t in (0.0, 0.37, 1.0):
    _, expected = jax.jvp(phi, (jnp.float64(t),), (jnp.float64(1.0),))
    ours = lbfgs._slope(structure, hp, w, d_w, s, u, y, t)  # pylint: disable=protected-access
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-12)


def test_a_member_alone_equals_itself_in_a_population(x64):
  """To the solver's precision: the population's members share one product, whose
  rounding depends on how many members it holds (as `lincv.sweep.chunking` says), so
  alone and together differ in the last bits of the iterates, not in the solution."""
  data = _digits(dtype=jnp.float64)
  together = _fit(data, LAMS, CONVERGED, tol=1e-10)
  for i, lam in enumerate(LAMS):
    alone = _fit(data, (lam,), CONVERGED, tol=1e-10)
    for name in ("W", "b"):
      w = np.asarray(together.params[name][i])
      np.testing.assert_allclose(w, alone.params[name][0], rtol=0,
                                 atol=1e-6 * np.abs(w).max())
    np.testing.assert_allclose(together.opt_state.value[i], alone.opt_state.value[0],
                               rtol=1e-12)


def test_a_member_does_not_depend_on_the_others():
  """Bit for bit, in float32: the same member beside other strengths."""
  data = _digits()
  s = training.Structure(optimizer="lbfgs", epochs=3, lbfgs_iters=5)
  one = _fit(data, LAMS, s, tol=1e-6)
  other = _fit(data, (LAMS[0], 3e-4, 3.0), s, tol=1e-6)
  for name in ("W", "b"):
    np.testing.assert_array_equal(one.params[name][0], other.params[name][0])
  assert one.opt_state.iterations[0] == other.opt_state.iterations[0]
  assert not np.array_equal(one.params["W"][2], other.params["W"][2])   # a different member


def _population_epochs(data, lams, epochs, *, compact):
  c = _probe_config(epochs=epochs, lbfgs_iters=3)
  c.tol = 1e-3
  c.sweep = {"reg_strength": list(lams)}
  (group,) = sweep.group(sweep.expand(c))
  pop = sweep.Population(group, data, 10)
  pop._compacts = compact  # pylint: disable=protected-access
  state, curves = pop.init(), []
  for _ in range(epochs):
    state, metrics = pop.epoch(state)
    curves.append(np.asarray(metrics["val_accuracy"])[: pop.k])
  return pop, jax.device_get(state), np.stack(curves, axis=1)


def test_stopped_members_leave_the_population(x64, monkeypatch):
  """Once at most a quarter of the members are active, only they are computed, as a
  smaller population; the others stay as the full program leaves a stopped member. Every
  number agrees with the full program's to rounding (the shared product has another
  width)."""
  data = _digits(dtype=jnp.float64)
  monkeypatch.setattr(population, "COMPACT_AFTER_FLOPS", 0)   # these rows are few
  lams = (3.0, 1.0, 0.3, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5)  # the strongest stop first
  full_pop, full, full_curves = _population_epochs(data, lams, 7, compact=False)
  pop, compact, curves = _population_epochs(data, lams, 7, compact=True)
  assert sorted(pop._epochs) != sorted(full_pop._epochs)  # pylint: disable=protected-access
  k = len(lams)
  assert 0 < (full.status[:k] == training.ACTIVE).sum() <= k // 2   # some ran to the end
  np.testing.assert_array_equal(compact.status[:k], full.status[:k])
  np.testing.assert_array_equal(compact.opt_state.iterations[:k],
                                full.opt_state.iterations[:k])
  np.testing.assert_array_equal(compact.epoch[:k], full.epoch[:k])
  np.testing.assert_array_equal(compact.best_epoch[:k], full.best_epoch[:k])
  np.testing.assert_array_equal(np.isnan(curves), np.isnan(full_curves))
  np.testing.assert_allclose(curves, full_curves, rtol=0, atol=1e-12)
  for name in ("W", "b"):
    np.testing.assert_allclose(compact.params[name][:k], full.params[name][:k], rtol=0,
                               atol=1e-9 * np.abs(full.params[name]).max())


def test_members_stay_where_leaving_would_save_less_than_a_compilation(x64):
  """400 rows of 64: the members that stopped cost far less than `COMPACT_AFTER_FLOPS`
  while computed for nothing, so the population runs its one program to the end."""
  data = _digits(dtype=jnp.float64)
  lams = (3.0, 1.0, 0.3, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5)
  pop, state, _ = _population_epochs(data, lams, 7, compact=True)
  assert (state.status[:len(lams)] == training.ACTIVE).sum() <= len(lams) // 4
  assert sorted(pop._epochs) == [(pop.chunk, False)]  # pylint: disable=protected-access


def test_a_member_whose_objective_overflows_is_diverged_and_stays_put():
  data = _digits()
  huge = training.Data(data.x_train * 1e36, data.y_train, data.x_val, data.y_val)
  s = training.Structure(optimizer="lbfgs", epochs=3, lbfgs_iters=5)
  hp = {**_hparams(LAMS, jnp.float32, 1e-6), "init_scale": jnp.full((3,), 1e6)}
  state = _FIT(hp, huge, None, s, 10)[0]     # scores of about 1e42: inf in float32
  assert (np.asarray(state.status) == training.DIVERGED).all()
  assert (np.asarray(state.opt_state.iterations) == 0).all()


def test_the_solver_minimises_the_sweeps_objective():
  """The solver's value and gradient (from the scores it carries) are
  `training.loss_and_grad`'s, to float32 rounding: a few eps of the value's scale."""
  data = _digits()
  s = training.Structure(optimizer="lbfgs", loss="squared_svm")
  hp = {f: v[0] for f, v in _hparams((0.05,), jnp.float32, 1e-5).items()}
  key_w, key_b = jax.random.split(jax.random.key(0))
  params = {"W": 0.1 * jax.random.normal(key_w, (64, 10)),
            "b": 0.1 * jax.random.normal(key_b, (10,))}
  st = jax.jit(lbfgs.init, static_argnums=4)(params, hp, data.x_train, data.y_train, s)
  value, grad = jax.jit(training.loss_and_grad, static_argnums=0)(
      s, hp, params, data.x_train, data.y_train)
  tol = 64 * float(jnp.finfo(jnp.float32).eps)
  np.testing.assert_allclose(st.value, value, rtol=tol)
  np.testing.assert_allclose(st.grad["W"].T, grad["W"], rtol=0, atol=tol * float(
      jnp.abs(grad["W"]).max()))
  np.testing.assert_allclose(st.grad["b"], grad["b"], rtol=0, atol=tol * float(
      jnp.abs(grad["b"]).max()))


def _probe_config(**fields):
  c = config_lib.base()
  c.optimizer, c.epochs, c.lbfgs_iters = "lbfgs", 4, 10
  c.sweep = {"reg_strength": [1e-4, 1e-3, 1e-2]}
  for name, value in fields.items():
    setattr(c, name, value)
  return c


def test_a_digits_run_reports_iterations_and_gradient_norms(tmp_path, offline_data,
                                                           monkeypatch):
  """A sweep of lbfgs and sgd members: results.csv holds every row, the sgd members'
  solver cells empty."""
  # Stopped members stay in place (compaction has its own tests): no program per size.
  monkeypatch.setattr(population, "COMPACT", False)
  c = _probe_config()
  c.sweep = {"optimizer": ["sgd", "lbfgs"], "reg_strength": [1e-4, 1e-3, 1e-2]}
  with pytest.warns(lbfgs.NotConverged):   # at tol 1e-5 some stop short: cap or precision
    summary = experiment.run(c, str(tmp_path), stream=io.StringIO())
  assert summary["best"]["test_accuracy"] > 0.93
  rows = list(csv.DictReader(open(tmp_path / "results.csv")))
  assert [r["optimizer"] for r in rows] == ["sgd", "sgd", "sgd", "lbfgs", "lbfgs", "lbfgs"]
  for r in rows[3:]:
    iterations, grad_norm = int(r["iterations"]), float(r["grad_norm"])
    assert 0 <= grad_norm < 1
    # 10 iterations an epoch: a member stops in the last epoch it ran
    assert 10 * (int(r["epochs_run"]) - 1) < iterations <= 10 * int(r["epochs_run"])
  assert all(r["iterations"] == r["grad_norm"] == "" for r in rows[:3])
  above = [r for r in rows[3:] if float(r["grad_norm"]) > float(r["tol"])]
  assert summary["num_unconverged"] == len(above) > 0


def test_a_sweep_killed_at_any_write_resumes_to_the_same_results(tmp_path, monkeypatch):
  share_populations(monkeypatch)
  data = _digits(300)
  c = _probe_config(epochs=3, lbfgs_iters=4, checkpoint_seconds=0)   # commit every epoch
  c.tol = 1e-2     # two members stop early (after 8 and 10 iterations), one runs to the cap
  run = lambda workdir: sweep.run(c, lambda f: data, 10, workdir=str(workdir))
  with pytest.warns(lbfgs.NotConverged, match="1 of 3 L-BFGS members ended above"):
    reference, ops, differ = resumes_at_every_write(run, tmp_path)
  iterations = sorted(r["iterations"] for r in json.loads(reference)["rows"])
  assert iterations[0] < iterations[1] < iterations[2] == 12 and ops >= 3
  assert differ == [], f"killed at these operations, the resumed run differs: {differ}"


@pytest.mark.parametrize("fields,message", [
    ({"sweep": {"learning_rate": [0.1, 0.01]}},
     r"sweep.learning_rate does nothing with optimizer='lbfgs'"),
    ({"sweep": {"batch_size": [32, 64]}}, r"sweep.batch_size does nothing with optimizer"),
    ({"model": "mlp"}, r"optimizer 'lbfgs' trains model 'linear' with reg 'l2' or 'none'"),
    ({"reg": "l1"}, r"optimizer 'lbfgs' trains model 'linear' with reg 'l2' or 'none'"),
    ({"sweep": {"lbfgs_iters": [0]}}, r"lbfgs_iters must be >= 1"),
])
def test_bad_combinations_are_refused_in_one_line(fields, message):
  with pytest.raises(sweep.SweepError, match=message) as e:
    sweep.expand(_probe_config(**fields))
  assert "\n" not in str(e.value)


def test_minibatch_settings_and_host_rows_are_refused_with_lbfgs():
  c = _probe_config()
  members = sweep.expand(c)
  for path in ("learning_rate", "schedule", "batch_size", "patience"):
    assert "does nothing with optimizer='lbfgs'" in config_lib.idle_override(c, path, members)
  assert config_lib.idle_override(c, "tol", members) is None
  c.data.placement = "host"
  with pytest.raises(sweep.SweepError, match="use data.placement='device'"):
    sweep.run(c, lambda f: _digits(200), 10)


def test_members_that_end_above_tol_are_named_in_a_warning():
  # Within 10 iterations reg 1 reaches tol 1e-3 (in 8), reg 1e-4 does not (19 needed).
  data = _digits(300)
  c = _probe_config(epochs=1, lbfgs_iters=10)
  c.tol, c.sweep = 1e-3, {"reg_strength": [1e-4, 1.0]}
  with pytest.warns(lbfgs.NotConverged) as record:
    result = sweep.run(c, lambda f: data, 10)
  assert len(record) == 1
  (msg,) = [str(w.message) for w in record]
  capped = [r for r in result.rows if r["grad_norm"] > c.tol]
  assert [r["reg_strength"] for r in capped] == [1e-4]
  assert capped[0]["iterations"] == 10
  assert "1 of 2 L-BFGS members ended above their tol" in msg
  assert f"member {capped[0]['member']}" in msg and "1 at the iteration cap" in msg
  assert ("selected member" in msg) == (result.best["member"] == capped[0]["member"])
  assert "raise config.epochs or config.lbfgs_iters, or loosen config.tol" in msg


def test_members_that_stalled_are_told_what_gets_them_further():
  """A member that stopped above its tol before the cap stalled at the arithmetic's
  precision: more iterations would not help it."""
  row = lambda member, iterations: {"member": member, "status": "ok", "grad_norm": 1e-2,
                                    "tol": 1e-6, "iterations": iterations, "epochs": 2,
                                    "lbfgs_iters": 10}
  with pytest.warns(lbfgs.NotConverged) as record:
    lbfgs.warn_unconverged([row(0, 7)])
  msg = str(record[0].message)
  assert "0 at the iteration cap" in msg and "raise config.epochs" not in msg
  assert ("run in float64 (config.dtype) or on standardised rows (config.data.scale='std'), "
          "or loosen config.tol") in msg
  with pytest.warns(lbfgs.NotConverged) as record:
    lbfgs.warn_unconverged([row(0, 7), row(1, 20)])
  assert ("raise config.epochs or config.lbfgs_iters, or run in float64 (config.dtype) or on "
          "standardised rows (config.data.scale='std'), or loosen config.tol") in str(
              record[0].message)


def test_a_member_whose_gradient_norm_is_nan_is_named_as_the_worst():
  """A NaN |grad| (one that overflowed) loses every comparison: it must not hide behind a
  member just above its tol."""
  row = lambda member, grad_norm: {"member": member, "status": "ok", "grad_norm": grad_norm,
                                   "tol": 1e-3, "iterations": 3, "epochs": 1,
                                   "lbfgs_iters": 10}
  with pytest.warns(lbfgs.NotConverged, match=r"up to nan \(member 1, tol 0.001\)"):
    bad = lbfgs.warn_unconverged([row(0, 2e-3), row(1, float("nan")), row(2, 1e-4)])
  assert [r["member"] for r in bad] == [0, 1]


def test_a_strong_penalty_from_a_random_start_is_not_called_converged_short_of_its_minimum():
  """At lambda = 1e6 the gradient at a random start is 2 lambda W0, thousands of times the
  data loss's: a tol relative to it stopped the member after two steps and called it
  converged, W ~ 0 but the bias unfitted (objective log 3 = 1.10, where the minimum is
  about the labels' entropy, 0.65). Relative to the gradient at W = 0, b = 0 (the data
  loss's alone), a member is converged only at its minimum; one that stalls short of
  its tol (float32 cannot resolve the objective's last decrease there) says so."""
  rng = np.random.default_rng(11)
  y = rng.choice(3, size=2000, p=[0.75, 0.2, 0.05])
  x = ((rng.normal(size=(3, 32)) * 0.3)[y] + rng.normal(size=(2000, 32))).astype(np.float32)
  data = training.Data(jnp.asarray(x), jnp.asarray(y, jnp.int32), jnp.asarray(x[:200]),
                       jnp.asarray(y[:200], jnp.int32))
  c = _probe_config(epochs=10, lbfgs_iters=20, init_scale=1e-3, tol=1e-4)
  c.sweep = {"reg_strength": [1e4, 1e6]}
  with warnings.catch_warnings(record=True) as record:
    warnings.simplefilter("always")
    rows = sweep.run(c, lambda f: data, 3).rows
  warned = {r["member"] for r in rows
            if any(f"member {r['member']}" in str(w.message) for w in record
                   if issubclass(w.category, lbfgs.NotConverged))}
  prior = np.bincount(y) / len(y)
  entropy = -float(np.sum(prior * np.log(prior)))  # the loss at W = 0 and its best b
  for r in rows:   # W is all but 0 at the minimum of either strength
    at_minimum = abs(r["final_loss"] - entropy) <= 1e-3 * entropy
    assert at_minimum or (r["grad_norm"] > c.tol and r["member"] in warned), (r, entropy)
  assert any(abs(r["final_loss"] - entropy) <= 1e-3 * entropy for r in rows)


def test_a_member_whose_gradient_overflows_at_the_start_is_diverged():
  """reg_strength 1e25: a finite objective (W is small at the start) but a gradient norm
  that overflows float32: it can take no step, and says so."""
  data = _digits(300)
  c = _probe_config(epochs=1, lbfgs_iters=10)
  c.tol, c.sweep = 1e-2, {"reg_strength": [1.0, 1e25]}
  result = sweep.run(c, lambda f: data, 10)
  assert [r["status"] for r in result.rows] == ["ok", "diverged"]
  assert result.best["member"] == 0


def test_a_sweep_whose_every_member_overflows_says_what_to_change():
  c = _probe_config(epochs=1, lbfgs_iters=10)
  c.sweep = {"reg_strength": [1e25, 1e30]}
  with pytest.raises(sweep.Diverged, match=r"^all 2 members diverged; for lbfgs, whose "
                                           r"objective or gradient overflowed .*, lower "
                                           r"reg_strength or scale the rows"):
    sweep.run(c, lambda f: _digits(300), 10)


def test_the_warning_says_when_a_loss_is_not_smooth():
  row = {"member": 0, "status": "ok", "grad_norm": 2e-2, "tol": 1e-3, "iterations": 10,
         "epochs": 1, "lbfgs_iters": 10, "loss": "svm"}
  with pytest.warns(lbfgs.NotConverged, match="svm is not smooth .* softmax or squared_svm"):
    lbfgs.warn_unconverged([row])
  with pytest.warns(lbfgs.NotConverged) as record:
    lbfgs.warn_unconverged([dict(row, loss="softmax")])
  assert "not smooth" not in str(record[0].message)


def test_a_converged_run_warns_of_nothing():
  data = _digits(300)
  c = _probe_config(epochs=1, lbfgs_iters=30)
  c.tol, c.sweep = 1e-2, {"reg_strength": [1e-2, 1.0]}
  with warnings.catch_warnings():
    warnings.simplefilter("error", lbfgs.NotConverged)
    result = sweep.run(c, lambda f: data, 10)
  assert all(r["grad_norm"] <= 1e-2 for r in result.rows)


def test_a_member_that_starts_at_its_optimum_reports_where_it_starts():
  # Zero rows, alternating labels and W = 0 (init_scale 0): the gradient is exactly 0 at
  # the start, so the member takes no step; its solution, and its accuracy, are the start.
  x, y = jnp.zeros((100, 4)), jnp.arange(100, dtype=jnp.int32) % 2
  c = _probe_config(epochs=2)
  c.init_scale, c.sweep = 0.0, {"reg_strength": [1e-3, 1e-1]}
  result = sweep.run(c, lambda f: training.Data(x, y, x[:50], y[:50]), 2)
  for r, h in zip(result.rows, result.history):
    assert (r["iterations"], r["grad_norm"], r["status"]) == (0, 0.0, "ok")
    assert (r["val_accuracy"], r["epochs_run"], r["best_epoch"]) == (0.5, 1, 1)
    assert abs(r["final_loss"] - np.log(2)) < 1e-6 and h["val_accuracy"] == [0.5]


@pytest.mark.parametrize("value,loss", [(0.0, "softmax"), (-1.7, "squared_svm")])
def test_balanced_labels_on_constant_rows_are_converged_without_a_warning(value, loss):
  """All-zero or constant rows and balanced labels: the gradient at W = 0, b = 0 cancels
  to its rounding (3e-8 to 2e-5 here, where its terms' size is 0.6 to 92: 5e-8 to 2e-7 of
  it), and W = 0, b = 0 is the minimum. Relative to that rounding, no member could reach
  tol: every one stalled at |grad|/|grad_0| of 0.5 to 260 and every run was named in
  NotConverged, their objective that at zero. The reference is the size of the gradient's
  terms there: each member stops at tol, and nothing is warned of."""
  n, c = 300, 10
  x = jnp.full((n, 8), value, jnp.float32)
  y = jnp.arange(n, dtype=jnp.int32) % c
  cfg = _probe_config(epochs=10, loss=loss)
  cfg.sweep = {"reg_strength": [0.0, 1e-3, 1e-1]}
  with warnings.catch_warnings():
    warnings.simplefilter("error", lbfgs.NotConverged)
    result = sweep.run(cfg, lambda f: training.Data(x, y, x[:50], y[:50]), c)
  at_zero = float(objective.loss({"W": jnp.zeros((8, c)), "b": jnp.zeros(c)}, x, y, loss=loss))
  eps = float(jnp.finfo(jnp.float32).eps)
  for r in result.rows:
    assert r["status"] == "ok" and r["grad_norm"] <= cfg.tol, r
    # the minimum's objective, W = 0 and b = 0's, to float32's rounding of a mean of 300
    assert abs(r["final_loss"] - at_zero) <= 64 * eps * at_zero, (r, at_zero)


def test_the_reference_is_the_gradient_at_zero_where_it_does_not_cancel():
  """Rows whose gradient at zero does not cancel keep |gradient at W = 0, b = 0| as the
  reference: the rule for a gradient that cancels to rounding leaves them alone."""
  data = _digits()
  state = _fit(data, LAMS, CONVERGED, tol=1e-6)
  structure = training.Structure(optimizer="lbfgs")
  hp = {f: v[0] for f, v in _hparams(LAMS[:1], jnp.float32, 1e-6).items()}
  zero = {"W": jnp.zeros((10, 64)), "b": jnp.zeros(10)}
  grad_at = lbfgs._grad_from_scores  # pylint: disable=protected-access
  want = jax.jit(lambda: optax.tree.norm(grad_at(
      structure, hp, zero, jnp.zeros((400, 10)), data.x_train, data.y_train)))()
  # the same sum in another program: float32's rounding of a norm over 650 numbers
  np.testing.assert_allclose(state.opt_state.grad_norm0, float(want),
                             rtol=8 * float(jnp.finfo(jnp.float32).eps))


def test_a_tol_below_0_is_refused_and_tol_0_runs_every_iteration():
  c = _probe_config(epochs=1, lbfgs_iters=3)
  for tol in (-1e-5, float("nan")):
    c.tol = tol
    with pytest.raises(sweep.SweepError, match="tol must be a finite number >= 0"):
      sweep.expand(c)
  c.tol, c.sweep = 0.0, {"reg_strength": [1e-2, 1.0]}
  with warnings.catch_warnings():   # every iteration, as asked: not "not converged"
    warnings.simplefilter("error", lbfgs.NotConverged)
    result = sweep.run(c, lambda f: _digits(200), 10)
  assert [r["iterations"] for r in result.rows] == [3, 3]


@pytest.mark.parametrize("dtype", [np.uint8, np.float16])
def test_the_basis_of_narrow_rows_is_that_of_their_float32_values(dtype):
  # uint8 rows made a uint8 Gram matrix, which wrapped (eigenvalues 0 to 5.8 for 4,000 to
  # 140,000); float16 rows had no eigh on CPU.
  rows = np.random.default_rng(0).integers(0, 256, (100, 6)).astype(dtype)
  got = lbfgs.basis(jnp.asarray(rows))
  want = lbfgs.basis(jnp.asarray(rows, jnp.float32))
  assert got.values.dtype == jnp.float32
  np.testing.assert_array_equal(got.values, want.values)
  with pytest.raises(ValueError, match="basis needs at least one row, got 0"):
    lbfgs.basis(jnp.zeros((0, 6)))


@pytest.mark.parametrize("value", [-1.0, float("nan")])
def test_lbfgs_refuses_a_reg_strength_out_of_range(value):
  # -1 ended with status "ok" and its weights unmoved; NaN "diverged".
  data = _digits(200)
  hparams = dict(training.HPARAM_DEFAULTS, reg_strength=value)
  structure = training.Structure(optimizer="lbfgs", loss="softmax", epochs=2)
  with pytest.raises(ValueError, match=f"reg_strength must be a finite number >= 0, got "
                                       f"{value}"):
    training.fit(hparams, data, None, structure, 10)


def test_float32_members_on_rows_of_small_values_do_not_stop_at_their_start():
  """Rows of small values (digits pixels times 0.01, top eigenvalue 4.6e-4) and weak
  strengths: the preconditioner's floor was relative to the rows' top eigenvalue alone,
  and these members stopped after one iteration at their random start, "ok", with their
  gradient where it began. The bias's curvature of 1 bounds the floor too: each member
  goes from where the others start to tol, or to within a few times it where float32's
  rounding stalls it first (a member is "as far as its arithmetic takes it", warned of,
  not capped). Where that is depends on the CPU's order of summation: every member
  reached 1e-6 on a CPU with AVX-512; on one with AVX2 alone, lambda = 1e-12 stalled at
  2.1e-6 after 131 iterations, well short of the cap of 300."""
  data = _digits()
  small = data._replace(x_train=data.x_train * 0.01, x_val=data.x_val * 0.01)
  lams = (0.0, 1e-14, 1e-12)
  tol = 1e-6
  state = _fit(small, lams, CONVERGED, tol=tol)
  grad_norm = np.asarray(jax.vmap(lbfgs.relative_grad_norm)(state.opt_state))
  iterations = np.asarray(state.opt_state.iterations)
  cap = CONVERGED.epochs * CONVERGED.lbfgs_iters
  assert (grad_norm <= 4 * tol).all(), grad_norm
  assert ((grad_norm <= tol) | (iterations < cap)).all(), (grad_norm, iterations)
  assert (iterations > 10).all()
  x, y = np.asarray(small.x_train, np.float64), np.asarray(small.y_train)
  start = np.asarray(state.loss_ref)       # the objective where each member started
  for i, lam in enumerate(lams):
    assert _objective_f64(jax.tree.map(lambda a: a[i], state.params), x, y, lam) < 0.1 * start[i]


def test_a_member_whose_rows_are_not_finite_has_no_gradient_ratio_of_0():
  """A NaN in the rows makes the reference gradient NaN: the member is diverged, and its
  |grad| / |grad_0| is NaN, not the 0 that reads as converged."""
  data = _digits()      # the shapes of the test above: its compiled program
  bad = data._replace(x_train=data.x_train.at[3, 5].set(jnp.nan))
  state = _fit(bad, LAMS, CONVERGED, tol=1e-6)
  assert (np.asarray(state.status) == training.DIVERGED).all()
  assert np.isnan(np.asarray(jax.vmap(lbfgs.relative_grad_norm)(state.opt_state))).all()


def test_a_member_whose_gradient_at_zero_is_0_is_held_to_its_start():
  """A squared hinge of margin 0 has every score's gradient 0 at W = 0, b = 0 (its
  minimum): relative to that reference of 0, a member "converged" after one iteration at
  its random start (grad_norm 0.0, "ok"). Held to its gradient at the start, it runs to
  its minimum, as the member of margin 1 beside it does."""
  data = _digits()
  hp = {**_hparams((1e-3, 1e-3), jnp.float32, 1e-6), "margin": jnp.asarray([0.0, 1.0]),
        "init_scale": jnp.full(2, 0.1)}
  structure = training.Structure(optimizer="lbfgs", loss="squared_svm", epochs=30,
                                 lbfgs_iters=10)
  state = _FIT(hp, data, None, structure, 10)[0]
  grad_norm = np.asarray(jax.vmap(lbfgs.relative_grad_norm)(state.opt_state))
  assert (grad_norm <= 1e-5).all() and (grad_norm > 0).all(), grad_norm   # tol 1e-6, or
  # stalled near it (the CPU's rounding, see the test of rows of small values)
  assert (np.asarray(state.opt_state.iterations) > 100).all()
  assert float(state.opt_state.value[0]) < 1e-6      # the minimum of margin 0 is 0
