"""Linear probe as big_vision's few-shot evaluator: ridge regression solved in closed form.

    python train.py --config configs/cifar10_kmeans.py \
        --config.data.folder=../shared/data/cifar10 --mode features --out feats.npz
    python train.py --config configs/probe_ridge.py --config.data.features=feats.npz
    python train.py --config configs/probe_ridge.py:smoke --config.data.features=feats.npz

Least squares onto +1/-1 class targets (`loss="least_squares"`), l2, solved exactly for
every strength of the path from one reduction of the Gram matrix (`optimizer="closed_form"`,
see `lincv.ridge`): reg_strength = 1e-8, 1e-7, ..., 1e2 (11 values, one a decade), the best
on validation selected. scikit-learn's Ridge / RidgeClassifier minimise the summed
squared error + alpha |W|^2, so alpha = N reg_strength: 4.5e-4 to 4.5e6 at N = 45,000
(README, Linear probes). A closed-form member has one epoch and nothing else to set.

Rows are standardised (`data.scale="std"`), as for `probe_clip.py`. `data.features` has
no default: pass --config.data.features=PATH. `:smoke` is 3 strengths.

Measured on the CIFAR-10 k-means features, 1,600 centroids (README, Results), on a 2-core
CPU with AVX-512 from its own export: 72.5% test (val 72.5%, reg_strength 1e-3) in 23 s;
74.1% (val 74.0%, 1e-4) with `--config.data.flip=True` in 33 s, and 74.0% (val 74.0%,
1e-5) with `--config.dtype=float64` too, in 81 s. The float32 runs warn that 1e-8 to 1e-3
lie within the float32 Gram matrix's rounding (`lincv.ridge.LowPrecision`). On 4,000
centroids (16,000 features, `configs/cifar10_kmeans.py:4000_flip` exported), the same
CPU: 73.0% test (val 73.3%, 1e-3) in 3 min 44 s, and 75.5% (val 75.5%, 1e-3) with
`--config.data.flip=True` in 4 min 29 s, 13.7 GB at its peak; both warn of 1e-8 to
1e-3 as above. (36 s and
53 s with a whole eigendecomposition; 69.4 to 69.8% when `lincv.ridge` dropped the
directions below a weak strength as rounding, 73.7% at 1e-3 with mirrored rows when it
still dropped some; see its Precision section.)
"""

from lincv import config as config_lib

VARIANTS = ("smoke",)
STRENGTHS = tuple(10.0 ** k for k in range(-8, 3))


def get_config(arg: str | None = None):
  if arg and arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of configs/probe_ridge.py; expected one "
                     f"of: {', '.join(VARIANTS)}")
  c = config_lib.base()
  c.data.name = ""               # the features come from --config.data.features
  c.data.center, c.data.scale = "image", "std"
  c.model, c.loss, c.reg = "linear", "least_squares", "l2"
  c.optimizer = "closed_form"
  c.epochs = 1
  c.sweep = {"reg_strength": STRENGTHS}
  if arg == "smoke":
    c.sweep = {"reg_strength": (1e-4, 1e-2, 1.0)}
  return c
