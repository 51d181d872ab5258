"""The entry point: ``ragtune [experiment=NAME] [key=value ...]`` (Hydra).

Composition and validation happen here, before any model library is imported, so a typo or a
bad value fails within a second or two with the key named.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from evaluate.config import Config, ConfigError, validate

logger = logging.getLogger("ragtune")

ConfigStore.instance().store(name="config_schema", node=Config)
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def to_config(cfg: DictConfig) -> Config:
    """The composed DictConfig as the typed, validated ``Config``."""
    config = OmegaConf.to_object(cfg)
    assert isinstance(config, Config)  # guaranteed by the schema in the defaults list
    validate(config)
    return config


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _run(cfg: DictConfig) -> None:
    try:
        config = to_config(cfg)
    except ConfigError as err:
        logger.error("config error: %s", err)
        sys.exit(2)
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # CPU-feature probing chatter
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    resolved = OmegaConf.to_container(cfg, resolve=True)

    from evaluate.runner import run_experiment  # heavy imports only after validation

    try:
        run_experiment(config, resolved, output_dir)
    except user_errors() as err:  # bad input: one clear line, no traceback (run marked FAILED)
        logger.error("%s: %s", type(err).__name__, err)
        sys.exit(2)


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors caused by the user's input or environment, whose message says what to do."""
    from costing.rows import CostingConfigError
    from evaluate.tracking import TrackingUnavailable
    from finetune.data import ChatTemplateError
    from rag.endpoint import EndpointError
    from rag.faiss_build import IndexSpecError, IndexTrainingError
    from rag.formats import CorpusError
    from rag.leakage import LeakageError
    from rag.lock import CacheLockTimeout
    from rag.models import ModelNotAvailableError
    from rag.qa_sets import QAFileError

    return (
        ConfigError,
        CostingConfigError,
        ChatTemplateError,
        EndpointError,
        IndexSpecError,
        IndexTrainingError,
        CorpusError,
        LeakageError,
        CacheLockTimeout,
        ModelNotAvailableError,
        QAFileError,
        TrackingUnavailable,
    )


def main() -> None:
    _run()


if __name__ == "__main__":
    main()
