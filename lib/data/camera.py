"""Human3.6M camera calibration and projection (pure numpy, vectorised).

Conventions (the public H36M calibration, as used by VideoPose3D and the 3D-pose literature):

* World frame: millimetres, Z up, the floor near Z = 0, the capture volume around the origin.
* Camera frame: millimetres, x right, y down, z forward along the optical axis.
* Extrinsics per subject and camera: ``orientation`` is a unit quaternion (w, x, y, z) that rotates
  camera coordinates into world coordinates, ``translation`` is the camera centre in world mm, so
  ``X_world = R @ X_cam + t`` and ``X_cam = R.T @ (X_world - t)``.
* Intrinsics per camera: focal length (fx, fy) and principal point (cx, cy) in pixels, radial
  (k1, k2, k3) and tangential (p1, p2) distortion, image size (res_w, res_h) in pixels.

The numbers below are copied from the published calibration so that the project needs no
external file at run time. Cameras may be named by id string (``'54138969'``) or index 0..3.
"""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np

from lib.errors import DataError

CAMERA_IDS = ('54138969', '55011271', '58860488', '60457274')
SUBJECTS = ('S1', 'S5', 'S6', 'S7', 'S8', 'S9', 'S11')

CameraRef = Union[int, str]

INTRINSICS: dict[str, dict[str, float]] = {
    '54138969': dict(
        fx=1145.0494384765625, fy=1143.7811279296875, cx=512.54150390625, cy=515.4514770507812,
        k1=-0.20709891617298126, k2=0.24777518212795258, k3=-0.0030751503072679043,
        p1=-0.0009756988729350269, p2=-0.00142447161488235, res_w=1000, res_h=1002),
    '55011271': dict(
        fx=1149.6756591796875, fy=1147.5916748046875, cx=508.8486328125, cy=508.0649108886719,
        k1=-0.1942136287689209, k2=0.2404085397720337, k3=0.006819975562393665,
        p1=-0.0016190266469493508, p2=-0.0027408944442868233, res_w=1000, res_h=1000),
    '58860488': dict(
        fx=1149.1407470703125, fy=1148.7989501953125, cx=519.8158569335938, cy=501.40264892578125,
        k1=-0.2083381861448288, k2=0.25548800826072693, k3=-0.0024604974314570427,
        p1=0.0014843869721516967, p2=-0.0007599993259645998, res_w=1000, res_h=1000),
    '60457274': dict(
        fx=1145.5113525390625, fy=1144.77392578125, cx=514.9682006835938, cy=501.88201904296875,
        k1=-0.198384091258049, k2=0.21832367777824402, k3=-0.008947807364165783,
        p1=-0.0005872055771760643, p2=-0.0018133620033040643, res_w=1000, res_h=1002),
}

