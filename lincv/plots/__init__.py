"""Figures of a run (matplotlib, PNG): curves, a hyperparameter heatmap, templates, confusion.

Each figure's title starts with `describe(run, method, hparams)`, the line that says which
run, method and selected member it shows, then says what the figure shows. The same text is
stored in the PNG's "Title" metadata, and what the colours and marks mean in its
"Description" (`PIL.Image.open(path).info`). The `*_figure` functions build the figure
without saving it, for a look at its parts.

Modules: `style` (number formats, the title line, saving), `curves`, `heatmap`, `images`
(templates and the confusion matrix).
"""

import matplotlib

matplotlib.use("Agg")  # files only, never a window; before pyplot is first imported

# pylint: disable=wrong-import-position
from lincv.plots.curves import curves, curves_figure, seed_groups  # noqa: E402
from lincv.plots.heatmap import GRID_MAX, axes, heatmap, heatmap_figure  # noqa: E402
from lincv.plots.images import (confusion, confusion_figure, templates,  # noqa: E402
                                templates_figure)
from lincv.plots.style import WIDTH, describe, num, ticks  # noqa: E402

__all__ = ["GRID_MAX", "WIDTH", "axes", "confusion", "confusion_figure", "curves", "curves_figure",
           "describe", "heatmap", "heatmap_figure", "num", "seed_groups", "templates",
           "templates_figure", "ticks"]
