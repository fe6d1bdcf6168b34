"""Figures of a run (matplotlib, PNG): curves, a hyperparameter heatmap, templates, confusion.

Each figure's title starts with `describe(run, method, hparams)`, the line that says which
run, method and selected member it shows, then says what the figure shows. The same text is
stored in the PNG's "Title" metadata, and what the colours and marks mean in its
"Description" (`PIL.Image.open(path).info`). The `*_figure` functions build the figure
without saving it, for a look at its parts.
"""

import math
import os
import textwrap
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import (FuncFormatter, LogLocator, MaxNLocator,  # noqa: E402
                               NullFormatter)

from lincv import config as config_lib  # noqa: E402

WIDTH = 90                      # characters of a title line
GRID_MAX = 12                   # more values on a heatmap's axis: a scatter instead
_SHORT = {"learning_rate": "lr"}


def num(v) -> str:
  """A hyperparameter's value, short: 0.01, 3.162e-5, 1e-4, 256, svm."""
  if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)):
    return str(v)
  if isinstance(v, (int, np.integer)):
    return str(int(v))
  v = float(v)
  if v != 0 and math.isfinite(v) and not 1e-3 <= abs(v) < 1e5:
    return _power(v)
  return f"{v:.4g}"


def _power(v: float) -> str:
  mantissa, exponent = f"{v:.3e}".split("e")
  return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def ticks(values) -> list[str]:
  """`num` of each value, all in powers of ten if any needs one (0.001, 1e-4 -> 1e-3, 1e-4)."""
  texts = [num(v) for v in values]
  if any("e" in t for t in texts) and all(
      isinstance(v, (float, np.floating)) and v and math.isfinite(v) for v in values):
    return [_power(float(v)) for v in values]
  return texts


def _pairs(hparams: Mapping) -> list[str]:
  """`name=value` for each hyperparameter; a regularizer and its strength as `l2=1e-4`."""
  h = dict(hparams)
  out = []
  for k, v in h.items():
    if k == "reg_strength" and "reg" in h:
      continue
    if k == "reg" and "reg_strength" in h and v != "none":
      out.append(f"{v}={num(h['reg_strength'])}")
    else:
      out.append(f"{_SHORT.get(k, k)}={num(v)}")
  return out


def describe(run: str, method: str, hparams: Mapping) -> str:
  """The line every figure's title carries: run, method, the selected member's hyperparameters.

  E.g. "default-smoke | sweep | loss=svm, lr=0.1, l2=1e-4". Pass the hyperparameters that
  tell members apart (the swept ones); past `WIDTH` characters they go on lines of their own.
  """
  head = f"{run} | {method}"
  text = ", ".join(_pairs(hparams))
  if not text:
    return head
  if len(head) + 3 + len(text) <= WIDTH:
    return f"{head} | {text}"
  return "\n".join([head] + textwrap.wrap(text, WIDTH))


def _title(fig, title: str, shows: str) -> str:
  text = f"{title}\n{shows}" if title else shows
  fig.suptitle(text, fontsize=10)
  return text


def _save(fig, path, description: str) -> None:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=100, bbox_inches="tight",
              metadata={"Title": fig.get_suptitle(), "Description": description})
  plt.close(fig)
  os.replace(tmp, path)


# ------------------------------------------------------------------------------- curves


def seed_groups(rows, swept_fields) -> list[list[dict]]:
  """Members that differ only in seed, together, in the order of their first member."""
  fields = [f for f in swept_fields if f != "seed"]
  groups = {}
  for r in rows:
    groups.setdefault(tuple(r[f] for f in fields), []).append(r)
  return list(groups.values())


def _padded(members, history, key) -> np.ndarray:
  """(members, epochs) of `history[m][key]`, NaN after a member's last epoch."""
  n = max(len(history[r["member"]][key]) for r in members)
  out = np.full((len(members), n), np.nan)
  for i, r in enumerate(members):
    h = np.asarray(history[r["member"]][key], float)
    out[i, :len(h)] = h
  return out


