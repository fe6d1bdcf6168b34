"""The run directory's report: one writer for every method.

    summary = report.write(config, workdir, inputs, outcome, evaluation, timings)

writes results.csv (one row per member), metrics.jsonl (per member and epoch, for methods
that train by epochs), checkpoint/best.npz (the selected parameters) and
checkpoint/inputs.npz (the fitted preprocessing and features, so `lincv.Run` can classify
new images), plots/*.png, tensorboard/ (event files, `lincv.events`), and summary.json, then prints the best members and the
selected one's accuracy. With several processes, process 0 writes and prints; the
others print one line saying where the results are.
"""

import csv
import importlib.metadata
import io
import json
import math
import os
import platform

import jax
import numpy as np

from lincv import checkpoint, distributed, events, lbfgs, metrics, plots
from lincv.sweep import selection

LEADING = ("member", "group", "status", "val_accuracy", "train_accuracy", "final_loss",
           "epochs_run", "best_epoch", "seconds")
TABLE_TOP = 5
TITLE_FIELDS = ("model", "loss", "learning_rate", "reg_strength")  # shown when none is swept


def write(config, workdir: str, inputs, outcome, evaluation: dict, timings: dict,
          stream) -> dict:
  """Writes the run directory's files for `outcome`; returns the summary.

  Args:
    config: the run's config.
    workdir: the run directory.
    inputs: the run's `lincv.inputs.Inputs`.
    outcome: the method's `lincv.methods.Outcome`.
    evaluation: {"split", "pred", "labels", "accuracy"} of the selected member on
      `config.eval_split`.
    timings: seconds per phase; "total" is this process's.
    stream: where the table and the result line go.
  """
  if not distributed.is_writer():
    stream.write(f"process {jax.process_index()} of {jax.process_count()}: done; process 0 "
                 f"writes the results to {workdir}\n")
    stream.flush()
    return _summary(config, inputs, outcome, evaluation, timings)
  rows = outcome.rows
  _write_csv(os.path.join(workdir, "results.csv"), rows)
  if outcome.history is not None:
    _write_metrics(os.path.join(workdir, "metrics.jsonl"), rows, outcome.history)
  if outcome.params is not None:
    checkpoint.save_arrays(os.path.join(workdir, "checkpoint", "best.npz"), outcome.params)
  save_inputs(os.path.join(workdir, "checkpoint", "inputs.npz"), inputs,
              outcome.hparams.get("features", config.features))
  summary = _summary(config, inputs, outcome, evaluation, timings)
  _plots(config, workdir, inputs, outcome, evaluation)
  events.write_run(config, workdir, outcome, evaluation)
  checkpoint.save_json(os.path.join(workdir, "summary.json"), summary)
  _print(config, workdir, outcome, summary, stream)
  return summary


def _write_csv(path, rows):
  buf = io.StringIO()
  # Every row's fields, in order of first appearance: some methods' rows have more (a
  # full-batch solver's iterations), and the others leave those cells empty.
  seen = list(dict.fromkeys(k for r in rows for k in r))
  fields = [k for k in LEADING if k in seen] + [k for k in seen if k not in LEADING]
  writer = csv.DictWriter(buf, fieldnames=fields)
  writer.writeheader()
  writer.writerows(rows)
  checkpoint.atomic_write(path, lambda f: f.write(buf.getvalue().encode()))


def _write_metrics(path, rows, history):
  lines = []
  for r, h in zip(rows, history):
    for e, (loss, acc) in enumerate(zip(h["train_loss"], h["val_accuracy"])):
      if not np.isnan(loss):
        lines.append(checkpoint.dumps_line({"member": r["member"], "epoch": e + 1,
                                            "train_loss": loss, "val_accuracy": acc}))
  checkpoint.atomic_write(path, lambda f: f.write(("\n".join(lines) + "\n").encode()))


def save_inputs(path: str, inputs, features: str) -> None:
  """The fitted preprocessing (and image features) of a run, for `lincv.Run.predict`."""
  pre = inputs.prepared.preprocessor
  arrays = {"pre_mean_D": pre.mean_D, "pre_std_D": pre.std_D,
            "pre_settings": np.asarray(json.dumps({
                "image_shape": list(pre.image_shape), "center": pre.center,
                "scale": pre.scale, "bias_trick": pre.bias_trick,
                "features": features}))}
  featurizer = inputs.featurizer(features) if features != "pixels" else None
  if featurizer is not None:
    arrays.update(featurizer.to_arrays())   # its keys start with "featurizer_"
  checkpoint.save_arrays(path, arrays)


def _summary(config, inputs, outcome, evaluation, timings) -> dict:
  p, rows, best, split = inputs.prepared, outcome.rows, outcome.best, evaluation["split"]
  acc = evaluation["accuracy"]
  chosen = {"member": best["member"], "hparams": outcome.hparams,
            "train_accuracy": best.get("train_accuracy"),
            "val_accuracy": best["val_accuracy"],
            f"{split}_accuracy": acc, "test_accuracy": acc if split == "test" else None}
  for extra in ("epochs_run", "best_epoch", "cv_accuracy"):
    if extra in best:
      chosen[extra] = best[extra]
  return {
      "method": config.method,
      "best": chosen,
      "eval_split": split,
      "num_members": len(rows),
      "num_groups": len({r.get("group", 0) for r in rows}),
      "num_diverged": sum(r["status"] == "diverged" for r in rows),
      "num_pruned": sum(r["status"] == "pruned" for r in rows),
      "num_unconverged": len(lbfgs.unconverged(rows)),   # full-batch members above tol
      "data": {"name": config.data.get("features") or config.data.folder or config.data.name,
               "classes": list(p.class_names),
               "image_shape": list(p.image_shape), "train": len(p.y_train),
               "val": len(p.y_val), "test": len(p.y_test), "mirrored": inputs.flip},
      "seconds": timings["total"] + outcome.earlier_seconds,   # every process's
      "timings": dict(timings, earlier_processes=outcome.earlier_seconds),
      "device": device(),
      "versions": versions(),
  }


