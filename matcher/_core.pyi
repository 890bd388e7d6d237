"""Type stub for the compiled core (src/_core.pyx)."""

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

CYTHON_CORE: int
KINDS: tuple[int, int, int, int]
NODES: tuple[int, int, int, int, int]
GLOB_TOKENS: tuple[int, int]

def fold_char(cp: int) -> str | None: ...

class State:
    def __init__(self, prog: Program) -> None: ...

class Program:
    npred: int
    nfields: int
    nrules: int
    ngroups: int
    field_names: tuple[str, ...]
    strings_field: int
    def __init__(
        self,
        plan: Any,
        py_eval: Callable[[int, list[str] | None, Any], bool],
        data_error: Callable[[str, str], BaseException] | None = None,
    ) -> None: ...
    def stats(self) -> dict[str, Any]: ...
    def match_one(self, event: Mapping[str, Any]) -> list[int]: ...
    def match_events(
        self, events: Iterable[Mapping[str, Any]]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], int]: ...
    def match_columns(
        self, columns: list[Any], nrows: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32]]: ...
