"""What the entry points run: training (any trainer class) and evaluation of a checkpoint."""
from __future__ import annotations

import contextlib
import os
import signal
import threading

import torch

from lib.data.prepare import ensure_clips, ensure_source
from lib.engine import distributed as dist
from lib.engine.evaluator import Evaluator, describe, format_table, save_results
from lib.model.checkpoint import read_checkpoint
from lib.config.cli import rerun_command
from lib.engine.run_folder import LATEST
from lib.errors import Interrupted, Terminated
from lib.io import check_output_path, own_folder, protected_inputs
from lib.model.factory import load_model


def prepare_data(cfg) -> None:
    """Rank 0 makes the data the config trains on (synthetic source, clips); the others wait."""
    dist.init_distributed()
    if dist.is_main():
        ensure_clips(cfg)
    dist.barrier()


def run_training(cfg, args, trainer_cls=None, script: str = "train.py", argv: list[str] | None = None):
    """Own the run folder (:func:`lib.io.own_folder`: a second process on it refuses with this one's
    PID), prepare the data, build the trainer (``Trainer`` unless given), set it up and train;
    returns the last results. Ctrl-C and SIGTERM end as :class:`Interrupted`: one line saying what
    is on disk and the command (``script`` with ``argv``) that resumes."""
    from lib.engine.trainer import Trainer
    trainer_cls = trainer_cls or Trainer
    try:
        with sigterm_stops_the_run():
            return _train(cfg, args, trainer_cls)
    except KeyboardInterrupt as err:
        how, status = ("SIGTERM", 143) if isinstance(err, Terminated) else ("Ctrl-C", 130)
        raise Interrupted(interrupted_message(args.checkpoint, script, argv, how), status) from None
    finally:
        dist.cleanup()


@contextlib.contextmanager
def sigterm_stops_the_run():
    """While training, SIGTERM (``kill PID``, a scheduler's or container's stop) raises
    :class:`Terminated` in the main thread, so the run stops like Ctrl-C; the previous handler is
    restored afterwards. Off the main thread (where Python cannot install handlers) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Terminated()
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _train(cfg, args, trainer_cls):
    dist.init_distributed()
    with own_folder(args.checkpoint) if dist.is_main() else contextlib.nullcontext():
        trainer = trainer_cls(cfg, args.checkpoint, seed=args.seed)
        trainer.accept(args.resume, new_run=args.new_run)     # a refused resume: before any work
        prepare_data(cfg)
        trainer.setup()
        return trainer.fit()


def interrupted_message(folder: str, script: str, argv: list[str] | None, how: str = "Ctrl-C") -> str:
    """What a Ctrl-C (or ``how``) leaves: the epochs saved in ``folder`` and the exact command that goes on."""
    from lib.engine.trainer import checkpoint_epoch
    latest = os.path.join(folder, LATEST)
    epochs = checkpoint_epoch(latest)
    if epochs is None:
        return (f"interrupted ({how}) before the first epoch ended; nothing to resume. Start again with: "
                f"{rerun_command(script, argv)}")
    return (f"interrupted ({how}); {latest} holds {epochs} finished epochs. Resume with: "
            f"{rerun_command(script, argv, drop_resume=True)}")


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
