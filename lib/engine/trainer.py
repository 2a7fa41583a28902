"""The training loop shared by train.py and train_distill.py.

``Trainer`` owns the model, optimizer, data loader, evaluator, logging and checkpoints. A
subclass changes what a step optimises by overriding :meth:`Trainer.compute_loss` and adds
modules to optimise and save through :meth:`Trainer.extra_modules` (see the distillation trainer).

Determinism: the data order comes from a ``DistributedSampler`` seeded with ``seed`` and the
epoch, the flip coin of each batch from a generator seeded with (seed, epoch, rank), and the
torch RNG state (drop path) is saved in every checkpoint, so a run stopped after epoch k and
resumed ends with the same weights as one that never stopped (on CPU).
"""
from __future__ import annotations

import math
import os
import random
import time

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from lib.data.dataset import make_dataset
from lib.data.prepare import ensure_clips
from lib.data.skeleton import flip
from lib.model.factory import CheckpointMismatchError, build_model, load_weights
from lib.model.loss import compute_losses
from lib.model.pretrained import load_pretrained
from lib.engine import distributed as dist
from lib.engine.checkpoint import load_checkpoint, save_checkpoint, set_rng_state, training_state, unwrap
from lib.config.schema import save_config
from lib.engine.evaluator import Evaluator, format_table, model_input, prepare_target, save_results
from lib.errors import ConfigError, TrainingDiverged


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_train_loader(cfg, rank: int, world: int, seed: int) -> DataLoader:
    """Shuffled training clips; the sampler is seeded and set per epoch (exact resume, DDP)."""
    dataset = make_dataset(cfg, "train")
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
    workers = cfg.num_workers
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0,
                      generator=torch.Generator().manual_seed(seed),
                      prefetch_factor=4 if workers > 0 else None)


def random_flip(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator):
    """Mirror each sample (input and label together) with probability 0.5 (reference A6)."""
    mask = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)[:, None, None, None]
    return torch.where(mask, flip(x), x), torch.where(mask, flip(y), y)


