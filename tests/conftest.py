"""Shared fixtures: the repository root on sys.path and tiny synthetic H36M-format data."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
