"""What the entry points run: training (any trainer class) and evaluation of a checkpoint."""
from __future__ import annotations

import os

import torch

from lib.data.prepare import ensure_source
from lib.engine import distributed as dist
from lib.engine.evaluator import Evaluator, format_table, save_results
from lib.model.factory import load_model


def run_training(cfg, args, trainer_cls=None):
    """Build the trainer (``Trainer`` unless given), set it up and train; returns the last results."""
    from lib.engine.trainer import Trainer
    trainer_cls = trainer_cls or Trainer
    try:
        trainer = trainer_cls(cfg, args.checkpoint, seed=args.seed)
        trainer.setup(args.resume)
        return trainer.fit()
    finally:
        dist.cleanup()


def run_evaluation(cfg, checkpoint_path: str) -> dict:
    """Load ``checkpoint_path`` into the configured model, evaluate, print and save the table."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(cfg, checkpoint_path)
    ensure_source(cfg)  # the evaluation reads the source pickle, not the clip files
    results = Evaluator(cfg).run(model.to(device), device)
    print(format_table(results))
    out = os.path.splitext(checkpoint_path)[0] + "_eval.json"
    save_results(results, out)
    print(f"Saved {out}")
    return results
