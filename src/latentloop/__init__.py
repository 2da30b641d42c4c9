"""latentloop: recursive reasoning models (TRM, HRM) trained with deep supervision.

    import latentloop as ll
    cfg = ll.prepare_run("cpu-sudoku6", ["epochs=200"])     # builds the generated dataset if needed
    result = ll.train(cfg)                                   # metrics.jsonl, checkpoints/, curves.png
    model, cfg = ll.load_checkpoint(result.run_dir)
    print(ll.evaluate_checkpoint(result.run_dir).report())
"""

from latentloop.api import build_from_preset, evaluate_checkpoint, prepare_run
from latentloop.config import RunConfig, apply_overrides, load_preset
from latentloop.errors import CheckpointError, ConfigError, DataError, LatentloopError
from latentloop.evaluation.evaluate import evaluate
from latentloop.evaluation.predict import predict
from latentloop.models import ModelConfig, build_model, count_parameters
from latentloop.training.checkpoint import load_checkpoint
from latentloop.training.loop import train

__version__ = "0.1.0"

__all__ = ["CheckpointError", "ConfigError", "DataError", "LatentloopError", "ModelConfig", "RunConfig",
           "apply_overrides", "build_from_preset", "build_model", "count_parameters", "evaluate",
           "evaluate_checkpoint", "load_checkpoint", "load_preset", "predict", "prepare_run", "train"]
