"""A linear probe's whole regularization path: lincv's vmapped L-BFGS and closed-form ridge
against scikit-learn's loops over the same strengths, on pre-extracted features.

  python -m bench.probe --features feats.npz [--limit N] [--strengths K] [--reps R]
                        [--only lbfgs|ridge] [--no-memory]

Rows: `lincv.data.load(features=FILE)` prepared as a lincv run prepares them
(`lincv.data.prepare`, seed 0): 10% of the training rows held out for validation, every
column centred and divided by its standard deviation on the training part (`scale="std"`);
`--limit` caps the file's training rows (stratified, the test rows in proportion). Every
solver fits the training part; accuracies are on the test rows (and the validation rows,
to pick a strength as a probe does).

The path: K strengths lambda (`--strengths`, 16) log-spaced over [1e-4, 1] (`--lo`,
`--hi`), lincv's `reg_strength` (mean data loss + lambda sum W^2, the bias unpenalised),
for both problems. (The weaker end of CLIP's grid, lambda = 1e-6 and below, leaves
standardised features all but separable, where no solver converges in its cap.)

Softmax, full batch (`bench.probe_solvers`):
  lincv      `lincv.sweep.run` of one config sweeping `reg_strength` over the path
             (optimizer "lbfgs", W and b starting at 0): what a user runs, compilation,
             per-epoch validation and the results table included; the speedups use it.
             `lincv_population` is the same solve through `lincv.sweep.Population`
             (build, compile, epochs until every member stopped), whose weights are checked.
  cold       `LogisticRegression(solver="lbfgs", C=1/(2 N lambda))` fit once per strength
             from zero, in path order (CLIP's protocol).
  warm       one such estimator with `warm_start=True`, strongest penalty first.
The same tolerance for all, each in its own test: lincv stops a member at |g|_2 <= tol
|g0|_2 (g0: the gradient at W = 0, b = 0, the same for every strength); scikit-learn
gets its absolute `tol` (largest gradient entry) = tol max|g0|; both at most
`--max-iters` (1,000) iterations. tol (`--tol`) is 1e-6: on near-separable rows (43 of
192, 3 classes) the weakest strength's optimum is a thousandth of the objective at zero,
and the two sides ended 2.2e-3 apart there with tol 1e-4 (the quick bench's pixels),
1.3e-2 with 1e-5 (a Gaussian features file), 1.4e-4 with 1e-6 (the same file). lincv
also stops a member where no step decreases its objective, on its value or, near the
minimum, on its slope (`lincv.lbfgs`).
`objective` (mean softmax loss + lambda sum W^2, float64 on the host) scores every side's
weights: `max_rel_objective_diff_*` is the largest |J_lincv - J_sklearn| / J_sklearn over
the path (target <= 1e-3), `max_test_accuracy_diff_points_*` the largest test accuracy
difference in points (target <= 0.3), `lincv_lower_*` at how many strengths lincv's
objective ended below scikit-learn's. The two tests differ in their norm (lincv's the
gradient's 2-norm, scikit-learn's its largest entry): on the bench's pixel rows lincv's
is the stricter, and it ended below both loops at all 16 strengths (by up to 5.7e-6 of
the objective; preconditioned, `lincv.lbfgs`, in 493 iterations to the cold loop's 2,166,
the full bench run of 2026-11-27 21:45 UTC).

Ridge: `lincv.ridge.path` over the path, with each strength's validation accuracy
(`lincv.ridge.evaluate`, to pick one), against `RidgeClassifier(alpha=N lambda)` fit and
scored on validation once per strength, and `RidgeClassifierCV(alphas=N lambda)` (its
leave-one-out selection); `agreement_*` is the smallest fraction of identical test
predictions over the path (against the loop) and at RidgeClassifierCV's chosen alpha.

Peak memory (`--no-memory` skips it): fresh processes (`python -m bench.probe --child`),
each on the prepared rows written once as .npy: lincv's whole L-BFGS path, one
LogisticRegression fit (the middle strength; a loop holds one fit at a time), lincv's
ridge path, one RidgeClassifier fit, RidgeClassifierCV; VmHWM as `bench.probes` reads it.

Times are medians of `--reps` runs; the last line printed is the figures as strict JSON.

Measured (CIFAR-10 k-means features, 1,600 centroids, 6,400 columns, the 2-core
development CPU; one repetition, default path and tolerance):

  python -m bench.probe --features kmeans1600.npz --limit 2000 --no-memory
    1,800 training rows, load average about 2.5 (2026-11-27 22:50 UTC, L-BFGS
    preconditioned by the basis of X X^T / N, `lincv.lbfgs`): lincv `sweep.run`
    23.9 s (2,134 member iterations, the slowest member 221), the cold loop 197 s
    (6,113 iterations): 8.25x (target 10x); the warm loop 81.6 s (2,540 iterations):
    3.41x (target 4x). lincv ended below both loops' objectives at all 16 strengths,
    by up to 1.6e-4; test accuracies within 0.75 points (3 of the 400 test rows).
    The same run with the whole (D, D) basis: lincv 38.3 s, 6.2x and 2.6x.
  Before the preconditioner, 1,800 rows at load average about 1 (2026-11-26, members
    that stop leave the population, see `lincv.sweep.Population`): lincv `sweep.run` 102 s (6,424
    member iterations), the cold loop 508 s (6,019 iterations): 4.96x (target 10x);
    the warm loop 183 s (2,410 iterations): 1.79x (target 4x). Objectives within
    1.7e-4 of each other, test accuracies within 0.25 points. Ridge (before
    `lincv.ridge` decomposed in float64): lincv 1.97 s, the RidgeClassifier loop
    6.6 s (3.4x, target 10x), RidgeClassifierCV 2.1 s (1.05x).
    An iteration of lincv's cost 16 ms a member, the cold loop's 84 ms (float64, one
    member at a time); the warm loop wins on iterations, which lincv's members, all
    started at zero, do not share.
  The same at load average 6 to 8, before stopped members left the population:
    lincv 166 s, the cold loop 597 s (3.6x).
  --limit 10000 (9,000 rows) did not finish lincv's path in 13 minutes at that load.

  python -m bench.probe --features kmeans1600.npz --only ridge --no-memory
    all 45,000 training rows of 6,400 (2026-11-27, load average 1.3 to 2): lincv 19.8 s
    (17.4 s and 16.6 s for the same call run alone, twice), the RidgeClassifier loop
    156 s (7.9x, target 10x), RidgeClassifierCV 732 s (37x); the test predictions agree
    with the loop's on at least 99.85% along the path, with RidgeClassifierCV's on all.
    lincv's time is its Gram matrix (6 s as upper blocks, 9.8 s as one product) and
    the float64 reduction to tridiagonal form (10 s). With the Gram matrix as one
    product, the same section measured lincv 19.9 s, the loop 152 s, the CV 704 s.
"""

