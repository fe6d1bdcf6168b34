"""bench/RESULTS.md from the figures of one `python -m bench` run: the targets and what
bounds a missed one, then one table per comparison, in the order they ran."""

import numpy as np

from bench import probe_report

# Headline figure -> its goal; the first two are at most the goal, the others at least.
TARGETS = {"sweep_k64_over_roofline": 1.25, "time_to_40_speedup_vs_lbfgs": 10.0,
           "grid64_speedup_vs_gridsearchcv": 50.0, "single_member_epoch_s": 0.2,
           "single_over_k1_roofline": 1.5,
           "memory_one_member_over_rows": 1.3, "memory_k64_over_rows": 1.3,
           "placement_host_over_device": 1.3, "probe_lbfgs_speedup_vs_cold": 10.0,
           "probe_lbfgs_speedup_vs_warm": 4.0, "probe_ridge_speedup_vs_loop": 10.0,
           "probe_ridge_speedup_vs_cv": 1.0}
_AT_MOST = ("sweep_k64_over_roofline", "single_member_epoch_s", "single_over_k1_roofline",
            "memory_one_member_over_rows", "memory_k64_over_rows",
            "placement_host_over_device")

# The per-K figures of the sweep table (and of the previous run, shown beside them).
SWEEP_FIGURES = ("per_member_epoch_s", "jax_roofline_per_member_epoch_s",
                 "sweep_over_roofline", "peak_rss_mib")

# Peak memory is judged against the float32 rows (train, validation and test) plus this
# allowance for the interpreter, the imports and the compiled programs (MiB).
MEMORY_ALLOWANCE_MIB = 0.3 * 1024
# The memory table's rows that the memory targets judge.
ONE_MEMBER = "lincv one member (to target)"
SWEEP_K64 = "lincv sweep K=64, one epoch"


def rows_mib(data) -> float:
  """MiB of the float32 rows of every split, from `res["data"]`."""
  return (data["num_train"] + data["num_val"] + data["num_test"]) * data["dim"] * 4 / 2**20


def memory_over_rows(peak_mib: float, data) -> float:
  """Peak memory as a multiple of (float32 rows + MEMORY_ALLOWANCE_MIB)."""
  return peak_mib / (rows_mib(data) + MEMORY_ALLOWANCE_MIB)


def markdown(res) -> str:
  """The whole report, as Markdown."""
  sections = (_header, _targets, _sweep, _placement, _time_to_target, _grid, _knn,
              _gradients, _memory, probe_report.section, _compile)
  lines = [line for section in sections for line in section(res)]
  lines += [f"Whole benchmark: {res['total_s'] / 60:.1f} minutes.", ""]
  return "\n".join(lines)


def _f(x, digits=3):
  """A figure for a table: None as "n/a", booleans as yes/no, 3 significant digits."""
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
  met = value <= goal if name in _AT_MOST else value >= goal
  return "met" if met else "**missed**"


def _header(res):
  m, data = res["machine"], res["data"]
  quick = " --quick" if res["mode"] == "quick" else ""
  return [
      "# lincv benchmarks", "",
      f"`python -m bench --data {data['folder']}{quick}` ({res['mode']} mode), {m['date']}.",
      "",
      f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib'] or 'unknown'} GiB, device "
      f"`{m['device']}`; load average (1, 5, 15 min) {m['load_average']} at the start, "
      f"{res['load_average_end']} at the end (the machine was shared, so absolute "
      "times are noisy; ratios are taken between figures of the same run). Python "
      f"{m['python']}; " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".", "",
      f"Data: {data['num_train']:,} training, {data['num_val']:,} validation "
      f"and {data['num_test']:,} test rows of {data['dim']:,} raw pixels "
      f"(scaled to [0, 1], mean training image subtracted), {data['classes']} "
      f"classes; batch {data['batch_size']}. Each time is the median of "
      f"{res['settings']['reps']} (subprocess figures: {res['settings']['probe_reps']}) "
      "repetitions after a warm-up.", ""]