class Trainer:
    """Train (and evaluate) one model as configured; see the module docstring."""

    def __init__(self, cfg, checkpoint_dir: str, seed: int = 0, model=None):
        self.cfg, self.checkpoint_dir, self.seed = cfg, checkpoint_dir, seed
        self.rank, self.world, self.device = dist.init_distributed()
        seed_everything(seed)
        self.model = (model or build_model(cfg, verbose=dist.is_main())).to(self.device)
        self.start_epoch, self.min_loss = 0, math.inf
        self.writer = None
        self.history = []   # per epoch: loss terms, lr and (when evaluated) P1/P2

    # -- what a step optimises (overridden by the distillation trainer) --------------------
    def extra_modules(self) -> dict:
        """Other trained modules, optimised with the model and saved under ``extra``."""
        return {}

    def compute_loss(self, x: torch.Tensor, target: torch.Tensor):
        """Total loss and a dict of unweighted terms for one batch."""
        pred = self.ddp_model(model_input(x, self.cfg.no_conf))
        return compute_losses(pred.float(), target, self.cfg)

    # -- set-up ------------------------------------------------------------------------------
    def setup(self, resume: str = "") -> None:
        """Data, optimizer, logging and (if any) the checkpoint to resume from."""
        if dist.is_main():
            ensure_clips(self.cfg)
            os.makedirs(self.checkpoint_dir, exist_ok=True)
            save_config(self.cfg, os.path.join(self.checkpoint_dir, "config.yaml"))
        dist.barrier()
        self.loader = build_train_loader(self.cfg, self.rank, self.world, self.seed)
        self.evaluator = None if self.cfg.no_eval or not dist.is_main() else Evaluator(self.cfg)
        for module in self.extra_modules().values():
            module.to(self.device)
        resume = resume or self._auto_resume_path()
        pretrained = self.apply_pretrained(resume)
        self.optimizer = torch.optim.AdamW(self.param_groups(pretrained),
                                           lr=self.cfg.learning_rate, weight_decay=self.cfg.weight_decay)
        if resume:
            self.resume(resume)
        self.ddp_model = self._wrap(self.model)

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

    def param_groups(self, pretrained: set) -> list:
        """AdamW groups: pretrained parameters (``backbone``, see :meth:`lr_multiplier`), then the rest."""
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        extra = [p for m in self.extra_modules().values() for p in m.parameters() if p.requires_grad]
        groups = [{"params": [p for n, p in named if n in pretrained], "backbone": True},
                  {"params": [p for n, p in named if n not in pretrained] + extra, "backbone": False}]
        if self.cfg.freeze_backbone_epochs and not groups[1]["params"]:
            raise ConfigError("freeze_backbone_epochs > 0, but every parameter comes from the pretrained "
                             "checkpoint: nothing would train")
        return [g for g in groups if g["params"]]

    def lr_multiplier(self, group: dict, epoch: int) -> float:
        """1 for new parameters; backbone_lr_mult for pretrained ones, 0 (frozen) in the first epochs."""
        if not group.get("backbone"):
            return 1.0
        return 0.0 if epoch < self.cfg.freeze_backbone_epochs else self.cfg.backbone_lr_mult

    def _auto_resume_path(self) -> str:
        path = os.path.join(self.checkpoint_dir, "latest_epoch.bin")
        return path if os.path.isfile(path) else ""

    def _wrap(self, model):
        if self.cfg.compile:
            model = compile_or_fallback(model)
        if self.world > 1:
            model = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return model

    def resume(self, path: str) -> None:
        """Restore model, optimizer, extra modules, epoch, best P1 and RNG state."""
        state = load_checkpoint(path)
        missing = [k for k in ("model_pos", "optimizer", "epoch", "min_loss", "rng") if k not in state]
        missing += [f"extra/{n}" for n in self.extra_modules() if n not in state.get("extra", {})]
        if missing:
            raise CheckpointMismatchError(f"{path} cannot resume this run: it lacks {missing} (a resume needs a "
                                          "latest/epoch checkpoint written by the same script; use --pretrained "
                                          "to start from another model's weights)")
        load_weights(self.model, state["model_pos"])
        for name, module in self.extra_modules().items():
            module.load_state_dict(state["extra"][name])
        self.optimizer.load_state_dict(state["optimizer"])
        self.start_epoch, self.min_loss = state["epoch"], state["min_loss"]
        set_rng_state(state["rng"])
        if dist.is_main():
            print(f"Resumed from {path}: next epoch {self.start_epoch}, best P1 {self.min_loss:.2f} mm")

    # -- the loop ----------------------------------------------------------------------------
    def fit(self) -> dict | None:
        """Train from ``start_epoch`` to ``cfg.epochs``; returns the last evaluation results."""
        results = None
        if self.start_epoch >= self.cfg.epochs and dist.is_main():
            print(f"{self.checkpoint_dir} has already trained all {self.cfg.epochs} epochs: raise the count with "
                  "--set epochs=N to train on, or score it with evaluate.py --evaluate <checkpoint>.")
        if dist.is_main():
            from tensorboardX import SummaryWriter
            self.writer = SummaryWriter(os.path.join(self.checkpoint_dir, "logs"))
        for epoch in range(self.start_epoch, self.cfg.epochs):
            lr = self.cfg.learning_rate * self.cfg.lr_decay ** epoch
            for group in self.optimizer.param_groups:
                group["lr"] = lr * self.lr_multiplier(group, epoch)
            t0 = time.time()
            terms = self.train_epoch(epoch)
            results = self.end_epoch(epoch, lr, terms, time.time() - t0) or results
        if self.writer:
            self.writer.close()
        return results

    def train_epoch(self, epoch: int) -> dict:
        """One pass over the training clips; returns the sample-weighted mean of each loss term."""
        self.model.train()
        self.loader.sampler.set_epoch(epoch)
        coin = torch.Generator().manual_seed(self.seed * 100_003 + epoch * 101 + self.rank)
        sums, count = {}, 0
        limit = self.cfg.max_iters_per_epoch or len(self.loader)
        bar = tqdm(self.loader, total=min(limit, len(self.loader)), desc=f"epoch {epoch}",
                   disable=not dist.is_main(), leave=False, mininterval=2.0)
        for step, (x, y) in enumerate(bar):
            if step >= limit:
                break
            loss, terms = self.train_step(x, y, coin)
            n = x.shape[0]
            count += n
            for k, v in terms.items():                  # device tensors: no host sync per step
                sums[k] = sums.get(k, 0.0) + v.double() * n
            if step % 25 == 0:
                bar.set_postfix(loss=f"{float(loss):.4f}")
        stats = torch.stack([sums[k] for k in sorted(sums)] + [torch.tensor(float(count), dtype=torch.float64, device=self.device)])
        stats = dist.all_reduce_mean(stats).cpu()
        return {k: float(v) / float(stats[-1]) for k, v in zip(sorted(sums), stats[:-1])}

    def train_step(self, x, y, coin):
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        if self.cfg.flip:
            x, y = random_flip(x, y, coin)
        target = prepare_target(y, self.cfg.rootrel)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bool(self.cfg.bf16)):
            loss, terms = self.compute_loss(x, target)
        if not torch.isfinite(loss):
            values = {k: float(v.detach()) for k, v in terms.items()}
            raise TrainingDiverged(f"loss is {float(loss.detach())} ({values}); "
                                   f"stopped. The last good checkpoint is {self.checkpoint_dir}/latest_epoch.bin. "
                                   "Try a lower learning_rate or check the input data for NaNs.")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), {**{k: v.detach() for k, v in terms.items()}, "total": loss.detach()}

    def end_epoch(self, epoch: int, lr: float, terms: dict, seconds: float):
        """Evaluate (every ``eval_frequency`` epochs), log and write checkpoints (rank 0)."""
        results = None
        if dist.is_main():
            if self.evaluator is not None and ((epoch + 1) % self.cfg.eval_frequency == 0 or epoch + 1 == self.cfg.epochs):
                results = self.evaluator.run(unwrap(self.model), self.device)
            self.history.append({"epoch": epoch, "lr": lr, **terms,
                                 **({"p1": results["protocol"]["p1"], "p2": results["protocol"]["p2"]} if results else {})})
            self.log_epoch(epoch, lr, terms, seconds, results)
            self.save_epoch(epoch, lr, results)
        dist.barrier()
        return results

    def log_epoch(self, epoch, lr, terms, seconds, results) -> None:
        p1 = f" P1 {results['protocol']['p1']:.2f} mm  P2 {results['protocol']['p2']:.2f} mm" if results else ""
        print(f"[{epoch + 1}/{self.cfg.epochs}] {seconds / 60:.2f} min  lr {lr:.3e}  "
              f"loss {terms.get('total', float('nan')):.5f}  mpjpe(train) {terms.get('3d_pos', float('nan')):.5f}{p1}",
              flush=True)
        step = epoch + 1
        self.writer.add_scalar("lr", lr, step)
        for k, v in terms.items():
            self.writer.add_scalar(f"loss_{k}", v, step)
        if results:
            for name, res in results.items():
                suffix = "" if name == "protocol" else f" ({name})"
                self.writer.add_scalar(f"Error P1{suffix}", res["p1"], step)
                self.writer.add_scalar(f"Error P2{suffix}", res["p2"], step)
        self.writer.flush()

    def save_epoch(self, epoch: int, lr: float, results) -> None:
        """latest every epoch; best when P1 improves; epoch_k every checkpoint_frequency."""
        improved = results is not None and results["protocol"]["p1"] < self.min_loss
        if improved:
            self.min_loss = results["protocol"]["p1"]
        extra = {k: m.state_dict() for k, m in self.extra_modules().items()} or None
        state = training_state(self.model, self.optimizer, self.cfg, epoch + 1,
                               lr * self.cfg.lr_decay, self.min_loss, extra)
        save_checkpoint(os.path.join(self.checkpoint_dir, "latest_epoch.bin"), state)
        if (epoch + 1) % self.cfg.checkpoint_frequency == 0:
            save_checkpoint(os.path.join(self.checkpoint_dir, f"epoch_{epoch}.bin"), state)
        if improved:
            save_checkpoint(os.path.join(self.checkpoint_dir, "best_epoch.bin"), state)
            save_results(results, os.path.join(self.checkpoint_dir, "best_epoch_results.json"))
        if results is not None:
            save_results(results, os.path.join(self.checkpoint_dir, "latest_epoch_results.json"))
            if epoch + 1 == self.cfg.epochs:
                print(format_table(results))


def compile_or_fallback(model):
    """``torch.compile`` the model, or return it unchanged (with a message) if that fails."""
    try:
        return torch.compile(model)
    except Exception as err:  # noqa: BLE001 - any backend failure falls back to eager
        print(f"torch.compile unavailable ({err.__class__.__name__}: {err}); using eager mode")
        return model
