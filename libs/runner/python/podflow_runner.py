"""podflow in-sandbox runner for Python Code nodes (stdlib only, Python >= 3.11).

Started by a sandbox driver as ``python3 -I -u podflow_runner.py [--request PATH]``. Reads one
RunnerRequest (libs/protocol/src/runner.ts) from stdin or PATH, runs the user's ``main`` in
``request.workdir`` and writes exactly one RunnerResponse to the real stdout, framed by the
request's nonce markers (then, with ``emitFiles``, the captured files' bytes). Exit status is 0
whenever a response was written, 2 when the request could not even be read far enough to learn its
nonce.
"""

import io
import math
import os
import stat
import sys
import time
import types

# Not imported here: json, re and linecache (each brings `re`, which brings `enum`: ~4 ms of CPU of
# every sandbox's ~12 ms start, for a no-op most of it). JSON goes through CPython's C accelerator
# (`_json`, below); `json` and `re` are imported where an error message needs them, and linecache
# is given the user's source when something imports it (_SeedLinecache).

USER_FILENAME = "main.py"
DEFAULT_LIMITS = {
    "maxOutputBytes": 8 * 1024 * 1024,
    "maxLogBytes": 64 * 1024,
    "maxFiles": 100,
    "maxFilesBytes": 100 * 1024 * 1024,
}
# Deeper than this is almost surely a mistake, and json.dumps would hit the recursion limit anyway.
MAX_OUTPUT_DEPTH = 512
# Which captured paths can be stored: a copy of libs/protocol/src/file-paths.ts (the reasons are
# the same strings; both are tested against its FILE_PATH_EXAMPLES).
MAX_FILE_NAME_BYTES = 255
MAX_FILE_PATH_BYTES = 512
FILE_PATH_RULE = (
    f"file names must be valid UTF-8 without control characters or backslashes, at most {MAX_FILE_NAME_BYTES} "
    f"bytes per name and {MAX_FILE_PATH_BYTES} bytes per path"
)
LISTED_UNSTORABLE_FILES = 5
READ_CHUNK = 1024 * 1024


# ---------------------------------------------------------------- JSON


def _fast_json():
    """(loads, dumps, quote_ascii) on `_json`, json's own C accelerator, without importing json;
    (None, None, None) when it is missing or does not give exactly what json gives (checked here)."""
    try:
        from _json import encode_basestring, encode_basestring_ascii, make_encoder, make_scanner
    except ImportError:
        return None, None, None

    class Decoding:  # the attributes json.JSONDecoder hands make_scanner, with json.loads' defaults
        strict = True
        object_hook = None
        object_pairs_hook = None
        parse_float = float
        parse_int = int
        parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__
        memo = {}

    scan = make_scanner(Decoding)

    def default(value):
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

    def loads(text):
        if isinstance(text, (bytes, bytearray)):
            text = text.decode("utf-8")
        start = len(text) - len(text.lstrip(" \t\n\r"))
        value, end = scan(text, start)
        if text[end:].strip(" \t\n\r"):
            raise ValueError("extra data after the JSON value")
        return value

    def dumps(value, allow_nan):
        # A new encoder each time: one that raised may keep circular-reference markers.
        return "".join(make_encoder({}, default, encode_basestring, None, ":", ",", False, False, allow_nan)(value, 0))

    try:
        sample = {"a": [1, 2.5, -0.0, 10**20, True, None, "\u00e9\u2028\"\\\n\x7f"], "b": {}, "c": ""}
        expected = '{"a":[1,2.5,-0.0,100000000000000000000,true,null,"\u00e9\u2028\\"\\\\\\n\x7f"],"b":{},"c":""}'
        if dumps(sample, False) != expected or loads(expected.encode()) != sample or encode_basestring_ascii("\u00e9\n") != '"\\u00e9\\n"':
            return None, None, None
    except Exception:
        return None, None, None
    return loads, dumps, encode_basestring_ascii


_FAST_LOADS, _FAST_DUMPS, _FAST_QUOTE_ASCII = _fast_json()


def loads_json(text):
    """json.loads(text): the same value, or the same error."""
    if _FAST_LOADS is not None:
        try:
            return _FAST_LOADS(text)
        except Exception:  # noqa: S110 - json itself says what is wrong (or parses what this did not)
            pass
    import json
    return json.loads(text)


