"""The public API: `import lincv`, and no public name lost when modules move.

`PUBLIC` lists every public name of every lincv module before the layout of issue 14
(functions, classes and constants defined or re-exported by lincv, not third-party
imports). Each must still be reachable under its old module, where a moved name may
warn that it moved (a DeprecationWarning naming its new home).
"""

import importlib
import inspect
import subprocess
import sys
import warnings

import pytest

import lincv

PUBLIC = """
lincv.baselines METHODS random_candidate random_local_search random_search
lincv.checkpoint NONFINITE Store TMP_PREFIX atomic_write dumps_line from_arrays load_arrays load_json load_tree remove save_arrays save_json save_tree strict tree_arrays
lincv.chunked chunks map_rows num_chunks pad_rows valid
lincv.config FEATURES METHODS NUMERIC ONLY_WITH OverrideError RESUMABLE STRUCTURAL SWEEPABLE add_method_fields as_json base differences fingerprint idle_override load override parse_values split_args swept_overrides unused_message used
lincv.data CENTERS DATASETS DataError Dataset Prepared Preprocessor SCALES kfold load mirror prepare resolve_data_dir stratified_subset train_val_split
lincv.data.catalog CATALOG DataError Dataset SPLITS load prepare_command resolve_data_dir
lincv.data.dataset DataError Dataset TFDS_DATA_DIR_ENV check_labels resolve_data_dir
lincv.data.digits CLASS_NAMES Dataset DigitsBuilder IMAGE_SHAPE NAME SPLIT_SEED TEST_FRACTION arrays load resolve_data_dir train_val_split
lincv.data.folder BUILDER_NAME DataError Dataset EXTENSIONS ImageFolderBuilder LAYOUT Listing SPLITS VERSION decode load prepared_path resolve_data_dir scan
lincv.data.preprocess CENTERS DataError Dataset Prepared Preprocessor SCALES mirror prepare
lincv.data.records DataError Dataset FILE_FORMAT NO_CODE_PATH download_and_prepare examples features load_prepared quiet_tfds read_split
lincv.data.sources DATASETS DataError Dataset load
lincv.data.splits DataError check_labels kfold stratified_subset train_val_split
lincv.experiment ConfigError EVAL_SPLITS Inputs Progress RUN_FILES RUN_FOLDERS check evaluate feature_cache_dir image_features load_inputs mirror run
lincv.features BLOCK_NORMS CACHE_VERSION GRAY_WEIGHTS KMeansFeatures cache_path cached color_histogram extract fingerprint fit_standardize fit_zca gradients grayscale hog hue kmeans kmeans_encode kmeans_fit normalize_patches patches sample_patches standardize triangle
lincv.gradcheck Report check coordinate_name default_tolerance numerical_grad relative_error
lincv.knn DEFAULT_KS METRICS TIE_BREAKS cross_validate distances fold_indices neighbours predict vote
lincv.losses LOSSES as_float check_scores_labels grad labels_valid softmax softmax_grad squared_svm squared_svm_grad svm svm_grad value
lincv.metrics accuracy confusion_matrix
lincv.objective INPUT_WEIGHT PARAM_KEYS as_float grad loss loss_and_grad loss_and_grad_t scores_t transpose_input
lincv.optim OPTIMIZERS SCHEDULES make schedule
lincv.plots confusion curves heatmap templates
lincv.progress Progress
lincv.regularizers REGULARIZERS as_float elastic_net elastic_net_grad grad l1 l1_grad l2 l2_grad value
lincv.scores MODELS apply check_dtype init init_linear init_mlp linear mlp mlp_hidden
lincv.seeds STREAMS integer key
lincv.sweep Diverged Group MAX_CHUNK Population Result SEARCHES SweepError check_data chunking expand group halving notes run select shared_order_key structure validate_member
lincv.training ACTIVE DIVERGED Data GRADIENTS HPARAM_DEFAULTS PRUNED STATUS_NAMES STOPPED Structure TrainState accuracy epoch_batches fit init_state loss_and_grad make_optimizer order_key predict shuffle steps_per_epoch train_epoch
"""


def _public():
  for line in PUBLIC.strip().splitlines():
    module, *names = line.split()
    for name in names:
      yield module, name


@pytest.mark.parametrize("module,name", list(_public()))
def test_no_public_name_is_lost(module, name):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    assert hasattr(importlib.import_module(module), name), f"{module}.{name} is gone"


def test_a_moved_name_warns_and_names_its_new_home():
  from lincv import experiment  # pylint: disable=import-outside-toplevel
  with pytest.warns(DeprecationWarning, match="lincv.experiment.load_inputs has moved to "
                    "lincv.inputs.load"):
    old = experiment.load_inputs
  assert old is lincv.inputs.load
  with pytest.raises(AttributeError, match="no attribute 'load_input'"):
    experiment.load_input  # pylint: disable=pointless-statement


def test_import_lincv_is_lazy_and_gives_modules_and_entry_points():
  code = ("import sys, lincv; before = set(sys.modules); lincv.losses.svm; "
          "print('jax' in before, 'lincv.losses' in before, "
          "lincv.Run is lincv.runs.Run, lincv.train is lincv.experiment.run)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True).stdout.split()
  assert out == ["False", "False", "True", "True"]
  assert set(lincv.SUBMODULES) <= set(dir(lincv))
  with pytest.raises(AttributeError, match="no attribute 'loses'.*losses"):
    lincv.loses  # pylint: disable=pointless-statement


def test_the_objective_shows_its_real_keyword_arguments():
  for fn in (lincv.objective.grad, lincv.objective.loss, lincv.objective.loss_and_grad):
    params = inspect.signature(fn).parameters
    assert "reg_strength" in params and "margin" in params, fn.__name__
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values()), fn.__name__


def test_lincv_overrides_imports_on_its_own():
  # lincv.config re-exports it: imported first, it failed on its names ("cannot import
  # name 'OverrideError' from partially initialized module 'lincv.overrides'").
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  for statement in ("import lincv.overrides", "from lincv import overrides"):
    out = subprocess.run([sys.executable, "-c", statement], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
