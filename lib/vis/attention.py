"""Attention heatmaps of a DSTformer checkpoint (``vis_attn.py``, docs/vis_attn.md).

The maps come from the model's explicit attention path,
``model.forward_with_extras(x, return_attention=True)`` (no hooks, no monkey patching), run on
test clips of the config's source pickle (the input the evaluation sees, without flip TTA).
Everything is averaged over the chosen clips; spatial maps also over the frames of each clip.
The two streams of every layer ('st': spatial then temporal, 'ts': temporal then spatial) are
kept apart because they learn different patterns.

Axes convention of every attention panel: row = query (the attending joint / frame), column =
key (the attended one); each row of a full map sums to 1.

Output of :func:`write_figures` (``L`` = layer index, 0-based as in ``blocks_st.L``)::

    spatial_layerL.png       joint->joint attention, rows st/ts, columns = heads + head mean
    hyperedge_layerL.png     (version 2) joint->hyperedge attention, same grid
    temporal_layerL.png      frame->frame attention, head mean, one joint or mean over joints
    relation_bias_layerL.png (version 2) learned joint-joint logit bias alpha * B per head
    hypergraph.png           (version 2) incidence matrix: joints x named body parts
    attention.npz            the averaged matrices, for re-plotting
    index.md, index.html     every image with its caption
"""
from __future__ import annotations

import html
import os
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure

from lib.data.prepare import ensure_source
from lib.data.skeleton import JOINT_NAMES
from lib.errors import ConfigError, InputFileError
from lib.io import atomic_write, save_npz
from lib.model.factory import load_model
from lib.data.codec import PoseCodec
from lib.data.h36m import reader_from_config

STREAMS = ("st", "ts")
STREAM_NAMES = {"st": "st stream (spatial->temporal)", "ts": "ts stream (temporal->spatial)"}
# Names of the body parts of the partitions in hyper_config/method2 (EHGFormer's manual partitions).
PART_NAMES = {
    (0, 1, 1, 1, 2, 2, 2, 0, 0, 3, 3, 4, 4, 4, 5, 5, 5):
        ("torso", "right leg", "left leg", "head", "left arm", "right arm"),
    (0, 0, 0, 0, 0, 0, 0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2): ("lower body", "spine", "upper body"),
}
# Temporal maps of one batch are [N, J, H, T, T] per layer and stream: cap N * T * T.
BATCH_ELEMENTS = 120_000


class SelectionError(ConfigError):
    """A --clips / --layers / --heads / --joint value that does not fit the model or data."""


# -- selections ---------------------------------------------------------------------------------

def select_clips(spec: str, num_clips: int) -> np.ndarray:
    """Clip indices from ``spec``: ``'all'``, a count ``'8'`` (evenly spread over the test set),
    a list ``'0,5,9'`` (a single index: ``'5,'``) or a range ``'10:20'``."""
    spec = str(spec).strip()
    if num_clips == 0:
        raise SelectionError("the test split has no clips")
    if spec == "all":
        return np.arange(num_clips)
    try:
        if ":" in spec:
            start, stop = (int(v) if v else None for v in spec.split(":"))
            idx = np.arange(num_clips)[slice(start, stop)]
        elif "," in spec:
            idx = np.array([int(v) for v in spec.split(",") if v.strip()])
        else:
            count = min(int(spec), num_clips)
            idx = np.unique(np.linspace(0, num_clips - 1, max(count, 1)).round().astype(int))
    except ValueError:
        raise SelectionError(f"--clips must be 'all', a count, a list '0,5,9' or a range '10:20', got {spec!r}")
    if len(idx) == 0 or idx.min() < 0 or idx.max() >= num_clips:
        raise SelectionError(f"--clips {spec!r} selects no valid clip (the test split has {num_clips})")
    return idx


def select_indices(values, count: int, what: str) -> list[int]:
    """``values`` (None = all) checked against ``range(count)``; ``what`` names the option."""
    if not values:
        return list(range(count))
    bad = [v for v in values if not 0 <= v < count]
    if bad:
        raise SelectionError(f"--{what} {bad} out of range: the model has {count} {what} (0..{count - 1})")
    return list(values)


