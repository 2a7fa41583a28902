"""The training loop shared by train.py and train_distill.py.

Pieces, each usable on its own (tools/bench/benchmark.py drives a Trainer through the public
methods): :func:`build_run_data` (training loader without the validation sequences, test
evaluator, validation scorer; reads prepared clips, never writes them -- the entry point prepares
the data), :func:`build_optimizer` and :func:`learning_rate` (AdamW groups and the per-epoch
decay), and :class:`Trainer` (model, step, epoch loop, checkpoints, TensorBoard). A subclass
changes what a step optimises by overriding :meth:`Trainer.compute_loss` and adds modules to
optimise and save through :meth:`Trainer.extra_modules` (see the distillation trainer).

Model selection: ``best_epoch.bin`` is the checkpoint with the lowest P1 on the validation split
(``select_on: val``, held-out training sequences, lib/data/splits.py) or, as MotionBERT and
EHGFormer do, on the test protocol (``select_on: test``). The test set is scored for reporting
either way. The run state (epoch, best score with its units and split, the last results, RNG) is
one :class:`~lib.model.checkpoint.RunState`, saved in every checkpoint.

Nothing is lost when a run is killed. :meth:`Trainer.end_epoch` writes ``latest_epoch.bin``
*first*; only then does anything that can fail run (evaluation, best checkpoint, results files).
The evaluation results are then stored in ``latest_epoch.bin`` too, so a restart knows what the
killed run had finished, and :meth:`Trainer.recover` (called by ``setup``) completes each missing
artefact before training on. Temporary files of interrupted writes are removed on start.
TensorBoard scalars are drained to disk at every epoch end and evaluation (``EventLog``).

Everything a run starts from is read and checked by :meth:`Trainer.accept` before anything in
the run folder is written: a resume is accepted or refused (run state present, no ``kept``
config key changed), the model is built and the ``--pretrained`` weights (and a distillation's
teacher, student and distiller files) are loaded, so a bad file is refused before ``--new_run``
moves a previous run away or ``config.yaml`` is replaced; :meth:`Trainer.setup` owns that order.

Determinism: the data order comes from a ``DistributedSampler`` seeded with ``seed`` and the
epoch, the flip coin of each batch from a generator seeded with (seed, epoch, rank), and the
torch RNG state (drop path) is saved in every checkpoint, so a run stopped after epoch k and
resumed ends with the same weights as one that never stopped (on CPU).
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm import tqdm

from lib.data.codec import PoseCodec
from lib.data.dataset import make_dataset, set_dataset_epoch
from lib.data.h36m import reader_from_config
from lib.data.skeleton import flip
from lib.data.splits import held_out_sequences, stored_clip_sequences, train_clip_sequences
from lib.config.schema import config_differences, save_config, to_plain
from lib.engine import distributed as dist
from lib.engine import memory
from lib.engine.precision import PrecisionChoice, choose_precision, requested_precision, resumed_precision
from lib.engine.run_folder import LATEST, PREVIOUS, EventLog, archive_previous_run, foreign_entries
from lib.engine.evaluator import Evaluator, ValidationScorer, describe, format_table, save_results
from lib.errors import (CheckpointError, ConfigError, DataError, InputFileError, Pose3DError, TrainingDiverged,
                        signals_deferred)
from lib.io import load_json, remove_stale_temp_files, write_json
from lib.model.checkpoint import (Checkpoint, RunState, model_args_of, read_checkpoint, rng_state, set_rng_state,
                                  unwrap, write_checkpoint)
from lib.model.factory import CheckpointMismatchError, build_model, layernorm_eps_note, load_weights
from lib.model.loss import compute_losses
from lib.model.pretrained import load_pretrained

BEST = "best_epoch.bin"
LATEST_RESULTS, BEST_RESULTS = "latest_epoch_results.json", "best_epoch_results.json"
PRECISION = "precision.json"     # the precision the run's steps use and why (lib/engine/precision.py)
CHECK_EVERY = 25                 # steps between host syncs: progress bar and the non-finite-loss check


def checkpoint_epoch(path: str) -> int | None:
    """Epochs finished by the run state of the checkpoint at ``path`` (None: absent or unreadable)."""
    try:
        run = read_checkpoint(path).run
    except CheckpointError:
        return None
    return None if run is None else run.epoch


def results_epoch(path: str) -> int | None:
    """Epochs finished when the results file at ``path`` was evaluated (None: absent or unreadable)."""
    try:
        return load_json(path, "results file")["about"]["epoch"]
    except (Pose3DError, KeyError, TypeError):
        return None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# -- data ---------------------------------------------------------------------------------------
@dataclass
class RunData:
    """What a training run reads: the training loader and, on rank 0, the scorers."""
    loader: DataLoader
    evaluator: Evaluator | None = None          # test set (reporting; selection with select_on: test)
    validation: ValidationScorer | None = None  # held-out training sequences (selection)


def build_run_data(cfg, rank: int = 0, world: int = 1, seed: int = 0, evaluate: bool = True) -> RunData:
    """Loader over the training clips minus the validation sequences, and the scorers.

    Each clip's sequence comes from the clip folders' ``meta.json``; the source file is read only
    to evaluate, for random cameras, or to match a folder that does not record its sequences."""
    sequences = stored_clip_sequences(cfg) if cfg.select_on == "val" else None
    needs_source = evaluate or cfg.random_cameras or (cfg.select_on == "val" and sequences is None)
    reader = reader_from_config(cfg) if needs_source else None
    dataset = make_dataset(cfg, "train", reader)
    if cfg.select_on == "val" and sequences is None:
        sequences = train_clip_sequences(reader)
    held_out = held_out_sequences(sequences, cfg) if sequences is not None else set()
    if held_out:
        dataset = Subset(dataset, training_clips(len(dataset), sequences, held_out, cfg))
    loader = build_train_loader(dataset, cfg, rank, world, seed)
    if not evaluate:
        return RunData(loader)
    return RunData(loader, Evaluator(cfg, reader), ValidationScorer(cfg, reader, held_out) if held_out else None)


def training_clips(count: int, sequences: np.ndarray, held_out: set, cfg) -> np.ndarray:
    """Indices of the ``count`` training clips that do not belong to a held-out sequence, given
    each clip's sequence (clip i = ``%08d.pkl`` i)."""
    if len(sequences) != count:
        raise DataError(f"the clip folder(s) {list(cfg.subset_list)} under {cfg.data_root} hold {count} training "
                        f"clips, but their record (meta.json) or slicing {cfg.dt_file} with clip_len {cfg.clip_len}, "
                        f"data_stride {cfg.data_stride}, sample_stride {cfg.sample_stride} gives {len(sequences)}: "
                        "the clips were made from another source or with other settings; re-slice them with "
                        "python tools/convert_h36m_mixste_style.py (docs/data.md)")
    return np.flatnonzero(~np.isin(sequences, sorted(held_out)))