def dumps_json(value, allow_nan=False):
    """json.dumps(value, ensure_ascii=False, allow_nan=allow_nan, separators=(",", ":"))."""
    if _FAST_DUMPS is not None:
        return _FAST_DUMPS(value, allow_nan)
    import json
    return json.dumps(value, ensure_ascii=False, allow_nan=allow_nan, separators=(",", ":"))


def quote_json(text):
    """json.dumps(text) of a str: quoted, with non-ASCII characters escaped."""
    if _FAST_QUOTE_ASCII is not None:
        return _FAST_QUOTE_ASCII(text)
    import json
    return json.dumps(text)


class UserError(Exception):
    """A failure to report as a node error (code + message), never a runner crash."""

    def __init__(self, code, message, type_name=None, stack=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.type_name = type_name
        self.stack = stack
        self.details = None

    def to_json(self):
        error = {"code": self.code, "message": self.message}
        if self.type_name is not None:
            error["type"] = self.type_name
        if self.stack:
            error["stack"] = self.stack
        if self.details:
            error["details"] = self.details
        return error


# ---------------------------------------------------------------- log capture


class TailBuffer:
    """Keeps the last ``limit`` bytes written; long-running prints must not grow memory."""

    def __init__(self, limit):
        self.limit = max(0, int(limit))
        self.data = bytearray()
        self.truncated = False

    def append(self, chunk):
        self.data += chunk
        # Trim lazily (at 2x) so that many small writes stay O(total bytes).
        if len(self.data) > 2 * self.limit + 4096:
            self._trim()

    def _trim(self):
        if len(self.data) > self.limit:
            del self.data[: len(self.data) - self.limit]
            self.truncated = True

    def text(self):
        self._trim()
        data = bytes(self.data)
        if self.truncated:
            # The cut may have split a UTF-8 sequence: drop leading continuation bytes.
            start = 0
            while start < len(data) and start < 3 and 0x80 <= data[start] <= 0xBF:
                start += 1
            data = data[start:]
        return data.decode("utf-8", errors="replace")


class _BinaryTail(io.RawIOBase):
    """``sys.stdout.buffer`` for code that writes bytes."""

    def __init__(self, tail):
        super().__init__()
        self._tail = tail

    def writable(self):
        return True

    def write(self, b):
        self._tail.append(bytes(b))
        return len(b)


class CaptureStream(io.TextIOBase):
    """Stands in for sys.stdout / sys.stderr while user code runs."""

    def __init__(self, tail, name):
        super().__init__()
        self._tail = tail
        self._name = name
        self.buffer = _BinaryTail(tail)

    @property
    def encoding(self):
        return "utf-8"

    @property
    def errors(self):
        return "backslashreplace"

    @property
    def name(self):
        return self._name

    def writable(self):
        return True

    def isatty(self):
        return False

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        self._tail.append(s.encode("utf-8", errors="backslashreplace"))
        return len(s)


# ---------------------------------------------------------------- file capture


def _inside(path, root):
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def snapshot(root):
    """rel path -> (size, mtime_ns, inode) of every regular file; symlinks are never followed."""
    found = {}
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        try:
            entries = list(os.scandir(os.path.join(root, rel_dir) if rel_dir else root))
        except OSError:
            continue  # vanished or unreadable: nothing of it can be captured
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                if entry.is_symlink():
                    continue
                if entry.is_dir(follow_symlinks=False):
                    pending.append(rel)
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    found[rel] = (st.st_size, st.st_mtime_ns, st.st_ino)
            except OSError:
                continue
    return found


class WriteOrder:
    """The order in which the code wrote files under the workdir, from Python's audit events
    (PEP 578: ``open`` for writing, ``os.rename``/``os.replace``, ``os.utime``, ``os.truncate``,
    ``os.link``): modification times cannot order files written back to back, since they share a
    clock tick (several milliseconds), so capture would fall back to the path. changed_files sorts
    by mtime, then by this sequence (the last write event of each file), then by path.

    Audit hooks cost nothing measurable; an inotify watch did the same job, but closing an
    inotify instance waits for an SRCU grace period, which added about 14 ms to every execution.
    What the hooks cannot see: files written by subprocesses or by C code that opens files itself;
    those keep the mtime-then-path order. The hook never raises (an exception in an audit hook
    would fail the user's own call) and stops recording once main has returned."""

    _WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def __init__(self, root):
        self.root, self.sequence, self._next, self._active = root, {}, 0, True
        sys.addaudithook(self._hook)

    def _hook(self, event, args):
        if not self._active:
            return
        try:
            if event == "open":
                path, mode, flags = args
                writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & self._WRITE_FLAGS)
                if writes:
                    self._saw(path)
            elif event in ("os.rename", "os.link"):
                self._saw(args[1])
            elif event in ("os.utime", "os.truncate"):
                self._saw(args[0])
        except Exception:  # noqa: BLE001 - never fail the user's call over its ordering
            pass

    def _saw(self, path):
        if isinstance(path, int):
            return  # a file descriptor: its file was seen when it was opened
        full = os.path.abspath(os.fsdecode(path))
        rel = os.path.relpath(full, self.root)
        # Outside the workdir (".." as a whole segment: a file named "..x" is inside).
        if rel == os.curdir or rel == os.pardir or rel.startswith(os.pardir + os.sep):
            return
        self.sequence[rel.replace(os.sep, "/")] = self._next
        self._next += 1

    def settle(self):
        """Stops recording (hooks cannot be removed; this one then returns at once)."""
        self._active = False


