"""Training: experiment configs (`astrogen.train.config`), the data split (`astrogen.train.data`) and the
Lightning Trainer (`astrogen.train.trainer`).

``astrogen train CONFIG.yaml --set optim.lr=1e-4`` and `train` from Python run the same code. A config's ``kind``
(default ``diffusion``) picks its experiment config (`EXPERIMENTS`) and its `Task` (`TASKS`).
"""

from astrogen.train.config import (
    EXPERIMENTS,
    BalanceConfig,
    DataConfig,
    Experiment,
    OptimConfig,
    RunConfig,
    TrainConfig,
    load_train_config,
)
from astrogen.train.data import Split, prepare_split
from astrogen.train.trainer import TASKS, Task, TrainResult, build_module, build_trainer, get_task, train

__all__ = ["EXPERIMENTS", "TASKS", "BalanceConfig", "DataConfig", "Experiment", "OptimConfig", "RunConfig", "Split",
           "Task", "TrainConfig", "TrainResult", "build_module", "build_trainer", "get_task", "load_train_config",
           "prepare_split", "train"]