def select_joint(spec: str) -> int | None:
    """``'mean'`` -> None (average over joints), else a joint index or H36M joint name."""
    spec = str(spec).strip().lower()
    if spec == "mean":
        return None
    if spec.isdigit() and int(spec) < len(JOINT_NAMES):
        return int(spec)
    if spec in JOINT_NAMES:
        return JOINT_NAMES.index(spec)
    raise SelectionError(f"--joint must be 'mean', 0..{len(JOINT_NAMES) - 1} or one of {', '.join(JOINT_NAMES)}; "
                         f"got {spec!r}")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("s" if count != 1 else "")


def part_names(joint_label) -> list[str]:
    """Body-part name of each hyperedge: known partitions by name, others by their joints."""
    label = tuple(int(e) for e in joint_label)
    if label in PART_NAMES:
        return list(PART_NAMES[label])
    return [f"edge {e}: " + "+".join(JOINT_NAMES[j] for j, l in enumerate(label) if l == e)
            for e in range(max(label) + 1)]


# -- model and data -----------------------------------------------------------------------------

def load_test_clips(cfg, spec: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(inputs [C, T, 17, 3], clip indices [C], 'source (action)' of each clip)``."""
    ensure_source(cfg)
    reader = reader_from_config(cfg)
    all_idx = reader.clip_indices("test")
    chosen = select_clips(spec, len(all_idx))
    frames = all_idx[chosen]
    meta = reader.test_meta(strided=True)
    labels = [f"{meta.sources[f[0]]} ({meta.actions[f[0]]})" for f in frames]
    return reader.read_2d("test")[frames], chosen, labels


# -- collection ---------------------------------------------------------------------------------

@dataclass
class AttentionMaps:
    """Attention of a model averaged over clips (and, for spatial maps, frames).

    ``spatial [L, 2, H, J, J + E]``, ``temporal [L, 2, H, T, T]`` (for ``joint``, or the mean
    over joints when ``joint`` is None), ``relation_bias [L, 2, H, J, J]`` and ``incidence
    [J, E]`` (version 2, else None). Axis 1 is the stream, in :data:`STREAMS` order.
    """
    spatial: np.ndarray
    temporal: np.ndarray
    relation_bias: np.ndarray | None
    incidence: np.ndarray | None
    joint: int | None
    num_clips: int

    @property
    def num_edges(self) -> int:
        return self.spatial.shape[-1] - self.spatial.shape[-2]


def stacked(per_layer: list, reduce) -> torch.Tensor:
    """``[L, 2, ...]`` from a list of ``{'st', 'ts'}`` dicts, ``reduce`` applied to each map."""
    return torch.stack([torch.stack([reduce(layer[s]) for s in STREAMS]) for layer in per_layer])


@torch.no_grad()
def collect_attention(model, clips: np.ndarray, joint: int | None = None,
                      device=torch.device("cpu")) -> AttentionMaps:
    """Average the explicit attention maps of ``model`` over ``clips [C, T, J, dim_in]``."""
    model.eval().to(device)
    num, frames = clips.shape[:2]
    batch = max(1, BATCH_ELEMENTS // (frames * frames))
    pick = (lambda t: t.mean(dim=1)) if joint is None else (lambda t: t[:, joint])
    spatial = temporal = 0.0
    for start in range(0, num, batch):
        x = torch.as_tensor(clips[start:start + batch], dtype=torch.float32, device=device)
        att = model.forward_with_extras(x, return_attention=True)["attention"]
        spatial = spatial + stacked(att["spatial"], lambda a: a.double().sum(dim=(0, 1))).cpu()
        temporal = temporal + stacked(att["temporal"], lambda a: pick(a).double().sum(dim=0)).cpu()
    bias = stacked(att["relation_bias"], lambda b: b.double()).cpu().numpy() if att["relation_bias"] else None
    incidence = att["incidence"].cpu().numpy() if att["incidence"] is not None else None
    return AttentionMaps(spatial=(spatial / (num * frames)).numpy(), temporal=(temporal / num).numpy(),
                         relation_bias=bias, incidence=incidence, joint=joint, num_clips=num)


# -- plotting -----------------------------------------------------------------------------------

@dataclass
class Axis:
    """Tick labels (None = numeric ticks) and the label of one heatmap axis."""
    label: str
    names: list[str] | None = None


def heatmap_grid(path: str, title: str, rows: dict[str, list], x: Axis, y: Axis,
                 cmap: str = "Reds", symmetric: bool = False, colorbar: bool = True) -> None:
    """Save a grid of heatmaps: ``rows`` maps a row label to ``[(panel title, matrix), ...]``.

    One colour scale (and colorbar) for the whole figure, so panels compare directly; it spans the
    data (not 0..1), so near-uniform maps keep their contrast: read values off the colorbar.
    ``symmetric`` centres a diverging scale on 0 (for biases).
    """
    mats = [m for panels in rows.values() for _, m in panels]
    vmax = max(float(np.abs(m).max()) for m in mats) or 1.0
    vmin = -vmax if symmetric else min(float(m.min()) for m in mats)
    n_rows, n_cols = len(rows), max(len(p) for p in rows.values())
    cell = max(2.6 if x.names and len(x.names) > 8 else 2.2, 2.2 + mats[0].shape[0] / 100)  # T x T: larger
    fig = Figure(figsize=(cell * n_cols + 1.6, cell * n_rows + 1.0), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, (row_label, panels) in enumerate(rows.items()):
        for c, ax in enumerate(axes[r]):
            if c >= len(panels):
                ax.set_axis_off()
                continue
            image = ax.imshow(panels[c][1], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest",
                              aspect="auto")
            ax.set_title(panels[c][0], fontsize=8)
            label_axes(ax, x, y, bottom=r == n_rows - 1, left=c == 0, row_label=row_label)
    if colorbar:
        fig.colorbar(image, ax=axes, shrink=0.6, fraction=0.03, pad=0.02)
    fig.suptitle(title, fontsize=10)
    with atomic_write(path) as f:
        fig.savefig(f, dpi=100, format=os.path.splitext(path)[1][1:] or "png")


def label_axes(ax, x: Axis, y: Axis, bottom: bool, left: bool, row_label: str) -> None:
    """Joint/part names (or frame numbers) on the outer panels only."""
    for axis, spec, show, rotation in ((ax.xaxis, x, bottom, 90), (ax.yaxis, y, left, 0)):
        if spec.names is not None:
            axis.set_ticks(range(len(spec.names)))
            axis.set_ticklabels(spec.names if show else [], fontsize=6, rotation=rotation)
        elif not show:
            axis.set_ticklabels([])
    if bottom:
        ax.set_xlabel(x.label, fontsize=7)
    if left:
        ax.set_ylabel(f"{row_label}\n{y.label}", fontsize=7)


def head_panels(maps: np.ndarray, heads: list[int]) -> list:
    """``[(title, matrix)]`` for the chosen heads of ``maps [H, ...]`` plus the mean of all heads."""
    return [(f"head {h}", maps[h]) for h in heads] + [(f"mean of {len(maps)} heads", maps.mean(axis=0))]


def per_stream(maps: np.ndarray, heads: list[int]) -> dict[str, list]:
    """Rows of a head grid, one per stream, from ``maps [2, H, ...]``."""
    return {s: head_panels(maps[i], heads) for i, s in enumerate(STREAMS)}


# -- figures ------------------------------------------------------------------------------------

JOINT_QUERY, JOINT_KEY = Axis("query joint", list(JOINT_NAMES)), Axis("key joint", list(JOINT_NAMES))


def part_axis(parts: list[str]) -> Axis:
    """The hyperedge axis, labelled with body-part names."""
    return Axis("hyperedge (body part)", parts)


def spatial_figures(maps: AttentionMaps, out_dir: str, layers: list[int], heads: list[int], parts) -> list:
    """Joint->joint (and, version 2, joint->hyperedge) grids per layer; ``[(file, caption)]``."""
    entries, joints = [], maps.spatial.shape[-2]
    rest = " Rows sum to 1 minus the mass given to hyperedges." if parts else " Rows sum to 1."
    for layer in layers:
        name, title = f"spatial_layer{layer}.png", f"Layer {layer}: spatial attention joint -> joint"
        heatmap_grid(os.path.join(out_dir, name), f"{title} (mean over {plural(maps.num_clips, 'clip')} x frames)",
                     per_stream(maps.spatial[layer, ..., :joints], heads), JOINT_KEY, JOINT_QUERY)
        entries.append((name, f"Layer {layer}, spatial attention between joints: row = attending joint, column = "
                        "attended joint; rows st/ts = the two streams, columns = heads and their mean." + rest))
        if parts:
            name = f"hyperedge_layer{layer}.png"
            heatmap_grid(os.path.join(out_dir, name), f"Layer {layer}: spatial attention joint -> hyperedge",
                         per_stream(maps.spatial[layer, ..., joints:], heads), part_axis(parts), JOINT_QUERY)
            entries.append((name, f"Layer {layer}, attention of each joint to the hyperedge (body-part) tokens, "
                            "the other part of the same softmax as the joint->joint map."))
    return entries


def temporal_figures(maps: AttentionMaps, out_dir: str, layers: list[int]) -> list:
    """Frame->frame attention per layer, head mean, both streams; ``[(file, caption)]``."""
    who = "averaged over joints" if maps.joint is None else f"joint {JOINT_NAMES[maps.joint]}"
    entries = []
    for layer in layers:
        name = f"temporal_layer{layer}.png"
        rows = {"head mean": [(STREAM_NAMES[s], maps.temporal[layer, i].mean(axis=0))
                              for i, s in enumerate(STREAMS)]}
        heatmap_grid(os.path.join(out_dir, name), f"Layer {layer}: temporal attention, {who}, mean over heads "
                     f"and {plural(maps.num_clips, 'clip')}", rows, Axis("key frame"), Axis("query frame"))
        entries.append((name, f"Layer {layer}, temporal attention between the frames of a clip ({who}, mean over "
                        "heads): row = attending frame, column = attended frame; left st stream, right ts stream."))
    return entries


def hypergraph_figures(maps: AttentionMaps, out_dir: str, layers: list[int], heads: list[int], parts) -> list:
    """Incidence matrix and learned relation bias per layer (version 2); ``[(file, caption)]``."""
    incidence = {"": [(f"incidence matrix, {len(parts)} hyperedges", maps.incidence)]}
    heatmap_grid(os.path.join(out_dir, "hypergraph.png"), "Hypergraph: joint membership of the hyperedges",
                 incidence, part_axis(parts), Axis("joint", list(JOINT_NAMES)), cmap="Blues", colorbar=False)
    entries = [("hypergraph.png", "The hypergraph from --hyper_cfg: a filled cell marks the body part (hyperedge) "
                "a joint belongs to.")]
    for layer in layers:
        name = f"relation_bias_layer{layer}.png"
        heatmap_grid(os.path.join(out_dir, name), f"Layer {layer}: learned joint-joint relation bias alpha * B "
                     "(added to q.k, then scaled by 1/sqrt(d))", per_stream(maps.relation_bias[layer], heads),
                     JOINT_KEY, JOINT_QUERY, cmap="RdBu_r", symmetric=True)
        entries.append((name, f"Layer {layer}, learned relation bias per head (red = attention pushed towards, "
                        "blue = away from the column joint); at initialisation it is the skeleton prior of "
                        "--hyper_relation_bias."))
    return entries


def write_figures(maps: AttentionMaps, out_dir: str, layers: list[int], heads: list[int],
                  joint_label=None) -> list[tuple[str, str, str]]:
    """Write every figure and ``attention.npz`` into ``out_dir``; ``[(section, file, caption)]``."""
    os.makedirs(out_dir, exist_ok=True)
    parts = part_names(joint_label) if maps.incidence is not None else None
    sections = [("Spatial attention", spatial_figures(maps, out_dir, layers, heads, parts)),
                ("Temporal attention", temporal_figures(maps, out_dir, layers))]
    if parts:
        sections.append(("Hypergraph and relation bias", hypergraph_figures(maps, out_dir, layers, heads, parts)))
    arrays = {k: v for k, v in vars(maps).items() if isinstance(v, np.ndarray)}
    save_npz(os.path.join(out_dir, "attention.npz"), **arrays)
    return [(section, f, c) for section, entries in sections for f, c in entries]


def write_index(out_dir: str, title: str, notes: list[str], figures: list[tuple[str, str, str]]) -> None:
    """``index.md`` and ``index.html`` listing every figure with its caption under ``notes``."""
    md, body, current = [f"# {title}", ""] + [f"- {n}" for n in notes], [], None
    for section, name, caption in figures:
        if section != current:
            md += ["", f"## {section}"]
            body.append(f"<h2>{html.escape(section)}</h2>")
            current = section
        md += ["", f"![{name}]({name})", "", caption]
        body.append(f'<figure><img src="{name}" style="max-width:100%"><figcaption>{html.escape(caption)}'
                    "</figcaption></figure>")
    with atomic_write(os.path.join(out_dir, "index.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    with atomic_write(os.path.join(out_dir, "index.html"), "w") as f:
        f.write(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
                f"<body><h1>{html.escape(title)}</h1><ul>{items}</ul>{''.join(body)}</body></html>\n")


# -- entry point --------------------------------------------------------------------------------

def default_out_dir(checkpoint_path: str) -> str:
    """``vis_data/<run name>``, the run name being the checkpoint's folder name."""
    run = os.path.basename(os.path.dirname(os.path.abspath(checkpoint_path))) or "run"
    return os.path.join("vis_data", run)


def run_vis_attn(cfg, checkpoint_path: str, out_dir: str | None = None, clips: str = "8",
                 layers=None, heads=None, joint: str = "mean") -> str:
    """Load, collect and plot (see module doc); returns the output folder. A missing or
    mismatching checkpoint, missing data or a bad selection raise a Pose3DError."""
    out_dir = out_dir or default_out_dir(checkpoint_path)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputFileError(f"--out_dir {out_dir!r} is a file; give a folder for the figures")
    model = load_model(cfg, checkpoint_path, verbose=True)
    layers = select_indices(layers, model.config.depth, "layers")
    heads = select_indices(heads, model.config.num_heads, "heads")
    joint_idx = select_joint(joint)
    inputs, chosen, labels = load_test_clips(cfg, clips)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    maps = collect_attention(model, PoseCodec.from_config(cfg).model_channels(inputs), joint_idx, device)
    label = model.hypergraph.joint_label.tolist() if model.hypergraph is not None else None
    figures = write_figures(maps, out_dir, layers, heads, label)
    write_index(out_dir, f"Attention heatmaps: {os.path.basename(os.path.normpath(out_dir))}",
                run_notes(model.config, label, checkpoint_path, inputs.shape, chosen, labels), figures)
    print(f"Saved {len(figures)} figures and index.md under {out_dir}")
    return out_dir


def run_notes(config, joint_label, checkpoint_path: str, shape, chosen: np.ndarray, labels: list[str]) -> list[str]:
    """The facts a reader needs next to the figures (``config``: the model's DSTformerConfig)."""
    shown = ", ".join(f"{i}: {s}" for i, s in zip(chosen[:12], labels[:12])) + (" ..." if len(chosen) > 12 else "")
    return [f"checkpoint: `{checkpoint_path}`",
            f"model: version {config.version}, depth {config.depth}, {config.num_heads} heads, dim {config.dim_feat}"
            + (f", joint_label {joint_label}" if joint_label is not None else ""),
            f"averaged over {len(chosen)} test clips of {shape[1]} frames (no flip augmentation): {shown}",
            "rows = query (attending) joint/frame, columns = key (attended); streams st and ts shown separately"]
