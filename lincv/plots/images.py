"""Figures of the classifier itself: class templates of W, the confusion matrix."""

import math

import matplotlib.pyplot as plt
import numpy as np

from lincv.plots.style import _save, _title


def templates_figure(w_DxC, image_shape, class_names, *, title: str = ""):
  """The figure of `templates`, not saved: each row of up to 10 templates is one image
  (a mosaic with a white gap between them), its class names as tick labels, so the figure
  has one axes per row rather than one per class (matplotlib draws an axes slowly)."""
  h, w, c = image_shape
  w_DxC = np.asarray(w_DxC)[: h * w * c]
  n = len(class_names)
  cols = min(n, 10)
  rows = math.ceil(n / cols)
  gap = max(1, round(w / 8))
  fig, axes = plt.subplots(rows, 1, figsize=(max(1.3 * cols, 6), 1.5 * rows + 0.9),
                           squeeze=False, layout="constrained")
  for r, ax in enumerate(axes[:, 0]):
    mosaic = np.ones((h, cols * (w + gap) - gap, c))     # white between the tiles
    names = class_names[r * cols:(r + 1) * cols]
    for q in range(len(names)):
      t = w_DxC[:, r * cols + q].reshape(h, w, c)
      mosaic[:, q * (w + gap):q * (w + gap) + w] = (
          (t - t.min()) / max(float(t.max() - t.min()), 1e-12))
    ax.imshow(mosaic[..., 0] if c == 1 else mosaic, cmap="gray" if c == 1 else None,
              vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([q * (w + gap) + (w - 1) / 2 for q in range(len(names))], names,
                  fontsize=8)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    ax.set_yticks([])
    ax.spines[:].set_visible(False)
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
    for i, j in zip(*np.nonzero(m)):      # an empty cell stays blank: no text to draw
      text = f"{int(m[i, j])}" if n > 12 else f"{int(m[i, j])}\n{percent(fraction[i, j])}"
      ax.text(j, i, text, ha="center", va="center", fontsize=9 if n <= 6 else 7,
              color="white" if fraction[i, j] > 0.5 else "black")
  fig.colorbar(im, ax=ax, label="fraction of the true class (row)", shrink=0.8)
  shown = ("; numbers: count and row percentage (blank: none)" if n <= 12 else
           "; numbers: count (blank: none)" if n <= 25 else "")
  _title(fig, title, f"confusion matrix on {split} ({int(m.sum())} examples)\n"
         f"colour: fraction of the true class{shown}")
  return fig


def percent(fraction: float) -> str:
  """A fraction in [0, 1] as a whole percentage, but "<1%" and ">99%" where rounding would
  say 0% of a cell that has examples, or 100% of a class that has errors (999 of 1000)."""
  text = f"{100 * fraction:.0f}%"
  if text == "0%" and fraction > 0:
    return "<1%"
  if text == "100%" and fraction < 1:
    return ">99%"
  return text


def confusion(matrix_CxC, class_names, path, *, title: str = "", split: str = "test") -> None:
  """The confusion matrix: row i is true class i; colour is the row-normalised fraction,
  each cell also prints its count (and, up to 12 classes, its row percentage), up to 25
  classes; a cell with no examples is left blank."""
  fig = confusion_figure(matrix_CxC, class_names, title=title, split=split)
  _save(fig, path, "colour: the fraction of the true class (row) predicted as each class; "
        "numbers: the count, and the same fraction as a percentage; blank: none")
