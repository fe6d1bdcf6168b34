"""Methods: what turns a run's inputs into one selected classifier.

    outcome = methods.train(config, inputs, workdir=..., progress=..., started=...)
    labels_N = methods.predict(config, outcome.hparams, outcome.params, x_NxD, pool)

Every method (`config.method`) has the same interface: it trains on the training rows,
selects on the validation rows (or by cross-validation on the training rows) and returns
an `Outcome`: one row per member tried, the selected member, its hyperparameters and its
parameters. `predict` and `scores` then apply the selected classifier to any rows:

  sweep                  vmapped populations of linear or two-layer classifiers (`sweep`)
  knn                    k nearest neighbours, metric and k by cross-validation (`knn`)
  random_search,         W of a linear classifier by random draws (`baselines`)
  random_local_search
"""

import dataclasses
import functools
import warnings

import jax
import numpy as np

from lincv import baselines, chunked, knn, metrics, scores as scores_lib, seeds, sweep
from lincv import training
from lincv import config as config_lib
from lincv import data as data_lib

NAMES = config_lib.METHODS


@dataclasses.dataclass
class Outcome:
  """What a method produced."""
  rows: list[dict]                   # one per member tried (results.csv)
  best: dict                         # the selected row
  hparams: dict                      # its hyperparameters (summary.json's best.hparams)
  params: dict | None                # its parameters (NumPy); None for k-NN
  history: list[dict] | None = None  # per member: {"train_loss": [...], "val_accuracy": [...]}
  earlier_seconds: float = 0.0       # worked on this run by earlier processes (resumed runs)
  curves: dict | None = None         # {tag: values at steps 1, 2, ...}: a method's own figures


def train(config, inputs, *, workdir=None, progress=None, started=None) -> Outcome:
  """Runs `config.method` on `inputs` (a `lincv.inputs.Inputs`)."""
  return _TRAIN[config.method](config, inputs, workdir=workdir, progress=progress,
                               started=started)


def _sweep(config, inputs, *, workdir, progress, started) -> Outcome:
  result = sweep.run(config, inputs.data, inputs.prepared.num_classes, workdir=workdir,
                     progress=progress, started=started)
  hparams = {f: result.best[f] for f in config_lib.SWEEPABLE}
  return Outcome(result.rows, result.best, hparams, result.best_params, result.history,
                 result.earlier_seconds)


def _knn(config, inputs, *, progress, **unused) -> Outcome:
  del unused
  k = config.knn
  x_tr, y_tr = inputs.split(config.features, "train")
  groups = knn_groups(inputs)
  if k.cv_limit and k.cv_limit < len(y_tr):
    keep = data_lib.stratified_subset(y_tr, k.cv_limit, config.data.split_seed)
    x_tr, y_tr, groups = x_tr[keep], y_tr[keep], groups[keep]
  num_classes = inputs.prepared.num_classes
  if len(y_tr) < k.num_folds * num_classes:
    # Folds of fewer rows than classes: each k's accuracy is a handful of votes, and the
    # choice of k is noise (5 rows in 5 folds scored every k 0.0).
    warnings.warn(f"lincv: k-NN cross-validates k over {len(y_tr)} training rows in "
                  f"{k.num_folds} folds, fewer rows per fold than the {num_classes} classes:"
                  f" the choice of k is noise; raise knn.cv_limit (0 = every training row) to "
                  f"at least {k.num_folds * num_classes}", UserWarning, stacklevel=2)
  rows = []
  for metric in k.metrics:
    if progress:
      progress.log(f"{k.num_folds}-fold cross-validation of k over {len(y_tr)} rows, {metric}")
    try:
      accs = knn.cross_validate(x_tr, y_tr, ks=tuple(k.ks), num_folds=k.num_folds,
                                metric=metric, seed=config.data.split_seed,
                                num_classes=inputs.prepared.num_classes,
                                groups=groups)["accuracy"]
    except ValueError as e:
      raise config_lib.ConfigError(f"knn: {e}") from None
    for kk, acc in zip(k.ks, accs):
      rows.append({"member": len(rows), "metric": metric, "k": int(kk), "cv_accuracy": acc,
                   "val_accuracy": acc, "status": "ok"})
  best = max(rows, key=lambda r: (r["cv_accuracy"], -r["member"]))
  hparams = {"features": config.features, "metric": best["metric"], "k": best["k"]}
  return Outcome(rows, best, hparams, None)


