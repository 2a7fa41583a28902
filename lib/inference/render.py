"""Render a lifted 3D skeleton beside its 2D input as an MP4 (ffmpeg) or animated GIF (Pillow).

Both panels take normalised coordinates (``lib.inference.lift``): the 2D panel shows the image area
``x in [-1, 1]``, ``y in [-h/w, h/w]`` with y pointing down as in the image, over the video's own
frame when one is given (``background``); the 3D panel shows
x to the right, depth z into the screen and -y up. Left limbs are dark blue, right limbs light
blue, the spine and head a middle blue (MotionBERT's ``vis.py`` colours).
"""
from __future__ import annotations

import os
from typing import Iterable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the non-interactive backend)
import numpy as np  # noqa: E402
from matplotlib import animation  # noqa: E402

from lib.data.skeleton import LEFT, LIMBS, RIGHT  # noqa: E402
from lib.errors import InputFileError  # noqa: E402
from lib.io import atomic_path  # noqa: E402

LEFT_COLOR, RIGHT_COLOR, MIDDLE_COLOR = "#02315E", "#2F70AF", "#00457E"
DPI = 72                                     # 720 x 360 pixel frames


def limb_color(child: int) -> str:
    return LEFT_COLOR if child in LEFT else RIGHT_COLOR if child in RIGHT else MIDDLE_COLOR


def _use_bundled_ffmpeg() -> None:
    """Point matplotlib at the FFmpeg binary of ``imageio-ffmpeg`` (the ``[video]`` extra), if installed."""
    try:
        import imageio_ffmpeg
        matplotlib.rcParams["animation.ffmpeg_path"] = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        pass


def writer_for(path: str, fps: float) -> tuple[str, animation.AbstractMovieWriter]:
    """``(path actually written, writer)``: ffmpeg for .mp4 when available, otherwise a GIF."""
    root, ext = os.path.splitext(path)
    if ext.lower() == ".mp4" and not animation.writers.is_available("ffmpeg"):
        _use_bundled_ffmpeg()
    if ext.lower() == ".mp4" and animation.writers.is_available("ffmpeg"):
        return path, animation.FFMpegWriter(fps=fps)
    if ext.lower() not in (".mp4", ".gif"):
        raise InputFileError(f"render path must end in .mp4 or .gif, got {path!r}")
    if ext.lower() == ".mp4":
        print(f"ffmpeg is not available to matplotlib; writing {root}.gif instead of {path}")
    return root + ".gif", animation.PillowWriter(fps=fps)


def _cube_limits(pose3d: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and half-size of a cube holding every displayed joint of the video."""
    shown = pose3d[..., [0, 2, 1]] * np.array([1, 1, -1])
    low, high = shown.reshape(-1, 3).min(0), shown.reshape(-1, 3).max(0)
    return (low + high) / 2, max((high - low).max() / 2, 1e-3) * 1.05


def _axes(pose3d: np.ndarray, aspect: float):
    fig = plt.figure(figsize=(10, 5))
    ax2d = fig.add_subplot(1, 2, 1)
    ax2d.set(xlim=(-1, 1), ylim=(aspect, -aspect), aspect="equal", title="2D input")
    ax3d = fig.add_subplot(1, 2, 2, projection="3d")
    centre, half = _cube_limits(pose3d)
    ax3d.set(xlim=centre[0] + (-half, half), ylim=centre[1] + (-half, half), zlim=centre[2] + (-half, half),
             xlabel="x", ylabel="z (depth)", zlabel="-y", title="3D")
    ax3d.view_init(elev=12, azim=-80)
    return fig, ax2d, ax3d


def render(pose3d: np.ndarray, pose2d: np.ndarray, path: str, height_over_width: float = 1.0,
           fps: float = 25, background: Iterable[np.ndarray] | None = None) -> str:
    """Write the animation of ``pose3d [T, 17, 3]`` beside ``pose2d [T, 17, >=2]`` (both normalised)
    to ``path`` (.mp4, or .gif; .mp4 falls back to .gif without ffmpeg). ``background``: the video's
    RGB frames, one per pose, drawn under the 2D panel. Returns the written path."""
    path, writer = writer_for(path, fps)
    fig, ax2d, ax3d = _axes(pose3d, height_over_width)
    images = iter(background) if background is not None else None
    picture = None
    lines2d = [ax2d.plot([], [], color=limb_color(c), lw=2)[0] for _, c in LIMBS]
    lines3d = [ax3d.plot([], [], [], color=limb_color(c), lw=3)[0] for _, c in LIMBS]
    title = fig.suptitle("")

    def draw(t: int) -> None:
        nonlocal picture
        frame = next(images, None) if images is not None else None
        if frame is not None and picture is None:
            aspect = height_over_width
            picture = ax2d.imshow(frame, extent=(-1, 1, aspect, -aspect), zorder=0)
        elif frame is not None:
            picture.set_data(frame)
        shown = pose3d[t][:, [0, 2, 1]] * np.array([1, 1, -1])
        for (p, c), line2d, line3d in zip(LIMBS, lines2d, lines3d):
            line2d.set_data(pose2d[t, [p, c], 0], pose2d[t, [p, c], 1])
            line3d.set_data_3d(shown[[p, c], 0], shown[[p, c], 1], shown[[p, c], 2])
        title.set_text(f"frame {t}")

    try:
        with atomic_path(path) as tmp, writer.saving(fig, tmp, dpi=DPI):
            for t in range(len(pose3d)):
                draw(t)
                writer.grab_frame()
    finally:
        plt.close(fig)
    return path
