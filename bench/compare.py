"""The in-process comparisons behind `python -m bench`: lincv against scikit-learn and
against itself, on the same prepared rows, timed in interleaved rounds (see
`bench.common`).

  gradients  the hand-derived gradient against `jax.grad` of the same objective;
  grid       the 8 x 8 grid (learning rate x L2 strength): lincv's sweep against
             GridSearchCV over SGDClassifier;
  knn        `lincv.knn.predict` against KNeighborsClassifier(algorithm="brute").

The sweep against the GEMM roofline is `bench.sweep.measure`; the comparisons that need
a fresh process (time to a target accuracy, peak memory) are in `bench.probes`.
"""

import sys
import time
import warnings

import numpy as np

from bench import common, probes
# Moved to bench.probes; reachable here under their old names.
from bench.probes import (  # pylint: disable=unused-import
    FIELDS, PROBES, load_cache, probe_knn_lincv, probe_knn_sklearn, probe_lbfgs_to_target,
    probe_lincv_to_target, probe_numpy_epoch, probe_sgd_fit, probe_sgd_to_target,
    probe_sweep_epoch, run_probe, save_cache)

# The grid: learning rates of the minibatch mean gradient, L2 strengths lambda of
# lambda * ||W||^2. SGDClassifier steps on one example at a time and penalises
# alpha/2 * ||w||^2, so it gets eta0 = lr / batch_size and alpha = 2 * lambda.
GRID_LR = tuple(float(v) for v in np.geomspace(1e-3, 3e-1, 8))
GRID_REG = tuple(float(v) for v in np.geomspace(1e-6, 1e-1, 8))


