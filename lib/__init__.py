"""Pose3D: 2D-to-3D human pose lifting (see README.md and docs/ for the code map)."""