def build_train_loader(dataset: Dataset, cfg, rank: int, world: int, seed: int) -> DataLoader:
    """Shuffled training clips; the sampler is seeded and set per epoch (exact resume, DDP)."""
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
    workers = cfg.num_workers
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=torch.cuda.is_available(),
                      persistent_workers=workers > 0 and not cfg.random_cameras,  # new cameras per epoch
                      generator=torch.Generator().manual_seed(seed),
                      prefetch_factor=4 if workers > 0 else None)


def random_flip(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator):
    """Mirror each sample (input and label together) with probability 0.5 (as MotionBERT's ``MotionDataset3D``)."""
    mask = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)[:, None, None, None]
    return torch.where(mask, flip(x), x), torch.where(mask, flip(y), y)


# -- optimisation -------------------------------------------------------------------------------
# How an optimizer runs (not what it has learned): a saved state_dict carries these flags in its
# param_groups, and torch's load_state_dict would restore them with the moments.
IMPLEMENTATION_FLAGS = ("fused", "foreach", "capturable", "differentiable")


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load an optimizer state (moments, step counts, lr) but keep this build's implementation
    flags: a checkpoint written by the unfused AdamW of older Pose3D versions resumes on the fused
    kernel :func:`build_optimizer` chose (same arithmetic, one kernel for all parameters)."""
    chosen = [{k: g[k] for k in IMPLEMENTATION_FLAGS if k in g} for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, flags in zip(optimizer.param_groups, chosen):
        group.update(flags)


def build_optimizer(model: torch.nn.Module, cfg, pretrained=frozenset(), extra_params=()) -> torch.optim.AdamW:
    """AdamW with two groups: the parameters loaded from ``pretrained`` (``backbone``, see
    :func:`lr_multiplier`) and the rest (plus ``extra_params``); empty groups are dropped."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in named if n in pretrained], "backbone": True},
              {"params": [p for n, p in named if n not in pretrained] + list(extra_params), "backbone": False}]
    if cfg.freeze_backbone_epochs and not groups[1]["params"]:
        raise ConfigError("freeze_backbone_epochs > 0, but every parameter comes from the pretrained "
                          "checkpoint: nothing would train")
    # fused: one kernel over all parameters (on CPU ~10x faster than the per-parameter loop)
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.learning_rate, weight_decay=cfg.weight_decay,
                             fused=True)


