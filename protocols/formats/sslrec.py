"""SSLRec / MB-GMN / KHGT multi-behavior data folders (Tmall, IJCAI, Beibei, RetailRocket, ...).

The format: one pickled scipy.sparse matrix per behavior, ``train_mat_<behavior>.pkl``, all of the
same shape users x items; a stored entry at (u, i) means user u did the behavior on item i, and its
value is the unix timestamp. Each (user, item, behavior) therefore occurs at most once.

``test_mat.pkl`` is not read: it marks each user's held-out target item with the value 1 and
carries no timestamp, so it cannot be placed in a session; the session-wise protocol builds its own
test sessions from the training matrices. (In RetailRocket none of the 2,174 held-out (user, item)
pairs occurs in any training matrix, and the three training matrices hold exactly the 97,381 rows
of ``interactions.csv``.)

Pickles can run code when loaded, so these files are unpickled by `restricted_load`, which admits
numpy arrays and scipy.sparse matrices and refuses every other class.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from protocols.formats.errors import DataFormatError
from protocols.interactions import Interactions, Schema, SessionRule

_NUMPY_CORE = ("numpy.core.multiarray", "numpy._core.multiarray")
_NUMPY_NUMERIC = ("numpy.core.numeric", "numpy._core.numeric")
SAFE_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {("numpy", "ndarray"), ("numpy", "dtype")}
    | {(module, name) for module in _NUMPY_CORE for name in ("_reconstruct", "scalar")}
    | {(module, "_frombuffer") for module in _NUMPY_NUMERIC}  # protocol-5 arrays
    # Protocols 0-2 build objects and bytes through these; the classes they get are checked too.
    | {("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor"), ("_codecs", "encode")}
    | {(module, name) for module in ("builtins", "__builtin__") for name in ("object", "dict")}
)
# scipy.sparse.sparray (the base of the *_array classes) appeared in scipy 1.11.
SPARSE_BASES = tuple(getattr(sp, base) for base in ("spmatrix", "sparray") if hasattr(sp, base))
SPARSE_CLASSES = frozenset(
    f"{kind}_{flavour}" for kind in ("csr", "csc", "coo", "bsr", "dia", "lil", "dok") for flavour in ("matrix", "array")
)


class RestrictedUnpickler(pickle.Unpickler):
    """Admits numpy arrays, dtypes and scalars and the scipy.sparse matrix / array classes only."""

    def __init__(self, file: Any, source: str) -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in SAFE_GLOBALS:
            return super().find_class(module, name)
        is_sparse_module = module == "scipy.sparse" or module.startswith("scipy.sparse.")
        if is_sparse_module and name in SPARSE_CLASSES:
            found = super().find_class(module, name)
            # A name check alone would trust whatever a scipy module calls 'csr_matrix'.
            if isinstance(found, type) and issubclass(found, SPARSE_BASES):
                return found
        raise pickle.UnpicklingError(
            f"{self.source}: refused to load {module}.{name}: an SSLRec matrix file may only hold numpy "
            "arrays and scipy.sparse matrices"
        )


def restricted_load(path: str | os.PathLike) -> Any:
    """Unpickle ``path`` with `RestrictedUnpickler`; a refused class raises pickle.UnpicklingError."""
    with open(path, "rb") as handle:
        try:
            return RestrictedUnpickler(handle, str(path)).load()
        except pickle.UnpicklingError:
            raise
        except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as error:
            raise DataFormatError(f"{path}: not a readable pickle of a scipy.sparse matrix: {error}") from None


def _matrix_file(folder: Path, behavior: str) -> Path:
    path = folder / f"train_mat_{behavior}.pkl"
    if not path.is_file():
        found = sorted(p.name for p in folder.glob("train_mat_*.pkl"))
        raise DataFormatError(f"{folder}: missing {path.name} for behavior {behavior!r}; found {found}")
    return path


def _entries(path: Path, matrix: Any, shape: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, column, timestamp) of every stored entry, checking that the values are timestamps."""
    if not sp.issparse(matrix):
        raise DataFormatError(f"{path}: expected a scipy.sparse matrix, found {type(matrix).__name__}")
    if shape is not None and matrix.shape != shape:
        raise DataFormatError(
            f"{path}: expected shape {shape} like the other behaviors' matrices, found {matrix.shape}"
        )
    coo = sp.coo_matrix(matrix)
    data = np.asarray(coo.data)
    if data.dtype.kind not in "iuf":
        raise DataFormatError(f"{path}: expected numeric unix timestamps, found values of dtype {data.dtype}")
    # An explicit 0 (or 1) is an indicator matrix, not a timestamp: refusing beats inventing 1970.
    bad = ~np.isfinite(data) | (data <= 1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"{path}: entry (row {int(coo.row[k])}, column {int(coo.col[k])}) holds {data[k].item()!r}; "
            "expected a unix timestamp in seconds (> 1): this looks like an indicator matrix, "
            "which has no time order"
        )
    return coo.row.astype(np.int64), coo.col.astype(np.int64), data


def read_sslrec(
    folder: str | os.PathLike,
    behaviors: Sequence[str],
    *,
    name: str | None = None,
    session_rule: SessionRule,
) -> Interactions:
    """Read ``train_mat_<b>.pkl`` for each behavior ``b`` (lowest level first) from ``folder``.

    Users are the matrix rows with at least one entry (user id = row index); the item catalogue
    is every column (item id = column index), including items no user touched. ``name`` defaults
    to the folder's name.
    """
    folder = Path(folder)
    schema = Schema(name or folder.name, tuple(behaviors), session_rule)
    shape: tuple[int, int] | None = None
    parts = []
    for level, behavior in enumerate(schema.behaviors):
        path = _matrix_file(folder, behavior)
        matrix = restricted_load(path)
        row, col, stamp = _entries(path, matrix, shape)
        shape = matrix.shape
        parts.append((row, col, np.full(len(row), level, dtype=np.int8), stamp))
    user, item, level, stamp = (np.concatenate(column) for column in zip(*parts, strict=True))
    if len(user) == 0:
        raise DataFormatError(f"{folder}: the matrices {[f'train_mat_{b}.pkl' for b in behaviors]} hold no entries")
    return Interactions.from_columns(
        user, item, level, stamp, schema, item_catalogue=np.arange(shape[1]), source=str(folder)
    )