import argparse
import concurrent.futures
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from bench import common, probes
from bench import probe_solvers as solvers

LO, HI = 1e-4, 1.0        # the default path of strengths (lincv's reg_strength)
TOL, MAX_ITERS = 1e-6, 1000


def strengths(k: int, lo: float = LO, hi: float = HI) -> list[float]:
  """K strengths log-spaced over [lo, hi], weakest first."""
  return [float(v) for v in np.geomspace(lo, hi, k)]


def load(path: str, limit: int | None):
  """The features file's rows, prepared as a lincv run prepares them (see the docstring)."""
  import lincv.data  # pylint: disable=import-outside-toplevel
  ds = lincv.data.load(features=path)
  return lincv.data.prepare(ds, val_fraction=0.1, seed=0, center="image", scale="std",
                            limit=limit)


def _relative(a, b) -> float:
  return float(np.max(np.abs(np.asarray(a) - b) / np.abs(b)))


def _timed(runners, reps, log):
  """Each runner `reps` times in rounds: (seconds per runner, its last output)."""
  times, out = {n: [] for n in runners}, {}
  for _ in range(reps):
    for name, run in runners.items():
      t0 = time.perf_counter()
      out[name] = run()
      times[name].append(time.perf_counter() - t0)
      log(f"{name}: {times[name][-1]:.1f} s")
  return times, out