def _random(config, inputs, *, progress, **unused) -> Outcome:
  del unused
  rnd, features = config.random, config.features
  x_tr, y_tr = inputs.split(features, "train")
  x, y = x_tr, y_tr
  if rnd.examples and rnd.examples < len(y):
    keep = data_lib.stratified_subset(y, rnd.examples,
                                      seeds.integer(config.data.split_seed, "examples"))
    x, y = x[keep], y[keep]
  key = seeds.key(config.seed, "random_search")
  if config.method == "random_search":
    fn, kwargs = baselines.random_search, {"num_tries": int(rnd.num_tries), "scale": rnd.scale}
  else:
    fn = baselines.random_local_search
    kwargs = {"num_steps": int(rnd.num_tries), "scale": rnd.scale, "step": rnd.step}
  if progress:
    progress.log(f"{config.method}: {rnd.num_tries} draws, loss {config.loss} on {len(y)} rows")
  num_classes = inputs.prepared.num_classes
  w, loss, trace = fn(key, *jax.device_put((x, y)), num_classes, loss=config.loss, **kwargs)
  params = {"W": np.asarray(w), "b": np.zeros(num_classes, np.asarray(w).dtype)}
  # The labels were checked as they loaded.
  acc = lambda split: float(training.accuracy_program(LINEAR, params,
                                                      *inputs.split(features, split)))
  row = {"member": 0, "loss": config.loss, "final_loss": float(loss), "status": "ok",
         **({"train_accuracy": acc("train")} if config.train_accuracy else {}),
         "val_accuracy": acc("val")}
  hparams = {"features": features, "model": "linear", "loss": config.loss, "seed": config.seed}
  trace = np.asarray(trace, np.float64)   # the loss of each try (local search: after it)
  curves = {f"{config.method}/loss": trace.tolist()}
  if config.method == "random_search":
    curves["random_search/best_loss"] = np.fmin.accumulate(trace).tolist()
  return Outcome([row], row, hparams, params, curves=curves)


_TRAIN = {"sweep": _sweep, "knn": _knn, "random_search": _random,
          "random_local_search": _random}
LINEAR = training.Structure(model="linear")


def knn_groups(inputs) -> np.ndarray:
  """The image of every training row: a row and its mirrored copy (`data.flip`) share one."""
  n = len(inputs.prepared.y_train)
  return np.arange(len(inputs.labels()["train"])) % n


def pool(config, inputs, split: str = "test"):
  """The labelled rows that vote for the rows of `split` in a k-NN run; None for others.

  Validation rows are labelled by the training rows; training rows too, themselves among
  them (their accuracy is the training accuracy: 1.0 at k=1, each row its own nearest
  neighbour); test rows and new rows by the training and validation rows together, every
  labelled image, as CIFAR-10 k-NN is usually reported (k and the metric are chosen by
  cross-validation on training rows, so the validation rows are free to join the pool).
  """
  if config.method != "knn":
    return None
  x_tr, y_tr = inputs.split(config.features, "train")
  if split in ("train", "val"):
    return x_tr, y_tr
  x_va, y_va = inputs.split(config.features, "val")
  return np.concatenate([x_tr, x_va]), np.concatenate([y_tr, y_va])


def structure(config, hparams) -> training.Structure:
  """The score function's structure of the selected member (sweep and random search)."""
  return sweep.structure(hparams) if config.method == "sweep" else LINEAR


def scores(config, hparams, params, x_NxD, pool=None, num_classes=None) -> np.ndarray:
  """Class scores (N, C) of the selected classifier for rows x_NxD.

  Linear and two-layer classifiers give their score function's values; k-NN gives the
  fraction of the k nearest pool rows that carry each class.
  """
  if config.method == "knn":
    x_pool, y_pool = pool
    num_classes = num_classes or int(np.max(y_pool)) + 1
    _, idx_NxK = knn.neighbours(x_pool, x_NxD, int(hparams["k"]), hparams["metric"])
    # On the host: op by op on the device, the lookup and the one-hot compiled seven
    # programs.
    labels_NxK = np.asarray(y_pool)[np.asarray(idx_NxK)]
    return np.eye(num_classes, dtype=np.float32)[labels_NxK].mean(axis=1)
  params = jax.device_put(params)    # as they are, as `predict` takes them
  dtype = jax.tree.leaves(params)[0].dtype
  x = x_NxD if getattr(x_NxD, "dtype", None) == dtype else np.asarray(x_NxD, dtype)
  return np.asarray(_scores(structure(config, hparams).model, params, x))


@functools.partial(jax.jit, static_argnums=0)
def _scores(model: str, params, x_NxD):
  """The scores of `scores`, in one program (op by op, five compiled)."""
  return chunked.map_rows(lambda c: scores_lib.apply(model, params, c), x_NxD, 8192)


def predict(config, hparams, params, x_NxD, pool=None, num_classes=None) -> np.ndarray:
  """Class indices (N,) of the selected classifier for rows x_NxD (k-NN: majority vote,
  ties to the nearest neighbour's class, as in training)."""
  if config.method == "knn":
    x_pool, y_pool = pool
    return np.asarray(knn.predict(x_pool, y_pool, x_NxD, k=int(hparams["k"]),
                                  metric=hparams["metric"], num_classes=num_classes))
  s = structure(config, hparams)
  params = jax.device_put(params)    # as they are: jnp.asarray would compile a copy
  dtype = jax.tree.leaves(params)[0].dtype
  x = x_NxD if getattr(x_NxD, "dtype", None) == dtype else np.asarray(x_NxD, dtype)
  return np.asarray(training.predict(s, params, x))


def evaluate(config, hparams, params, inputs, split: str) -> dict:
  """The selected classifier on `split` of `inputs`: {"split", "pred", "labels",
  "accuracy"} (k-NN votes with `pool(config, inputs, split)`)."""
  x, y = inputs.split(hparams.get("features", config.features), split)
  pred = predict(config, hparams, params, x, pool(config, inputs, split),
                 inputs.prepared.num_classes)
  return {"split": split, "pred": pred, "labels": y, "accuracy": metrics.accuracy(pred, y)}
