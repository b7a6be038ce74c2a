"""Importers: each reads one file format and ends in `Interactions.from_columns`.

- `read_table`: CSV / TSV / parquet tables (RetailRocket's ``interactions.csv``, MovieLens, ...);
- `read_gamer_release` / `write_gamer_release`: the GAMER release's per-user JSON lists;
- `read_sslrec`: SSLRec / MB-GMN / KHGT folders of pickled sparse matrices (restricted unpickler);
- `read_taobao_userbehavior`: Alibaba's 100 M-row ``UserBehavior.csv``, streamed in chunks;
- `read_recbole_inter`: RecBole atomic ``.inter`` files with typed headers.

Every reader raises `DataFormatError` (a ValueError) naming the file, the line or field, what
was expected and what was found; none drops rows silently.
"""

from collections.abc import Callable

from protocols.formats.errors import DataFormatError
from protocols.formats.gamer_release import read_gamer_release, write_gamer_release
from protocols.formats.recbole_atomic import read_recbole_inter
from protocols.formats.sslrec import read_sslrec, restricted_load
from protocols.formats.table import read_table
from protocols.formats.taobao import read_taobao_userbehavior, taobao_schema
from protocols.interactions import Interactions

READERS: dict[str, Callable[..., Interactions]] = {
    "table": read_table,
    "gamer": read_gamer_release,
    "sslrec": read_sslrec,
    "taobao": read_taobao_userbehavior,
    "recbole": read_recbole_inter,
}

__all__ = [
    "READERS",
    "DataFormatError",
    "read_gamer_release",
    "read_recbole_inter",
    "read_sslrec",
    "read_table",
    "read_taobao_userbehavior",
    "restricted_load",
    "taobao_schema",
    "write_gamer_release",
]