def _cold(fn, *args):
  """fn(*args) after the programs an earlier lincv call compiled are forgotten."""
  common.forget_programs()
  return fn(*args)


def lbfgs_path(d, lam, *, reps=1, tol=TOL, max_iters=MAX_ITERS, lbfgs_iters=10,
               log=lambda msg: None) -> dict:
  """The softmax path by lincv's L-BFGS and by LogisticRegression, cold and warm."""
  gtol = tol * solvers.max_abs_grad0(d.x_train, d.y_train, common.num_classes(d))
  cfg = solvers.lbfgs_config(lam, tol, max_iters, lbfgs_iters)
  runners = {   # each lincv side compiles its programs, as a user's first run does
      "lincv": lambda: _cold(solvers.lincv_sweep_run, d, cfg),
      "lincv_population": lambda: _cold(solvers.lincv_population, d, cfg),
      "sklearn_cold": lambda: solvers.sklearn_logistic(d, lam, gtol, max_iters, warm=False),
      "sklearn_warm": lambda: solvers.sklearn_logistic(d, lam, gtol, max_iters, warm=True)}
  times, out = _timed(runners, reps, log)
  sides = ("lincv_population", "sklearn_cold", "sklearn_warm")
  objective = {n: solvers.objective(out[n]["params"], d.x_train, d.y_train, lam)
               for n in sides}
  test = {n: solvers.accuracy(out[n]["params"], d.x_test, d.y_test) for n in sides}
  val = {n: solvers.accuracy(out[n]["params"], d.x_val, d.y_val) for n in sides}
  ours = times["lincv"]
  res = {"tol": tol, "sklearn_tol": gtol, "max_iters": max_iters, "lbfgs_iters": lbfgs_iters,
         **{n: common.summary(t) for n, t in times.items()},
         "iterations": {n: [int(i) for i in out[n]["iterations"]] for n in sides},
         "objective": {n: v.tolist() for n, v in objective.items()},
         "test_accuracy": {n: v.tolist() for n, v in test.items()},
         "selected_test_accuracy": {n: float(test[n][np.argmax(val[n])]) for n in sides},
         "lincv_best_val_test_accuracy": out["lincv"]["test_accuracy"]}
  for side in ("cold", "warm"):
    theirs = f"sklearn_{side}"
    res[f"max_rel_objective_diff_{side}"] = _relative(objective["lincv_population"],
                                                      objective[theirs])
    # Which side went deeper, per strength: the objectives above are rounded when saved.
    res[f"lincv_lower_{side}"] = int(np.sum(objective["lincv_population"] < objective[theirs]))
    res[f"max_test_accuracy_diff_points_{side}"] = 100 * float(
        np.max(np.abs(test["lincv_population"] - test[theirs])))
    res[f"speedup_vs_{side}"] = float(np.median(times[theirs]) / np.median(ours))
  return res


def ridge_path(d, lam, *, reps=1, log=lambda msg: None) -> dict:
  """The least-squares path by lincv.ridge against RidgeClassifier and RidgeClassifierCV."""
  runners = {"lincv": lambda: solvers.lincv_ridge(d, lam),
             "sklearn_loop": lambda: solvers.sklearn_ridge_loop(d, lam),
             "sklearn_cv": lambda: solvers.sklearn_ridge_cv(d, lam)}
  times, out = _timed(runners, reps, lambda msg: log(f"ridge {msg}"))
  ours = solvers.predictions(out["lincv"]["params"], d.x_test)      # (K, N_test)
  chosen = out["sklearn_cv"]["chosen"]
  agree = np.mean(ours == solvers.ridge_predictions(out["sklearn_loop"], d.x_test), axis=1)
  cv_pred = solvers.ridge_predictions(out["sklearn_cv"], d.x_test)[0]
  return {**{n: common.summary(t) for n, t in times.items()},
          "agreement_loop": float(np.min(agree)),
          "agreement_cv": float(np.mean(ours[chosen] == cv_pred)),
          "cv_chosen_strength": float(lam[chosen]),
          "test_accuracy": np.mean(ours == d.y_test, axis=1).tolist(),
          "val_accuracy": out["lincv"]["val_accuracy"].tolist(),
          "speedup_vs_loop": float(np.median(times["sklearn_loop"]) / np.median(times["lincv"])),
          "speedup_vs_cv": float(np.median(times["sklearn_cv"]) / np.median(times["lincv"]))}


