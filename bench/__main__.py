"""lincv side by side with NumPy, scikit-learn and the machine's GEMM roofline, in one run.

  python -m bench --data ../shared/data/cifar10            # full run (about 30 minutes)
  python -m bench --data ../shared/data/cifar10 --quick    # a subset, under 2 minutes

Writes bench/RESULTS.md (tables, the machine, versions, date) and bench/results.json
(the same figures; headline ratios sweep_k64_over_roofline,
time_to_40_speedup_vs_lbfgs and grid64_speedup_vs_gridsearchcv as plain numbers).
Every time is the median of --reps repetitions after a warm-up; see bench/compare.py
for what each comparison runs.
"""

import argparse
import concurrent.futures
import json
import os
import shutil
import tempfile
import time

import numpy as np

from bench import common, compare
from bench import sweep as bench_sweep

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = {"sweep_k64_over_roofline": 1.25, "time_to_40_speedup_vs_lbfgs": 10.0,
           "grid64_speedup_vs_gridsearchcv": 50.0, "single_member_epoch_s": 0.2}


def _settings(args):
  if args.quick:
    return dict(limit=args.limit or 5000, members=(1, 16, 64), reps=args.reps or 1,
                probe_reps=1, probe_warmup=0, grid_epochs=1, grid_reps=1, target=args.target
                or 0.30, lbfgs_max_iters=100, sgd_max_epochs=3, t2t_epochs=3,
                memory_workers=6)
  return dict(limit=args.limit, members=(1, 16, 64, 256), reps=args.reps or 3, probe_reps=3,
              probe_warmup=1, grid_epochs=2, grid_reps=3, target=args.target or 0.40,
              lbfgs_max_iters=300, sgd_max_epochs=10, t2t_epochs=3,
              memory_workers=2)


