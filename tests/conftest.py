"""Test set-up: one torch thread (the repository root is on sys.path through pytest.ini)."""
import torch

# Tests use tiny tensors: one intra-op thread is fastest and avoids oversubscribing CI's 2 cores.
torch.set_num_threads(1)