SECTIONS = ("lbfgs", "ridge")   # the two paths; `--only` picks one
MEMORY_RUNS = (("lincv L-BFGS path", "lbfgs_lincv"),
               ("LogisticRegression, one fit", "lbfgs_sklearn"),
               ("lincv ridge path", "ridge_lincv"),
               ("RidgeClassifier, one fit", "ridge_sklearn"),
               ("RidgeClassifierCV", "ridge_sklearn_cv"))


def memory(d, lam, *, tol=TOL, max_iters=MAX_ITERS, workers=2, timeout=7200,
           sections=SECTIONS) -> dict:
  """Label -> peak resident memory of a fresh process running that side once (the sides
  of `sections`)."""
  cache = tempfile.mkdtemp(prefix="lincv-probe-")
  try:
    probes.save_cache(d, cache)
    kw = {"lam": list(lam), "tol": tol, "max_iters": max_iters}
    runs = [(label, name) for label, name in MEMORY_RUNS if name.split("_")[0] in sections]
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
      futures = {label: pool.submit(_run_child, name, cache, kw, timeout)
                 for label, name in runs}
      return {label: f.result() for label, f in futures.items()}
  finally:
    shutil.rmtree(cache, ignore_errors=True)


def _run_child(name, cache, kwargs, timeout):
  import subprocess  # pylint: disable=import-outside-toplevel
  out = subprocess.run([sys.executable, "-m", "bench.probe", "--child", name, cache,
                        json.dumps(kwargs)], capture_output=True, text=True,
                       timeout=timeout, check=False)
  if out.returncode != 0:
    raise RuntimeError(f"memory probe {name} failed:\n{out.stderr[-3000:]}")
  return json.loads(out.stdout.strip().splitlines()[-1])


def _child(name, cache, kwargs) -> None:
  """One side, once, in this fresh process; prints its peak memory as JSON."""
  d = probes.load_cache(cache)
  data_mib = probes._rss_mib()  # pylint: disable=protected-access
  solvers.CHILDREN[name](d, **kwargs)
  peak = probes._rss_mib()  # pylint: disable=protected-access
  print(json.dumps({"peak_rss_mib": peak, "data_rss_mib": data_mib,
                    "over_data_mib": peak - data_mib}))


def measure(d, lam, *, reps=1, tol=TOL, max_iters=MAX_ITERS, with_memory=True,
            sections=SECTIONS, log=lambda msg: None) -> dict:
  """The paths of `sections` (and their peak memory) on prepared rows `d`; the figures
  with the headlines (None for a section not run)."""
  res = {"num_train": len(d.y_train), "num_val": len(d.y_val), "num_test": len(d.y_test),
         "dim": int(d.x_train.shape[1]), "classes": common.num_classes(d),
         "strengths": list(lam), "reps": reps}
  if "lbfgs" in sections:
    res["lbfgs"] = lbfgs_path(d, lam, reps=reps, tol=tol, max_iters=max_iters, log=log)
    log(f"probe lbfgs: {res['lbfgs']['speedup_vs_cold']:.1f}x cold, "
        f"{res['lbfgs']['speedup_vs_warm']:.1f}x warm")
  if "ridge" in sections:
    res["ridge"] = ridge_path(d, lam, reps=reps, log=log)
    log(f"probe ridge: {res['ridge']['speedup_vs_loop']:.1f}x the loop")
  res["memory"] = (memory(d, lam, tol=tol, max_iters=max_iters, sections=sections)
                   if with_memory else None)
  res.update(headlines(res))
  return res


