"""The engine: trainer, distillation trainer, evaluator, metrics, checkpoints, distributed set-up."""