def changed_files(root, before, order=None):
    """Files new or changed since ``before``, oldest write first: by mtime, then (files written in
    one clock tick) by the order the kernel reported the writes, then by path: [(rel, size)]."""
    after = snapshot(root)
    sequence = order.sequence if order is not None else {}
    changed = [(sig[1], sequence.get(rel, math.inf), rel, sig[0]) for rel, sig in after.items() if before.get(rel) != sig]
    changed.sort()
    return [(rel, size) for _, _, rel, size in changed]


def _open_captured(root, rel):
    """An O_NOFOLLOW read fd on a captured regular file; None when it is no longer safe to read."""
    full = os.path.join(root, *rel.split("/"))
    if not _inside(os.path.realpath(full), root):
        return None  # a parent directory was swapped for a symlink after the walk
    try:
        # O_NONBLOCK: a FIFO swapped in after the walk must not hang the runner before fstat.
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def _chunks(fd):
    while chunk := os.read(fd, READ_CHUNK):
        yield chunk


def hash_file(root, rel):
    """(size, sha256) read through an O_NOFOLLOW handle; None when the file is no longer safe."""
    fd = _open_captured(root, rel)
    if fd is None:
        return None
    import hashlib  # here: only executions that leave files pay for it
    try:
        digest = hashlib.sha256()
        size = 0
        for chunk in _chunks(fd):
            size += len(chunk)
            digest.update(chunk)
        return size, digest.hexdigest()
    except OSError:
        return None
    finally:
        os.close(fd)


def read_captured(root, rel):
    """A captured file's bytes as they are now, for emitFiles; empty when it can no longer be read
    safely (the reader then sees a sha256 mismatch rather than a missing frame)."""
    fd = _open_captured(root, rel)
    if fd is None:
        return b""
    try:
        return b"".join(_chunks(fd))
    except OSError:
        return b""
    finally:
        os.close(fd)


def unstorable_path_reason(rel):
    """Why ``rel`` cannot be stored, or None; see libs/protocol/src/file-paths.ts. A name that is
    not valid UTF-8 arrives from os.scandir with surrogate escapes, which do not encode."""
    if not isinstance(rel, str) or rel == "":
        return "the path is empty"
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return "the name is not valid UTF-8"
    control = next((c for c in rel if c < " " or "\x7f" <= c <= "\x9f"), None)
    if control is not None:
        return f"the name contains the control character U+{ord(control):04X}"
    if "\\" in rel:
        return "the name contains a backslash (\\), a path separator on Windows"
    if rel.startswith("/"):
        return "the path is absolute"
    segments = rel.split("/")
    if any(segment == "" for segment in segments):
        return "the path has an empty segment (// or a trailing /)"
    if any(segment in (".", "..") for segment in segments):
        return 'the path has a "." or ".." segment'
    if any(len(segment.encode("utf-8")) > MAX_FILE_NAME_BYTES for segment in segments):
        return f"a name is longer than {MAX_FILE_NAME_BYTES} bytes"
    if len(rel.encode("utf-8")) > MAX_FILE_PATH_BYTES:
        return f"the path is longer than {MAX_FILE_PATH_BYTES} bytes"
    return None


