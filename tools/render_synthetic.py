"""Render a few synthetic H36M frames for the docs (2D detections over the image, 3D pose).

    python tools/render_synthetic.py                      # -> docs/img/synthetic_frames.png
    python tools/render_synthetic.py --actions Walking,Phoning,SittingDown --camera 3

Top row: the camera image frame with the ground-truth projection (grey) and the noisy detections,
joints coloured by detector confidence. Bottom row: the same frame's 3D pose in world mm (Z up,
floor at Z = 0). One frame per action is picked where the action shows best.
"""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lib.config.cli import ArgumentParser  # noqa: E402
from lib.data import camera as cam  # noqa: E402
from lib.errors import entry_point  # noqa: E402
from lib.io import atomic_write  # noqa: E402
from lib.data.skeleton import LEFT, LIMBS, RIGHT  # noqa: E402
from lib.data.synthetic import make_synthetic_h36m  # noqa: E402


CROP_PX = 560  # side of the image window shown around the person, pixels


def limb_colour(child: int) -> str:
    """Red for right limbs, blue for left, black for the trunk and head."""
    return "tab:red" if child in RIGHT else "tab:blue" if child in LEFT else "k"


def pick_frame(action: str, world: np.ndarray) -> int:
    """Index of a telling frame [T, 17, 3] (mm): longest stride, lowest pelvis, highest hand..."""
    if action.startswith("Walk"):
        return int(np.argmax(np.linalg.norm(world[:, 3] - world[:, 6], axis=-1)))
    if action.startswith("Sitting"):
        return int(np.argmin(world[:, 0, 2]))
    if action in ("Eating", "Smoking", "Phoning", "Photo"):
        return int(np.argmin(np.linalg.norm(world[:, 16] - world[:, 9], axis=-1)))
    return int(np.argmax(world[:, [13, 16], 2].max(axis=1)))


def draw_image(ax, gt: np.ndarray, det: np.ndarray, conf: np.ndarray, size: tuple):
    """2D panel: a window of the image (pixels), GT skeleton in grey, detections by confidence."""
    for p, c in LIMBS:
        ax.plot(*gt[[p, c]].T, color="0.75", lw=3, solid_capstyle="round")
        ax.plot(*det[[p, c]].T, color=limb_colour(c), lw=1.2)
    points = ax.scatter(*det.T, c=conf, cmap="RdYlGn", vmin=0, vmax=1, s=18, edgecolors="k",
                        linewidths=0.4, zorder=3)
    centre = np.clip(gt.mean(axis=0), CROP_PX / 2, np.array(size) - CROP_PX / 2)
    ax.set_xlim(centre[0] - CROP_PX / 2, centre[0] + CROP_PX / 2)
    ax.set_ylim(centre[1] + CROP_PX / 2, centre[1] - CROP_PX / 2)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=6)
    return points


def draw_3d(ax, pose: np.ndarray):
    """3D panel: world pose (mm) over a floor grid centred on the pelvis."""
    centre = pose[0, :2]
    grid = np.linspace(-900, 900, 7)
    for g in grid:
        ax.plot(centre[0] + [g, g], centre[1] + grid[[0, -1]], 0, color="0.85", lw=0.5)
        ax.plot(centre[0] + grid[[0, -1]], centre[1] + [g, g], 0, color="0.85", lw=0.5)
    for p, c in LIMBS:
        ax.plot(*pose[[p, c]].T, color=limb_colour(c), lw=2)
    ax.set_xlim(centre[0] - 900, centre[0] + 900)
    ax.set_ylim(centre[1] - 900, centre[1] + 900)
    ax.set_zlim(0, 1800)
    ax.set_box_aspect((1, 1, 1), zoom=1.25)
    ax.view_init(elev=12, azim=-60)
    ax.set_xticklabels([])
    ax.set_yticklabels([])
    ax.tick_params(labelsize=6)


def render(out: str, actions, subject: int = 9, camera: int = 2, seed: int = 0, dpi: int = 80):
    """Draw one frame per action (columns) and save a PNG at ``out``."""
    data = make_synthetic_h36m(seed, frames_per_video=600, subjects=[subject], actions=actions,
                               cameras=[camera], debug=True)["test" if subject in (9, 11) else "train"]
    fig = plt.figure(figsize=(2.8 * len(actions) + 0.8, 6.0), layout="constrained")
    size = cam.resolution(camera - 1)
    for col, action in enumerate(actions):
        rows = np.flatnonzero(np.asarray(data["action"]) == action)[:600]  # subaction 01
        i = rows[pick_frame(action, data["joint3d_world"][rows])]
        ax = fig.add_subplot(2, len(actions), col + 1)
        points = draw_image(ax, data["joint3d_image"][i, :, :2], data["joint_2d"][i],
                            data["confidence"][i, :, 0], size)
        ax.set_title(f"{action}\n{data['source'][i]}, frame {i - rows[0]}", fontsize=8)
        draw_3d(fig.add_subplot(2, len(actions), len(actions) + col + 1, projection="3d"),
                data["joint3d_world"][i])
    fig.colorbar(points, ax=fig.axes[0::2], shrink=0.8).set_label("detector confidence", fontsize=8)
    fig.suptitle("Synthetic H36M: 2D detections in the camera image (pixels; grey = ground truth) "
                 "and the 3D pose (world mm)", fontsize=9)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with atomic_write(out) as f:
        fig.savefig(f, dpi=dpi, format=os.path.splitext(out)[1][1:] or "png")
    plt.close(fig)


@entry_point
def main(argv=None):
    p = ArgumentParser(__doc__)
    p.add_argument("--out", default="docs/img/synthetic_frames.png")
    p.add_argument("--actions", default="Walking,Greeting,Phoning,Sitting", help="comma-separated")
    p.add_argument("--subject", type=int, default=9)
    p.add_argument("--camera", type=int, default=2, choices=(1, 2, 3, 4))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dpi", type=int, default=80)
    args = p.parse_args(argv)
    render(args.out, args.actions.split(","), args.subject, args.camera, args.seed, args.dpi)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
