"""Shared fixtures: the repository root on sys.path and tiny synthetic H36M-format data."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

# Tests use tiny tensors: one intra-op thread is fastest and avoids oversubscribing CI's 2 cores.
torch.set_num_threads(1)
