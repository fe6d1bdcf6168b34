"""lincv: linear classifiers for computer vision in JAX.

    import lincv
    lincv.losses.svm(scores_NxC, labels_N)          # the math core, one module per concept
    lincv.objective.grad(params, x, y, loss="softmax", reg="l2", reg_strength=1e-4)
    summary = lincv.train(lincv.config.load("configs/default.py"), "runs/x")
    run = lincv.Run.load("runs/x")                  # a finished run: results, predict

Submodules are imported on first use, so `import lincv` is quick and `lincv.losses`
works without importing it first.
"""

import importlib

__version__ = "0.1.0"

SUBMODULES = (
    "baselines", "checkpoint", "chunked", "config", "data", "experiment", "features",
    "gradcheck", "inputs", "knn", "losses", "methods", "metrics", "objective", "optim",
    "plots", "precision", "progress", "regularizers", "report", "ridge", "runs", "scores", "seeds", "sweep",
    "testing",
    "training",
)
# The main entry points: name -> (module, attribute).
ENTRY_POINTS = {
    "Run": ("runs", "Run"),
    "train": ("experiment", "run"),
    "evaluate": ("experiment", "evaluate"),
    "ConfigError": ("config", "ConfigError"),
    "load_config": ("config", "load"),
}

__all__ = [*SUBMODULES, *ENTRY_POINTS, "__version__"]


def __getattr__(name: str):
  if name in SUBMODULES:
    return importlib.import_module(f"lincv.{name}")
  if name in ENTRY_POINTS:
    module, attr = ENTRY_POINTS[name]
    return getattr(importlib.import_module(f"lincv.{module}"), attr)
  raise AttributeError(f"module 'lincv' has no attribute {name!r}; it has: "
                       f"{', '.join(sorted(__all__))}")


def __dir__():
  return sorted(set(globals()) | set(__all__))