def _shown_path(rel):
    """The path as messages show it: bytes that are not UTF-8 become U+FFFD."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def unstorable_files_error(problems):
    """OUTPUT_INVALID naming the files that cannot be stored; the same message as the protocol's
    ``unstorableFilesError``. ``problems``: [(path, reason)]."""
    listed = [(_shown_path(path), reason) for path, reason in problems[:LISTED_UNSTORABLE_FILES]]
    more = f", and {len(problems) - len(listed)} more" if len(problems) > len(listed) else ""
    names = ", ".join(f"{dumps_json(path)} ({reason})" for path, reason in listed)
    error = UserError(
        "OUTPUT_INVALID",
        f"{len(problems)} file(s) written under /home/user cannot be stored: {names}{more}. "
        f"Rename them or delete them before main returns; {FILE_PATH_RULE}.",
    )
    error.details = {"files": [{"path": path, "reason": reason} for path, reason in listed], "count": len(problems)}
    return error


def capture_files(root, before, limits, enforce, order=None):
    """Hashes the changed files. A file whose path cannot be stored fails the node with
    OUTPUT_INVALID when ``enforce`` (never a silent drop, never a failure later at upload). Over the
    limits: FILES_TOO_LARGE when ``enforce``. When the run already failed, only storable files, and
    only the prefix that fits, so the user can still see what was written."""
    candidates = changed_files(root, before, order)
    problems = [(rel, reason) for rel, _ in candidates if (reason := unstorable_path_reason(rel))]
    if problems and enforce:
        raise unstorable_files_error(problems)
    candidates = [(rel, size) for rel, size in candidates if unstorable_path_reason(rel) is None]
    total = sum(size for _, size in candidates)
    max_files, max_bytes = limits["maxFiles"], limits["maxFilesBytes"]
    if len(candidates) > max_files or total > max_bytes:
        if enforce:
            raise UserError(
                "FILES_TOO_LARGE",
                f"the code wrote {len(candidates)} file(s) totalling {total} bytes under the working "
                f"directory; the limits are {max_files} files and {max_bytes} bytes. Write fewer or "
                "smaller files, or delete temporary ones before main returns.",
            )
        kept, used = [], 0
        for rel, size in candidates:
            if len(kept) >= max_files or used + size > max_bytes:
                break
            kept.append((rel, size))
            used += size
        candidates = kept
    files = []
    for rel, _ in candidates:
        hashed = hash_file(root, rel)
        if hashed is not None:
            files.append({"path": rel, "size": hashed[0], "sha256": hashed[1]})
    return files


# ---------------------------------------------------------------- output validation


def _child_path(path, key):
    return f"{path}.{key}" if key.isascii() and key.isidentifier() else f"{path}[{quote_json(key)}]"


def _type_name(value):
    cls = type(value)
    module = getattr(cls, "__module__", "builtins")
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _fix_for(value):
    try:
        return _fix_hint(value)
    except Exception:  # hasattr on a hostile object can raise anything
        return "return only dicts, lists, strings, numbers, booleans and None"


def _fix_hint(value):
    if isinstance(value, (set, frozenset)):
        return "sets are not JSON: return a list, e.g. sorted(x)"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes are not JSON: decode them (x.decode()) or base64-encode them"
    if hasattr(value, "isoformat") and callable(value.isoformat):
        return "dates and times are not JSON: return x.isoformat()"
    if hasattr(value, "__dataclass_fields__"):
        return "return dataclasses.asdict(x)"
    if _type_name(value) == "decimal.Decimal":
        return "return float(x) or str(x)"
    if hasattr(value, "tolist") and callable(value.tolist):
        return "convert it with x.tolist() (or x.item() for a scalar)"
    if callable(value):
        return "functions are not JSON: call it, or return its name as a string"
    return "return only dicts, lists, strings, numbers, booleans and None"


def validate_output(value, path="output", depth=0, ancestors=None):
    """Raises OUTPUT_INVALID naming the first value JSON cannot represent."""
    ancestors = set() if ancestors is None else ancestors
    if value is None or isinstance(value, (bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            spelled = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
            raise UserError("OUTPUT_INVALID", f"{path} is {spelled}: not valid JSON; return None (null) or a string")
        return
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise UserError("OUTPUT_INVALID", f"{path} is a str with invalid Unicode (a lone surrogate); "
                            "clean it, e.g. s.encode('utf-8', 'replace').decode()") from None
        return
    if not isinstance(value, (dict, list, tuple)):
        raise UserError("OUTPUT_INVALID", f"{path} is a {_type_name(value)}, which is not JSON; {_fix_for(value)}")
    if depth >= MAX_OUTPUT_DEPTH:
        raise UserError("OUTPUT_INVALID", f"{path} is nested more than {MAX_OUTPUT_DEPTH} levels deep")
    if id(value) in ancestors:
        raise UserError("OUTPUT_INVALID", f"{path} is a circular reference (it contains itself)")
    ancestors.add(id(value))
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise UserError("OUTPUT_INVALID", f"{path} has a key {key!r} of type {_type_name(key)}; "
                                "JSON object keys must be strings: use str(key)")
            validate_output(item, _child_path(path, key), depth + 1, ancestors)
    else:
        for index, item in enumerate(value):
            validate_output(item, f"{path}[{index}]", depth + 1, ancestors)
    ancestors.discard(id(value))


def normalize_result(result, max_bytes):
    """The returned value as (dict, serialized JSON), or OUTPUT_INVALID / OUTPUT_TOO_LARGE."""
    if isinstance(result, str):
        try:
            decoded = loads_json(result)
        except (ValueError, RecursionError):
            decoded = None
        if not isinstance(decoded, dict):
            raise UserError("OUTPUT_INVALID", "main returned a str that is not a JSON object; "
                            'return a dict, e.g. {"text": value}')
        result = decoded
    if isinstance(result, (list, tuple)):
        raise UserError("OUTPUT_INVALID", f"main must return an object (dict), got {type(result).__name__}; "
                        'wrap it: {"items": [...]}')
    if not isinstance(result, dict):
        hint = " (did you forget return?)" if result is None else ""
        raise UserError("OUTPUT_INVALID", f"main must return an object (dict), got {_type_name(result)}{hint}; "
                        'return e.g. {"result": value}')
    validate_output(result)
    text = dumps_json(result)
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise UserError("OUTPUT_TOO_LARGE", f"the output is {size} bytes of JSON, over the {max_bytes}-byte "
                        "limit; write large data to a file in the working directory instead")
    return result, text


# ---------------------------------------------------------------- running user code


def user_stack(exc):
    """The traceback of ``exc`` reduced to frames of the user's file (runner frames dropped)."""
    import linecache, traceback  # noqa: E401 - here: only failures pay for them
    if _SeedLinecache.entry is not None:
        linecache.cache[USER_FILENAME] = _SeedLinecache.entry
    te = traceback.TracebackException(type(exc), exc, exc.__traceback__, compact=True)
    seen = set()
    todo = [te]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        frames = [f for f in current.stack if f.filename == USER_FILENAME]
        current.stack = traceback.StackSummary.from_list(frames)
        todo.extend([current.__cause__, current.__context__, *(getattr(current, "exceptions", None) or [])])
    return "".join(te.format()).rstrip("\n")


