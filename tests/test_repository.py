"""What the repository itself holds: no dataset, checkpoint, ONNX graph or its external-data file,
video or image is committed; tiny fixtures under tests/fixtures only. The rule lives in
``.gitignore`` (one owner); this test fails when a tracked file matches it, or when a tracked
file is too large to be a fixture or source."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LARGEST = 2 * 1024 * 1024    # the largest fixture (the MotionBERT-built tiny checkpoint) is about 1.1 MiB


def git(*args: str) -> list[str]:
    out = subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True, check=True).stdout
    return [line for line in out.split("\0") if line]


pytestmark = pytest.mark.skipif(shutil.which("git") is None or not os.path.exists(os.path.join(ROOT, ".git")),
                                reason="not a git checkout")


def test_no_tracked_file_matches_the_ignore_rules():
    offending = git("ls-files", "-z", "--cached", "--ignored", "--exclude-standard")
    assert offending == [], f"tracked files that .gitignore excludes (generated data, models, media): {offending}"


def test_no_tracked_file_is_larger_than_a_fixture():
    sizes = {path: os.path.getsize(os.path.join(ROOT, path))
             for path in git("ls-files", "-z") if os.path.isfile(os.path.join(ROOT, path))}
    assert {path: size for path, size in sizes.items() if size > LARGEST} == {}


@pytest.mark.parametrize("name", ["checkpoint.bin", "model.pth", "pose3d.onnx", "pose3d.onnx.data",
                                  "6f3d3584-ef7a-11f1-8b52-02fc00000001.data", "clip.mp4", "clip.avi",
                                  "clip.mov", "clip.mkv", "poses.npz", "poses.npy", "frame.png", "frame.jpg"])
def test_generated_kinds_are_ignored(name):
    """Checkpoints, ONNX graphs and the uuid-named external-data file ONNX writes beside a large
    graph (one was once committed by accident), arrays, videos and images, anywhere but in
    tests/fixtures."""
    for path in (name, os.path.join("docs", name), os.path.join("lib", "inference", name)):
        result = subprocess.run(["git", "-C", ROOT, "check-ignore", "--no-index", "-q", path])
        assert result.returncode == 0, f"{path} is not ignored"
