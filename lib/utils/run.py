"""What the entry points run: training and evaluation with friendly errors."""
from __future__ import annotations

import os
import sys

import torch

from lib.data.h36m import DataError
from lib.data.prepare import ensure_source
from lib.model.factory import CheckpointMismatchError, build_model, extract_state_dict, load_weights
from lib.utils import distributed as dist
from lib.utils.checkpoint import load_checkpoint
from lib.utils.evaluation import Evaluator, format_table, save_results


def run_training(cfg, args, trainer_cls=None):
    """Build the trainer (``Trainer`` unless given), set it up and train; exit cleanly on bad data."""
    from lib.utils.training import Trainer, TrainingDiverged
    trainer_cls = trainer_cls or Trainer
    try:
        trainer = trainer_cls(cfg, args.checkpoint, seed=args.seed)
        trainer.setup(args.resume)
        results = trainer.fit()
    except (DataError, TrainingDiverged, CheckpointMismatchError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    finally:
        dist.cleanup()
    return results


def run_evaluation(cfg, checkpoint_path: str) -> dict:
    """Load ``checkpoint_path`` into the configured model, evaluate, print and save the table."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        model = build_model(cfg)
        load_weights(model, extract_state_dict(load_checkpoint(checkpoint_path)))
        ensure_source(cfg)  # the evaluation reads the source pickle, not the clip files
        results = Evaluator(cfg).run(model.to(device), device)
    except (DataError, FileNotFoundError, CheckpointMismatchError) as err:
        sys.exit(f"error: {err}")
    print(format_table(results))
    out = os.path.splitext(checkpoint_path)[0] + "_eval.json"
    save_results(results, out)
    print(f"Saved {out}")
    return results