def _safe_str(value):
    try:
        return str(value)
    except Exception:  # a user __str__ that raises must not take the runner down
        return f"<{type(value).__name__} (str() failed)>"


def exception_error(exc):
    if isinstance(exc, SystemExit):
        return UserError("CODE_EXECUTION_FAILED", f"main called exit() (SystemExit: {_safe_str(exc.code)}); "
                         "return a dict instead, or raise an exception to fail the node",
                         "SystemExit", user_stack(exc))
    return UserError("CODE_EXECUTION_FAILED", _safe_str(exc), type(exc).__name__, user_stack(exc))


POSITIONAL_ONLY, POSITIONAL_OR_KEYWORD, VAR_POSITIONAL, KEYWORD_ONLY, VAR_KEYWORD = range(5)
_NO_DEFAULT = object()
CO_VARARGS, CO_VARKEYWORDS = 0x04, 0x08


def parameters(main):
    """[(name, kind, default or _NO_DEFAULT)] of main, in declaration order, or None when it has no
    introspectable signature. A plain function is read from its code object; anything else
    (decorated with functools.wraps, a class, a partial, a callable object) goes through
    inspect.signature, imported only then: it costs ~18 ms of start-up that most nodes never need."""
    if isinstance(main, types.FunctionType) and not hasattr(main, "__wrapped__") and not hasattr(main, "__signature__"):
        code, defaults, kwdefaults = main.__code__, main.__defaults__ or (), main.__kwdefaults__ or {}
        names, count, posonly, kwonly = code.co_varnames, code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount
        first_default = count - len(defaults)
        found = [(names[i], POSITIONAL_ONLY if i < posonly else POSITIONAL_OR_KEYWORD,
                  defaults[i - first_default] if i >= first_default else _NO_DEFAULT) for i in range(count)]
        extra = count + kwonly
        if code.co_flags & CO_VARARGS:
            found.append((names[extra], VAR_POSITIONAL, _NO_DEFAULT))
            extra += 1
        found.extend((name, KEYWORD_ONLY, kwdefaults.get(name, _NO_DEFAULT)) for name in names[count:count + kwonly])
        if code.co_flags & CO_VARKEYWORDS:
            found.append((names[extra], VAR_KEYWORD, _NO_DEFAULT))
        return found
    import inspect
    try:
        signature = inspect.signature(main)
    except (TypeError, ValueError):
        return None
    kinds = {inspect.Parameter.POSITIONAL_ONLY: POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD: POSITIONAL_OR_KEYWORD,
             inspect.Parameter.VAR_POSITIONAL: VAR_POSITIONAL, inspect.Parameter.KEYWORD_ONLY: KEYWORD_ONLY,
             inspect.Parameter.VAR_KEYWORD: VAR_KEYWORD}
    return [(p.name, kinds[p.kind], _NO_DEFAULT if p.default is p.empty else p.default) for p in signature.parameters.values()]