def _plots(config, workdir, inputs, outcome, evaluation) -> None:
  p = inputs.prepared
  folder = os.path.join(workdir, "plots")
  shown = _shown(config, outcome)
  title = plots.describe(os.path.basename(os.path.normpath(workdir)), config.method,
                         {k: v for k, v in outcome.hparams.items() if k in shown})
  if outcome.history is not None:
    plots.curves(outcome.rows, outcome.history, swept(config),
                 os.path.join(folder, "curves.png"), title=title)
    plots.heatmap(outcome.rows, os.path.join(folder, "val_accuracy_heatmap.png"), title=title)
  params, hp = outcome.params, outcome.hparams
  if (params is not None and hp.get("model", "linear") == "linear"
      and hp.get("features", "pixels") == "pixels" and p.images):
    plots.templates(params["W"], p.image_shape, p.class_names,
                    os.path.join(folder, "templates.png"), title=title)
  matrix = metrics.confusion_matrix(evaluation["pred"], evaluation["labels"], p.num_classes)
  plots.confusion(matrix, p.class_names, os.path.join(folder, "confusion.png"), title=title,
                  split=evaluation["split"])


def swept(config) -> list[str]:
  """The fields the config's sweep varies (those shown next to each member)."""
  return list(config.sweep.keys())


def _shown(config, outcome) -> list[str]:
  """The fields that name a member in the table and the figures' titles: the swept ones,
  else a few that say what was trained (a method's own, for a baseline)."""
  return swept(config) or list(TITLE_FIELDS if config.method == "sweep" else outcome.hparams)


def _print(config, workdir, outcome, summary, stream) -> None:
  rows, best = outcome.rows, outcome.best
  fields = [k for k in _shown(config, outcome) if k in rows[0]]
  split = summary["eval_split"]
  # A k-NN run's "val_accuracy" is its cross-validated accuracy on the training rows.
  chosen_by = "cv" if "cv_accuracy" in best else "val"
  by = "cross-validated" if chosen_by == "cv" else "validation"
  stream.write(f"\nbest members by {by} accuracy:\n{table(rows, fields)}\n")
  seconds = summary["seconds"]     # every process of the run, a resumed one too
  n = summary["num_unconverged"]
  unconverged = f"{n} above tol, " if n else ""
  members = summary["num_members"]
  stream.write(
      f"\nselected member {best['member']}: {chosen_by} "
      f"{metrics.accuracy_text(best['val_accuracy'])}, "
      f"{split} {metrics.accuracy_text(summary['best'][f'{split}_accuracy'])}  ({members} "
      f"member{'s' * (members != 1)}, {summary['num_diverged']} diverged, "
      f"{summary['num_pruned']} pruned, "
      f"{unconverged}{seconds:.1f}s)\nwrote {workdir}\n")
  stream.flush()


def table(rows, fields, top: int = TABLE_TOP) -> str:
  """The `top` rows by validation accuracy, as aligned text columns, in the order the
  selection ranks them: diverged members after every other (never selected, whatever
  accuracy their best epoch had), ties to the lower member, so the first row is the
  selected one. A k-NN run's accuracy column is its cv_accuracy. Numbers have 4
  significant digits, or as many more as tell a column's distinct values apart."""
  score = "cv_accuracy" if "cv_accuracy" in rows[0] else "val_accuracy"
  cols = ["member"] + list(fields) + [c for c in (score, "train_accuracy", "status")
                                      if c in rows[0]]
  best = sorted(rows, key=lambda r: (r["status"] == "diverged",
                                     -selection.rank(r["val_accuracy"]), r["member"]))[:top]
  digits = {c: _digits([r[c] for r in best]) for c in cols}
  fmt = lambda v, c: f"{v:.{digits[c]}g}" if isinstance(v, float) else str(v)
  cells = [[fmt(r[c], c) for c in cols] for r in best]
  widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
  line = lambda vals: "  ".join(v.rjust(w) for v, w in zip(vals, widths))
  return "\n".join([line(cols)] + [line(r) for r in cells])


def _digits(values, least: int = 4, most: int = 9) -> int:
  """The fewest significant digits, from `least` up to `most`, that print the distinct
  floats among `values` apart: two members that read alike scored the same (0.75123 and
  0.75119, of 100,000 validation rows, both read 0.7512 at 4)."""
  distinct = {f"{v:.{most}g}" for v in values if isinstance(v, float) and math.isfinite(v)}
  for d in range(least, most):
    if len({f"{float(v):.{d}g}" for v in distinct}) == len(distinct):
      return d
  return most


def versions() -> dict:
  """The versions of lincv, its main dependencies and Python."""
  out = {}
  for pkg in ("lincv", "jax", "jaxlib", "optax", "chex", "tensorflow-datasets", "numpy",
              "ml-collections"):
    try:
      out[pkg] = importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
      pass
  out["python"] = platform.python_version()
  return out


def device() -> str:
  """"<count> x <platform> (<kind>)" of the devices the run used."""
  devs = jax.devices()
  return f"{len(devs)} x {devs[0].platform} ({devs[0].device_kind})"

