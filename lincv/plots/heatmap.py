"""Validation accuracy over the swept hyperparameters, diverged and pruned members marked:
a grid over two of them, or a line over the one that varies (a regularization path)."""

import textwrap

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from lincv import config as config_lib
from lincv.plots.style import _save, _title, decimals, ticks

GRID_MAX = 12                   # more values on a heatmap's axis: a scatter instead
PREFERRED = ("learning_rate", "reg_strength")   # the axes, where both vary


def axes(rows) -> tuple[str, ...]:
  """The numeric fields that vary over `rows`, the seed apart, `PREFERRED` first.

  The heatmap plots the first two; where only one varies (a probe's path over
  reg_strength, a full-batch solver having no learning rate), validation accuracy over it.
  """
  varying = [f for f in config_lib.NUMERIC if f != "seed" and len({r.get(f) for r in rows}) > 1]
  return tuple(f for f in PREFERRED if f in varying) + tuple(
      f for f in varying if f not in PREFERRED)


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
  places = decimals(grid.ravel())
  for (i, j), members in cells.items():
    status = [r["status"] for r in members]
    note = {s: status.count(s) for s in ("diverged", "pruned") if s in status}
    if note.get("diverged") == len(members):
      text, color = "diverged", "black"
    else:
      text = f"{grid[i, j]:.{places}f}"
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


def _others(rows, *shown) -> list[str]:
  """The swept fields, other than `shown`, that vary over `rows`."""
  return [f for f in config_lib.SWEEPABLE
          if f not in shown and len({str(r.get(f)) for r in rows}) > 1]


def _path(rows, x, ax):
  """Draws validation accuracy over `x`: a line for each setting of the other fields that
  vary (the seed apart), the best over seeds at each value; returns the other fields."""
  others = [f for f in _others(rows, x) if f != "seed"]
  lines = {}
  for r in rows:
    lines.setdefault(tuple(str(r.get(f)) for f in others), []).append(r)
  for setting, members in sorted(lines.items()):
    best = {}
    for r in members:
      if r["status"] != "diverged" and np.isfinite(r["val_accuracy"]):
        best[r[x]] = max(best.get(r[x], -np.inf), r["val_accuracy"])
    label = ", ".join(f"{f}={v}" for f, v in zip(others, setting)) or None
    xs = sorted(best)
    ax.plot(xs, [best[v] for v in xs], marker="o", markersize=4, label=label)
  pruned = [r for r in rows if r["status"] == "pruned"]
  if pruned:
    ax.scatter([r[x] for r in pruned], [r["val_accuracy"] for r in pruned], s=60,
               facecolors="none", edgecolors="0.3", label=f"pruned ({len(pruned)})")
  diverged = [r for r in rows if r["status"] == "diverged"]
  if diverged:   # no accuracy to show: marked on the axis at their value of x
    ax.scatter([r[x] for r in diverged], [0.0] * len(diverged), marker="x", c="0.3",
               clip_on=False, transform=ax.get_xaxis_transform(),
               label=f"diverged ({len(diverged)})")
  if all(isinstance(r[x], float) and r[x] > 0 for r in rows):
    ax.set_xscale("log")
  ax.set(xlabel=x, ylabel="validation accuracy")
  if ax.get_legend_handles_labels()[0]:
    ax.legend(fontsize=8, loc="best")
  return others


def heatmap_figure(rows, *, title: str = "", x=None, y=None):
  """The figure of `heatmap`, not saved; None when no field varies.

  `x` and `y` default to `axes(rows)`; where one field alone varies, the figure is
  validation accuracy over it.
  """
  if x is None and y is None:
    fields = axes(rows)
    if not fields:
      return None
    if len(fields) == 1:
      fig, ax = plt.subplots(layout="constrained", figsize=(7, 4.5))
      over = _others(rows, fields[0], *_path(rows, fields[0], ax))   # the seed, if any
      best = f" (the best over {', '.join(over)})" if over else ""
      _title(fig, title, f"validation accuracy by {fields[0]}{best}")
      return fig
    x, y = fields[:2]
  elif x is None or y is None:
    raise ValueError(f"give both x and y, or neither (got x={x!r}, y={y!r})")
  xs, ys = sorted({r[x] for r in rows}), sorted({r[y] for r in rows})
  if len(xs) < 2 and len(ys) < 2:
    return None
  # A random search's draws fill a grid of their distinct values sparsely (10 draws: 10
  # of 100 cells, the rest grey): one marker per member instead.
  filled = len({(r[x], r[y]) for r in rows})
  scatter = max(len(xs), len(ys)) > GRID_MAX or filled < len(xs) * len(ys) / 2
  fig, ax = plt.subplots(layout="constrained", figsize=(7, 5) if scatter else (
      max(1.1 * len(xs) + 2.5, 6.5), 0.6 * len(ys) + 2.8))
  im = _scatter(rows, x, y, ax) if scatter else _grid(rows, x, y, xs, ys, ax)
  ax.set(xlabel=x, ylabel=y)
  others = _others(rows, x, y)
  what = "best validation accuracy over " + ", ".join(others) if others and not scatter else (
      "validation accuracy")
  fig.colorbar(im, ax=ax, label=textwrap.fill(what, 40))
  each = ("one marker per member" if scatter else
          f"each cell: the best over {', '.join(others)}" if others else "")
  _title(fig, title, f"validation accuracy by {x} and {y}" + (f" ({each})" if each else ""))
  return fig


def heatmap(rows, path, *, title: str = "", x=None, y=None) -> bool:
  """Validation accuracy over a grid of two fields, the best over the other swept fields.

  The fields are `x` and `y`, by default the first two of `axes(rows)`: learning_rate and
  reg_strength where both vary. Where one numeric field alone varies (a probe's path of
  strengths), validation accuracy over it instead: one line per setting of the other
  fields that vary, the best over seeds, pruned members circled, diverged ones an x on
  the axis.

  A cell's number has 3 decimals, or as many more (up to 6) as tell its accuracy apart
  from every other cell's. Diverged members are left out; a cell whose members all
  diverged is grey and says "diverged"; a cell with pruned or diverged members is hatched
  and says how many, or "pruned" when every member that did not diverge was pruned. Past
  `GRID_MAX` values on an axis, or where the members fill less than half of the grid's
  cells (a random search), one marker per member instead: circled if pruned, x if
  diverged.
  Returns False (and draws nothing) when no field has two values.
  """
  fig = heatmap_figure(rows, title=title, x=x, y=y)
  if fig is None:
    return False
  if x is None and y is None and len(axes(rows)) == 1:
    _save(fig, path, "lines: the best validation accuracy of the members that did not "
          "diverge; circled: pruned (stopped by halving); x on the axis: diverged")
  else:
    _save(fig, path, "colour and number: the best validation accuracy of the members that "
          "did not diverge; grey: every member diverged (the cell says so), or no member "
          "there; hatched: some members were pruned (stopped by halving) or diverged")
  return True


# ---------------------------------------------------------------------------- templates
