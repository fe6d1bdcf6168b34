"""Loss and validation accuracy per epoch of the best members; seeds as a mean and band."""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from lincv.plots.style import _pairs, _save, _title, num


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
  if len(group) == 1:    # its curve ends at its rung if it was pruned: say why
    pruned = " (pruned)" if group[0]["status"] == "pruned" else ""
    return f"#{group[0]['member']} {text}{pruned}"
  lost = f", {len(group) - len(kept)} diverged" if len(kept) < len(group) else ""
  pruned = sum(r["status"] == "pruned" for r in kept)   # its curve ends at its rung
  lost += f", {pruned} pruned" if pruned else ""
  many = f"mean of {len(kept)} seeds" if len(kept) > 1 else "1 seed"
  return f"{text} ({many}{lost})" if text else f"{many}{lost}"


def curves_figure(rows, history, swept_fields, *, title: str = "", top: int = 5):
  """The figure of `curves`, not saved; None when no member trained two epochs."""
  if all(len(h.get("val_accuracy", ())) < 2 for h in history):
    return None
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


def curves(rows, history, swept_fields, path, *, title: str = "", top: int = 5) -> bool:
  """Train loss and validation accuracy per epoch of the `top` settings by validation.

  Members that differ only in seed are one setting: a line for their mean and a band from
  their minimum to their maximum; the legend says how many seeds, and how many of them
  were pruned (their curves end at their rung, the mean goes on over the others).
  Diverged members are left out.
  Returns False (and draws nothing) when no member trained two epochs: a full-batch
  solver's (the closed form's, L-BFGS's) one epoch is a point, not a curve.
  """
  fig = curves_figure(rows, history, swept_fields, title=title, top=top)
  if fig is None:
    return False
  _save(fig, path, "lines: the mean over a setting's seeds; bands: their minimum to maximum; "
        "diverged members left out")
  return True


# ------------------------------------------------------------------------------ heatmap