# Per subject, per camera (order of CAMERA_IDS): (quaternion w,x,y,z camera->world, centre mm).
EXTRINSICS: dict[str, tuple] = {
    'S1': (
        ((0.1407056450843811, -0.1500701755285263, -0.755240797996521, 0.6223280429840088),
         (1841.1070556640625, 4955.28466796875, 1563.4454345703125)),
        ((0.6157187819480896, -0.764836311340332, -0.14833825826644897, 0.11794740706682205),
         (1761.278564453125, -5078.0068359375, 1606.2650146484375)),
        ((0.14651472866535187, -0.14647851884365082, 0.7653023600578308, -0.6094175577163696),
         (-1846.7777099609375, 5215.04638671875, 1491.972412109375)),
        ((0.5834008455276489, -0.7853162288665771, 0.14548823237419128, -0.14749594032764435),
         (-1794.7896728515625, -3722.698974609375, 1574.8927001953125)),
    ),
    'S5': (
        ((0.1467377245426178, -0.162370964884758, -0.7551892995834351, 0.6178938746452332),
         (2097.3916015625, 4880.94482421875, 1605.732421875)),
        ((0.6159758567810059, -0.7626792192459106, -0.15728192031383514, 0.1189815029501915),
         (2031.7008056640625, -5167.93310546875, 1612.923095703125)),
        ((0.14291371405124664, -0.12907841801643372, 0.7678384780883789, -0.6110143065452576),
         (-1620.5948486328125, 5171.65869140625, 1496.43701171875)),
        ((0.5920479893684387, -0.7814217805862427, 0.1274748593568802, -0.15036417543888092),
         (-1637.1737060546875, -3867.3173828125, 1547.033203125)),
    ),
    'S6': (
        ((0.1337897777557373, -0.15692396461963654, -0.7571090459823608, 0.6198879480361938),
         (1935.4517822265625, 4950.24560546875, 1618.0838623046875)),
        ((0.6147197484970093, -0.7628812789916992, -0.16174767911434174, 0.11819244921207428),
         (1969.803955078125, -5128.73876953125, 1632.77880859375)),
        ((0.1529948115348816, -0.13529130816459656, 0.7646096348762512, -0.6112781167030334),
         (-1769.596435546875, 5185.361328125, 1476.993408203125)),
        ((0.5916101336479187, -0.7804774045944214, 0.12832270562648773, -0.1561593860387802),
         (-1721.668701171875, -3884.13134765625, 1540.4879150390625)),
    ),
    'S7': (
        ((0.1435241848230362, -0.1631336808204651, -0.7548328638076782, 0.6188824772834778),
         (1974.512939453125, 4926.3544921875, 1597.8326416015625)),
        ((0.6141672730445862, -0.7638262510299683, -0.1596645563840866, 0.1177929937839508),
         (1937.0584716796875, -5119.7900390625, 1631.5665283203125)),
        ((0.14550060033798218, -0.12874816358089447, 0.7660516500473022, -0.6127139329910278),
         (-1741.8111572265625, 5208.24951171875, 1464.8245849609375)),
        ((0.5912848114967346, -0.7821764349937439, 0.12445473670959473, -0.15196487307548523),
         (-1734.7105712890625, -3832.42138671875, 1548.5830078125)),
    ),
    'S8': (
        ((0.14110587537288666, -0.15589867532253265, -0.7561917304992676, 0.619644045829773),
         (2150.65185546875, 4896.1611328125, 1611.9046630859375)),
        ((0.6169601678848267, -0.7647668123245239, -0.14846350252628326, 0.11158157885074615),
         (2219.965576171875, -5148.453125, 1613.0440673828125)),
        ((0.1471444070339203, -0.13377119600772858, 0.7670128345489502, -0.6100369691848755),
         (-1571.2215576171875, 5137.0185546875, 1498.1761474609375)),
        ((0.5927824378013611, -0.7825870513916016, 0.12147816270589828, -0.14631995558738708),
         (-1476.913330078125, -3896.7412109375, 1547.97216796875)),
    ),
    'S9': (
        ((0.15540587902069092, -0.15548215806484222, -0.7532095313072205, 0.6199594736099243),
         (2044.45849609375, 4935.1171875, 1481.2275390625)),
        ((0.618784487247467, -0.7634735107421875, -0.14132238924503326, 0.11933968216180801),
         (1990.959716796875, -5123.810546875, 1568.8048095703125)),
        ((0.13357827067375183, -0.1367100477218628, 0.7689454555511475, -0.6100738644599915),
         (-1670.9921875, 5211.98583984375, 1528.387939453125)),
        ((0.5879399180412292, -0.7823407053947449, 0.1427614390850067, -0.14794869720935822),
         (-1696.04345703125, -3827.099853515625, 1591.4127197265625)),
    ),
    'S11': (
        ((0.15232472121715546, -0.15442320704460144, -0.7547563314437866, 0.6191070079803467),
         (2098.440185546875, 4926.5546875, 1500.278564453125)),
        ((0.6189449429512024, -0.7600917220115662, -0.15300633013248444, 0.1255258321762085),
         (2083.182373046875, -4912.1728515625, 1561.07861328125)),
        ((0.14943228662014008, -0.15650227665901184, 0.7681233882904053, -0.6026304364204407),
         (-1609.8153076171875, 5177.3359375, 1537.896728515625)),
        ((0.5894251465797424, -0.7818877100944519, 0.13991211354732513, -0.14715361595153809),
         (-1590.738037109375, -3854.1689453125, 1578.017578125)),
    ),
}


class UnknownCameraError(DataError):
    """A camera name that is not one of the four H36M camera ids."""


def _known() -> str:
    return ', '.join(repr(c) for c in CAMERA_IDS)


def camera_id(camera: CameraRef) -> str:
    """Canonical camera id string for an id (``'54138969'``) or an index 0..3."""
    if isinstance(camera, (int, np.integer)) and not isinstance(camera, bool):
        if 0 <= camera < len(CAMERA_IDS):
            return CAMERA_IDS[int(camera)]
    elif str(camera) in INTRINSICS:
        return str(camera)
    raise UnknownCameraError(f"unknown camera {str(camera)!r}; known H36M cameras are {_known()} "
                             f"(or indices 0..{len(CAMERA_IDS) - 1})")


def camera_index(camera: CameraRef) -> int:
    """Index 0..3 of a camera given by id string or index."""
    return CAMERA_IDS.index(camera_id(camera))