def _legend(group, swept_fields) -> str:
  kept = [r for r in group if r["status"] != "diverged"]
  text = ", ".join(_pairs({f: group[0][f] for f in swept_fields if f != "seed"}))
  if len(group) == 1:
    return f"#{group[0]['member']} {text}"
  lost = f", {len(group) - len(kept)} diverged" if len(kept) < len(group) else ""
  many = f"mean of {len(kept)} seeds" if len(kept) > 1 else "1 seed"
  return f"{text} ({many}{lost})" if text else f"{many}{lost}"


def curves_figure(rows, history, swept_fields, *, title: str = "", top: int = 5):
  """The figure of `curves`, not saved."""
  groups = [g for g in seed_groups(rows, swept_fields)
            if any(r["status"] != "diverged" for r in g)]
  score = lambda g: np.mean([r["val_accuracy"] for r in g if r["status"] != "diverged"])
  groups = sorted(groups, key=lambda g: (-score(g), g[0]["member"]))[:top]
  fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.6), layout="constrained")
  losses = []
  for g in groups:
    kept = [r for r in g if r["status"] != "diverged"]
    label = _legend(g, swept_fields)
    for ax, key in ((ax_loss, "train_loss"), (ax_acc, "val_accuracy")):
      y = _padded(kept, history, key)
      epochs = np.arange(1, y.shape[1] + 1)
      mean = np.nanmean(y, axis=0)
      line, = ax.plot(epochs, mean, marker="." if len(epochs) < 20 else None, label=label)
      if len(kept) > 1:
        ax.fill_between(epochs, np.nanmin(y, axis=0), np.nanmax(y, axis=0),
                        color=line.get_color(), alpha=0.2, linewidth=0)
      if key == "train_loss":
        losses.append(y[np.isfinite(y)])
  ax_loss.set(xlabel="epoch", ylabel="mean train loss", title="training loss")
  ax_acc.set(xlabel="epoch", ylabel="validation accuracy", title="validation accuracy")
  losses = np.concatenate(losses) if losses else np.zeros(0)
  if losses.size and losses.min() > 0 and losses.max() > 10 * losses.min():
    ax_loss.set_yscale("log")
    ax_loss.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    ax_loss.yaxis.set_major_formatter(FuncFormatter(lambda v, _: num(v)))
    ax_loss.yaxis.set_minor_formatter(NullFormatter())
  for ax in (ax_loss, ax_acc):
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
  if groups:
    fig.legend(*ax_acc.get_legend_handles_labels(), loc="outside lower center",
               ncols=min(len(groups), 2), fontsize=8, frameon=False)
  n = len(seed_groups(rows, swept_fields))
  _title(fig, title, f"train loss and validation accuracy per epoch: the best {len(groups)} "
         f"of {n} settings by validation accuracy")
  return fig


def curves(rows, history, swept_fields, path, *, title: str = "", top: int = 5) -> None:
  """Train loss and validation accuracy per epoch of the `top` settings by validation.

  Members that differ only in seed are one setting: a line for their mean and a band from
  their minimum to their maximum; the legend says how many seeds. Diverged members are
  left out.
  """
  fig = curves_figure(rows, history, swept_fields, title=title, top=top)
  _save(fig, path, "lines: the mean over a setting's seeds; bands: their minimum to maximum; "
        "diverged members left out")


# ------------------------------------------------------------------------------ heatmap