def _median_probe(name, cache, reps, warmup, per_run=lambda i: {}, **kwargs):
  """A probe run `warmup` + `reps` times in fresh processes (run i with the extra
  arguments `per_run(i)`); the medians of its figures."""
  runs = [compare.run_probe(name, cache, **kwargs, **per_run(i))
          for i in range(warmup + reps)][warmup:]
  out = dict(runs[len(runs) // 2])
  for key in ("seconds", "process_s", "peak_rss_mib", "over_data_mib"):
    out[key] = float(np.median([r[key] for r in runs]))
  out["runs"] = len(runs)
  out["reached"] = all(r["reached"] for r in runs) if "reached" in out else None
  return out


def run(args) -> dict:
  cfg = _settings(args)
  t_start = time.perf_counter()
  log = lambda msg: print(f"[{time.perf_counter() - t_start:7.1f} s] {msg}", flush=True)
  prepared = common.load(args.data, cfg["limit"])
  n, d = prepared.x_train.shape
  batch = min(256, n)
  log(f"data: {n} train, {len(prepared.y_val)} val, {len(prepared.y_test)} test rows of {d}")
  cache = tempfile.mkdtemp(prefix="lincv-bench-")
  try:
    compare.save_cache(prepared, cache)
    res = {"mode": "quick" if args.quick else "full", "machine": common.machine(),
           "data": {"folder": os.path.basename(os.path.normpath(args.data)), "num_train": n,
                    "num_val": len(prepared.y_val), "num_test": len(prepared.y_test),
                    "dim": d, "classes": len(prepared.class_names), "batch_size": batch},
           "settings": {k: v for k, v in cfg.items()}}

    res["sweep"] = {}
    for k in cfg["members"]:
      res["sweep"][str(k)] = bench_sweep.measure(
          prepared, k, reps=cfg["reps"], warmup=1, batch_size=batch, numpy=True,
          single=k == 1, numpy_softmax=True)
      log(f"sweep K={k}: {res['sweep'][str(k)]['sweep_over_roofline']:.3f}x roofline")

    res["gradients"] = compare.gradients(prepared, members=max(cfg["members"][:3]),
                                         reps=cfg["reps"], batch_size=batch)
    log("gradients done")

    t2t = {}
    probe_kw = dict(reps=cfg["probe_reps"], warmup=cfg["probe_warmup"], target=cfg["target"])
    # Each cold run compiles into an empty persistent cache; the warm runs then read the
    # last one's.
    jax_cache = lambda i: {"compilation_cache": os.path.join(cache, f"jax-cache-{i}")}
    t2t["lincv"] = _median_probe("lincv_to_target", cache, epochs=cfg["t2t_epochs"],
                                 batch_size=batch, per_run=jax_cache, **probe_kw)
    log(f"lincv to target: {t2t['lincv']['seconds']:.2f} s")
    last = cfg["probe_reps"] + cfg["probe_warmup"] - 1
    t2t["lincv_warm_cache"] = _median_probe(
        "lincv_to_target", cache, epochs=cfg["t2t_epochs"], batch_size=batch,
        per_run=lambda i: jax_cache(last), **probe_kw)
    log(f"lincv to target, warm compilation cache: "
        f"{t2t['lincv_warm_cache']['seconds']:.2f} s")
    t2t["lbfgs"] = _median_probe("lbfgs_to_target", cache, max_iters=cfg["lbfgs_max_iters"],
                                 **probe_kw)
    log(f"lbfgs to target: {t2t['lbfgs']['seconds']:.2f} s")
    t2t["sgd"] = _median_probe("sgd_to_target", cache, max_epochs=cfg["sgd_max_epochs"],
                               **probe_kw)
    log(f"SGDClassifier: {t2t['sgd']['seconds']:.2f} s")
    res["time_to_target"] = dict(t2t, target=cfg["target"])

    res["grid"] = compare.grid(prepared, epochs=cfg["grid_epochs"], reps=cfg["grid_reps"],
                               batch_size=batch, warmup=not args.quick)
    log(f"grid: {res['grid']['speedup']:.1f}x")
    res["knn"] = compare.knn(prepared, reps=cfg["reps"])
    log(f"knn: {res['knn']['speedup']:.2f}x")

    mem = {"lincv one member (to target; JAX's copy of the rows included)": t2t["lincv"],
           "LogisticRegression lbfgs (to target)": t2t["lbfgs"],
           "SGDClassifier (to target)": t2t["sgd"]}
    probes = (
        ("lincv sweep K=64, one epoch", "sweep_epoch", dict(members=64, batch_size=batch)),
        ("NumPy loop K=64, one epoch", "numpy_epoch", dict(members=64, batch_size=batch)),
        ("NumPy loop K=1, one epoch", "numpy_epoch", dict(members=1, batch_size=batch)),
        ("SGDClassifier, one grid fit", "sgd_fit", dict(epochs=1)),
        ("lincv k-NN", "knn_lincv", {}), ("KNeighborsClassifier brute", "knn_sklearn", {}))
    # Peak memory is per process, so these untimed probes may run side by side.
    with concurrent.futures.ThreadPoolExecutor(cfg["memory_workers"]) as pool:
      futures = [pool.submit(compare.run_probe, name, cache, **kw) for _, name, kw in probes]
      for (label, _, _), future in zip(probes, futures):
        mem[label] = future.result()
    res["memory"] = {label: {k: r[k] for k in ("peak_rss_mib", "data_rss_mib",
                                               "over_data_mib")}
                     for label, r in mem.items()}
    log("memory done")
  finally:
    shutil.rmtree(cache, ignore_errors=True)

  k64 = res["sweep"].get("64", {})
  lincv_t, lbfgs_t = res["time_to_target"]["lincv"], res["time_to_target"]["lbfgs"]
  res["sweep_k64_over_roofline"] = k64.get("sweep_over_roofline")
  res["single_member_epoch_s"] = res["sweep"]["1"]["single_member_epoch_s"]
  res["time_to_40_speedup_vs_lbfgs"] = (
      lbfgs_t["seconds"] / lincv_t["seconds"] if lincv_t["reached"] and lbfgs_t["reached"]
      else None)
  warm = res["time_to_target"]["lincv_warm_cache"]
  res["time_to_40_speedup_vs_lbfgs_warm_cache"] = (
      lbfgs_t["seconds"] / warm["seconds"] if warm["reached"] and lbfgs_t["reached"]
      else None)
  res["grid64_speedup_vs_gridsearchcv"] = res["grid"]["speedup"]
  res["total_s"] = time.perf_counter() - t_start
  res["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
  return res


# --------------------------------------------------------------------------- report


def _f(x, digits=3):
  if x is None:
    return "n/a"
  if isinstance(x, bool):
    return "yes" if x else "no"
  if abs(x) >= 100:
    return f"{x:,.0f}"
  return f"{x:.{digits}g}"


def _verdict(name, value):
  goal = TARGETS[name]
  if value is None:
    return "not measured"
  met = value <= goal if name in ("sweep_k64_over_roofline", "single_member_epoch_s") else (
      value >= goal)
  return "met" if met else "**missed**"


def _why(res, name):
  """One sentence, from the measured figures, on what bounds a figure."""
  s64 = res["sweep"].get("64", {})
  if name == "sweep_k64_over_roofline" and s64:
    val_share = 5000 / (2 * s64["steps_per_epoch"] * s64["batch_size"])
    return (f"the sweep also scores every member on the {res['data']['num_val']:,} "
            f"validation rows each epoch ({val_share:.0%} of the training products' flops, "
            "not in the roofline), draws a permutation and gathers each minibatch")
  if name == "single_member_epoch_s":
    one = res["sweep"]["1"]
    return (f"one member's products alone take {_f(one['roofline_per_member_epoch_s'])} s "
            "per epoch here (the fastest plain loop); a 256 x 3,072 x 10 product is too "
            "narrow to keep both cores busy, and each step also gathers its 3 MB minibatch")
  if name == "time_to_40_speedup_vs_lbfgs":
    lc, lb = res["time_to_target"]["lincv"], res["time_to_target"]["lbfgs"]
    epochs = lc.get("epoch_s", [])
    later = (f"; a later epoch takes {_f(float(np.median(epochs[1:])))} s" if len(epochs) > 1
             else "")
    warm = res["time_to_target"]["lincv_warm_cache"]
    return (f"lincv's {_f(lc['seconds'])} s include {_f(epochs[0] if epochs else None)} s "
            f"for its first epoch, most of it XLA compilation{later} (with a warm "
            f"compilation cache lincv takes {_f(warm['seconds'])} s); lbfgs reached "
            f"{res['time_to_target']['target']:.0%} after {lb['iterations']} iterations, "
            f"{_f(lb['seconds'])} s")
  if name == "grid64_speedup_vs_gridsearchcv":
    g = res["grid"]
    per_cfg = g["sklearn"]["median_s"] * g["n_jobs"] / (g["configurations"] * g["epochs"])
    per_mem = s64.get("per_member_epoch_s", float("nan"))
    return (f"SGDClassifier costs {_f(per_cfg)} core-seconds per configuration-epoch "
            f"(one-vs-rest: {res['data']['classes']} binary passes over the data, one "
            f"example at a time), lincv {_f(per_mem)} s per member-epoch at K=64; their "
            f"ratio, {_f(per_cfg / g['n_jobs'] / per_mem)}x on {g['n_jobs']} jobs, bounds "
            "the speedup, before lincv's compilation and per-epoch validation")
  return ""


def markdown(res) -> str:
  m = res["machine"]
  lines = [
      "# lincv benchmarks", "",
      f"`python -m bench --data {res['data']['folder']}{' --quick' if res['mode'] == 'quick' else ''}`"
      f" ({res['mode']} mode), {m['date']}.", "",
      f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, device `{m['device']}`;"
      f" load average (1, 5, 15 min) {m['load_average']} at the start, "
      f"{res['load_average_end']} at the end (the machine was shared, so absolute "
      "times are noisy; ratios are taken between figures of the same run). Python "
      f"{m['python']}; " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".", "",
      f"Data: {res['data']['num_train']:,} training, {res['data']['num_val']:,} validation "
      f"and {res['data']['num_test']:,} test rows of {res['data']['dim']:,} raw pixels "
      f"(scaled to [0, 1], mean training image subtracted), {res['data']['classes']} "
      f"classes; batch {res['data']['batch_size']}. Each time is the median of "
      f"{res['settings']['reps']} (subprocess figures: {res['settings']['probe_reps']}) "
      "repetitions after a warm-up.", "",
      "## Targets", "",
      "| figure | target | measured | verdict | what bounds it |",
      "| --- | --- | --- | --- | --- |"]
  for name, goal in TARGETS.items():
    value = res.get(name)
    verdict = _verdict(name, value)
    unit = " s" if name.endswith("_s") else "x"
    cmp = "<=" if name in ("sweep_k64_over_roofline", "single_member_epoch_s") else ">="
    lines.append(f"| `{name}` | {cmp} {goal}{unit} | {_f(value)}{unit} | {verdict} | "
                 f"{_why(res, name) if verdict != 'met' else ''} |")

  lines += ["", "## Sweep: seconds per member-epoch", "",
            "Per-member time of one epoch of a K-member `lincv.sweep.Population` (SGD, "
            "softmax, L2), against the same matrix products alone (forward and weight "
            "gradient for all K members at once) in a plain jitted loop and in NumPy "
            "(the fastest of two weight layouts, gathered or sliced minibatches), and "
            "against the NumPy minibatch-SGD softmax loop of `bench/reference.py` "
            "(K members stacked as one (D, K*C) matrix).", "",
            "| K | lincv sweep | JAX roofline | NumPy roofline | NumPy SGD loop | "
            "sweep / roofline | NumPy loop / sweep |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
  for k, r in res["sweep"].items():
    lines.append(
        f"| {k} | {_f(r['per_member_epoch_s'])} | {_f(r['jax_roofline_per_member_epoch_s'])} | "
        f"{_f(r.get('numpy_roofline_per_member_epoch_s'))} | "
        f"{_f(r.get('numpy_softmax_per_member_epoch_s'))} | "
        f"{_f(r['sweep_over_roofline'])} | {_f(r.get('numpy_softmax_over_sweep'))} |")
  one = res["sweep"]["1"]
  lines += ["", f"One member alone (`jax.jit(training.train_epoch)`): "
            f"{_f(one['single_member_epoch_s'])} s per epoch (fastest repetition "
            f"{_f(one['single_member_epoch_min_s'])} s); "
            f"{_f(one['gflop_per_member_epoch'])} GFLOP of products per member-epoch.", ""]

  t = res["time_to_target"]
  pct = f"{t['target']:.0%}"
  lines += [f"## Time to {pct} test accuracy", "",
            "Each run in a fresh process on rows already decoded; `seconds` counts "
            "training, compilation included, and leaves out the per-epoch test evaluation; "
            "`process` is the whole process, imports and loading the rows included. lincv: "
            "one member, momentum 0.9, learning rate 0.03, cosine decay over "
            f"{res['settings']['t2t_epochs']} epochs, L2 1e-4. LogisticRegression: lbfgs "
            "with its defaults, warm-started 5 iterations at a time (each restart drops "
            "lbfgs's curvature memory, so this is an upper bound on a single fit's time). "
            "SGDClassifier: log loss with its defaults, one `partial_fit` epoch at a time.",
            "", "| approach | seconds | process s | test accuracy | steps | reached | "
            "peak MiB |", "| --- | --- | --- | --- | --- | --- | --- |"]
  for label, key, steps in (("lincv", "lincv", "epochs"),
                            ("lincv, warm compilation cache", "lincv_warm_cache", "epochs"),
                            ("LogisticRegression (lbfgs)", "lbfgs", "iterations"),
                            ("SGDClassifier", "sgd", "epochs")):
    r = t[key]
    lines.append(f"| {label} | {_f(r['seconds'])} | {_f(r['process_s'])} | "
                 f"{_f(r['accuracy'])} | {r.get(steps)} {steps} | {_f(r['reached'])} | "
                 f"{_f(r['peak_rss_mib'])} |")
  sp = res["time_to_40_speedup_vs_lbfgs"]
  lines += ["", "lincv runs with JAX's persistent compilation cache "
            "(`jax_compilation_cache_dir`) empty in the first row, and in the warm-cache "
            "row filled by an earlier run, as a second run of the same program shapes "
            "finds it: the difference is compilation. "
            "lincv's peak memory includes JAX's own copy of the rows.",
            "", f"lincv reaches {pct} {_f(sp)}x sooner than LogisticRegression"
            f" ({_f(res.get('time_to_40_speedup_vs_lbfgs_warm_cache'))}x with a warm "
            "compilation cache)"
            + ("" if t["sgd"]["reached"] else
               f"; SGDClassifier did not reach it in {t['sgd']['epochs']} epochs "
               f"({_f(t['sgd']['seconds_per_epoch'])} s per epoch)") + ".", ""]

  g = res["grid"]
  lines += ["## 64-configuration grid", "",
            f"8 learning rates x 8 L2 strengths, {g['epochs']} epochs each, trained on the "
            "training split and scored on the validation split. lincv: `lincv.sweep.run` "
            "(one group of 64 members, compilation included, minibatch SGD of batch "
            f"{res['data']['batch_size']}, softmax). scikit-learn: `GridSearchCV` over "
            "`SGDClassifier(loss='log_loss', learning_rate='constant')` with a "
            f"`PredefinedSplit` (the same split), n_jobs={g['n_jobs']}, refit=False; it "
            "steps one example at a time and is one-vs-rest, so it gets eta0 = learning "
            "rate / batch size and alpha = 2 x L2 strength. The epochs are bounded so that "
            "GridSearchCV finishes in minutes; both tools get the same.", "",
            "| approach | seconds | best validation accuracy | best setting |",
            "| --- | --- | --- | --- |",
            f"| lincv sweep | {_f(g['lincv']['median_s'])} | {_f(g['lincv_best_val_accuracy'])} "
            f"(test {_f(g['lincv_test_accuracy'])}) | {g['lincv_best']} |",
            f"| GridSearchCV | {_f(g['sklearn']['median_s'])} | "
            f"{_f(g['sklearn_best_val_accuracy'])} | {g['sklearn_best']} |", "",
            f"Speedup {_f(g['speedup'])}x.", ""]

  kn = res["knn"]
  lines += ["## k-NN prediction", "",
            f"k = {kn['k']}, {kn['metric']}, {kn['num_test']:,} test rows against "
            f"{kn['num_train']:,} training rows; `lincv.knn.predict` against "
            "`KNeighborsClassifier(algorithm='brute')`.", "",
            "| approach | seconds | accuracy |", "| --- | --- | --- |",
            f"| lincv | {_f(kn['lincv']['median_s'])} | {_f(kn['lincv_accuracy'])} |",
            f"| scikit-learn | {_f(kn['sklearn']['median_s'])} | {_f(kn['sklearn_accuracy'])} |",
            "", f"Speedup {_f(kn['speedup'])}x; the two agree on "
            f"{kn['agreement']:.2%} of the predictions.", ""]

  gr = res["gradients"]
  ps = gr["per_step_s"]
  lines += ["## Hand-derived gradient against `jax.grad`", "",
            "Milliseconds per training step (epoch time / steps), the same objective and "
            "loop with `grad='hand'` or `grad='autodiff'`.", "",
            "| | hand | jax.grad | jax.grad / hand |", "| --- | --- | --- | --- |",
            f"| one member | {_f(ps['single hand'] * 1e3)} | {_f(ps['single autodiff'] * 1e3)} | "
            f"{_f(gr['single_autodiff_over_hand'])} |",
            f"| sweep, K={gr['members']} | {_f(ps['sweep hand'] * 1e3)} | "
            f"{_f(ps['sweep autodiff'] * 1e3)} | {_f(gr['sweep_autodiff_over_hand'])} |", ""]

  lines += ["## Peak memory", "",
            "Peak resident memory of a fresh process running the approach once "
            "(VmHWM), and its excess over the process after loading the "
            "rows (a process holding the float32 rows, interpreter and imports included, "
            f"takes about {_f(next(iter(res['memory'].values()))['data_rss_mib'])} MiB). "
            "GridSearchCV with n_jobs=2 runs two processes like the one "
            "measured.", "", "| approach | peak MiB | over the data MiB |",
            "| --- | --- | --- |"]
  for label, r in res["memory"].items():
    lines.append(f"| {label} | {_f(r['peak_rss_mib'])} | {_f(r['over_data_mib'])} |")
  lines += ["", f"Whole benchmark: {res['total_s'] / 60:.1f} minutes.", ""]
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data", required=True, help="image folder root with train/ and test/")
  parser.add_argument("--quick", action="store_true", help="a subset, under 2 minutes")
  parser.add_argument("--out-dir", default=HERE, help="where RESULTS.md and results.json go")
  parser.add_argument("--reps", type=int, default=None, help="timed repetitions")
  parser.add_argument("--limit", type=int, default=None, help="cap on training images")
  parser.add_argument("--target", type=float, default=None,
                      help="test accuracy of the time-to-target race (0.40; quick: 0.30)")
  args = parser.parse_args(argv)
  res = run(args)
  os.makedirs(args.out_dir, exist_ok=True)
  with open(os.path.join(args.out_dir, "results.json"), "w", encoding="utf-8") as f:
    json.dump(common.rounded(res), f, indent=1)
    f.write("\n")
  with open(os.path.join(args.out_dir, "RESULTS.md"), "w", encoding="utf-8") as f:
    f.write(markdown(res))
  common.print_json({k: res[k] for k in ("sweep_k64_over_roofline",
                                         "time_to_40_speedup_vs_lbfgs",
                                         "grid64_speedup_vs_gridsearchcv",
                                         "single_member_epoch_s", "total_s")})


if __name__ == "__main__":
  main()