def bind_arguments(main, args):
    """(positional, keyword) for calling main: main(args), or each parameter filled by name."""
    params = parameters(main)
    if params is None:
        return [args], {}  # no introspectable signature: the documented default
    if len(params) == 1 and params[0][0] == "args" and params[0][1] not in (VAR_POSITIONAL, VAR_KEYWORD):
        return ([args], {}) if params[0][1] != KEYWORD_ONLY else ([], {"args": args})
    positional, keyword, used = [], {}, set()
    for name, kind, default in params:
        if kind in (VAR_POSITIONAL, VAR_KEYWORD):
            continue
        if name in args:
            used.add(name)
            if kind == POSITIONAL_ONLY:
                positional.append(args[name])
            else:
                keyword[name] = args[name]
        elif default is not _NO_DEFAULT:
            if kind == POSITIONAL_ONLY:
                positional.append(default)
        else:
            available = ", ".join(quote_json(k) for k in args) or "none"
            raise UserError("INPUT_BINDING_FAILED",
                            f'main() parameter "{name}" is required but args has no key "{name}" '
                            f"(available keys: {available}); give it a default, bind it in the node's "
                            "inputs, or declare def main(args) to receive the whole object")
    if any(kind == VAR_KEYWORD for _, kind, _ in params):
        keyword.update({k: v for k, v in args.items() if k not in used})
    return positional, keyword


def is_awaitable(value):
    """inspect.isawaitable without importing inspect: a coroutine, an object with __await__, or a
    generator-based coroutine (types.coroutine)."""
    if isinstance(value, types.CoroutineType) or getattr(type(value), "__await__", None) is not None:
        return True
    return isinstance(value, types.GeneratorType) and bool(value.gi_code.co_flags & 0x100)  # CO_ITERABLE_COROUTINE


async def _await(awaitable):
    return await awaitable


class _SeedLinecache:
    """Gives linecache the user's source the moment anything imports linecache (traceback on a
    failure, logging, the code itself), so tracebacks show the code's lines from memory whatever
    the working directory holds, without the runner importing linecache for every node: it
    imports tokenize, hence re and enum. A finder asked first for every import; for linecache it
    returns the real spec with a loader that seeds the cache once the module ran."""

    # The user's source as linecache keeps it; set again before the runner formats a traceback
    # (user_stack), in case the code used the finder up without importing (importlib.util.find_spec)
    # or took it off sys.meta_path.
    entry = None

    def __init__(self, entry):
        self.entry = entry

    @classmethod
    def install(cls, entry):
        cls.entry = entry
        linecache = sys.modules.get("linecache")
        if linecache is not None:
            linecache.cache[USER_FILENAME] = entry
        else:
            sys.meta_path.insert(0, cls(entry))

    def find_spec(self, name, path=None, target=None):
        if name != "linecache":
            return None
        sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                spec.loader = _SeedingLoader(spec.loader, self.entry)
                return spec
        return None


