"""The "Linear probe" section of bench/RESULTS.md, from `bench.probe`'s figures."""


def _f(x, digits=3):
  """A figure for a table, as `bench.report` writes them."""
  from bench import report  # pylint: disable=import-outside-toplevel
  return report._f(x, digits)  # pylint: disable=protected-access


def why(p, name):
  """What bounds a probe speedup: each side's time and iterations."""
  lb, rg = p["lbfgs"], p["ridge"]
  if name.startswith("probe_lbfgs"):
    side = "cold" if name.endswith("cold") else "warm"
    its = lb["iterations"]
    lower = lb.get(f"lincv_lower_{side}")      # None in results written before it
    return (f"lincv's path took {_f(lb['lincv']['median_s'])} s (the population alone "
            f"{_f(lb['lincv_population']['median_s'])} s, compilation included), "
            f"{sum(its['lincv_population'])} iterations, its slowest member "
            f"{max(its['lincv_population'])}; scikit-learn's {side} loop "
            f"{_f(lb[f'sklearn_{side}']['median_s'])} s for {sum(its[f'sklearn_{side}'])} "
            f"iterations over {len(its['lincv_population'])} fits"
            + ("" if lower is None else
               f"; lincv's objective ended below scikit-learn's at {lower} of "
               f"{len(its['lincv_population'])} strengths (its stopping test is on the "
               f"gradient's 2-norm, scikit-learn's on its largest entry)"))
  ours, loop = rg["lincv"]["median_s"], rg["sklearn_loop"]["median_s"]
  fit = loop / len(p["strengths"])
  return (f"lincv's ridge path took {_f(ours)} s, RidgeClassifier's loop {_f(loop)} s, "
          f"RidgeClassifierCV {_f(rg['sklearn_cv']['median_s'])} s. A fit of the loop "
          f"({_f(fit)} s) is a Gram matrix and a Cholesky solve; the path is one Gram matrix "
          f"and its reduction to tridiagonal form (O(D^3), in float64), compilation "
          f"included: the time of {_f(ours / fit, 2)} fits")


def section(res):
  p = res.get("probe")
  if not p:
    return []
  lb, rg = p["lbfgs"], p["ridge"]
  lam = p["strengths"]
  rows = (f"the features file `{p['features']}`" if p["features"] else
          "the bench's own pixel rows (a stratified subset of the training rows, every "
          "validation and test row)")
  lines = [
      "## Linear probe", "",
      f"One path of {len(lam)} L2 strengths (lincv's reg_strength, log-spaced from "
      f"{lam[0]:g} to {lam[-1]:g}) on {rows}: {p['num_train']:,} training rows of "
      f"{p['dim']:,}, {p['classes']} classes, {p['num_test']:,} test rows "
      "(`python -m bench.probe` says what each side runs). Softmax: lincv's vmapped "
      "L-BFGS (`lincv.sweep.run`, compilation included) against "
      "`LogisticRegression(solver='lbfgs', C=1/(2 N lambda))` looped over the path, cold "
      "(each fit from zero) and warm-started (strongest penalty first); relative gradient "
      f"tolerance {lb['tol']:g} for both, at most {lb['max_iters']} iterations. One "
      "float64 function scores every side's weights. "
      + ("Each time here is one run, with no warm-up before it (lincv's compilation "
         "included), not a median: this section runs each side once."
         if p.get("reps", 1) == 1 else
         f"Each time here is the median of {p['reps']} runs, the first of them cold."), "",
      "| solver | seconds | iterations (sum, max) | max rel. objective diff | "
      "max test acc. diff (points) | test acc. at best val |",
      "| --- | --- | --- | --- | --- | --- |"]
  its = lb["iterations"]
  for label, key, side in (("lincv `sweep.run`", "lincv", None),
                           ("lincv population", "lincv_population", None),
                           ("LogisticRegression, cold", "sklearn_cold", "cold"),
                           ("LogisticRegression, warm", "sklearn_warm", "warm")):
    it = its.get(key, its["lincv_population"])
    diff = ((_f(lb[f"max_rel_objective_diff_{side}"]),
             _f(lb[f"max_test_accuracy_diff_points_{side}"])) if side else ("", ""))
    acc = lb["selected_test_accuracy"].get(key, lb["lincv_best_val_test_accuracy"])
    lines.append(f"| {label} | {_f(lb[key]['median_s'])} | {sum(it)}, {max(it)} | {diff[0]} | "
                 f"{diff[1]} | {_f(acc)} |")
  lines += [
      "", f"Ridge (least squares, +1/-1 targets): `lincv.ridge.path` "
      f"{_f(rg['lincv']['median_s'])} s, `RidgeClassifier(alpha=N lambda)` looped "
      f"{_f(rg['sklearn_loop']['median_s'])} s, `RidgeClassifierCV` "
      f"{_f(rg['sklearn_cv']['median_s'])} s; the test predictions agree on at least "
      f"{rg['agreement_loop']:.2%} (loop) and {rg['agreement_cv']:.2%} (at "
      f"RidgeClassifierCV's alpha, lambda = {rg['cv_chosen_strength']:g}).", ""]
  if p.get("memory"):
    lines += ["Peak resident memory of a fresh process running each side once (a loop's "
              "is one fit's):", "", "| approach | peak MiB | over the data MiB |",
              "| --- | --- | --- |"]
    lines += [f"| {label} | {_f(r['peak_rss_mib'])} | {_f(r['over_data_mib'])} |"
              for label, r in p["memory"].items()]
  else:
    lines.append("Peak memory not measured in this mode (`python -m bench.probe` measures it).")
  return lines + [""]
