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

    run_experiment(config, resolved, output_dir)


def main() -> None:
    _run()


if __name__ == "__main__":
    main()