def learning_rate(cfg, epoch: int) -> float:
    """Base learning rate of ``epoch``: ``learning_rate x lr_decay ** epoch`` (MotionBERT's schedule)."""
    return cfg.learning_rate * cfg.lr_decay ** epoch


def lr_multiplier(group: dict, cfg, epoch: int) -> float:
    """1 for new parameters; backbone_lr_mult for pretrained ones, 0 (frozen) in the first epochs."""
    if not group.get("backbone"):
        return 1.0
    return 0.0 if epoch < cfg.freeze_backbone_epochs else cfg.backbone_lr_mult


def wrap_model(model: torch.nn.Module, cfg, device: torch.device, world: int) -> torch.nn.Module:
    """``torch.compile`` (``cfg.compile``) and DDP (more than one process) around ``model``."""
    if cfg.compile:
        model = compile_or_fallback(model)
    if world > 1:
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return model


# -- the trainer --------------------------------------------------------------------------------
class Trainer:
    """Train (and evaluate) one model as configured; see the module docstring."""

    def __init__(self, cfg, checkpoint_dir: str, seed: int = 0, model=None):
        self.cfg, self.checkpoint_dir, self.seed = cfg, checkpoint_dir, seed
        self.rank, self.world, self.device = dist.init_distributed()
        seed_everything(seed)
        self.codec = PoseCodec.from_config(cfg)
        self.select_on = cfg.select_on
        self.run = RunState(lr=learning_rate(cfg, 0), selected_on=self.select_on)
        self.model = None if model is None else model.to(self.device)   # built by setup() otherwise
        self.optimizer = self.ddp_model = self.loader = self.evaluator = self.validation = self.writer = None
        self.precision: PrecisionChoice | None = None    # decided by the first train_step
        self.accepted = None     # (resume path, checkpoint, new_run, pretrained names) once accept() decided
        self.history = []   # per epoch: loss terms, lr and (when evaluated) P1/P2

    @property
    def start_epoch(self) -> int:
        return self.run.epoch

    # -- what a step optimises (overridden by the distillation trainer) --------------------
    def extra_modules(self) -> dict:
        """Other trained modules, optimised with the model and saved under ``extra``."""
        return {}

    def compute_loss(self, x: torch.Tensor, target: torch.Tensor):
        """Total loss and a dict of unweighted terms for one batch."""
        pred = self.ddp_model(self.codec.model_channels(x))
        return compute_losses(pred.float(), target, self.cfg)

    # -- set-up ------------------------------------------------------------------------------
    def accept(self, resume: str = "", new_run: bool = False) -> None:
        """Read and check what this run starts from, writing nothing: the checkpoint to resume
        (``resume``, else the run folder's ``latest_epoch.bin`` unless ``new_run``) and its
        acceptance (:meth:`accept_resume`), then the model with the files it is initialised from
        (:meth:`setup_model`, :meth:`apply_pretrained`). :meth:`setup` calls it unless the entry
        point did first (so that a refused file stops before the data is prepared)."""
        if new_run and resume:
            raise ConfigError("--new_run starts a fresh run in the run folder; it cannot be combined with "
                              f"-r/--resume {resume}")
        foreign = foreign_entries(self.checkpoint_dir) if new_run else []
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise InputFileError(f"--new_run would move everything in {self.checkpoint_dir} into "
                                 f"{self.path(PREVIOUS)}/N, and it also holds what no Pose3D run writes ({shown}): "
                                 "give the run's own folder or a new one as --checkpoint")
        resume = resume or ("" if new_run else self._auto_resume_path())
        checkpoint = read_checkpoint(resume) if resume else None
        if checkpoint is not None:
            self.accept_resume(resume, checkpoint)
        self.setup_model(checkpoint, resume)
        self.accepted = (resume, checkpoint, new_run, self.apply_pretrained(resume))

    def setup(self, resume: str = "", data: RunData | None = None, new_run: bool = False) -> None:
        """:meth:`accept` (unless done: the model, its pretrained weights, the resume checkpoint),
        then -- only then -- the run folder (:meth:`open_run_folder`), data (``build_run_data``
        unless given), optimizer, the resumed state, and :meth:`recover` (rank 0).

        This method owns the order "accept, then write": every refusal of a file the run starts
        from comes before the first change in the run folder."""
        if self.accepted is None:
            self.accept(resume, new_run)
        resume, checkpoint, new_run, pretrained = self.accepted
        if dist.is_main():
            self.open_run_folder(new_run)
        evaluate = not self.cfg.no_eval and dist.is_main()
        data = data or build_run_data(self.cfg, self.rank, self.world, self.seed, evaluate)
        self.loader, self.evaluator, self.validation = data.loader, data.evaluator, data.validation
        for module in self.extra_modules().values():
            module.to(self.device)
        self.prepare_optimisation(pretrained)
        if checkpoint is not None:
            self.resume(resume, checkpoint)
            if dist.is_main():
                self.recover()

    def accept_resume(self, path: str, checkpoint: Checkpoint) -> None:
        """Refuse to resume ``checkpoint`` (writing nothing) when it cannot continue this run: it
        lacks the run state, optimizer or extra modules, or it was trained with another value of a
        key whose change makes the scores incomparable (``kept`` in lib/config/schema.py; each
        differing key is named with both values). Other changed keys are printed as a note."""
        missing = [name for name in ("run", "optimizer") if getattr(checkpoint, name) is None]
        missing += [f"extra/{n}" for n in self.extra_modules() if n not in checkpoint.extra]
        if missing:
            raise CheckpointMismatchError(f"{path} cannot resume this run: it lacks {missing} (a resume needs a "
                                          "latest/epoch checkpoint written by the same script; use --pretrained "
                                          "to start from another model's weights)")
        differences = config_differences(checkpoint.config or {}, self.cfg) if checkpoint.config else []
        refused = [(name, a, b) for key, name, a, b in differences if key.kept]
        if refused:
            values = "; ".join(f"{name} {a!r} (saved) vs {b!r} (now)" for name, a, b in refused)
            keep = " ".join(f"--set {name}={json.dumps(a, separators=(',', ':'))}" for name, a, _ in refused)
            raise ConfigError(f"cannot resume {path}: it was trained with other values of keys that change what "
                              f"its scores mean: {values}. Keep the saved values ({keep}), start a new run in this "
                              f"folder with --new_run (the previous run's files are moved into "
                              f"{self.path(PREVIOUS)}/N), or use another --checkpoint folder")
        changed = [f"{name} {a!r} -> {b!r}" for key, name, a, b in differences if not key.kept]
        if changed and dist.is_main():
            print(f"note: resuming {path} with changed {', '.join(changed)}")

    def open_run_folder(self, new_run: bool = False) -> None:
        """Rank 0's first writes in the run folder: remove temporaries of interrupted writes, with
        ``new_run`` move the previous run's files away (:func:`archive_previous_run`), write
        ``config.yaml``, open the TensorBoard writer."""
        os.makedirs(self.checkpoint_dir, exist_ok=True)
        for path in remove_stale_temp_files(self.checkpoint_dir):
            print(f"Removed {path}, left by an interrupted write")
        if new_run:
            moved = archive_previous_run(self.checkpoint_dir)
            if moved:
                print(f"--new_run: moved the previous run's files into {moved}")
        save_config(self.cfg, self.path("config.yaml"))
        self.writer = EventLog(os.path.join(self.checkpoint_dir, "logs"))

    def setup_model(self, checkpoint: Checkpoint | None = None, path: str = "") -> None:
        """Build the configured model (unless one was given), with the LayerNorm eps of the run
        being resumed (its ``model_args``)."""
        if self.model is not None:
            return
        eps = None
        if checkpoint is not None:
            eps = checkpoint.layernorm_eps
            note = layernorm_eps_note(checkpoint, self.cfg.layernorm_eps)
            if note and dist.is_main():
                print(f"note: {path}: {note}")
        self.model = build_model(self.cfg, verbose=dist.is_main(), layernorm_eps=eps).to(self.device)

    def prepare_optimisation(self, pretrained=frozenset()) -> None:
        """The optimizer over the model (and extra modules) and the wrapped model a step calls."""
        self.setup_model()
        extra = [p for m in self.extra_modules().values() for p in m.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(self.model, self.cfg, pretrained, extra)
        self.ddp_model = self.wrap(self.model)

    def wrap(self, model):
        return wrap_model(model, self.cfg, self.device, self.world)

    def apply_pretrained(self, resume: str) -> set:
        """Initialise from ``cfg.pretrained`` (weights only) and return the pretrained parameter names.

        When resuming, the resumed weights win: the pretrained file is only matched (not loaded) to
        rebuild the same parameter groups.
        """
        if not self.cfg.pretrained:
            return set()
        if resume and dist.is_main():
            print(f"Resuming from {resume}: its weights take precedence over --pretrained {self.cfg.pretrained}")
        report = load_pretrained(self.model, self.cfg.pretrained, self.cfg.temp_embed_resize,
                                 apply=not resume, verbose=dist.is_main() and not resume)
        return report.loaded_parameters(self.model)

    def _auto_resume_path(self) -> str:
        path = os.path.join(self.checkpoint_dir, LATEST)
        return path if os.path.isfile(path) else ""

    def resume(self, path: str, checkpoint: Checkpoint) -> None:
        """Restore model, optimizer, extra modules and the run state (epoch, best score, RNG) of a
        checkpoint :meth:`accept_resume` accepted."""
        run = checkpoint.run
        load_weights(self.model, checkpoint.model_state)
        for name, module in self.extra_modules().items():
            module.load_state_dict(checkpoint.extra[name])
        load_optimizer_state(self.optimizer, checkpoint.optimizer)
        self.run = dataclasses.replace(run, selected_on=self.select_on)
        set_rng_state(run.rng)
        self.precision = resumed_precision(requested_precision(self.cfg), self.path(PRECISION))
        if self.precision is not None:
            self.announce_precision(save=False)
        if dist.is_main():
            print(f"Resumed from {path}: next epoch {self.run.epoch}, best P1 {self.run.best_score:.2f} "
                  f"{self.run.best_units or ''} ({self.select_on} split)")

    # -- restart: complete what a stopped run left undone -----------------------------------
    def recover(self) -> None:
        """Complete the end of the last finished epoch (:meth:`end_epoch`) where a stopped run left
        it: each artefact is checked on its own and only what is missing is done.

        * the epoch's evaluation was due but is not in ``latest_epoch.bin``: evaluate now, which
          writes everything that follows it (:meth:`evaluate_epoch`);
        * ``latest_epoch_results.json`` does not hold that evaluation: write it;
        * the epoch is the best: ``best_epoch.bin`` and ``best_epoch_results.json`` must hold it;
          each one that does not is written.
        """
        epoch, run = self.run.last_epoch, self.run
        if epoch < 0:
            return
        if run.results is None:
            if self.evaluation_due(epoch):
                print(f"Completing the evaluation of epoch {epoch + 1} that the stopped run did not finish")
                self.evaluate_epoch(epoch)
            return
        if results_epoch(self.path(LATEST_RESULTS)) != run.epoch:
            print(f"Completing {LATEST_RESULTS} of epoch {epoch + 1}")
            save_results(run.results, self.path(LATEST_RESULTS))
        if run.best_epoch != epoch:
            return
        if checkpoint_epoch(self.path(BEST)) != run.epoch:
            print(f"Completing {BEST} (epoch {epoch + 1})")
            write_checkpoint(self.path(BEST), self.checkpoint())
        if results_epoch(self.path(BEST_RESULTS)) != run.epoch:
            print(f"Completing {BEST_RESULTS} (epoch {epoch + 1})")
            save_results(run.results, self.path(BEST_RESULTS))

    # -- the loop ----------------------------------------------------------------------------
    def fit(self) -> dict | None:
        """Train from ``start_epoch`` to ``cfg.epochs``; returns the last evaluation results."""
        if dist.is_main():
            if self.run.epoch >= self.cfg.epochs:
                print(f"{self.checkpoint_dir} has already trained all {self.cfg.epochs} epochs: raise the count with "
                      "--set epochs=N to train on, or score it with evaluate.py --evaluate <checkpoint>.")
        results = self.run.results
        for epoch in range(self.run.epoch, self.cfg.epochs):
            lr = learning_rate(self.cfg, epoch)
            for group in self.optimizer.param_groups:
                group["lr"] = lr * lr_multiplier(group, self.cfg, epoch)
            t0 = time.time()
            terms = self.train_epoch(epoch)
            results = self.end_epoch(epoch, lr, terms, time.time() - t0) or results
        if self.writer:
            self.print_best()
            self.writer.close()
        return results

    def train_epoch(self, epoch: int) -> dict:
        """One pass over the training clips; returns the sample-weighted mean of each loss term."""
        self.model.train()
        self.loader.sampler.set_epoch(epoch)
        set_dataset_epoch(self.loader.dataset, epoch, self.seed)
        coin = torch.Generator().manual_seed(self.seed * 100_003 + epoch * 101 + self.rank)
        sums, count, checked = {}, 0, 0
        finite = torch.ones((), dtype=torch.bool, device=self.device)   # every loss so far finite (on device)
        limit = self.cfg.max_iters_per_epoch or len(self.loader)
        with signals_deferred():      # a bar half-built by Ctrl-C prints a traceback when it is collected
            bar = tqdm(self.loader, total=min(limit, len(self.loader)), desc=f"epoch {epoch}",
                       disable=not dist.is_main(), leave=False, mininterval=2.0)
        for step, (x, y) in enumerate(bar):
            if step >= limit:
                break
            loss, terms = self.train_step(x, y, coin)
            finite &= torch.isfinite(loss)
            n = x.shape[0]
            count += n
            for k, v in terms.items():                  # device tensors: no host sync per step
                sums[k] = sums.get(k, 0.0) + v.double() * n
            if step % CHECK_EVERY == 0:                 # the one host sync every CHECK_EVERY steps
                self.check_finite(finite, terms, epoch, checked, step)
                checked = step + 1
                bar.set_postfix(loss=f"{float(loss):.4f}")
        if count:
            self.check_finite(finite, terms, epoch, checked, step)
        stats = torch.stack([sums[k] for k in sorted(sums)] + [torch.tensor(float(count), dtype=torch.float64, device=self.device)])
        stats = dist.all_reduce_mean(stats).cpu()
        return {k: float(v) / float(stats[-1]) for k, v in zip(sorted(sums), stats[:-1])}

    def check_finite(self, finite: torch.Tensor, terms: dict, epoch: int, first: int, last: int) -> None:
        """Stop the run if a loss since the last check (steps ``first..last`` of ``epoch``) was not
        finite; nothing of this epoch has been saved, so ``latest_epoch.bin`` is the last good state."""
        if bool(finite):
            return
        values = {k: float(v) for k, v in terms.items()}
        raise TrainingDiverged(f"loss is {values['total']} ({values}) at or before step {last + 1} of epoch "
                               f"{epoch + 1} (first non-finite between steps {first + 1} and {last + 1}); stopped. "
                               f"{self.last_good_checkpoint()} "
                               "Try a lower learning_rate or check the input data for NaNs.")

    def last_good_checkpoint(self) -> str:
        """One sentence naming the last good checkpoint on disk (``latest_epoch.bin`` as the
        trainer last wrote it), or saying there is none yet."""
        path = self.path(LATEST)
        epochs = checkpoint_epoch(path)
        if epochs is None:
            return f"There is no checkpoint yet ({path} does not exist: no epoch of this run has finished)."
        return f"The last good checkpoint is {path} ({epochs} finished epochs)."

    def train_step(self, x, y, coin):
        """One update; returns the loss and its terms as device tensors (no host sync)."""
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        if self.cfg.flip:
            x, y = random_flip(x, y, coin)
        x, target = self.codec.with_gt_2d(x, y), self.codec.encode_target(y)
        if self.precision is None:
            self.decide_precision(x, target)
        with self.precision.autocast(self.device.type):
            loss, terms = self.compute_loss(x, target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), {**{k: v.detach() for k, v in terms.items()}, "total": loss.detach()}

    def decide_precision(self, x: torch.Tensor, target: torch.Tensor) -> None:
        """Resolve ``precision`` (``auto``: time this model on this batch, lib/engine/precision.py),
        print it with the memory allocator (lib/engine/memory.py) and save it as ``precision.json``."""
        def step(bf16: bool) -> None:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
                loss, _ = self.compute_loss(x, target)
            loss.backward()
            self.optimizer.zero_grad(set_to_none=True)

        key = (repr(model_args_of(unwrap(self.model))), tuple(x.shape), type(self).__name__)
        self.precision = choose_precision(requested_precision(self.cfg), self.device, step, key)
        self.announce_precision(save=True)

    def announce_precision(self, save: bool) -> None:
        """Print the precision and the memory allocator (rank 0); ``save`` it as ``precision.json``."""
        if dist.is_main():
            print(self.precision.describe(), flush=True)
            if self.device.type == "cpu":
                print(memory.describe(), flush=True)
            if save and os.path.isdir(self.checkpoint_dir):
                write_json(self.path(PRECISION), self.precision.as_dict())

    # -- end of an epoch: checkpoint first, then what can fail ---------------------------------
    def end_epoch(self, epoch: int, lr: float, terms: dict, seconds: float):
        """The end of ``epoch`` (rank 0), in this order; a restart completes it (:meth:`recover`):

        1. write ``latest_epoch.bin`` (results None) and ``epoch_k.bin``: the trained weights are safe;
        2. if an evaluation is due, :meth:`evaluate_epoch`: evaluate, update the best score, write
           ``latest_epoch.bin`` with the results, ``best_epoch.bin`` when this epoch is the best,
           then the results files.
        """
        results = None
        if dist.is_main():
            self.run = dataclasses.replace(self.run, epoch=epoch + 1, lr=lr * self.cfg.lr_decay, results=None,
                                           rng=rng_state())
            checkpoint = self.checkpoint()
            write_checkpoint(self.path(LATEST), checkpoint)
            if (epoch + 1) % self.cfg.checkpoint_frequency == 0:
                write_checkpoint(self.path(f"epoch_{epoch}.bin"), checkpoint)
            self.history.append({"epoch": epoch, "lr": lr, **terms})
            self.log_training(epoch, lr, terms, seconds)
            if self.evaluation_due(epoch):
                results = self.evaluate_epoch(epoch)
        dist.barrier()
        return results

    def evaluate_epoch(self, epoch: int) -> dict:
        """Evaluate the last finished epoch and write what depends on it, in order: the run state
        (best score), ``latest_epoch.bin`` with the results, ``best_epoch.bin`` (only when this
        epoch is the best), ``latest_epoch_results.json``, ``best_epoch_results.json``."""
        results = self.evaluate(epoch)
        is_best = self.run.record(results, *self.selection_score(results))
        checkpoint = self.checkpoint()
        write_checkpoint(self.path(LATEST), checkpoint)
        if is_best:
            write_checkpoint(self.path(BEST), checkpoint)
        save_results(results, self.path(LATEST_RESULTS))
        if is_best:
            save_results(results, self.path(BEST_RESULTS))
        self.log_evaluation(epoch, results)
        return results

    def checkpoint(self) -> Checkpoint:
        """The run as it stands: weights, model_args, config, run state, optimizer, extra modules."""
        model = unwrap(self.model)
        return Checkpoint(model.state_dict(), model_args_of(model), to_plain(self.cfg), dataclasses.replace(self.run),
                          self.optimizer.state_dict(), {k: m.state_dict() for k, m in self.extra_modules().items()})

    def evaluation_due(self, epoch: int) -> bool:
        return self.evaluator is not None and ((epoch + 1) % self.cfg.eval_frequency == 0 or epoch + 1 == self.cfg.epochs)

    def evaluate(self, epoch: int) -> dict:
        """Test protocol (+ full coverage) and, with a validation split, its score; fp32, eval mode."""
        model = unwrap(self.model)
        results = self.evaluator.run(model, self.device)
        if self.validation is not None:
            results["validation"] = self.validation.run(model, self.device)
        results["about"] = describe(self.cfg, self.select_on, epoch + 1)
        return results

    def selection_score(self, results: dict) -> tuple[float, str]:
        """P1 that picks ``best_epoch.bin`` and its units: validation split (select_on: val) or test protocol."""
        chosen = results["validation"] if self.select_on == "val" else results["protocol"]
        return chosen["p1"], chosen.get("units", "mm")

    def print_best(self) -> None:
        """The per-action table of the selected checkpoint (test set), at the end of every run."""
        path = self.path(BEST_RESULTS)
        if os.path.isfile(path):
            print(f"Best checkpoint {self.path(BEST)}:")
            print(format_table(load_json(path, "results file")))

    def path(self, name: str) -> str:
        return os.path.join(self.checkpoint_dir, name)

    # -- logging -----------------------------------------------------------------------------
    def log_training(self, epoch: int, lr: float, terms: dict, seconds: float) -> None:
        print(f"[{epoch + 1}/{self.cfg.epochs}] {seconds / 60:.2f} min  lr {lr:.3e}  "
              f"loss {terms.get('total', float('nan')):.5f}  mpjpe(train) {terms.get('3d_pos', float('nan')):.5f}",
              flush=True)
        self.writer.add_scalar("lr", lr, epoch + 1)
        for k, v in terms.items():
            self.writer.add_scalar(f"loss_{k}", v, epoch + 1)
        self.writer.flush()

    def log_evaluation(self, epoch: int, results: dict) -> None:
        val = results.get("validation")
        print(f"  epoch {epoch + 1} evaluated: test P1 {results['protocol']['p1']:.2f} mm  "
              f"P2 {results['protocol']['p2']:.2f} mm" + (f"  validation P1 {val['p1']:.2f} {val['units']}" if val else "")
              + ("  (best)" if self.run.best_epoch == epoch else ""), flush=True)
        if self.history and self.history[-1]["epoch"] == epoch:
            self.history[-1].update(p1=results["protocol"]["p1"], p2=results["protocol"]["p2"],
                                    **({"val_p1": val["p1"]} if val else {}))
        for name in ("protocol", "full_coverage", "validation"):
            if name in results:
                suffix = "" if name == "protocol" else f" ({name})"
                self.writer.add_scalar(f"Error P1{suffix}", results[name]["p1"], epoch + 1)
                self.writer.add_scalar(f"Error P2{suffix}", results[name]["p2"], epoch + 1)
        self.writer.flush()


def compile_or_fallback(model):
    """``torch.compile`` the model, or return it unchanged (with a message) if that fails."""
    try:
        return torch.compile(model)
    except Exception as err:  # noqa: BLE001 - any backend failure falls back to eager
        print(f"torch.compile unavailable ({err.__class__.__name__}: {err}); using eager mode")
        return model