def _grid(rows, x, y, xs, ys, ax):
  """Draws rows on a grid of `y` (rows i) by `x` (columns j); returns the image."""
  cells = {}
  for r in rows:
    cells.setdefault((ys.index(r[y]), xs.index(r[x])), []).append(r)
  grid = np.full((len(ys), len(xs)), np.nan)
  for (i, j), members in cells.items():
    kept = [r["val_accuracy"] for r in members if r["status"] != "diverged"]
    grid[i, j] = max(kept) if kept else np.nan
  im = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto",
                 cmap=plt.get_cmap("viridis").with_extremes(bad="0.85"))
  ax.set_xticks(range(len(xs)), ticks(xs), rotation=45 if len(xs) > 6 else 0)
  ax.set_yticks(range(len(ys)), ticks(ys))
  lo, hi = np.nanmin(grid, initial=1.0), np.nanmax(grid, initial=0.0)
  for (i, j), members in cells.items():
    status = [r["status"] for r in members]
    note = {s: status.count(s) for s in ("diverged", "pruned") if s in status}
    if note.get("diverged") == len(members):
      text, color = "diverged", "black"
    else:
      text = f"{grid[i, j]:.3f}"
      color = "white" if hi == lo or grid[i, j] < (lo + hi) / 2 else "black"
      if note.get("pruned", 0) + note.get("diverged", 0) == len(members):
        text += "\npruned"
      elif note:
        text += "\n" + ", ".join(f"{n} {s}" for s, n in note.items())
    if note:
      ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="//",
                             edgecolor=(0.5, 0.5, 0.5, 0.5), linewidth=0))
    ax.text(j, i, text, ha="center", va="center", fontsize=8, color=color)
  return im


def _scatter(rows, x, y, ax):
  """Draws one marker per member at (x, y); returns the collection of the colours."""
  ok = [r for r in rows if r["status"] != "diverged"]
  im = ax.scatter([r[x] for r in ok], [r[y] for r in ok], c=[r["val_accuracy"] for r in ok],
                  cmap="viridis", s=36, edgecolors="none")
  for status, style in (("pruned", {"marker": "o", "facecolors": "none", "edgecolors": "0.3"}),
                        ("diverged", {"marker": "x", "c": "0.3"})):
    some = [r for r in rows if r["status"] == status]
    if some:
      ax.scatter([r[x] for r in some], [r[y] for r in some], s=60, label=f"{status} "
                 f"({len(some)})", **style)
  for axis, field in (("x", x), ("y", y)):
    if all(isinstance(r[field], float) and r[field] > 0 for r in rows):
      getattr(ax, f"set_{axis}scale")("log")
  if ax.get_legend_handles_labels()[0]:
    ax.legend(fontsize=8, loc="best")
  return im


def heatmap_figure(rows, *, title: str = "", x="learning_rate", y="reg_strength"):
  """The figure of `heatmap`, not saved; None when it would show no grid."""
  xs, ys = sorted({r[x] for r in rows}), sorted({r[y] for r in rows})
  if len(xs) < 2 and len(ys) < 2:
    return None
  scatter = max(len(xs), len(ys)) > GRID_MAX
  fig, ax = plt.subplots(layout="constrained", figsize=(7, 5) if scatter else (
      max(1.1 * len(xs) + 2.5, 6.5), 0.6 * len(ys) + 2.8))
  im = _scatter(rows, x, y, ax) if scatter else _grid(rows, x, y, xs, ys, ax)
  ax.set(xlabel=x, ylabel=y)
  others = [f for f in config_lib.SWEEPABLE
            if f not in (x, y) and len({str(r.get(f)) for r in rows}) > 1]
  what = "best validation accuracy over " + ", ".join(others) if others and not scatter else (
      "validation accuracy")
  fig.colorbar(im, ax=ax, label=textwrap.fill(what, 40))
  each = ("one marker per member" if scatter else
          f"each cell: the best over {', '.join(others)}" if others else "")
  _title(fig, title, f"validation accuracy by {x} and {y}" + (f" ({each})" if each else ""))
  return fig


