"""Address lists (sanctions, labels) with category, source and validity; importers; index."""

from monitor.lists.importers import (
    ETHERSCAN_CATEGORIES,
    FORMATS,
    ListImport,
    etherscan_category,
    load_list,
    parse_list,
)
from monitor.lists.index import ListIndex
from monitor.lists.model import (
    CATEGORIES,
    AddressList,
    Category,
    ChainFamily,
    ListedAddress,
    ListHit,
    day_start,
    label_list,
    sanctions_list,
)
from monitor.watchlist_io import RowError

__all__ = [
    "CATEGORIES",
    "ETHERSCAN_CATEGORIES",
    "FORMATS",
    "AddressList",
    "Category",
    "ChainFamily",
    "ListHit",
    "ListImport",
    "ListIndex",
    "ListedAddress",
    "RowError",
    "day_start",
    "etherscan_category",
    "label_list",
    "load_list",
    "parse_list",
    "sanctions_list",
]
