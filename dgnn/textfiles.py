"""Reading user files safely: text only (no devices, no binary data, a size cap), YAML through the safe loader with
YAML 1.2 floats, and the checks PyYAML leaves out: duplicate keys, aliases that expand without bound, deep nesting."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from .errors import ConfigError

TEXT_MAX_BYTES = 64 << 20  # a config (even with one value per oscillator) is far below this; /dev/zero never ends
ALIAS_NODES_MAX = 1_000_000  # nodes that aliases add when expanded: a billion-laughs document is refused unexpanded
_MERGE = "tag:yaml.org,2002:merge"


class SafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no tags construct objects) with YAML 1.2 floats: '1e-3' is a number, not a string."""


SafeLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+][0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def read_text(path: str | Path, what: str = "config", limit: int = TEXT_MAX_BYTES) -> str:
    """A UTF-8 text file; binary data (NUL bytes), other encodings, folders, devices that never end and files over
    `limit` bytes are refused with one line naming the file (and the line of a bad byte)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(1 << 16)
            if b"\0" not in data:
                data += fh.read(limit + 1 - len(data))
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a {what} file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} file ({exc.strerror or type(exc).__name__})") from None
    if b"\0" in data:
        at = data.index(b"\0")
        raise ConfigError(f"{path}:{_line(data, at)}: not a text {what} file (binary data: a NUL byte at offset {at})")
    if len(data) > limit:
        raise ConfigError(f"{path}: {what} file is larger than {limit >> 20} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}:{_line(data, exc.start)}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                          f"{exc.start})") from None


LINE_MAX_BYTES = 1 << 16  # a line of a data file (an edge list): longer ones are not text written by hand or a tool


def _open_text(path: Path, what: str, key: str):
    """An open binary file whose first block holds no NUL byte (a device such as /dev/zero fails here)."""
    try:
        fh = open(path, "rb", buffering=LINE_MAX_BYTES)
        head = fh.peek(LINE_MAX_BYTES)[:LINE_MAX_BYTES]
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {what} {path} ({exc.strerror or type(exc).__name__})", key=key) from None
    if b"\0" in head:
        fh.close()
        raise ConfigError(f"{key}: {path} is not a text {what} (binary data: NUL bytes)", key=key)
    return fh


def check_text(path: str | Path, what: str, key: str) -> None:
    """Refuse a file that cannot be opened or starts with binary data, naming `key` (the config key of its path)."""
    _open_text(Path(path), what, key).close()


def text_lines(path: str | Path, what: str, key: str):
    """Yield (line number, text) of a UTF-8 text file, one line at a time (files of any length); a file that cannot
    be read is named with `key` (the config key holding its path), binary data or a bad byte with file and line."""
    path = Path(path)
    with _open_text(path, what, key) as fh:
        try:
            lineno = 0
            while raw := fh.readline(LINE_MAX_BYTES + 1):
                lineno += 1
                if len(raw) > LINE_MAX_BYTES:
                    raise ConfigError(f"{path}:{lineno}: line longer than {LINE_MAX_BYTES >> 10} KiB")
                if b"\0" in raw:
                    raise ConfigError(f"{path}:{lineno}: not a text {what} (binary data: a NUL byte)")
                try:
                    yield lineno, raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise ConfigError(f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[exc.start]:02x})") from None
        except OSError as exc:
            raise ConfigError(f"{key}: cannot read {what} {path} ({exc.strerror or type(exc).__name__})",
                              key=key) from None


def _line(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def show_key(key: str) -> str:
    """A key path as printed in one-line messages: quoted when it holds spaces, quotes or control characters."""
    return key if key.isprintable() and not any(c in key for c in " '\"") else repr(key)


def yaml_error(source: str, exc: yaml.YAMLError, lines: bool = True) -> ConfigError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{source}:{mark.line + 1}" if mark is not None and lines else source
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in problem:
        problem = f"{problem} (YAML tags are not allowed in dgnn configs)"
    return ConfigError(f"{where}: YAML error: {problem}")


def parse(text: str, source: str = "<yaml>", prefix: str = "") -> tuple[object, dict[str, int]]:
    """YAML text -> (data, {dotted key path: 1-based line}). Duplicate keys, recursive or exploding aliases and
    nesting too deep for the parser are errors naming the source (and line). prefix: the key path whose value the
    text is (an override's): key paths start with it, and messages name no line."""
    loader = SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, {}
        lines = _inspect(root, source, loader, prefix)
        return loader.construct_document(root), lines
    except yaml.YAMLError as exc:
        raise yaml_error(source, exc, lines=not prefix) from None
    except RecursionError:
        raise ConfigError(f"{source}: YAML nested too deeply to read") from None
    finally:
        loader.dispose()


def _inspect(root: yaml.Node, source: str, loader: SafeLoader, prefix: str = "") -> dict[str, int]:
    """One pass over the node graph (iterative, each node once): key lines, duplicate keys, alias expansion."""
    lines: dict[str, int] = {}
    size: dict[int, int] = {}  # id(node) -> nodes it expands to
    open_: set[int] = set()  # nodes whose children are being visited: an alias to one of them is recursive
    at = (lambda node: source) if prefix else (lambda node: f"{source}:{node.start_mark.line + 1}")  # noqa: E731
    stack = [(root, prefix, False)]
    while stack:
        node, path, done = stack.pop()
        nid = id(node)
        if done:
            open_.discard(nid)
            size[nid] = 1 + sum(size[id(k)] for k, _ in _children(node))
            continue
        if nid in size:
            continue
        if nid in open_:
            raise ConfigError(f"{at(node)}: YAML alias refers to a node that contains it")
        open_.add(nid)
        stack.append((node, path, True))
        if isinstance(node, yaml.MappingNode):
            _check_duplicates(node, path, at, loader)
        for kid, sub in reversed(_children(node)):
            kp = sub if not path else f"{path}.{sub}" if sub else ""
            if isinstance(node, yaml.MappingNode) and sub:
                lines.setdefault(kp, kid.start_mark.line + 1)
            stack.append((kid, kp, False))
    if size[id(root)] - len(size) > ALIAS_NODES_MAX:
        raise ConfigError(f"{source}: YAML aliases expand the document by more than {ALIAS_NODES_MAX} nodes")
    return lines


def _children(node: yaml.Node) -> list[tuple[yaml.Node, str]]:
    """(child, its path segment): a mapping's keys (no segment) and values (the key), a sequence's items (index)."""
    if isinstance(node, yaml.MappingNode):
        out = []
        for k, v in node.value:
            out.append((k, ""))
            out.append((v, str(k.value) if isinstance(k, yaml.ScalarNode) else ""))
        return out
    if isinstance(node, yaml.SequenceNode):
        return [(v, str(i)) for i, v in enumerate(node.value)]
    return []


def _check_duplicates(node: yaml.MappingNode, path: str, at, loader: SafeLoader) -> None:
    """Keys equal as values (1 and 0x1 alike) in one mapping; '<<' merges are meant to be overridden, so they pass."""
    seen: dict = {}
    for k, _ in node.value:
        if not isinstance(k, yaml.ScalarNode) or k.tag == _MERGE:
            continue
        ident = loader.construct_object(k)
        line = k.start_mark.line + 1
        if ident in seen:
            key = f"{path}.{k.value}" if path else str(k.value)
            raise ConfigError(f"{at(k)}: {show_key(key)}: duplicate key (first at line {seen[ident]}); YAML would "
                              f"keep only the last one")
        seen[ident] = line