HEADLINES = ("probe_lbfgs_speedup_vs_cold", "probe_lbfgs_speedup_vs_warm",
             "probe_ridge_speedup_vs_loop", "probe_ridge_speedup_vs_cv",
             "probe_max_rel_objective_diff")


def headlines(res) -> dict:
  """`HEADLINES`: the probe's entries of `bench.report.TARGETS` and the agreement of the
  objectives; None for a path not run."""
  lb, rg = res.get("lbfgs"), res.get("ridge")
  return {"probe_lbfgs_speedup_vs_cold": lb["speedup_vs_cold"] if lb else None,
          "probe_lbfgs_speedup_vs_warm": lb["speedup_vs_warm"] if lb else None,
          "probe_ridge_speedup_vs_loop": rg["speedup_vs_loop"] if rg else None,
          "probe_ridge_speedup_vs_cv": rg["speedup_vs_cv"] if rg else None,
          "probe_max_rel_objective_diff": (max(lb["max_rel_objective_diff_cold"],
                                               lb["max_rel_objective_diff_warm"])
                                           if lb else None)}


def main(argv=None):
  argv = sys.argv[1:] if argv is None else argv
  if argv and argv[0] == "--child":
    _child(argv[1], argv[2], json.loads(argv[3]))
    return
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--features", required=True, help=".npz (or folder) of features")
  parser.add_argument("--limit", type=int, default=None, help="cap on training rows")
  parser.add_argument("--strengths", type=int, default=16, help="strengths on the path")
  parser.add_argument("--lo", type=float, default=LO, help="weakest strength")
  parser.add_argument("--hi", type=float, default=HI, help="strongest strength")
  parser.add_argument("--reps", type=int, default=1, help="timed repetitions")
  parser.add_argument("--tol", type=float, default=TOL, help="relative gradient tolerance")
  parser.add_argument("--max-iters", type=int, default=MAX_ITERS, help="iteration cap")
  parser.add_argument("--no-memory", action="store_true", help="skip the peak memory runs")
  parser.add_argument("--only", choices=SECTIONS, default=None,
                      help="run one of the two paths (L-BFGS takes hours on 45,000 rows)")
  args = parser.parse_args(argv)
  bad = _refusal(args)
  if bad:
    parser.exit(2, f"bench.probe: {bad}\n")
  t0 = time.perf_counter()
  log = lambda msg: print(f"[{time.perf_counter() - t0:7.1f} s] {msg}", flush=True)
  from lincv.data import DataError  # pylint: disable=import-outside-toplevel
  try:
    d = load(args.features, args.limit)
  except (DataError, OSError, ValueError) as e:
    parser.exit(2, f"bench.probe: {e}\n")
  if common.num_classes(d) < 3:
    parser.exit(2, "bench.probe: needs at least 3 classes (scikit-learn fits 2 as one "
                "binary model, another objective than lincv's softmax)\n")
  log(f"rows: {len(d.y_train)} train, {len(d.y_val)} val, {len(d.y_test)} test "
      f"of {d.x_train.shape[1]}")
  res = {"features": os.path.basename(os.path.normpath(args.features)),
         "machine": common.machine(),
         **measure(d, strengths(args.strengths, args.lo, args.hi), reps=args.reps,
                   tol=args.tol, max_iters=args.max_iters, with_memory=not args.no_memory,
                   sections=(args.only,) if args.only else SECTIONS, log=log)}
  res["total_s"] = time.perf_counter() - t0
  common.print_json(res)


def _refusal(args) -> str | None:
  """One line naming a bad argument, or None."""
  if args.strengths < 2:
    return f"--strengths must be >= 2, got {args.strengths}"
  if not 0 < args.lo < args.hi:
    return f"need 0 < --lo < --hi, got {args.lo} and {args.hi}"
  if args.reps < 1 or args.max_iters < 1 or not args.tol > 0:
    return "--reps and --max-iters must be >= 1 and --tol > 0"
  if args.limit is not None and args.limit < 1:
    return f"--limit must be >= 1, got {args.limit}"
  return None


if __name__ == "__main__":
  main()
