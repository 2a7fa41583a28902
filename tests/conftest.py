"""Test set-up: the repository root on sys.path, and one torch thread."""
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# Tests use tiny tensors: one intra-op thread is fastest and avoids oversubscribing CI's 2 cores.
torch.set_num_threads(1)