class _SeedingLoader:
    def __init__(self, loader, entry):
        self._loader = loader
        self._entry = entry

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        module.cache[USER_FILENAME] = self._entry

    def __getattr__(self, name):  # get_source, get_code, ... of the real loader
        return getattr(self._loader, name)


def run_user_code(code, args):
    """Compiles, executes and calls main; returns what main returned."""
    _SeedLinecache.install((len(code), None, code.splitlines(True), USER_FILENAME))
    try:
        compiled = compile(code, USER_FILENAME, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise exception_error(exc) from None
    module = types.ModuleType("main")
    module.__file__ = os.path.join(os.getcwd(), USER_FILENAME)
    # dataclasses, typing.get_type_hints and pickle look classes up through sys.modules.
    sys.modules["main"] = module
    try:
        exec(compiled, module.__dict__)
        main = module.__dict__.get("main")
        if main is None:
            raise UserError("CODE_EXECUTION_FAILED", "the code does not define main; define "
                            "`def main(args):` returning a dict")
        if not callable(main):
            raise UserError("CODE_EXECUTION_FAILED", f"main is a {_type_name(main)}, not a function; "
                            "define `def main(args):` returning a dict")
        positional, keyword = bind_arguments(main, args)
        result = main(*positional, **keyword)
        if is_awaitable(result):
            # Imported here: asyncio takes ~50 ms to import, most nodes are plain functions.
            import asyncio
            result = asyncio.run(_await(result))
        return result
    except UserError:
        raise
    except BaseException as exc:  # noqa: B036 - SystemExit and friends are user failures too
        raise exception_error(exc) from None


# ---------------------------------------------------------------- protocol plumbing


def frame(nonce, response):
    body = dumps_json(response, allow_nan=True)
    return f"\n<<<PODFLOW-RESULT {nonce}>>>\n{body}\n<<<PODFLOW-END {nonce}>>>\n".encode("utf-8", "backslashreplace")


def write_all(fd, data):
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_file_frames(fd, nonce, root, files):
    """emitFiles: after the response, each listed file's current bytes framed by a header with their
    actual length and the captured sha256 (so a reader detects a file changed since), then the end
    marker, written even without files so the reader knows the stream is complete. Paths are
    relative to ``root``, not to the cwd, which the code may have changed."""
    for entry in files:
        content = read_captured(root, entry["path"])
        header = dumps_json({"path": entry["path"], "size": len(content), "sha256": entry["sha256"]}, allow_nan=True)
        # Encoded like the response, so the header's path is the one the response lists.
        write_all(fd, f"<<<PODFLOW-FILE {nonce}>>> {header}\n".encode("utf-8", "backslashreplace"))
        write_all(fd, content)
        write_all(fd, b"\n")
    write_all(fd, f"<<<PODFLOW-FILES-END {nonce}>>>\n".encode("utf-8"))


def read_request(argv):
    if "--request" in argv:
        index = argv.index("--request")
        if index + 1 >= len(argv):
            raise ValueError("--request needs a file path")
        with open(argv[index + 1], "rb") as handle:
            return handle.read()
    return sys.stdin.buffer.read()


def parse_request(raw):
    """(request, problem): problem describes a malformed request, request may still hold the nonce."""
    try:
        request = loads_json(raw)
    except (ValueError, RecursionError) as exc:
        # RecursionError: args nested past the interpreter's recursion limit (the API allows 64 levels).
        import re
        found = re.search(rb'"nonce"\s*:\s*"([A-Za-z0-9_.:-]+)"', raw)
        return ({"nonce": found.group(1).decode()} if found else None), f"request is not valid JSON: {type(exc).__name__}: {exc}"
    if not isinstance(request, dict) or not isinstance(request.get("nonce"), str) or not request["nonce"]:
        return None, "request is not an object with a string nonce"
    for field, kind in (("code", str), ("args", dict), ("workdir", str)):
        if not isinstance(request.get(field), kind):
            return request, f"request field {field!r} is missing or not a {kind.__name__}"
    limits = dict(DEFAULT_LIMITS)
    for key, value in (request.get("limits") or {}).items():
        if key in limits and isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            limits[key] = int(value)
    request["limits"] = limits
    return request, None


def main(argv):
    # The response gets a private copy of fd 1; fd 1 itself now points at stderr so writes to it
    # (os.write(1, ...), subprocesses, C extensions) can never land inside the framed response.
    response_fd = os.dup(1)
    os.dup2(2, 1)
    try:
        raw = read_request(argv)
        # Timed from the request: a warm sandbox may have waited a long time for it.
        started = time.monotonic()
        request, problem = parse_request(raw)
    except (OSError, ValueError) as exc:
        started = time.monotonic()
        request, problem = None, f"cannot read the request: {exc}"
    if request is None:
        sys.stderr.write(f"podflow runner: {problem}\n")
        return 2
    if request.get("emitFiles") is True or request.get("announce") is True:
        # A worker adopting this sandbox reads the log for this line: the request must not be sent
        # again; the process driver reads it as "the sandbox is set up: what follows is the code's".
        write_all(2, f"<<<PODFLOW-REQUEST-RECEIVED {request['nonce']}>>>\n".encode())
    limits = request.get("limits") if problem is None else DEFAULT_LIMITS
    out, err = TailBuffer(limits["maxLogBytes"]), TailBuffer(limits["maxLogBytes"])
    outcome = {"ok": False, "error": {"code": "INTERNAL", "message": problem}, "files": []}
    root = None  # the workdir, once entered; files are only ever listed then
    if problem is None:
        try:
            outcome, root = execute(request, limits, out, err)
        except BaseException as exc:  # a runner bug: still answer, so the driver sees why
            import traceback
            message = f"runner failure: {''.join(traceback.format_exception_only(type(exc), exc)).strip()}"
            outcome = {"ok": False, "error": {"code": "INTERNAL", "message": message}, "files": []}
    outcome["logs"] = {"stdout": out.text(), "stderr": err.text(), "truncated": out.truncated or err.truncated}
    outcome["durationMs"] = int((time.monotonic() - started) * 1000)
    write_all(response_fd, frame(request["nonce"], outcome))
    # Read even from a malformed request, like the nonce, so its INTERNAL response ends the stream too.
    if request.get("emitFiles") is True:
        write_file_frames(response_fd, request["nonce"], root, outcome["files"])
    return 0


def execute(request, limits, out, err):
    """(outcome, workdir root); the root is None when the workdir could not be entered."""
    try:
        os.chdir(request["workdir"])
    except OSError as exc:
        return {"ok": False, "error": {"code": "INTERNAL", "message": f"cannot enter workdir: {exc}"}, "files": []}, None
    root = os.path.realpath(os.getcwd())
    # -I ignores every PYTHON* variable, so dependency layers come through this one instead, and
    # bytecode writing is turned off here: __pycache__ must not land in read-only layers or among
    # the captured files.
    extra = [p for p in os.environ.get("PODFLOW_PYTHONPATH", "").split(os.pathsep) if p]
    if extra:
        # What the runner imports only when needed comes from the standard library, never from a
        # layer that happens to hold a package of the same name (PyPI has an "asyncio").
        import asyncio, hashlib, inspect, json, linecache, re, traceback  # noqa: E401,F401
    sys.path[:0] = extra
    sys.dont_write_bytecode = True
    before = snapshot(root)
    order = WriteOrder(root)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = CaptureStream(out, "<stdout>"), CaptureStream(err, "<stderr>")
    error, output = None, None
    try:
        result = run_user_code(request["code"], request["args"])
        # An agent tool call may return any JSON value: it travels as the output {"value": ...}.
        if request.get("returnAny"):
            result = {"value": result}
        output, _ = normalize_result(result, limits["maxOutputBytes"])
    except UserError as exc:
        error = exc
    except BaseException as exc:  # user code running inside validation (a dict subclass, __str__...)
        error = UserError("OUTPUT_INVALID", f"the output could not be serialized: {type(exc).__name__}: "
                          f"{_safe_str(exc)}; return plain dicts, lists, strings, numbers, booleans and None")
    finally:
        sys.stdout, sys.stderr = saved
    order.settle()
    try:
        files = capture_files(root, before, limits, enforce=error is None, order=order)
    except UserError as exc:
        error, files = exc, []
    if error is not None:
        return {"ok": False, "error": error.to_json(), "files": files}, root
    return {"ok": True, "output": output, "files": files}, root


if __name__ == "__main__":
    try:
        code = main(sys.argv[1:])
    except BaseException:  # a runner bug: say so loudly on stderr, the driver sees no response
        import traceback
        traceback.print_exc()
        code = 3
    sys.stderr.flush()
    # Non-daemon threads the user started must not keep the sandbox alive after the response.
    os._exit(code)
