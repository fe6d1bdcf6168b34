"""The solvers `bench.probe` compares, each over a whole path of strengths, and the one
objective that scores them all.

Parameters are {"W": (K, D, C), "b": (K, C)} NumPy arrays, member k solving strength
lam[k] (lincv's reg_strength). scikit-learn's `LogisticRegression` minimises the mean
softmax loss + ||W||^2 / (2 N C), so it gets C = 1 / (2 N lambda); `RidgeClassifier`
sums its squared errors, so it gets alpha = N lambda (see `lincv.ridge`).
"""

import math
import warnings

import numpy as np

from bench import common

CHUNK = 2048   # rows per float64 block of `objective` and `accuracy`


def _scores(params, x_NxD, chunk=CHUNK):
  """Float64 scores (n, K, C) of every member, a block of rows at a time."""
  w, b = np.asarray(params["W"], np.float64), np.asarray(params["b"], np.float64)
  k, d, c = w.shape
  w_DxKC = w.transpose(1, 0, 2).reshape(d, k * c)
  for i in range(0, x_NxD.shape[0], chunk):
    rows = np.asarray(x_NxD[i:i + chunk], np.float64)
    yield i, (rows @ w_DxKC + b.reshape(k * c)).reshape(len(rows), k, c)


def objective(params, x_NxD, y_N, lam_K) -> np.ndarray:
  """lincv's softmax objective of each member, mean loss + lambda sum W^2, float64 (K,)."""
  total = 0.0
  for i, s in _scores(params, x_NxD):
    m = s.max(axis=2, keepdims=True)
    lse = m[..., 0] + np.log(np.sum(np.exp(s - m), axis=2))
    y = y_N[i:i + len(s)]
    total = total + np.sum(lse - s[np.arange(len(s)), :, y], axis=0)
  w = np.asarray(params["W"], np.float64)
  return total / x_NxD.shape[0] + np.asarray(lam_K) * np.sum(w * w, axis=(1, 2))


def predictions(params, x_NxD) -> np.ndarray:
  """Each member's predicted classes (K, N), the first top score on ties."""
  return np.concatenate([np.argmax(s, axis=2).T for _, s in _scores(params, x_NxD)], axis=1)


def accuracy(params, x_NxD, y_N) -> np.ndarray:
  """Each member's accuracy (K,)."""
  return np.mean(predictions(params, x_NxD) == np.asarray(y_N)[None, :], axis=1)


def max_abs_grad0(x_NxD, y_N, num_classes) -> float:
  """The largest entry of the softmax objective's gradient at W = 0, b = 0 (the penalty's
  is 0 there, so it is the same for every strength)."""
  r_NxC = 1.0 / num_classes - np.eye(num_classes)[y_N]
  g_w = sum(np.asarray(x_NxD[i:i + CHUNK], np.float64).T @ r_NxC[i:i + CHUNK]
            for i in range(0, len(y_N), CHUNK)) / len(y_N)
  return float(max(np.max(np.abs(g_w)), np.max(np.abs(r_NxC.mean(axis=0)))))


# --------------------------------------------------------------------------- softmax


def lbfgs_config(lam, tol, max_iters, lbfgs_iters):
  """The sweep config: softmax, l2, optimizer lbfgs over the path, starting at W = 0."""
  from lincv import config as config_lib  # pylint: disable=import-outside-toplevel
  c = config_lib.base()
  c.loss, c.reg, c.optimizer = "softmax", "l2", "lbfgs"
  c.lbfgs_iters, c.epochs = lbfgs_iters, math.ceil(max_iters / lbfgs_iters)
  c.tol, c.init_scale = tol, 0.0
  c.sweep = {"reg_strength": [float(v) for v in lam]}
  return c


def _data(d):
  from lincv import training  # pylint: disable=import-outside-toplevel
  return training.Data(d.x_train, d.y_train, d.x_val, d.y_val)


def lincv_sweep_run(d, cfg) -> dict:
  """`lincv.sweep.run` of `cfg`: the test accuracy of the member it selects."""
  from lincv import sweep  # pylint: disable=import-outside-toplevel
  result = sweep.run(cfg, lambda _: _data(d), common.num_classes(d),
                     test_for=lambda _: (d.x_test, d.y_test))
  return {"test_accuracy": result.test_accuracy}


