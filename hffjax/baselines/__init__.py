"""Baselines on the same blocks as HFF: Forward-Forward (Hinton, 2022) and backprop."""

from hffjax.baselines.bp import BPNet, build_bp_model
from hffjax.baselines.ff import FFNet, build_ff_model

__all__ = ["BPNet", "FFNet", "build_bp_model", "build_ff_model"]
