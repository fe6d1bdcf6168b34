"""Figures of a run (matplotlib, PNG): curves, a hyperparameter heatmap, templates, confusion."""

import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=100, bbox_inches="tight")
  plt.close(fig)
  os.replace(tmp, path)


def _label(row: dict, fields) -> str:
  parts = [f"#{row['member']}"]
  for f in fields:
    v = row[f]
    parts.append(f"{f}={v:.3g}" if isinstance(v, float) else f"{f}={v}")
  return " ".join(parts)


def curves(rows, history, swept_fields, path, top: int = 5) -> None:
  """Train loss and validation accuracy per epoch of the `top` members by validation."""
  best = sorted((r for r in rows if r["status"] != "diverged"),
                key=lambda r: (-r["val_accuracy"], r["member"]))[:top]
  fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
  for r in best:
    h = history[r["member"]]
    epochs = np.arange(1, len(h["train_loss"]) + 1)
    label = _label(r, swept_fields)
    ax_loss.plot(epochs, h["train_loss"], label=label)
    ax_acc.plot(epochs, h["val_accuracy"], label=label)
  ax_loss.set(xlabel="epoch", ylabel="mean train loss", title="training loss")
  ax_acc.set(xlabel="epoch", ylabel="validation accuracy", title="validation accuracy")
  ax_loss.set_yscale("log")
  ax_acc.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
  _save(fig, path)


def heatmap(rows, path, x="learning_rate", y="reg_strength") -> bool:
  """Best validation accuracy over a grid of two fields (max over the others).

  Returns False (and draws nothing) when fewer than two values of either field were run.
  """
  xs = sorted({r[x] for r in rows})
  ys = sorted({r[y] for r in rows})
  if len(xs) < 2 and len(ys) < 2:
    return False
  grid = np.full((len(ys), len(xs)), np.nan)
  for r in rows:
    i, j = ys.index(r[y]), xs.index(r[x])
    acc = r["val_accuracy"] if r["status"] != "diverged" else 0.0
    grid[i, j] = acc if np.isnan(grid[i, j]) else max(grid[i, j], acc)
  fig, ax = plt.subplots(figsize=(1.2 * len(xs) + 3, 0.6 * len(ys) + 2.5))
  im = ax.imshow(grid, origin="lower", cmap="viridis", aspect="auto")
  ax.set_xticks(range(len(xs)), [f"{v:.2g}" for v in xs], rotation=45)
  ax.set_yticks(range(len(ys)), [f"{v:.2g}" for v in ys])
  ax.set(xlabel=x, ylabel=y, title="validation accuracy (best over other fields)")
  for i in range(len(ys)):
    for j in range(len(xs)):
      if not np.isnan(grid[i, j]):
        ax.text(j, i, f"{grid[i, j]:.3f}", ha="center", va="center", fontsize=7,
                color="white" if grid[i, j] < np.nanmean(grid) else "black")
  fig.colorbar(im, ax=ax)
  _save(fig, path)
  return True


def templates(w_DxC, image_shape, class_names, path) -> None:
  """Each class's weight column shown as an image: the linear classifier's "templates".

  Rows of W beyond H*W*C (a bias-trick row) are dropped; each template is rescaled to the
  full 0-255 range on its own.
  """
  h, w, c = image_shape
  w_DxC = np.asarray(w_DxC)[: h * w * c]
  n = len(class_names)
  cols = min(n, 10)
  rows = math.ceil(n / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.5 * rows), squeeze=False)
  for k, ax in enumerate(axes.flat):
    ax.axis("off")
    if k >= n:
      continue
    t = w_DxC[:, k].reshape(h, w, c)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-12)
    ax.imshow(t[..., 0] if c == 1 else t, cmap="gray" if c == 1 else None,
              interpolation="nearest")
    ax.set_title(class_names[k], fontsize=8)
  _save(fig, path)


def confusion(matrix_CxC, class_names, path, title="confusion matrix (test)") -> None:
  """Row-normalised confusion matrix with counts."""
  m = np.asarray(matrix_CxC, float)
  norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
  n = len(class_names)
  fig, ax = plt.subplots(figsize=(0.6 * n + 2.5, 0.6 * n + 2))
  im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
  ax.set_xticks(range(n), class_names, rotation=60, fontsize=8)
  ax.set_yticks(range(n), class_names, fontsize=8)
  ax.set(xlabel="predicted", ylabel="true", title=title)
  if n <= 20:
    for i in range(n):
      for j in range(n):
        ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=6,
                color="white" if norm[i, j] > 0.5 else "black")
  fig.colorbar(im, ax=ax)
  _save(fig, path)
