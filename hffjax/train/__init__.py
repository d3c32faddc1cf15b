"""Training and evaluation: state, optimizer, pure steps, the loop."""

from hffjax.data.augment import random_shift
from hffjax.train.evaluate import evaluate, format_summary
from hffjax.train.experiment import Experiment, build_network, restore_experiment, setup
from hffjax.train.loop import Preempted, evaluate_workdir, fit, predict_files, train_and_evaluate
from hffjax.train.optim import make_optimizer
from hffjax.train.predict import PREDICT_MODES, combine_logits, ensemble_blocks, predict
from hffjax.train.state import TrainState, merge_model, split_model
from hffjax.train.step import make_eval_step, make_train_step

__all__ = [
  "PREDICT_MODES",
  "Preempted",
  "Experiment",
  "TrainState",
  "build_network",
  "combine_logits",
  "ensemble_blocks",
  "evaluate",
  "evaluate_workdir",
  "fit",
  "format_summary",
  "make_eval_step",
  "make_optimizer",
  "make_train_step",
  "merge_model",
  "predict",
  "predict_files",
  "random_shift",
  "restore_experiment",
  "setup",
  "split_model",
  "train_and_evaluate",
]