def gradients(d, *, members=64, reps=3, warmup=1, batch_size=256) -> dict:
  """Time per step of the hand-derived gradient against jax.grad of the same objective,
  for one member (jit(train_epoch)) and a K-member population."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  from bench import sweep as bench_sweep  # pylint: disable=import-outside-toplevel
  from lincv import training  # pylint: disable=import-outside-toplevel
  data = bench_sweep.as_data(d)
  key = jax.random.key(0)
  c = common.num_classes(d)
  runners = {}
  for grad in ("hand", "autodiff"):
    s = dataclasses.replace(bench_sweep.structure(batch_size), grad=grad)
    runners[f"single {grad}"] = bench_sweep.single_runner(data, s, c, key)
    runners[f"sweep {grad}"] = bench_sweep.sweep_runner(data, members, s, c, key)
  steps = training.steps_per_epoch(bench_sweep.structure(batch_size), len(d.y_train))
  times = common.interleaved(runners, reps, warmup)
  per_step = {n: float(np.median(t)) / steps for n, t in times.items()}
  return {"members": members, "steps_per_epoch": steps,
          "per_step_s": per_step,
          "single_autodiff_over_hand": per_step["single autodiff"] / per_step["single hand"],
          "sweep_autodiff_over_hand": per_step["sweep autodiff"] / per_step["sweep hand"],
          "variants": {n: common.summary(t) for n, t in times.items()}}


def grid(d, *, epochs=2, reps=3, batch_size=256, n_jobs=2, warmup=True) -> dict:
  """The 8 x 8 grid (learning rate x L2 strength): lincv's sweep against GridSearchCV over
  SGDClassifier on the same train/validation split, `epochs` epochs each."""
  from sklearn.linear_model import SGDClassifier  # pylint: disable=import-outside-toplevel
  from sklearn.model_selection import GridSearchCV, PredefinedSplit  # pylint: disable=import-outside-toplevel
  from bench import sweep as bench_sweep  # pylint: disable=import-outside-toplevel
  from lincv import config as config_lib  # pylint: disable=import-outside-toplevel
  from lincv import sweep  # pylint: disable=import-outside-toplevel
  warnings.simplefilter("ignore")
  c = config_lib.base()
  c.optimizer, c.schedule, c.epochs, c.batch_size = "sgd", "constant", epochs, batch_size
  c.sweep = {"learning_rate": list(GRID_LR), "reg_strength": list(GRID_REG)}
  data = bench_sweep.as_data(d)
  test = (d.x_test, d.y_test)

  def ours(train_accuracy=False):   # compiles every program, as a user's first run does
    common.forget_programs()
    c.train_accuracy = train_accuracy
    return sweep.run(c, lambda _: data, common.num_classes(d), test_for=lambda _: test)

  x = np.concatenate([d.x_train, d.x_val])
  y = np.concatenate([d.y_train, d.y_val])
  fold = np.concatenate([np.full(len(d.y_train), -1), np.zeros(len(d.y_val), int)])
  search = GridSearchCV(
      SGDClassifier(loss="log_loss", learning_rate="constant", max_iter=epochs, tol=None,
                    random_state=0),
      {"eta0": [lr / batch_size for lr in GRID_LR], "alpha": [2 * r for r in GRID_REG]},
      cv=PredefinedSplit(fold), n_jobs=n_jobs, refit=False, scoring="accuracy")

  def theirs():
    return search.fit(x, y)

  if warmup:  # lincv's first run in this process, and scikit-learn's worker start
    ours()
    GridSearchCV(SGDClassifier(loss="log_loss", max_iter=1, tol=None),
                 {"alpha": [1e-4, 1e-3]}, cv=PredefinedSplit(fold), n_jobs=n_jobs,
                 refit=False).fit(x, y)
  # GridSearchCV scores the validation split only (return_train_score=False), so lincv's
  # timed run skips its own pass over the training rows (config.train_accuracy); the run
  # with it is timed beside, for what that pass costs.
  times = {"lincv": [], "sklearn": [], "lincv_train_accuracy": []}
  for _ in range(reps):
    for name, fn in (("lincv", ours), ("sklearn", theirs),
                     ("lincv_train_accuracy", lambda: ours(train_accuracy=True))):
      t0 = time.perf_counter()
      result = fn()
      times[name].append(time.perf_counter() - t0)
      if name == "lincv":
        best, test_acc = result.best, result.test_accuracy
  sk_best = search.best_params_
  return {
      "configurations": len(GRID_LR) * len(GRID_REG), "epochs": epochs, "n_jobs": n_jobs,
      "lincv": common.summary(times["lincv"]), "sklearn": common.summary(times["sklearn"]),
      "lincv_train_accuracy": common.summary(times["lincv_train_accuracy"]),
      "lincv_best_val_accuracy": best["val_accuracy"],
      "lincv_best": {"learning_rate": best["learning_rate"],
                     "reg_strength": best["reg_strength"]},
      "lincv_test_accuracy": test_acc,
      "sklearn_best_val_accuracy": float(search.best_score_),
      "sklearn_best": {"eta0": sk_best["eta0"], "alpha": sk_best["alpha"]},
      "speedup": np.median(times["sklearn"]) / np.median(times["lincv"]),
  }


def knn(d, *, k=1, metric="l2", reps=3, warmup=1) -> dict:
  """lincv.knn.predict against KNeighborsClassifier(algorithm="brute"), same k and metric."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from sklearn.neighbors import KNeighborsClassifier  # pylint: disable=import-outside-toplevel
  from lincv import knn as lincv_knn  # pylint: disable=import-outside-toplevel
  x, y = common.knn_rows(d)
  xj, yj, tj = jnp.asarray(x), jnp.asarray(y), jnp.asarray(d.x_test)
  preds = {}

  def ours():
    preds["lincv"] = lincv_knn.predict(xj, yj, tj, k=k, metric=metric,
                                       num_classes=common.num_classes(d))
    return preds["lincv"]

  def theirs():
    preds["sklearn"] = KNeighborsClassifier(
        k, algorithm="brute", metric=common.SK_METRIC[metric]).fit(x, y).predict(d.x_test)
    return preds["sklearn"]

  times = common.interleaved({"lincv": ours, "sklearn": theirs}, reps, warmup)
  acc = {n: float(np.mean(np.asarray(p) == d.y_test)) for n, p in preds.items()}
  return {"k": k, "metric": metric, "num_train": len(y), "num_test": len(d.y_test),
          "lincv": common.summary(times["lincv"]), "sklearn": common.summary(times["sklearn"]),
          "lincv_accuracy": acc["lincv"], "sklearn_accuracy": acc["sklearn"],
          "agreement": float(np.mean(np.asarray(preds["lincv"]) == preds["sklearn"])),
          "speedup": np.median(times["sklearn"]) / np.median(times["lincv"])}


if __name__ == "__main__":  # the probes' old command line: python -m bench.compare PROBE ...
  probes.main(sys.argv[1:])