def subject_key(subject: Union[int, str]) -> str:
    """Canonical subject key ('S9') for 'S9', 's9', 'S09' or 9; ValueError if unknown."""
    text = str(subject).upper().lstrip('S')
    key = f"S{int(text)}" if text.isdigit() else str(subject)
    if key not in EXTRINSICS:
        raise DataError(f"unknown subject {subject!r}; known subjects are {', '.join(SUBJECTS)}")
    return key


def resolution(camera_name: CameraRef) -> tuple[int, int]:
    """Image size ``(res_w, res_h)`` in pixels of one camera; UnknownCameraError if unknown."""
    cam = INTRINSICS[camera_id(camera_name)]
    return cam['res_w'], cam['res_h']


def resolutions(camera_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame image sizes for an array of camera id strings.

    Looks up one name per run of equal names (videos are contiguous), so millions of frames
    cost one vectorised comparison. Returns ``(w[N], h[N])`` as float64 arrays in pixels.
    Raises UnknownCameraError naming the first unknown camera.
    """
    names = np.asarray(camera_names).reshape(-1)
    if names.dtype.kind != 'U':
        names = names.astype(str)
    starts = np.flatnonzero(np.concatenate([[names.size > 0], names[1:] != names[:-1]]))
    lengths = np.diff(np.append(starts, names.size))
    table = np.array([resolution(name) for name in names[starts]], dtype=np.float64).reshape(-1, 2)
    return np.repeat(table[:, 0], lengths), np.repeat(table[:, 1], lengths)


def focal_length(camera: CameraRef) -> float:
    """Mean focal length ``(fx + fy) / 2`` of a camera, in pixels."""
    cam = INTRINSICS[camera_id(camera)]
    return 0.5 * (cam['fx'] + cam['fy'])


def quaternion_to_matrix(q: Sequence[float]) -> np.ndarray:
    """3x3 rotation matrix of a quaternion (w, x, y, z); the quaternion is normalised first."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def extrinsics(subject: Union[int, str], camera: CameraRef) -> tuple[np.ndarray, np.ndarray]:
    """``(R, t)``: rotation camera->world [3,3] and camera centre in world mm [3]."""
    quat, centre = EXTRINSICS[subject_key(subject)][camera_index(camera)]
    return quaternion_to_matrix(quat), np.asarray(centre, dtype=np.float64)


def world_to_camera(x_world: np.ndarray, subject: Union[int, str], camera: CameraRef) -> np.ndarray:
    """World points ``[..., 3]`` (mm) -> camera frame ``[..., 3]`` (mm, z = depth)."""
    rot, centre = extrinsics(subject, camera)
    return (np.asarray(x_world, dtype=np.float64) - centre) @ rot


def camera_to_world(x_cam: np.ndarray, subject: Union[int, str], camera: CameraRef) -> np.ndarray:
    """Camera-frame points ``[..., 3]`` (mm) -> world frame ``[..., 3]`` (mm)."""
    rot, centre = extrinsics(subject, camera)
    return np.asarray(x_cam, dtype=np.float64) @ rot.T + centre


def camera_to_pixel(x_cam: np.ndarray, camera: CameraRef, distort: bool = False) -> np.ndarray:
    """Project camera-frame points ``[..., 3]`` (mm, z > 0) to pixels ``[..., 2]``.

    Pinhole ``u = fx * x / z + cx``, ``v = fy * y / z + cy``. With ``distort=True`` the normalised
    coordinates first get the H36M/VideoPose3D lens model: radial factor
    ``1 + k1 r^2 + k2 r^4 + k3 r^6`` plus the tangential term ``p1 x + p2 y``, multiplied into
    (x, y), and ``(p1, p2) * r^2`` added.
    """
    cam = INTRINSICS[camera_id(camera)]
    x_cam = np.asarray(x_cam, dtype=np.float64)
    xy = x_cam[..., :2] / x_cam[..., 2:3]
    if distort:
        r2 = np.sum(xy ** 2, axis=-1, keepdims=True)
        radial = 1 + cam['k1'] * r2 + cam['k2'] * r2 ** 2 + cam['k3'] * r2 ** 3
        tangential = cam['p1'] * xy[..., :1] + cam['p2'] * xy[..., 1:]
        xy = xy * (radial + tangential) + np.array([cam['p1'], cam['p2']]) * r2
    return xy * np.array([cam['fx'], cam['fy']]) + np.array([cam['cx'], cam['cy']])


def project(x_world: np.ndarray, subject: Union[int, str], camera: CameraRef,
            distort: bool = False) -> np.ndarray:
    """World points ``[..., 3]`` (mm) -> pixels ``[..., 2]`` in the subject's camera."""
    return camera_to_pixel(world_to_camera(x_world, subject, camera), camera, distort=distort)