def _targets(res):
  prev = res.get("previous") or {}
  lines = ["## Targets", "",
           f"`previous`: the run this one replaced ({prev.get('date', 'none')}"
           f"{', ' + prev['mode'] + ' mode' if prev.get('mode') else ''}).", "",
           "| figure | target | measured | previous | verdict | what bounds it |",
           "| --- | --- | --- | --- | --- | --- |"]
  for name, goal in TARGETS.items():
    value = res.get(name)
    verdict = _verdict(name, value)
    unit = " s" if name.endswith("_s") else "x"
    cmp = "<=" if name in _AT_MOST else ">="
    before = prev.get(name)
    lines.append(f"| `{name}` | {cmp} {goal}{unit} | {_f(value)}{unit} | "
                 f"{_f(before)}{unit if before is not None else ''} | {verdict} | "
                 f"{_why(res, name) if verdict != 'met' else ''} |")
  return lines + [""]


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
  if name == "single_over_k1_roofline":
    one = res["sweep"]["1"]
    return (f"the roofline is the two products alone ({_f(one['jax_roofline_per_member_epoch_s'])}"
            " s); the member also draws its permutation, gathers each minibatch, takes the "
            "loss's gradient and the optimizer's step, and scores the validation rows")
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
  if name == "grid64_speedup_vs_gridsearchcv" and s64:
    g = res["grid"]
    per_cfg = g["sklearn"]["median_s"] * g["n_jobs"] / (g["configurations"] * g["epochs"])
    per_mem = s64["per_member_epoch_s"]
    return (f"SGDClassifier costs {_f(per_cfg)} core-seconds per configuration-epoch "
            f"(one-vs-rest: {res['data']['classes']} binary passes over the data, one "
            f"example at a time), lincv {_f(per_mem)} s per member-epoch at K=64; their "
            f"ratio, {_f(per_cfg / g['n_jobs'] / per_mem)}x on {g['n_jobs']} jobs, bounds "
            "the speedup, before lincv's compilation and per-epoch validation")
  if name.startswith("probe_") and "probe" in res:
    return probe_report.why(res["probe"], name)
  if name.startswith("memory_"):
    r = res["memory"][ONE_MEMBER if name == "memory_one_member_over_rows" else SWEEP_K64]
    return (f"{_f(r['peak_rss_mib'])} MiB at the peak, {_f(r['over_data_mib'])} MiB over "
            f"the process holding the rows ({_f(r['data_rss_mib'])} MiB); the rows take "
            f"{_f(rows_mib(res['data']))} MiB")
  return ""


