"""Render docs/config.md from the schema, so the page lists exactly the keys the code accepts.

    python -m lib.config.docs > docs/config.md

``tests/test_config.py`` asserts that docs/config.md equals :func:`render_markdown`.
"""
from __future__ import annotations

import json

from lib.config.schema import FILE_FLAGS, KEYS, REJECTED, RESUME_RULE, SECTIONS, Key

INTRO = """# Configuration keys

Generated from the schema in `lib/config/schema.py` by `python -m lib.config.docs > docs/config.md`
(a test fails when this page and the schema differ). Every key has one default, one check and
one meaning; a key that is not listed here is an error naming the key and the file.

## Resolution order

Later wins:

1. the defaults below;
2. the `--config` YAML (configs/pose3d/*.yaml): keys of the groups model to evaluation/selection;
3. the `--hyper_cfg` YAML (hyper_config/method2/*.yaml): the hyperedge file keys;
4. the `--distill_cfg` YAML (distill_config/*.yaml, train_distill.py): the distill file keys,
   stored under `cfg.distill`;
5. the command line: `--set KEY=VALUE` (any key of 2 and 3), `--set distill.KEY=VALUE` (a key
   of 4), then the flags `--version`, `--hyper_relation_bias`, `--pretrained`,
   `--backbone_lr_mult`, `--freeze_backbone_epochs`, `--bf16`, `--gt_2d`. A flag wins over
   `--set` of the same key only when the flag is given.

`--set` values are read as YAML: `--set learning_rate=1e-4`, `--set flip=false`,
`--set subset_list=[a,b]`, and `--set pretrained=null` sets None (null in a file does the same).
Numbers may be written `2e-4` (YAML reads that as a string; the schema reads a number). An
integer key refuses `1.5` and `true`; a true/false key refuses `1`. Flag values pass the same
checks. Cross-key rules: `num_heads` divides `dim_feat`; `clip_len <= maxlen`; version 2 needs
`joint_label`; `select_on: val` needs `val_fraction > 0` or `val_subjects`; `finetune: true`
needs `pretrained` (training only); the distill file's pairs, weights and student sizes
(docs/distillation.md). The resolved config is saved as `config.yaml` next to every checkpoint;
it carries the hyperedge keys and a `distill:` mapping too and is itself a valid `--config`
(`python train.py --config checkpoint/x/config.yaml --checkpoint checkpoint/y` repeats run x).

Entry points: train = train.py, distill = train_distill.py, evaluate = evaluate.py, vis =
vis_attn.py, export = deployment/deployment_pose3d.py, wild = deployment/infer_wild.py
(wild reads the config only for a checkpoint or an .onnx without metadata).
"""

SHORT = {"train.py": "train", "train_distill.py": "distill", "evaluate.py": "evaluate", "vis_attn.py": "vis",
         "deployment/deployment_pose3d.py": "export", "deployment/infer_wild.py": "wild"}


def _row(key: Key) -> str:
    readers = ", ".join(SHORT[r] for r in key.readers) or "checked only"
    default = json.dumps(key.default)
    return f"| `{key.name}` | `{default}` | {key.check.describe} | {key.meaning} | {readers} |"


def _group(group: str) -> list[str]:
    flag = FILE_FLAGS[SECTIONS[group]]
    lines = [f"## {group.capitalize()} ({flag})", "", "| key | default | value | meaning | read by |",
             "|---|---|---|---|---|"]
    return lines + [_row(k) for k in KEYS if k.group == group] + [""]


def _rejected() -> list[str]:
    lines = ["## Rejected keys", "", "MotionBERT configs may hold these; Pose3D does not implement them, so a file "
             "(or `--set`) that names one is an error instead of a key that silently does nothing:", ""]
    return lines + [f"- `{name}`: {what}" for name, what in REJECTED.items()] + [""]


def _resuming() -> list[str]:
    kept = ", ".join(f"`{'distill.' if k.section == 'distill' else ''}{k.name}`" for k in KEYS if k.kept)
    return ["## Resuming", "",
            "A resume (`latest_epoch.bin` or `-r FILE`) is refused, before anything in the run folder changes, when "
            "one of these keys differs from the value the run was trained with (the message names each key with "
            f"both values; `--new_run` starts a fresh run instead, docs/train.md): {kept}. They set {RESUME_RULE}.",
            ""]


def render_markdown() -> str:
    """The full text of docs/config.md."""
    lines = [INTRO] + _resuming()
    for group in SECTIONS:
        lines += _group(group)
    return "\n".join(lines + _rejected())


if __name__ == "__main__":
    print(render_markdown(), end="")