def lincv_population(d, cfg) -> dict:
  """The same sweep through `lincv.sweep.Population`: built (compiled on first use), then
  epochs until no member is active; every member's final parameters."""
  import jax  # pylint: disable=import-outside-toplevel
  from lincv import lbfgs, sweep, training  # pylint: disable=import-outside-toplevel
  (group,) = sweep.group(sweep.expand(cfg))
  pop = sweep.Population(group, _data(d), common.num_classes(d))
  state = pop.init()
  for _ in range(cfg.epochs):
    state, _ = pop.epoch(state)
    if not np.any(np.asarray(state.status)[:pop.k] == training.ACTIVE):
      break
  state = jax.block_until_ready(state)
  report = jax.device_get(lbfgs.report(state.opt_state))
  return {"params": {n: np.asarray(v)[:pop.k] for n, v in state.params.items()},
          "iterations": np.asarray(report["iterations"])[:pop.k]}


def sklearn_logistic(d, lam, gtol, max_iters, *, warm: bool) -> dict:
  """LogisticRegression(solver="lbfgs") once per strength: cold, each from zero, in path
  order; or warm (`warm_start=True`), strongest penalty first."""
  from sklearn.exceptions import ConvergenceWarning  # pylint: disable=import-outside-toplevel
  from sklearn.linear_model import LogisticRegression  # pylint: disable=import-outside-toplevel
  warnings.simplefilter("ignore", ConvergenceWarning)
  n, dim, c = len(d.y_train), d.x_train.shape[1], common.num_classes(d)
  lam = np.asarray(lam, np.float64)
  w, b = np.zeros((len(lam), dim, c)), np.zeros((len(lam), c))
  iters = np.zeros(len(lam), int)
  model = LogisticRegression(solver="lbfgs", tol=gtol, max_iter=max_iters, warm_start=warm)
  for k in (np.argsort(-lam) if warm else range(len(lam))):
    if not warm:
      model = LogisticRegression(solver="lbfgs", tol=gtol, max_iter=max_iters)
    model.set_params(C=1.0 / (2 * n * lam[k]))
    model.fit(d.x_train, d.y_train)
    w[k], b[k], iters[k] = model.coef_.T, model.intercept_, int(np.max(model.n_iter_))
  return {"params": {"W": w, "b": b}, "iterations": iters}


# --------------------------------------------------------------------------- ridge


def lincv_ridge(d, lam) -> dict:
  """`lincv.ridge.path` over the strengths, and each one's validation accuracy."""
  from lincv import ridge  # pylint: disable=import-outside-toplevel
  params = ridge.path(d.x_train, d.y_train, lam, common.num_classes(d))
  _, val_acc = ridge.evaluate(params, d.x_val, d.y_val, lam)
  return {"params": {n: np.asarray(v) for n, v in params.items()}, "val_accuracy": val_acc}


def sklearn_ridge_loop(d, lam) -> dict:
  """RidgeClassifier(alpha = N lambda) fit and scored on validation once per strength, as
  lincv's path is; the fitted models, whose test predictions `ridge_predictions` gives
  (outside the timed call, as lincv's are)."""
  from sklearn.linear_model import RidgeClassifier  # pylint: disable=import-outside-toplevel
  n, models = len(d.y_train), []
  for v in lam:
    model = RidgeClassifier(alpha=n * v).fit(d.x_train, d.y_train)
    model.score(d.x_val, d.y_val)
    models.append(model)
  return {"models": models}


def sklearn_ridge_cv(d, lam) -> dict:
  """RidgeClassifierCV over alphas N lambda: the chosen strength's index, the model."""
  from sklearn.linear_model import RidgeClassifierCV  # pylint: disable=import-outside-toplevel
  alphas = len(d.y_train) * np.asarray(lam, np.float64)
  model = RidgeClassifierCV(alphas=alphas).fit(d.x_train, d.y_train)
  chosen = int(np.argmin(np.abs(np.log(alphas / model.alpha_))))
  return {"chosen": chosen, "models": [model]}


def ridge_predictions(out, x_test) -> np.ndarray:
  """The test predictions (K, N_test) of the models a scikit-learn runner returned."""
  return np.stack([m.predict(x_test) for m in out["models"]])


# --------------------------------------------------------------------------- memory


def _middle(lam):
  return [lam[len(lam) // 2]]


CHILDREN = {
    "lbfgs_lincv": lambda d, lam, tol, max_iters: lincv_population(
        d, lbfgs_config(lam, tol, max_iters, 10)),
    "lbfgs_sklearn": lambda d, lam, tol, max_iters: sklearn_logistic(
        d, _middle(lam), tol * max_abs_grad0(d.x_train, d.y_train, common.num_classes(d)),
        max_iters, warm=False),
    "ridge_lincv": lambda d, lam, **_: lincv_ridge(d, lam),
    "ridge_sklearn": lambda d, lam, **_: sklearn_ridge_loop(d, _middle(lam)),
    "ridge_sklearn_cv": lambda d, lam, **_: sklearn_ridge_cv(d, lam),
}

