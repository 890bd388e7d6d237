"""Finding and reading rule files: regular files only, so that a FIFO (or a device) named like a
rule is reported instead of blocking the load forever; and the members of rule archives (tar,
zip). Imports nothing but the errors."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Callable, Union

from .errors import RuleError


def read_rule_bytes(path: Union[str, "os.PathLike[str]"]) -> bytes:
    """The bytes of the rule file at ``path``; a :class:`RuleError` naming it when it is not a
    regular file or cannot be read. Opened without blocking, so a FIFO never waits for a writer."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise RuleError(f"{p}: cannot read rule file: {e.strerror or e}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RuleError(f"{p}: cannot read rule file: not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    except OSError as e:
        raise RuleError(f"{p}: cannot read rule file: {e.strerror or e}") from None
    finally:
        os.close(fd)


def read_rule_text(path: Union[str, "os.PathLike[str]"]) -> str:
    """:func:`read_rule_bytes` decoded as UTF-8 (a byte-order mark is not part of the rule)."""
    return decode_rule(read_rule_bytes(path), str(Path(path)))


def decode_rule(data: bytes, name: str) -> str:
    """A rule file's bytes as text: UTF-8, a byte-order mark left out; a :class:`RuleError`
    naming ``name`` when they are not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise RuleError(f"{name}: cannot read rule file: {e}") from None


def archive_members(archive: Union[str, "os.PathLike[str]"], suffixes: tuple[str, ...],
                    zip_too: bool = False) -> list[tuple[str, Callable[[], str]]]:
    """``(member name, read)`` for each regular file of a tar archive (any compression
    ``tarfile`` reads) whose name ends with one of ``suffixes`` (any case), in member-name order;
    ``read()`` gives its text (:func:`decode_rule`, errors naming ``archive:member``). With
    ``zip_too``, an archive named ``*.zip`` is read as a zip archive. An archive that cannot be
    read is a :class:`RuleError` naming it."""
    import tarfile
    import zipfile

    try:
        if zip_too and os.fspath(archive).lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                names = sorted(i.filename for i in z.infolist() if not i.is_dir())
                data = [(m, z.read(m)) for m in names if m.lower().endswith(suffixes)]
        else:
            with tarfile.open(archive) as tar:
                members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.lower().endswith(suffixes)),
                                 key=lambda m: m.name)
                data = [(m.name, tar.extractfile(m).read()) for m in members]
    except (OSError, tarfile.TarError, zipfile.BadZipFile) as e:
        raise RuleError(f"{archive}: cannot read rule archive: {e}") from None
    return [(m, lambda m=m, d=d: decode_rule(d, f"{archive}:{m}")) for m, d in data]


#: Rule file extensions a directory of rules is searched for: rule cards, S1QL query files, Sigma.
RULE_SUFFIXES = (".md", ".markdown", ".s1ql", ".txt", ".yml", ".yaml")


def rule_files(directory: Union[str, os.PathLike]) -> list[Path]:
    """The rule files under ``directory`` (recursive, sorted, hidden entries, README and LICENSE
    files left out), by :data:`RULE_SUFFIXES`."""
    out = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if not f.startswith(".") and Path(f).suffix.lower() in RULE_SUFFIXES and not f.upper().startswith(("README", "LICENSE")):
                out.append(Path(root) / f)
    return out