def heatmap(rows, path, *, title: str = "", x="learning_rate", y="reg_strength") -> bool:
  """Validation accuracy over a grid of two fields, the best over the other swept fields.

  Diverged members are left out; a cell whose members all diverged is grey and says
  "diverged"; a cell with pruned or diverged members is hatched and says how many, or
  "pruned" when every member that did not diverge was pruned. Past `GRID_MAX` values on an
  axis (a random search), one marker per member instead: circled if pruned, x if diverged.
  Returns False (and draws nothing) when neither field has two values.
  """
  fig = heatmap_figure(rows, title=title, x=x, y=y)
  if fig is None:
    return False
  _save(fig, path, "colour and number: the best validation accuracy of the members that did "
        "not diverge; grey: every member diverged; hatched: some members were pruned "
        "(stopped by halving) or diverged")
  return True


# ---------------------------------------------------------------------------- templates


def templates_figure(w_DxC, image_shape, class_names, *, title: str = ""):
  """The figure of `templates`, not saved."""
  h, w, c = image_shape
  w_DxC = np.asarray(w_DxC)[: h * w * c]
  n = len(class_names)
  cols = min(n, 10)
  rows = math.ceil(n / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(max(1.3 * cols, 6), 1.5 * rows + 0.9),
                           squeeze=False, layout="constrained")
  for k, ax in enumerate(axes.flat):
    ax.axis("off")
    if k >= n:
      continue
    t = w_DxC[:, k].reshape(h, w, c)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-12)
    ax.imshow(t[..., 0] if c == 1 else t, cmap="gray" if c == 1 else None,
              interpolation="nearest")
    ax.set_title(class_names[k], fontsize=8)
  _title(fig, title, "class templates: each class's weights as an image, rescaled on its "
         "own (bright: high weight)")
  return fig


def templates(w_DxC, image_shape, class_names, path, *, title: str = "") -> None:
  """Each class's weight column shown as an image: the linear classifier's "templates".

  Rows of W beyond H*W*C (a bias-trick row) are dropped; each template is rescaled to the
  full 0-255 range on its own.
  """
  fig = templates_figure(w_DxC, image_shape, class_names, title=title)
  _save(fig, path, "each template rescaled on its own from its lowest weight (black) to "
        "its highest (white)")


# ---------------------------------------------------------------------------- confusion


def confusion_figure(matrix_CxC, class_names, *, title: str = "", split: str = "test"):
  """The figure of `confusion`, not saved."""
  m = np.asarray(matrix_CxC, float)
  fraction = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
  n = len(class_names)
  side = min(max(0.6 * n + 2.5, 5.5), 14)
  fig, ax = plt.subplots(figsize=(side + 1, side), layout="constrained")
  im = ax.imshow(fraction, cmap="Blues", vmin=0, vmax=1)
  size = 8 if n <= 30 else 5
  wide = n > 5 and max(len(str(c)) for c in class_names) > 2
  ax.set_xticks(range(n), class_names, rotation=60 if wide else 0, fontsize=size)
  ax.set_yticks(range(n), class_names, fontsize=size)
  ax.set(xlabel="predicted class", ylabel="true class")
  if n <= 25:
    for i in range(n):
      for j in range(n):
        text = f"{int(m[i, j])}" if n > 12 else f"{int(m[i, j])}\n{100 * fraction[i, j]:.0f}%"
        ax.text(j, i, text, ha="center", va="center", fontsize=9 if n <= 6 else 7,
                color="white" if fraction[i, j] > 0.5 else "black")
  fig.colorbar(im, ax=ax, label="fraction of the true class (row)", shrink=0.8)
  shown = ("; numbers: count and row percentage" if n <= 12 else
           "; numbers: count" if n <= 25 else "")
  _title(fig, title, f"confusion matrix on {split} ({int(m.sum())} examples)\n"
         f"colour: fraction of the true class{shown}")
  return fig


def confusion(matrix_CxC, class_names, path, *, title: str = "", split: str = "test") -> None:
  """The confusion matrix: row i is true class i; colour is the row-normalised fraction,
  each cell also prints its count (and, up to 12 classes, its row percentage)."""
  fig = confusion_figure(matrix_CxC, class_names, title=title, split=split)
  _save(fig, path, "colour: the fraction of the true class (row) predicted as each class; "
        "numbers: the count, and the same fraction as a percentage")
