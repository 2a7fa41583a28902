"""What the entry points run: training (any trainer class) and evaluation of a checkpoint."""
from __future__ import annotations

import os

import torch

from lib.data.prepare import ensure_clips, ensure_source
from lib.engine import distributed as dist
from lib.engine.evaluator import Evaluator, describe, format_table, save_results
from lib.model.checkpoint import read_checkpoint
from lib.io import check_output_path, protected_inputs
from lib.model.factory import load_model


def prepare_data(cfg) -> None:
    """Rank 0 makes the data the config trains on (synthetic source, clips); the others wait."""
    dist.init_distributed()
    if dist.is_main():
        ensure_clips(cfg)
    dist.barrier()


def run_training(cfg, args, trainer_cls=None):
    """Prepare the data, build the trainer (``Trainer`` unless given), set it up and train;
    returns the last results."""
    from lib.engine.trainer import Trainer
    trainer_cls = trainer_cls or Trainer
    try:
        prepare_data(cfg)
        trainer = trainer_cls(cfg, args.checkpoint, seed=args.seed)
        trainer.setup(args.resume)
        return trainer.fit()
    finally:
        dist.cleanup()


def run_evaluation(cfg, checkpoint_path: str) -> dict:
    """Load ``checkpoint_path`` into the configured model, evaluate, print and save the table
    (its ``about`` says which split selected the checkpoint, when the checkpoint records it)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = os.path.splitext(checkpoint_path)[0] + "_eval.json"
    with protected_inputs({"the checkpoint being evaluated": checkpoint_path,
                           "the source pickle": os.path.join(cfg.dt_root, cfg.dt_file)}):
        check_output_path(out)                            # before the evaluation
        checkpoint = read_checkpoint(checkpoint_path)
        model = load_model(cfg, checkpoint_path, checkpoint=checkpoint)
        ensure_source(cfg)  # the evaluation reads the source pickle, not the clip files
        results = Evaluator(cfg).run(model.to(device), device)
        run = checkpoint.run
        results["about"] = describe(cfg, run and run.selected_on, run and run.epoch)
        print(format_table(results))
        save_results(results, out)
    print(f"Saved {out}")
    return results
