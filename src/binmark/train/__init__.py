"""Training: strict YAML configs, a distributed trainer that resumes exactly, evaluation of
checkpoints, and the end-to-end demo."""

from binmark.train.config import Config, load_config
from binmark.train.trainer import Trainer, TrainingDiverged

__all__ = ["Config", "Trainer", "TrainingDiverged", "load_config"]
