"""What every figure shares: number formats, the title line, saving with metadata."""

import math
import os
import textwrap
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np

WIDTH = 90                      # characters of a title line
TITLE_POINTS = 10               # the title's font size
POINTS_PER_CHAR = 6.0           # the width of one of its characters, at most, in points
                                # (5 for prose, 5.7 for a run name of "_"s and lowercase)
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


def decimals(values, least: int = 3, most: int = 6) -> int:
  """The fewest decimals, from `least` up to `most`, that print the distinct finite `values`
  apart: two cells that read alike hold the same accuracy (0.4012 and 0.4008 of 5,000
  validation rows both read 0.401). Values within 1e-9 are one value (float noise)."""
  distinct = {round(float(v), 9) for v in values if math.isfinite(v)}
  for d in range(least, most):
    if len({f"{v:.{d}f}" for v in distinct}) == len(distinct):
      return d
  return most


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
  tell members apart (the swept ones); past `WIDTH` characters they go on lines of their own,
  and a run name longer than that is broken over lines too (a figure clipped it at both
  edges).
  """
  head = f"{run} | {method}"
  text = ", ".join(_pairs(hparams))
  if text and len(head) + 3 + len(text) <= WIDTH:
    return f"{head} | {text}"
  return "\n".join(textwrap.wrap(head, WIDTH) + textwrap.wrap(text, WIDTH))


def _title(fig, title: str, shows: str) -> str:
  """Sets the figure's title: `title`, then what it `shows`, each line broken where it would
  pass the figure's edges (a 3-class templates figure is 6 inches wide, where its own
  93-character line needed 6.4), at `POINTS_PER_CHAR` of its width per character."""
  text = f"{title}\n{shows}" if title else shows
  fit = int(fig.get_figwidth() * 72 / POINTS_PER_CHAR)
  text = "\n".join(part for line in text.split("\n")
                   for part in (textwrap.wrap(line, fit) or [line]))
  fig.suptitle(text, fontsize=TITLE_POINTS)
  return text


def _save(fig, path, description: str) -> None:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = path + ".tmp.png"
  # Every figure is laid out by matplotlib's constrained layout, which keeps its text
  # inside it: a tight bounding box would draw each figure twice to find its edges.
  fig.savefig(tmp, dpi=100,
              metadata={"Title": fig.get_suptitle(), "Description": description})
  plt.close(fig)
  os.replace(tmp, path)


# ------------------------------------------------------------------------------- curves
