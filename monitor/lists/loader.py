"""Load the address lists named in the configuration into one :class:`ListIndex`."""

from __future__ import annotations

import logging
from pathlib import Path

from monitor.errors import ChainwatchError, ConfigError
from monitor.lists.importers import load_list
from monitor.lists.index import ListIndex
from monitor.lists.model import label_list, sanctions_list
from monitor.settings import ListConfig

log = logging.getLogger(__name__)


def build_index(configs: list[ListConfig], base_dir: Path) -> ListIndex:
    """Import every configured list (paths relative to ``base_dir``); row errors are logged.

    A list that cannot be read at all stops start-up with a ConfigError naming it: screening
    silently without a sanctions list would be worse than not starting.
    """
    index = ListIndex()
    for i, cfg in enumerate(configs):
        path = Path(cfg.path)
        if not path.is_absolute():
            path = base_dir / path
        meta = (sanctions_list(cfg.name, cfg.source, cfg.published, version=cfg.version)
                if cfg.category == "sanctioned" else
                label_list(cfg.name, cfg.category, cfg.source, cfg.published,
                           version=cfg.version))
        try:
            imported = load_list(path, cfg.format, meta)
            index.add(imported)
        except (ChainwatchError, OSError) as exc:
            raise ConfigError(f"lists[{i}] ({cfg.name}): {exc}") from None
        for err in imported.errors[:20]:
            log.warning("list %s: %s", cfg.name, err)
        log.info("list %s %s: %d addresses, %d row error(s)", cfg.name, meta.version,
                 len(imported.addresses), imported.error_count)
    return index
