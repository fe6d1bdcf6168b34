"""Tests for lincv.plots: each figure is written and says which run, method and member it
shows (PNG metadata), heatmap cells that diverged or were pruned are marked, the confusion
matrix's colours and numbers agree, epochs are integers, seeds are one line with a band."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from PIL import Image

from lincv import plots

SWEPT = ("loss", "learning_rate", "reg_strength", "seed")
TITLE = plots.describe("digits-smoke", "sweep",
                       {"loss": "svm", "learning_rate": 0.1, "reg": "l2", "reg_strength": 1e-4})


def _rows():
  """2 losses x 2 learning rates x 2 strengths x 2 seeds; the largest learning rate diverges
  with svm, the smallest strength with learning rate 0.01 is pruned."""
  rows, history = [], []
  for loss in ("softmax", "svm"):
    for lr in (0.01, 1.0):
      for reg in (1e-4, 1e-3):
        for seed in (0, 1):
          m = len(rows)
          status = ("diverged" if lr == 1.0 and loss == "svm" else
                    "pruned" if lr == 0.01 and reg == 1e-4 else "ok")
          n = 2 if status == "pruned" else 4 + seed      # seeds may train unequal epochs
          acc = 0.5 + 0.01 * m + 0.05 * np.arange(n)
          rows.append(dict(member=m, group=0, loss=loss, learning_rate=lr, reg_strength=reg,
                           seed=seed, status=status, val_accuracy=float(acc[-1])))
          history.append({"train_loss": list(2.0 / (1 + np.arange(n))),
                          "val_accuracy": list(acc)})
  return rows, history


def _title_of(path):
  return Image.open(path).info["Title"]


def test_describe_names_run_method_and_hyperparameters_compactly():
  assert TITLE == "digits-smoke | sweep | loss=svm, lr=0.1, l2=1e-4"
  long = plots.describe("run", "random_search", {f"field_{i}": 3.14159e-5 * i for i in range(9)})
  lines = long.split("\n")
  assert lines[0] == "run | random_search" and all(len(l) <= plots.WIDTH for l in lines)
  assert "field_1=3.142e-5" in long
  assert [plots.num(v) for v in (0.01, 2.5e-3, 1e-4, 256, 0.5, "svm")] == [
      "0.01", "0.0025", "1e-4", "256", "0.5", "svm"]
  assert plots.ticks([1e-5, 1e-4, 1e-3]) == ["1e-5", "1e-4", "1e-3"]


def test_each_figure_is_written_with_the_run_method_and_member_in_its_title(tmp_path):
  rows, history = _rows()
  paths = {n: str(tmp_path / "plots" / f"{n}.png")
           for n in ("curves", "heatmap", "templates", "confusion")}
  plots.curves(rows, history, SWEPT, paths["curves"], title=TITLE)
  assert plots.heatmap(rows, paths["heatmap"], title=TITLE)
  plots.templates(np.random.default_rng(0).normal(size=(4 * 4 * 3 + 1, 3)), (4, 4, 3),
                  ("cat", "dog", "ship"), paths["templates"], title=TITLE)
  plots.confusion(np.array([[5, 1], [2, 7]]), ("a", "b"), paths["confusion"], title=TITLE,
                  split="val")
  for name, path in paths.items():
    info = Image.open(path).info
    assert info["Title"].startswith(TITLE + "\n"), name
    assert "digits-smoke" in info["Title"] and "sweep" in info["Title"], name
    assert "lr=0.1" in info["Title"] and info["Description"], name
  assert "confusion matrix on val (15 examples)" in _title_of(paths["confusion"])
  assert not list((tmp_path / "plots").glob("*.tmp.png"))


def _cell_texts(fig):
  ax = fig.axes[0]
  return {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
          for t in ax.texts}


def test_heatmap_marks_diverged_and_pruned_cells_and_labels_its_colour_bar():
  rows, _ = _rows()
  svm_only = [r for r in rows if r["loss"] == "svm"]
  fig = plots.heatmap_figure(svm_only, title=TITLE)
  texts = _cell_texts(fig)    # (row i = reg_strength index, column j = learning_rate index)
  assert texts[(0, 1)] == "diverged" and texts[(1, 1)] == "diverged"
  best_pruned = max(r["val_accuracy"] for r in svm_only
                    if r["learning_rate"] == 0.01 and r["reg_strength"] == 1e-4)
  assert texts[(0, 0)] == f"{best_pruned:.3f}\npruned"
  assert texts[(1, 0)] == f"{max(r['val_accuracy'] for r in svm_only[2:4]):.3f}"
  assert "0.000" not in "".join(texts.values())
  image = fig.axes[0].images[0].get_array()
  assert image.mask[:, 1].all() and not image.mask[:, 0].any()   # diverged cells: no colour
  assert len(fig.axes[0].patches) == 3                           # hatched: 2 diverged, 1 pruned
  assert fig.axes[1].get_ylabel() == "best validation accuracy over seed"
  plt.close(fig)

  fig = plots.heatmap_figure(rows, title=TITLE)        # svm diverged, softmax did not
  assert _cell_texts(fig)[(0, 1)].endswith("\n2 diverged")
  assert fig.axes[1].get_ylabel() == "best validation accuracy over loss, seed"
  plt.close(fig)
  assert plots.heatmap_figure([rows[0], rows[1]]) is None       # one value of each field


@pytest.mark.parametrize("n", [40, 8])   # past GRID_MAX values, and 8 of 64 cells
def test_heatmap_of_a_random_search_is_one_marker_per_member(n):
  rng = np.random.default_rng(0)
  rows = [dict(member=m, loss="svm", learning_rate=float(10 ** rng.uniform(-4, 0)),
               reg_strength=float(10 ** rng.uniform(-6, -2)), seed=0, val_accuracy=0.5,
               status=("diverged", "pruned", "ok", "ok")[m % 4]) for m in range(n)]
  fig = plots.heatmap_figure(rows)
  ax = fig.axes[0]
  assert ax.get_xscale() == "log" and not ax.images       # no grid of mostly grey cells
  labels = ax.get_legend_handles_labels()[1]
  assert labels == [f"pruned ({n // 4})", f"diverged ({n // 4})"]
  assert len(ax.collections[0].get_offsets()) == n - n // 4     # coloured: not diverged
  plt.close(fig)


@pytest.mark.parametrize("n", [3, 15])
def test_confusion_colours_are_the_row_fractions_and_the_numbers_the_counts(n):
  m = np.random.default_rng(n).integers(0, 20, (n, n))
  m[1] = 0                                                       # a class with no examples
  m[0, 2] = 0                                                    # an empty cell
  fig = plots.confusion_figure(m, [f"c{i}" for i in range(n)], title=TITLE)
  ax = fig.axes[0]
  rows = np.maximum(m.sum(axis=1, keepdims=True), 1)
  np.testing.assert_allclose(ax.images[0].get_array(), m / rows)
  texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
           for t in ax.texts}
  for (i, j), text in texts.items():
    count = text.split("\n")[0]
    assert int(count) == m[i, j]
    if n <= 12:
      assert text.split("\n")[1] == f"{100 * m[i, j] / rows[i, 0]:.0f}%"
  assert set(texts) == set(zip(*np.nonzero(m)))                  # empty cells are blank
  assert fig.axes[1].get_ylabel() == "fraction of the true class (row)"
  assert ax.images[0].get_clim() == (0, 1)
  plt.close(fig)


@pytest.mark.parametrize("n, shape", [(3, (4, 4, 3)), (10, (8, 8, 1)), (12, (5, 6, 3))])
def test_templates_show_each_class_weights_rescaled_under_its_name(n, shape):
  h, w, c = shape
  w_DxC = np.random.default_rng(n).normal(size=(h * w * c + 1, n))  # + a bias-trick row
  names = [f"class{k}" for k in range(n)]
  fig = plots.templates_figure(w_DxC, shape, names, title=TITLE)
  tiles, labels = [], []
  for ax in fig.axes:                           # one axes per row of up to 10 templates
    image = np.asarray(ax.images[0].get_array()).reshape(h, -1, c)
    for x, label in zip(ax.get_xticks(), ax.get_xticklabels()):
      left = round(x - (w - 1) / 2)
      tiles.append(image[:, left:left + w])
      labels.append(label.get_text())
  assert labels == names and len(fig.axes) == -(-n // 10)
  for k in range(n):
    t = w_DxC[:h * w * c, k].reshape(h, w, c)
    np.testing.assert_allclose(tiles[k], (t - t.min()) / (t.max() - t.min()), atol=1e-12)
  plt.close(fig)


def test_curves_have_integer_epoch_ticks_and_one_line_with_a_band_per_seed_pair():
  rows, history = _rows()
  fig = plots.curves_figure(rows, history, SWEPT, title=TITLE, top=10)
  ax_loss, ax_acc = fig.axes[:2]
  for ax in (ax_loss, ax_acc):
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
  # 8 settings (members that differ only in seed), 2 of them entirely diverged
  labels = [l.get_label() for l in ax_acc.get_lines()]
  assert len(labels) == 6 and len(set(labels)) == 6
  assert all(l.endswith("(mean of 2 seeds)") or l.endswith("(mean of 2 seeds, 2 pruned)")
             for l in labels) and not any("seed=" in l for l in labels)
  assert all(("lr=0.01, reg_strength=1e-4" in l) == l.endswith("2 pruned)") for l in labels)
  assert any(l.endswith("2 pruned)") for l in labels)
  bands = [c for c in ax_acc.collections if isinstance(c, PolyCollection)]
  assert len(bands) == 6
  # the first softmax setting: seeds trained 4 and 5 epochs; the mean over the seeds
  # that trained each epoch, the band from their lowest to their highest
  line = next(l for l in ax_acc.get_lines()
              if l.get_label() == "loss=softmax, lr=0.01, reg_strength=0.001 (mean of 2 seeds)")
  mean = line.get_ydata()
  a, b = history[2]["val_accuracy"], history[3]["val_accuracy"]
  np.testing.assert_allclose(mean, [(x + y) / 2 for x, y in zip(a, b)] + [b[-1]])
  assert fig.legends and fig.legends[0].get_texts()[0].get_text() == labels[0]
  plt.close(fig)


def test_curves_label_one_member_by_its_number_and_a_diverged_seed():
  rows, history = _rows()
  rows[2]["status"] = "diverged"          # softmax, lr 0.01, strength 1e-3, seed 0
  fig = plots.curves_figure(rows, history, SWEPT, top=10)
  labels = [l.get_label() for l in fig.axes[1].get_lines()]
  assert "loss=softmax, lr=0.01, reg_strength=0.001 (1 seed, 1 diverged)" in labels
  plt.close(fig)
  rows[3]["status"] = "pruned"            # its seed 1: the mean is of it alone after its rung
  fig = plots.curves_figure(rows, history, SWEPT, top=10)
  labels = [l.get_label() for l in fig.axes[1].get_lines()]
  assert "loss=softmax, lr=0.01, reg_strength=0.001 (1 seed, 1 diverged, 1 pruned)" in labels
  plt.close(fig)
  fig = plots.curves_figure([dict(rows[0], status="ok")], history[:1], ("loss",))
  assert [l.get_label() for l in fig.axes[1].get_lines()] == ["#0 loss=softmax"]
  plt.close(fig)
  # a member alone whose curve ends at its rung says why, as a seed group does
  fig = plots.curves_figure([dict(rows[0], status="pruned")], history[:1], ("loss",))
  assert [l.get_label() for l in fig.axes[1].get_lines()] == ["#0 loss=softmax (pruned)"]
  plt.close(fig)


def _path_rows():
  """A probe's path: 2 losses x 5 strengths x 2 seeds at one learning rate (a full-batch
  solver has none to sweep); svm at the largest strength diverged, one member pruned."""
  rows = []
  for loss in ("softmax", "svm"):
    for i, reg in enumerate((1e-6, 1e-4, 1e-2, 1.0, 100.0)):
      for seed in (0, 1):
        status = ("diverged" if loss == "svm" and reg == 100.0 else
                  "pruned" if loss == "softmax" and reg == 1e-6 and seed == 1 else "ok")
        rows.append(dict(member=len(rows), loss=loss, learning_rate=1e-3, reg_strength=reg,
                         seed=seed, status=status,
                         val_accuracy=float("nan") if status == "diverged" else
                         0.5 + 0.1 * i - 0.2 * (loss == "svm") + 0.01 * seed))
  return rows


def test_heatmap_of_one_varying_field_is_validation_accuracy_over_it(tmp_path):
  rows = _path_rows()
  assert plots.axes(rows) == ("reg_strength",)           # the seed is not an axis
  fig = plots.heatmap_figure(rows, title=TITLE)
  ax = fig.axes[0]
  assert not ax.images and ax.get_xscale() == "log"
  assert ax.get_xlabel() == "reg_strength" and ax.get_ylabel() == "validation accuracy"
  lines = {l.get_label(): l for l in ax.get_lines()}
  assert sorted(lines) == ["loss=softmax", "loss=svm"]
  for loss, line in lines.items():                       # the best over seeds at each x
    kept = [r for r in rows if f"loss={r['loss']}" == loss and r["status"] != "diverged"]
    xs = sorted({r["reg_strength"] for r in kept})
    np.testing.assert_allclose(line.get_xdata(), xs)
    np.testing.assert_allclose(line.get_ydata(), [
        max(r["val_accuracy"] for r in kept if r["reg_strength"] == x) for x in xs])
  labels = ax.get_legend_handles_labels()[1]
  assert "pruned (1)" in labels and "diverged (2)" in labels
  assert "validation accuracy by reg_strength (the best over seed)" in fig.get_suptitle()
  plt.close(fig)
  path = str(tmp_path / "heatmap.png")
  assert plots.heatmap(rows, path, title=TITLE)
  assert "lines:" in Image.open(path).info["Description"]


def test_heatmap_axes_are_learning_rate_and_strength_where_both_vary():
  rows, _ = _rows()
  assert plots.axes(rows) == ("learning_rate", "reg_strength")
  margins = [dict(r, margin=float(1 + r["member"] % 3)) for r in rows]
  assert plots.axes(margins) == ("learning_rate", "reg_strength", "margin")
  fixed_lr = [dict(r, learning_rate=0.1) for r in margins]
  fig = plots.heatmap_figure(fixed_lr)                   # no learning-rate axis of one value
  assert fig.axes[0].get_xlabel() == "reg_strength" and fig.axes[0].get_ylabel() == "margin"
  plt.close(fig)
  with pytest.raises(ValueError, match="give both x and y"):
    plots.heatmap_figure(rows, x="learning_rate")


def test_no_curves_of_members_that_trained_one_epoch_each(tmp_path):
  rows = _path_rows()            # a full-batch solver's: one epoch each, a point not a curve
  history = [{"train_loss": [0.5], "val_accuracy": [r["val_accuracy"]]} for r in rows]
  assert plots.curves_figure(rows, history, ("loss", "reg_strength", "seed")) is None
  path = tmp_path / "curves.png"
  assert not plots.curves(rows, history, ("loss", "reg_strength", "seed"), str(path))
  assert not path.exists()
  history[3] = {"train_loss": [0.5, 0.4], "val_accuracy": [0.5, 0.6]}
  assert plots.curves(rows, history, ("loss", "reg_strength", "seed"), str(path))


def test_a_long_run_name_is_broken_over_lines_that_fit_the_figure():
  # A run name past WIDTH was one line: the title was cut off at both edges of the figure.
  name = "a_long_config_name_" * 8 + "smoke-20260101-000000"
  title = plots.describe(name, "sweep", {"learning_rate": 0.1})
  lines = title.split("\n")
  assert all(len(line) <= plots.WIDTH for line in lines) and lines[-1] == "lr=0.1"
  assert name in "".join(lines) and "sweep" in title
  fig = plots.confusion_figure(np.array([[5, 1], [2, 7]]), ("a", "b"), title=title)
  fig.canvas.draw()
  box = fig._suptitle.get_window_extent()       # pylint: disable=protected-access
  assert 0 <= box.x0 and box.x1 <= fig.bbox.width
  plt.close(fig)


def test_confusion_percentages_never_round_errors_away():
  # 999 of 1000 read "100%", and 1 of 1000 "0%", beside its count of 1.
  m = np.array([[999, 1, 0], [0, 5, 0], [3, 0, 997]])
  texts = _cell_texts(plots.confusion_figure(m, ("a", "b", "c")))
  assert texts[(0, 0)] == "999\n>99%" and texts[(0, 1)] == "1\n<1%"
  assert texts[(1, 1)] == "5\n100%" and texts[(2, 0)] == "3\n<1%"
  assert (0, 2) not in texts                                     # no examples: blank
  plt.close("all")


def test_heatmap_cells_have_the_decimals_that_tell_them_apart():
  # 0.4012 and 0.4008 (of 5,000 validation rows) both read 0.401.
  rows = [dict(member=m, learning_rate=lr, reg_strength=reg, status="ok", val_accuracy=acc)
          for m, (lr, reg, acc) in enumerate([(0.01, 1e-4, 0.4012), (0.1, 1e-4, 0.4008),
                                              (0.01, 1e-3, 0.38), (0.1, 1e-3, 0.4012)])]
  fig = plots.heatmap_figure(rows)
  assert _cell_texts(fig) == {(0, 0): "0.4012", (0, 1): "0.4008", (1, 0): "0.3800",
                              (1, 1): "0.4012"}
  plt.close(fig)
  rows[1]["val_accuracy"] = 0.39
  fig = plots.heatmap_figure(rows)                               # 3 decimals suffice
  assert _cell_texts(fig)[(0, 1)] == "0.390"
  plt.close(fig)


def test_each_figure_title_fits_inside_the_figure():
  # A 3-class templates figure is 6 inches wide: its own line ran past both edges.
  rows, history = _rows()
  figs = [plots.templates_figure(np.random.default_rng(0).normal(size=(49, 3)), (4, 4, 3),
                                 ("cat", "dog", "ship"), title=TITLE),
          plots.confusion_figure(np.array([[5, 1], [2, 7]]), ("a", "b"), title=TITLE),
          plots.heatmap_figure(rows, title=TITLE)]
  for fig in figs:
    fig.canvas.draw()
    box = fig._suptitle.get_window_extent()       # pylint: disable=protected-access
    assert 0 <= box.x0 and box.x1 <= fig.bbox.width, fig.get_suptitle()
    assert fig.get_suptitle().startswith(TITLE + "\n")
  plt.close("all")
