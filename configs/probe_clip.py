"""Linear probe as CLIP's: softmax, full-batch L-BFGS, a coarse log grid of strengths, refined.

    python train.py --config configs/cifar10_kmeans.py \
        --config.data.folder=../shared/data/cifar10 --mode features --out feats.npz
    python train.py --config configs/probe_clip.py --config.data.features=feats.npz
    python train.py --config configs/probe_clip.py:smoke --config.data.features=feats.npz

CLIP's linear probe fits scikit-learn's L-BFGS logistic regression once per C over a log
grid from 1e-6 to 1e6, then again over a finer grid around the best C on validation.
Here the whole coarse grid is one population solved at once (`optimizer="lbfgs"`, see
`lincv.lbfgs`), and the sweep refines it itself (`config.refine`, see
`lincv.sweep.refine`):

  coarse  reg_strength = 1e-11, 1e-10, ..., 1e1 (13 values, one a decade). lincv's
          objective is mean loss + reg_strength |W|^2, scikit-learn's C sum loss +
          |W|^2 / 2, so reg_strength = 1 / (2 N C): with N = 45,000 training rows
          (CIFAR-10 less its 10% validation split) these are C = 1.1e6 down to 1.1e-6
          (README, Linear probes). With other N the grid covers the same range shifted
          by a factor of 45,000 / N.
  refine  8 strengths log-spaced strictly between the best one's neighbours (a decade
          either side: steps of 10^(2/9), none of them the best itself), 21 members in all;
          the selection is over both stages.

Each member runs up to 10 epochs of 100 L-BFGS iterations (an iteration cap of 1,000,
with its validation accuracy after every 100) and stops when its gradient norm is 1e-4
of its norm at W = 0, b = 0 (`tol`; there it is the data loss's gradient, the same for
every strength): float32 gradients summed over 45,000 rows carry a relative error of
about 1e-6 to 1e-5, so a much smaller tol would only run to the cap.
Rows are standardised (`data.scale="std"`, centred on the training mean): one
reg_strength then penalises every column alike and L-BFGS sees a better-conditioned
problem. The k-means features are written standardised already, so for them this
changes nothing; for a network's features, whose columns differ in scale, it does (the
scikit-learn C equivalence then holds for the standardised rows).

`data.features` has no default: pass --config.data.features=PATH. `:smoke` is a few
strengths and iterations, for a tiny features file.

Measured on the CIFAR-10 k-means features (README, Results; one H200, float32 products):
1,600 centroids 71.3% test (val 71.4%, reg_strength 1e-3) in 87 s; with
`--config.data.flip=True` 74.2% (val 74.2%, 7.7e-5 from the refined stage, which ran to
the 1,000-iteration cap) in 91 s; 4,000 centroids 71.1% (val 71.5%, 3.6e-3, refined) in
130 s; with flip 74.0% (val 73.5%, 1e-3) in 134 s. All four ran before L-BFGS was
preconditioned by the rows' second moment (`lincv.lbfgs`; on the bench's pixel path it
takes an eighth of the iterations), and only the 4,000-centroid run without flip with the
current line search (README, Results, says what changed): their times and iteration
counts are not the current code's.
"""

from lincv import config as config_lib

VARIANTS = ("smoke",)
STRENGTHS = tuple(10.0 ** k for k in range(-11, 2))


def get_config(arg: str | None = None):
  if arg and arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of configs/probe_clip.py; expected one "
                     f"of: {', '.join(VARIANTS)}")
  c = config_lib.base()
  c.data.name = ""               # the features come from --config.data.features
  c.data.center, c.data.scale = "image", "std"
  c.model, c.loss, c.reg = "linear", "softmax", "l2"
  c.optimizer = "lbfgs"
  c.epochs, c.lbfgs_iters, c.tol = 10, 100, 1e-4
  c.sweep = {"reg_strength": STRENGTHS}
  c.refine.field, c.refine.points = "reg_strength", 8
  if arg == "smoke":
    c.epochs, c.lbfgs_iters = 2, 5
    c.sweep = {"reg_strength": (1e-4, 1e-2, 1.0)}
    c.refine.points = 2
  return c