def _sweep(res):
  lines = ["## Sweep: seconds per member-epoch", "",
           "Per-member time of one epoch of a K-member `lincv.sweep.Population` (SGD, "
           "softmax, L2), against the same matrix products alone (forward and weight "
           "gradient for all K members at once) in a plain jitted loop and in NumPy "
           "(the fastest of two weight layouts, gathered or sliced minibatches), and "
           "against the NumPy minibatch-SGD softmax loop of `bench/reference.py` "
           "(K members stacked as one (D, K*C) matrix).", "",
           "K > 256: one repetition, the JAX roofline in the (K*C, D) layout only. "
           "Peak memory: one epoch of the K members in a fresh process, compilation "
           "included (full mode). `previous`: the same figures of the run this one "
           "replaced. The curve: `scaling.png`.", "",
           "| K | lincv sweep | JAX roofline | NumPy roofline | NumPy SGD loop | "
           "sweep / roofline | NumPy loop / sweep | peak memory (MiB) | previous sweep | "
           "previous sweep / roofline |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
  prev = (res.get("previous") or {}).get("sweep", {})
  for k, r in res["sweep"].items():
    p = prev.get(k, {})
    lines.append(
        f"| {k} | {_f(r['per_member_epoch_s'])} | {_f(r['jax_roofline_per_member_epoch_s'])} | "
        f"{_f(r.get('numpy_roofline_per_member_epoch_s'))} | "
        f"{_f(r.get('numpy_softmax_per_member_epoch_s'))} | "
        f"{_f(r['sweep_over_roofline'])} | {_f(r.get('numpy_softmax_over_sweep'))} | "
        f"{_f(r.get('peak_rss_mib'))} | {_f(p.get('per_member_epoch_s'))} | "
        f"{_f(p.get('sweep_over_roofline'))} |")
  one = res["sweep"]["1"]
  return lines + [
      "", f"One member alone (`jax.jit(training.train_epoch)`): "
      f"{_f(one['single_member_epoch_s'])} s per epoch (fastest repetition "
      f"{_f(one['single_member_epoch_min_s'])} s), "
      f"{_f(one['single_member_epoch_s'] / one['jax_roofline_per_member_epoch_s'])}x the "
      f"K=1 JAX roofline of the same run; "
      f"{_f(one['gflop_per_member_epoch'])} GFLOP of products per member-epoch.", ""]


def scaling_plot(res, path: str) -> None:
  """scaling.png: seconds per member-epoch over K (sweep and rooflines), and peak memory."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  ks = [int(k) for k in res["sweep"]]
  rows = [res["sweep"][str(k)] for k in ks]
  fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
  for field, label in (("per_member_epoch_s", "lincv sweep"),
                       ("jax_roofline_per_member_epoch_s", "JAX GEMM roofline"),
                       ("numpy_roofline_per_member_epoch_s", "NumPy GEMM roofline")):
    points = [(k, r[field]) for k, r in zip(ks, rows) if r.get(field)]
    if points:
      ax_t.plot(*zip(*points), marker="o", label=label)
  ax_t.set(xscale="log", yscale="log", xlabel="members K",
           ylabel="seconds per member-epoch", title="time per member-epoch")
  ax_t.legend()
  points = [(k, r["peak_rss_mib"]) for k, r in zip(ks, rows) if r.get("peak_rss_mib")]
  if points:
    ax_m.plot(*zip(*points), marker="o")
  ax_m.set(xscale="log", xlabel="members K", ylabel="peak memory (MiB)",
           title="one epoch's peak memory (fresh process)")
  data = res["data"]
  fig.suptitle(f"K-member sweeps on {data['num_train']:,} x {data['dim']:,} rows, "
               f"{res['machine']['date']}", fontsize=10)
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _compile(res):
  """The programs of one default run, with an empty and with a warm compilation cache."""
  if "compile" not in res:
    return []
  from bench import compile as bench_compile  # pylint: disable=import-outside-toplevel
  c = res["compile"]
  lines = ["## Compilation: the programs of one run", "",
           f"`python -m bench.compile --config {c['config']}`: `python train.py` in a fresh "
           "process with an empty compilation cache, then again with the cache it filled; "
           "per program, how often it was traced, lowered and compiled (read from the "
           "cache), and the seconds of each (`jax.monitoring`).", ""]
  for run in ("cold", "warm"):
    lines += [f"{run.capitalize()} cache: {bench_compile.table(c[run])}", ""]
  return lines


def _time_to_target(res):
  t = res["time_to_target"]
  pct = f"{t['target']:.0%}"
  lines = [f"## Time to {pct} test accuracy", "",
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
  sgd = ("" if t["sgd"]["reached"] else
         f"; SGDClassifier did not reach it in {t['sgd']['epochs']} epochs "
         f"({_f(t['sgd']['seconds_per_epoch'])} s per epoch)")
  return lines + [
      "", "lincv runs with JAX's persistent compilation cache "
      "(`jax_compilation_cache_dir`) empty in the first row, and in the warm-cache "
      "row filled by an earlier run, as a second run of the same program shapes "
      "finds it: the difference is compilation.",
      "", f"lincv reaches {pct} {_f(res['time_to_40_speedup_vs_lbfgs'])}x sooner than "
      f"LogisticRegression ({_f(res.get('time_to_40_speedup_vs_lbfgs_warm_cache'))}x with "
      f"a warm compilation cache){sgd}.", ""]


def _grid(res):
  g = res["grid"]
  return [
      "## 64-configuration grid", "",
      f"8 learning rates x 8 L2 strengths, {g['epochs']} epochs each, trained on the "
      "training split and scored on the validation split. lincv: `lincv.sweep.run` "
      "(one group of 64 members, compilation included, `train_accuracy=False`: like "
      "GridSearchCV it scores the validation split only; minibatch SGD of batch "
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
      *([f"| lincv sweep, training accuracy too | "
         f"{_f(g['lincv_train_accuracy']['median_s'])} | the same | the same |"]
        if "lincv_train_accuracy" in g else []),
      f"| GridSearchCV | {_f(g['sklearn']['median_s'])} | "
      f"{_f(g['sklearn_best_val_accuracy'])} | {g['sklearn_best']} |", "",
      f"Speedup {_f(g['speedup'])}x.", ""]


def _knn(res):
  kn = res["knn"]
  return [
      "## k-NN prediction", "",
      f"k = {kn['k']}, {kn['metric']}, {kn['num_test']:,} test rows against "
      f"{kn['num_train']:,} training rows; `lincv.knn.predict` against "
      "`KNeighborsClassifier(algorithm='brute')`.", "",
      "| approach | seconds | accuracy |", "| --- | --- | --- |",
      f"| lincv | {_f(kn['lincv']['median_s'])} | {_f(kn['lincv_accuracy'])} |",
      f"| scikit-learn | {_f(kn['sklearn']['median_s'])} | {_f(kn['sklearn_accuracy'])} |",
      "", f"Speedup {_f(kn['speedup'])}x; the two agree on "
      f"{kn['agreement']:.2%} of the predictions.", ""]


def _placement(res):
  p = res.get("placement")
  if not p:
    return []
  same = ("identical" if p["max_abs_param_diff"] == 0
          else f"at most {p['max_abs_param_diff']:.3g} apart")
  return [
      "## Data placement", "",
      f"One epoch of K={p['members']} members with the training rows on the device "
      "(`data.placement='device'`) and with them in host memory, sent in blocks of "
      f"{p['block_steps']} of the epoch's {p['steps_per_epoch']} minibatches, "
      "double-buffered (`'host'`), interleaved in one run (`bench.sweep.measure_placement`).",
      "", "| placement | seconds per epoch | fastest |", "| --- | --- | --- |",
      *(f"| {name} | {_f(v['median_s'])} | {_f(v['min_s'])} |"
        for name, v in p["variants"].items()), "",
      f"A host epoch takes {_f(p['host_over_device'])}x a device epoch; the weights of the "
      f"two populations after the same epochs are {same}.", ""]


def _gradients(res):
  gr = res["gradients"]
  ps = gr["per_step_s"]
  return [
      "## Hand-derived gradient against `jax.grad`", "",
      "Milliseconds per training step (epoch time / steps), the same objective and "
      "loop with `grad='hand'` or `grad='autodiff'`.", "",
      "| | hand | jax.grad | jax.grad / hand |", "| --- | --- | --- | --- |",
      f"| one member | {_f(ps['single hand'] * 1e3)} | {_f(ps['single autodiff'] * 1e3)} | "
      f"{_f(gr['single_autodiff_over_hand'])} |",
      f"| sweep, K={gr['members']} | {_f(ps['sweep hand'] * 1e3)} | "
      f"{_f(ps['sweep autodiff'] * 1e3)} | {_f(gr['sweep_autodiff_over_hand'])} |", ""]


def _memory(res):
  rows = rows_mib(res["data"])
  lines = ["## Peak memory", "",
           "Peak resident memory of a fresh process running the approach once "
           "(VmHWM), its excess over the process after loading the "
           "rows (a process holding the float32 rows, interpreter and imports included, "
           f"takes about {_f(next(iter(res['memory'].values()))['data_rss_mib'])} MiB), "
           f"and its ratio to the float32 rows ({_f(rows)} MiB) plus "
           f"{_f(MEMORY_ALLOWANCE_MIB)} MiB, the figure the memory targets judge. The rows "
           "are aligned to 64 bytes, as lincv's own are, so JAX on a CPU shares them "
           "rather than copying them. GridSearchCV with n_jobs=2 runs two processes like "
           "the one measured.", "",
           "| approach | peak MiB | over the data MiB | / (rows + allowance) |",
           "| --- | --- | --- | --- |"]
  for label, r in res["memory"].items():
    lines.append(f"| {label} | {_f(r['peak_rss_mib'])} | {_f(r['over_data_mib'])} | "
                 f"{_f(memory_over_rows(r['peak_rss_mib'], res['data']))} |")
  return lines + [""]

