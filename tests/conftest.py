import os

# Keep XLA from spreading a tiny test over every core, and compile quickly.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def tiny_config():
  from hffjax.config import load_config

  return load_config(os.path.join(ROOT, "configs", "tiny.py"))
