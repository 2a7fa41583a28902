"""Write lifted H36M-17 poses as a BVH animation (Blender, MotionBuilder, Maya, ...), and read one back.

Hierarchy: the 17 H36M joints, each a BVH ``JOINT`` named after :data:`JOINT_NAMES`, parents as
in :data:`lib.data.skeleton.PARENTS`, plus five joints with a zero offset (:data:`EXTRA`):
``right_pelvis`` and ``left_pelvis`` on the pelvis before each hip, ``neck``, ``left_collar`` and
``right_collar`` on the thorax before the nose and each shoulder, so that the head can nod and
the shoulders shrug without moving anything else; the five leaves (ankles, wrists, head top) end
in an ``End Site`` a fifth of their bone further on. The root (pelvis) has six channels
``Xposition Yposition Zposition Zrotation Xrotation Yrotation``, every other joint three rotations
in the same ``ZXY`` order (``R = Rz Rx Ry``, angles in degrees).

Offsets: every bone has the **median length over the sequence**; the rest pose (all rotations
zero) stands facing +Z (Y-up) with the legs down and the arms out sideways (a T-pose); the spine
leaves the pelvis at its median direction in the pelvis frame.

Rotations, per frame, from the 3D joints (``swing`` along each bone, ``twist`` from the body):

* pelvis: the frame of the hips (x from the right to the left hip) and the spine (up);
* thorax: the frame of the shoulders (x from the right to the left shoulder) and the spine;
* hip, knee, shoulder, elbow: the bone's direction, turned about it so that the limb's hinge
  axis (the normal of the hip-knee-ankle or shoulder-elbow-wrist plane, signed to agree with the
  body) is the rest hinge axis; a nearly straight limb takes the body's axis instead;
* spine, nose and the extra joints: the bone's direction, turned about it like the parent's
  left-right (for a vertical bone) or up (for a sideways bone) axis;
* leaves: no rotation of their own.

Every joint then lies exactly on the lifted direction from its parent; the bone lengths are
fixed, so a joint misses its lifted position by at most the sequence's bone-length variation
summed over the bones from the root to it (:func:`fit_report`).

Axes: ``up="y"`` (default; what BVH readers such as Blender's importer assume): X = image right,
Y = up, Z = towards the camera (the person faces +Z when facing the camera). ``up="z"``:
X = image right, Y = away from the camera, Z = up (Blender's own axes; import with "Y forward,
Z up"). Units: centimetres of a body scaled to ``height_cm`` (default 170: the lifted units have
no metric scale; the height is the median ankle-to-head-top chain). Root translation: a global
model's pelvis trajectory (``rootrel=False``); a static model's pelvis stays at the leg length
above the origin.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lib.data.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS
from lib.errors import InputFileError
from lib.io import write_bytes

UP_AXES = ("y", "z")
X, Y, Z = np.eye(3)
# Extra BVH joints (name, H36M joint they sit on, H36M joint that becomes their child): one per
# bone leaving the pelvis sideways or the thorax, so that every H36M joint's direction is exact.
EXTRA = (("right_pelvis", 0, 1), ("left_pelvis", 0, 4), ("neck", 8, 9),
         ("left_collar", 8, 11), ("right_collar", 8, 14))
NODE_NAMES = JOINT_NAMES + tuple(name for name, _, _ in EXTRA)
NUM_NODES = len(NODE_NAMES)
_REPARENT = {child: NUM_JOINTS + k for k, (_, _, child) in enumerate(EXTRA)}
NODE_PARENTS = tuple(_REPARENT.get(j, p) for j, p in enumerate(PARENTS)) + tuple(at for _, at, _ in EXTRA)
CHILDREN = tuple(tuple(c for c, p in enumerate(NODE_PARENTS) if p == j) for j in range(NUM_NODES))
LEAVES = tuple(j for j in range(NUM_NODES) if not CHILDREN[j])


def _depth_first(j: int = 0) -> tuple[int, ...]:
    return (j,) + sum((_depth_first(c) for c in CHILDREN[j]), ())


ORDER = _depth_first()                                # parents before children; the file's channel order
# Rest direction of each single-child node's bone (towards its child) and its rest hinge axis.
REST_BONE = {1: -Y, 2: -Y, 4: -Y, 5: -Y, 7: Y, 9: Y, 11: X, 12: X, 14: -X, 15: -X,
             **{NUM_JOINTS + k: d for k, d in enumerate((-X, X, Y, X, -X))}}
REST_HINGE = {1: X, 2: X, 4: X, 5: X, 7: X, 9: X, 11: -Y, 12: -Y, 14: Y, 15: Y,
              **{NUM_JOINTS + k: h for k, h in enumerate((Y, Y, X, Y, Y))}}
LIMB = {1: (1, 2, 3), 2: (1, 2, 3), 4: (4, 5, 6), 5: (4, 5, 6),       # joint -> (root, middle, end)
        11: (11, 12, 13), 12: (11, 12, 13), 14: (14, 15, 16), 15: (14, 15, 16)}
BODY_FRAMES = {0: (1, 4, 0, 7), 8: (14, 11, 7, 8)}   # joint -> (right, left, lower, upper) joints
STRAIGHT = 0.1                                        # sin of the limb angle below which the body's axis is used
HEIGHT_CHAIN = ((3, 2), (2, 1), (1, 0), (0, 7), (7, 8), (8, 9), (9, 10))
END_SITE_FRACTION = 0.2
CHAIN_SLACK_CM = 0.01                                 # the file's rounding (6 decimals)


@dataclass
class Motion:
    """What a BVH file holds, per node (the 17 joints, then :data:`EXTRA`): offsets ``[22, 3]``,
    end-site offsets ``{leaf: [3]}``, root positions ``[T, 3]``, local rotation matrices
    ``[T, 22, 3, 3]`` (a node's frame in its parent's frame), frame time."""
    offsets: np.ndarray
    end_sites: dict
    root: np.ndarray
    rotations: np.ndarray
    frame_time: float


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def to_bvh_axes(pose3d: np.ndarray, up: str = "y") -> np.ndarray:
    """Lifted coordinates (x right, y down, z away from the camera) -> BVH axes (module doc)."""
    if up not in UP_AXES:
        raise InputFileError(f"BVH up axis must be one of {UP_AXES}, got {up!r}")
    x, y, z = np.moveaxis(np.asarray(pose3d, np.float64), -1, 0)
    return np.stack([x, -y, -z], -1) if up == "y" else np.stack([x, z, -y], -1)


def from_bvh_axes(points: np.ndarray, up: str = "y") -> np.ndarray:
    """Inverse of :func:`to_bvh_axes`."""
    a, b, c = np.moveaxis(np.asarray(points, np.float64), -1, 0)
    return np.stack([a, -b, -c], -1) if up == "y" else np.stack([a, -c, b], -1)


def bone_lengths(joints: np.ndarray, parents=PARENTS) -> np.ndarray:
    """``[T, J]`` length of the bone ending at each joint (0 for the root)."""
    return np.linalg.norm(joints - joints[:, [max(p, 0) for p in parents]], axis=-1)


def with_extra(joints: np.ndarray) -> np.ndarray:
    """``[T, 22, 3]``: the 17 joints and the :data:`EXTRA` nodes (each where its H36M joint is)."""
    return np.concatenate([joints, joints[:, [at for _, at, _ in EXTRA]]], axis=1)


def body_scale(pose3d: np.ndarray, height_cm: float) -> float:
    """Centimetres per unit of ``pose3d``: its median ankle-to-head-top chain is ``height_cm`` tall."""
    lengths = np.median(bone_lengths(np.asarray(pose3d, np.float64)), axis=0)
    height = sum(lengths[c if PARENTS[c] == p else p] for p, c in HEIGHT_CHAIN)
    if not height > 0:
        raise InputFileError("BVH export: every frame has the joints on one point (zero body height)")
    return height_cm / height


def _frame(x_hint: np.ndarray, up: np.ndarray) -> np.ndarray:
    """``[T, 3, 3]`` right-handed frame (columns x, y, z) with y along ``up`` and x close to ``x_hint``."""
    y = _unit(up)
    z = _unit(np.cross(x_hint, y))
    return np.stack([np.cross(y, z), y, z], -1)


def _aligned(rest_bone, rest_hinge, bone, hinge) -> np.ndarray:
    """``[T, 3, 3]`` rotation taking ``rest_bone`` to ``bone`` and ``rest_hinge`` to the part of ``hinge``
    orthogonal to ``bone``."""
    d = _unit(bone)
    n = _unit(hinge - np.sum(hinge * d, -1, keepdims=True) * d)
    current = np.stack([d, n, np.cross(d, n)], -1)
    rest = np.stack([rest_bone, rest_hinge, np.cross(rest_bone, rest_hinge)], -1)
    return current @ rest.T


def global_rotations(joints: np.ndarray) -> np.ndarray:
    """``[T, 22, 3, 3]`` orientation of every node's frame in the world (module doc), from the nodes'
    positions ``[T, 22, 3]`` (:func:`with_extra`) in BVH axes."""
    num_frames = len(joints)
    rot = np.zeros((num_frames, NUM_NODES, 3, 3))
    for j in ORDER:
        if j in BODY_FRAMES:
            right, left, low, high = BODY_FRAMES[j]
            rot[:, j] = _frame(joints[:, left] - joints[:, right], joints[:, high] - joints[:, low])
        elif j in LIMB:
            root, middle, end = LIMB[j]
            upper, lower = joints[:, middle] - joints[:, root], joints[:, end] - joints[:, middle]
            body = rot[:, PARENTS[root]] @ REST_HINGE[j]       # the rest hinge carried by the body frame
            normal = np.cross(upper, lower)
            sine = np.linalg.norm(normal, axis=-1) / np.maximum(
                np.linalg.norm(upper, axis=-1) * np.linalg.norm(lower, axis=-1), 1e-12)
            normal *= np.where(np.sum(normal * body, -1) < 0, -1.0, 1.0)[:, None]
            hinge = np.where((sine < STRAIGHT)[:, None], body, _unit(normal))
            bone = joints[:, CHILDREN[j][0]] - joints[:, j]
            rot[:, j] = _aligned(REST_BONE[j], REST_HINGE[j], bone, hinge)
        elif j in REST_BONE:
            body = rot[:, NODE_PARENTS[j]] @ REST_HINGE[j]
            rot[:, j] = _aligned(REST_BONE[j], REST_HINGE[j], joints[:, CHILDREN[j][0]] - joints[:, j], body)
        else:                                         # leaves turn with their parent
            rot[:, j] = rot[:, NODE_PARENTS[j]]
    return rot


def solve(pose3d: np.ndarray, fps: float, rootrel: bool, up: str = "y", height_cm: float = 170.0) -> Motion:
    """The BVH :class:`Motion` of lifted joints ``pose3d [T, 17, 3]`` (normalised units or pixels)."""
    pose3d = np.asarray(pose3d, np.float64)
    if pose3d.ndim != 3 or pose3d.shape[1:] != (NUM_JOINTS, 3) or len(pose3d) == 0:
        raise InputFileError(f"BVH export needs poses [T, 17, 3] with T >= 1, got shape {pose3d.shape}")
    if not np.isfinite(pose3d).all():
        raise InputFileError("BVH export: the poses contain NaN or infinite values")
    if not fps > 0:
        raise InputFileError(f"BVH export needs a positive frame rate, got {fps}")
    joints = with_extra(to_bvh_axes(pose3d, up) * body_scale(pose3d, height_cm))
    lengths = np.median(bone_lengths(joints, NODE_PARENTS), axis=0)
    glob = global_rotations(joints)
    offsets = np.zeros((NUM_NODES, 3))
    for j in ORDER[1:]:
        p = NODE_PARENTS[j]
        if j >= NUM_JOINTS:
            continue                                  # an extra node sits on its parent
        if p in BODY_FRAMES:                          # median direction in the parent's body frame
            local = np.einsum("tji,tj->ti", glob[:, p], joints[:, j] - joints[:, p])
            offsets[j] = _unit(np.median(_unit(local), axis=0)) * lengths[j]
        else:
            offsets[j] = REST_BONE[p] * lengths[j]
    end_sites = {j: REST_BONE[NODE_PARENTS[j]] * lengths[j] * END_SITE_FRACTION for j in LEAVES}
    parents_glob = glob[:, [max(p, 0) for p in NODE_PARENTS]]
    local = np.swapaxes(parents_glob, -1, -2) @ glob
    local[:, 0] = glob[:, 0]
    if rootrel:
        up_axis = Y if up == "y" else Z
        leg = (lengths[1] + lengths[2] + lengths[3] + lengths[4] + lengths[5] + lengths[6]) / 2
        root = np.repeat((up_axis * leg)[None], len(joints), axis=0)
    else:
        root = joints[:, 0]
    return Motion(offsets, end_sites, root, local, 1.0 / fps)


def euler_zxy(rot: np.ndarray) -> np.ndarray:
    """``[..., 3]`` angles (z, x, y) in degrees with ``rot = Rz(z) Rx(x) Ry(y)``."""
    x = np.arcsin(np.clip(rot[..., 2, 1], -1.0, 1.0))
    z = np.arctan2(-rot[..., 0, 1], rot[..., 1, 1])
    y = np.arctan2(-rot[..., 2, 0], rot[..., 2, 2])
    return np.degrees(np.stack([z, x, y], -1))


def matrix_zxy(angles: np.ndarray) -> np.ndarray:
    """Inverse of :func:`euler_zxy`: ``[..., 3]`` degrees (z, x, y) -> ``[..., 3, 3]``."""
    z, x, y = np.moveaxis(np.radians(angles), -1, 0)
    cz, sz, cx, sx, cy, sy = np.cos(z), np.sin(z), np.cos(x), np.sin(x), np.cos(y), np.sin(y)
    one, zero = np.ones_like(z), np.zeros_like(z)
    rz = np.stack([np.stack([cz, -sz, zero], -1), np.stack([sz, cz, zero], -1), np.stack([zero, zero, one], -1)], -2)
    rx = np.stack([np.stack([one, zero, zero], -1), np.stack([zero, cx, -sx], -1), np.stack([zero, sx, cx], -1)], -2)
    ry = np.stack([np.stack([cy, zero, sy], -1), np.stack([zero, one, zero], -1), np.stack([-sy, zero, cy], -1)], -2)
    return rz @ rx @ ry


def format_bvh(motion: Motion) -> str:
    """The BVH text of ``motion``."""
    lines = ["HIERARCHY"]

    def joint(j: int, depth: int) -> None:
        pad = "  " * depth
        if j == 0:
            lines.append(f"ROOT {NODE_NAMES[0]}")
            channels = "CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"
        else:
            lines.append(f"{pad}JOINT {NODE_NAMES[j]}")
            channels = "CHANNELS 3 Zrotation Xrotation Yrotation"
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET " + " ".join(f"{v:.6f}" for v in motion.offsets[j]))
        lines.append(f"{pad}  {channels}")
        for child in CHILDREN[j]:
            joint(child, depth + 1)
        if j in motion.end_sites:
            lines.extend([f"{pad}  End Site", f"{pad}  {{",
                          f"{pad}    OFFSET " + " ".join(f"{v:.6f}" for v in motion.end_sites[j]), f"{pad}  }}"])
        lines.append(f"{pad}}}")

    joint(0, 0)
    order = list(ORDER)
    angles = euler_zxy(motion.rotations)                               # [T, 22, 3]
    values = np.concatenate([motion.root, angles[:, order].reshape(len(angles), -1)], axis=1)
    lines += ["MOTION", f"Frames: {len(values)}", f"Frame Time: {motion.frame_time:.8f}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in values]
    return "\n".join(lines) + "\n"


def write_bvh(path: str, pose3d: np.ndarray, fps: float, rootrel: bool, up: str = "y",
              height_cm: float = 170.0) -> Motion:
    """Solve and write the BVH of ``pose3d [T, 17, 3]`` to ``path`` (atomically); returns the motion."""
    motion = solve(pose3d, fps, rootrel, up, height_cm)
    write_bytes(path, format_bvh(motion).encode())
    return motion


def forward_kinematics(motion: Motion) -> np.ndarray:
    """``[T, 17, 3]`` positions (BVH axes and units) of the H36M joints of ``motion``."""
    num_frames = len(motion.root)
    glob = np.zeros((num_frames, NUM_NODES, 3, 3))
    pos = np.zeros((num_frames, NUM_NODES, 3))
    for j in ORDER:
        p = NODE_PARENTS[j]
        if p < 0:
            glob[:, j], pos[:, j] = motion.rotations[:, 0], motion.root + motion.offsets[0]
        else:
            glob[:, j] = glob[:, p] @ motion.rotations[:, j]
            pos[:, j] = pos[:, p] + glob[:, p] @ motion.offsets[j]
    return pos[:, :NUM_JOINTS]


def read_bvh(text: str) -> Motion:
    """Parse a BVH written by :func:`format_bvh` (this hierarchy and channel layout) into a :class:`Motion`."""
    tokens = text.split()
    offsets, end_sites, index, joint_stack, last = np.zeros((NUM_NODES, 3)), {}, 0, [], None
    names = {name: j for j, name in enumerate(NODE_NAMES)}
    while tokens[index] != "MOTION":
        word = tokens[index]
        if word in ("ROOT", "JOINT"):
            last = names[tokens[index + 1]]
            index += 2
        elif word == "End":
            last = ("end", joint_stack[-1])
            index += 2
        elif word == "{":
            joint_stack.append(last)
            index += 1
        elif word == "}":
            joint_stack.pop()
            index += 1
        elif word == "OFFSET":
            value = np.array([float(v) for v in tokens[index + 1:index + 4]])
            top = joint_stack[-1]
            if isinstance(top, tuple):
                end_sites[top[1]] = value
            else:
                offsets[top] = value
            index += 4
        elif word == "CHANNELS":
            index += 2 + int(tokens[index + 1])
        else:
            index += 1
    num_frames, frame_time = int(tokens[index + 2]), float(tokens[index + 5])
    values = np.array(tokens[index + 6:], dtype=np.float64).reshape(num_frames, 3 + 3 * NUM_NODES)
    angles = np.zeros((num_frames, NUM_NODES, 3))
    angles[:, list(ORDER)] = values[:, 3:].reshape(num_frames, NUM_NODES, 3)
    return Motion(offsets, end_sites, values[:, :3], matrix_zxy(angles), frame_time)


# -- checking a file with Blender's own BVH importer (run headless: `blender -b --python-expr`) ------------
BLENDER_SCRIPT = '''
import json, sys
import bpy
import io_anim_bvh.import_bvh as importer
# Debian's Blender 3.4 runs on Python 3.11, where its importer's open(path, "rU") fails: drop the "U".
importer.open = lambda file, mode="r", *args, **kwargs: open(file, mode.replace("U", ""), *args, **kwargs)
path, out, up = sys.argv[sys.argv.index("--") + 1:]
for obj in list(bpy.data.objects):
    bpy.data.objects.remove(obj)
axes = dict(axis_forward="-Z", axis_up="Y") if up == "y" else dict(axis_forward="Y", axis_up="Z")
bpy.ops.import_anim.bvh(filepath=path, global_scale=1.0, rotate_mode="NATIVE", use_fps_scale=False,
                        update_scene_fps=True, **axes)
arm = next(o for o in bpy.data.objects if o.type == "ARMATURE")
start, end = (int(round(v)) for v in arm.animation_data.action.frame_range)
frames = []
for frame in range(start, end + 1):
    bpy.context.scene.frame_set(frame)
    frames.append({bone.name: list(arm.matrix_world @ bone.head) for bone in arm.pose.bones})
render = bpy.context.scene.render
with open(out, "w") as f:
    json.dump({"fps": render.fps / render.fps_base, "frames": frames}, f)
'''


def blender_joint_positions(path: str, up: str = "y", blender: str = "blender") -> tuple[np.ndarray, float]:
    """``([T, 17, 3] joint positions in the file's BVH axes, fps)`` as Blender's BVH importer reads ``path``."""
    import json
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        out = f"{folder}/joints.json"
        done = subprocess.run([blender, "-b", "--factory-startup", "--python-expr", BLENDER_SCRIPT, "--",
                               path, out, up], capture_output=True, text=True, timeout=300)
        if done.returncode != 0 or "Traceback" in done.stdout + done.stderr:
            raise InputFileError(f"Blender could not import {path}:\n{(done.stdout + done.stderr)[-2000:]}")
        with open(out) as f:
            data = json.load(f)
    points = np.array([[frame[name] for name in JOINT_NAMES] for frame in data["frames"]])
    if up == "y":                                     # Blender's Z-up world back to the file's Y-up axes
        points = np.stack([points[..., 0], points[..., 2], -points[..., 1]], -1)
    return points, data["fps"]


def fit_report(pose3d: np.ndarray, positions: np.ndarray, rootrel: bool, up: str = "y",
               height_cm: float = 170.0) -> dict:
    """How far the joint ``positions`` ``[T, 17, 3]`` read back from a BVH (BVH axes and units) are from
    the lifted ``pose3d`` they were solved from, next to the lifted sequence's own bone-length
    variation (``|length - median length|`` over frames and bones), all in centimetres. A fixed-length
    skeleton misses a joint by about the variation summed over the bones from the root to it
    (``chain_variation``); ``within_chain_variation`` is the share of joints (root excluded) that
    are no further than that (to the file's rounding)."""
    joints = to_bvh_axes(pose3d, up) * body_scale(pose3d, height_cm)
    if rootrel:
        joints = joints - joints[:, :1] + positions[:, :1]
    error = np.linalg.norm(positions - joints, axis=-1)
    variation = np.abs(bone_lengths(joints) - np.median(bone_lengths(joints), axis=0))
    chain = variation.copy()                          # summed over the bones from the root to each joint
    for j in range(1, NUM_JOINTS):
        chain[:, j] += chain[:, PARENTS[j]]
    return {"frames": len(joints), "joint_error_mean_cm": float(error.mean()),
            "joint_error_p95_cm": float(np.percentile(error, 95)), "joint_error_max_cm": float(error.max()),
            "bone_variation_mean_cm": float(variation[:, 1:].mean()),
            "bone_variation_p95_cm": float(np.percentile(variation[:, 1:], 95)),
            "bone_variation_max_cm": float(variation[:, 1:].max()),
            "chain_variation_mean_cm": float(chain[:, 1:].mean()),
            "within_chain_variation": float(np.mean(error[:, 1:] <= chain[:, 1:] + CHAIN_SLACK_CM))}
