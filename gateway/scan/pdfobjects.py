"""A small, bounded reader of PDF objects, for the scan only: enough structure to say
what starts each script and to take embedded files out. Never a renderer.

Objects are found by their ``N G obj`` headers (a broken cross-reference table
does not matter), stream bodies are skipped rather than searched, nesting is
capped, and every decoded stream is charged to the walk's byte budget.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

_WS = b"\x00\t\n\x0c\r "
_DELIM = b"()<>[]{}/%"
_MAX_DEPTH = 48
_MAX_OBJECTS = 200_000
_MAX_SCRIPT = 1024 * 1024
_OBJ = re.compile(rb"(?<![0-9])(\d{1,10})\s+(\d{1,5})\s+obj\b")
_REF = re.compile(rb"\s*(\d{1,5})\s+R(?![A-Za-z0-9])")
_HEXNAME = re.compile(rb"#([0-9A-Fa-f]{2})")
_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b",
            ord("f"): b"\f", ord("("): b"(", ord(")"): b")", ord("\\"): b"\\"}


@dataclass(frozen=True, slots=True)
class Ref:
    num: int


@dataclass(frozen=True, slots=True)
class Name:
    value: str


@dataclass(frozen=True, slots=True)
class PdfScript:
    trigger: str  # "OpenAction", "Names", "AA/O", "AA/K"…
    text: bytes


class _Parser:
    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def _skip(self) -> None:
        data, n = self.data, len(self.data)
        while self.pos < n:
            c = data[self.pos]
            if c in _WS:
                self.pos += 1
            elif c == 0x25:  # % comment
                end = data.find(b"\n", self.pos)
                self.pos = n if end < 0 else end + 1
            else:
                return

    def value(self, depth: int = 0) -> Any:
        self._skip()
        data, n = self.data, len(self.data)
        if self.pos >= n or depth > _MAX_DEPTH:
            return None
        c = data[self.pos]
        if data.startswith(b"<<", self.pos):
            self.pos += 2
            out: dict[str, Any] = {}
            while True:
                self._skip()
                if self.pos >= n:
                    return out
                if data.startswith(b">>", self.pos):
                    self.pos += 2
                    return out
                if data[self.pos] != 0x2F:  # not a key: skip the stray byte
                    self.pos += 1
                    continue
                key = self._name()
                out[key] = self.value(depth + 1)
        if c == 0x5B:  # [
            self.pos += 1
            items: list[Any] = []
            while True:
                self._skip()
                if self.pos >= n:
                    return items
                if data[self.pos] == 0x5D:
                    self.pos += 1
                    return items
                before = self.pos
                items.append(self.value(depth + 1))
                if self.pos == before:
                    self.pos += 1
        if c == 0x28:
            return self._literal()
        if c == 0x3C:
            end = data.find(b">", self.pos)
            end = n if end < 0 else end
            digits = re.sub(rb"[^0-9A-Fa-f]", b"", data[self.pos + 1:end])
            self.pos = end + 1
            if len(digits) % 2:
                digits += b"0"
            return binascii.unhexlify(digits)
        if c == 0x2F:
            return Name(self._name())
        if c in b"+-.0123456789":
            start = self.pos
            while self.pos < n and data[self.pos] in b"+-.0123456789":
                self.pos += 1
            token = data[start:self.pos]
            if token.isdigit():
                m = _REF.match(data, self.pos)
                if m:
                    self.pos = m.end()
                    return Ref(int(token))
            return token
        start = self.pos  # a keyword (true, false, null, endobj, stream…)
        while self.pos < n and data[self.pos] not in _WS and data[self.pos] not in _DELIM:
            self.pos += 1
        if self.pos == start:
            self.pos += 1
        return data[start:self.pos]

    def _name(self) -> str:
        data, n = self.data, len(self.data)
        self.pos += 1
        start = self.pos
        while self.pos < n and data[self.pos] not in _WS and data[self.pos] not in _DELIM:
            self.pos += 1
        raw = _HEXNAME.sub(lambda m: bytes([int(m.group(1), 16)]), data[start:self.pos])
        return raw.decode("latin-1")

    def _literal(self) -> bytes:
        data, n = self.data, len(self.data)
        self.pos += 1
        out = bytearray()
        level = 1
        while self.pos < n:
            c = data[self.pos]
            self.pos += 1
            if c == 0x5C and self.pos < n:  # backslash
                e = data[self.pos]
                self.pos += 1
                if e in _ESCAPES:
                    out += _ESCAPES[e]
                elif 0x30 <= e <= 0x37:
                    digits = bytes([e])
                    while len(digits) < 3 and self.pos < n and 0x30 <= data[self.pos] <= 0x37:
                        digits += bytes([data[self.pos]])
                        self.pos += 1
                    out.append(int(digits, 8) & 0xFF)
                elif e == 0x0D and self.pos < n and data[self.pos] == 0x0A:
                    self.pos += 1
                elif e not in (0x0A, 0x0D):
                    out.append(e)
                continue
            if c == 0x28:
                level += 1
            elif c == 0x29:
                level -= 1
                if level == 0:
                    return bytes(out)
            out.append(c)
        return bytes(out)


def _stream_body(data: bytes, pos: int) -> tuple[bytes, int] | None:
    """The raw bytes of a stream whose dictionary ends at ``pos``, and where it ends."""
    m = re.compile(rb"\s*stream\r?\n").match(data, pos)
    if m is None:
        return None
    end = data.find(b"endstream", m.end())
    if end < 0:
        return data[m.end():], len(data)
    body = data[m.end():end]
    if body.endswith(b"\r\n"):
        body = body[:-2]
    elif body.endswith((b"\n", b"\r")):
        body = body[:-1]
    return body, end + len(b"endstream")


def text_of(value: Any) -> str:
    """A PDF text string (UTF-16 with its BOM, or PDFDocEncoding, close to Latin-1)."""
    if not isinstance(value, bytes):
        return ""
    if value.startswith(b"\xfe\xff"):
        return value[2:].decode("utf-16-be", "replace")
    if value.startswith(b"\xef\xbb\xbf"):
        return value[3:].decode("utf-8", "replace")
    return value.decode("latin-1")


# An object worth parsing holds one of these (or a #-escaped name, which may be one);
# the others (pages, fonts, images) are only parsed when a reference leads to them.
_WORTH = re.compile(rb"/(?:AA|OpenAction|EF|A|JS|EmbeddedFile|Catalog)(?![A-Za-z0-9])|#")


@dataclass(eq=False)
class _Span:
    buffer: bytes
    start: int
    stream: bool  # a stream object of the file itself (its body follows the dictionary)


@dataclass
class Document:
    """The objects of a PDF, parsed when needed, and what its scripts are started by."""

    open_scripts: list[PdfScript] = field(default_factory=list)
    user_scripts: list[PdfScript] = field(default_factory=list)
    open_action_types: set[str] = field(default_factory=set)
    decode: Callable[[dict[str, Any], bytes], bytes | None] = field(
        default=lambda d, b: None, repr=False)
    spans: dict[int, _Span] = field(default_factory=dict, repr=False)
    worth: list[_Span] = field(default_factory=list, repr=False)
    _parsed: dict[int, Any] = field(default_factory=dict, repr=False)

    @property
    def objects(self) -> int:
        return len(self.spans)

    @classmethod
    def parse(cls, data: bytes, object_streams: list[tuple[bytes, bytes]], *,
              decode: Callable[[dict[str, Any], bytes], bytes | None],
              check_time: Callable[[], None]) -> Document:
        doc = cls(decode=decode)
        pos = 0
        count = 0
        while count < _MAX_OBJECTS:
            m = _OBJ.search(data, pos)
            if m is None:
                break
            count += 1
            if count % 4096 == 0:
                check_time()
            start = m.end()
            end = data.find(b"endobj", start)
            body = data.find(b"stream", start, end if end >= 0 else len(data))
            if body >= 0 and data[body - 3:body] != b"end":
                span = _Span(data, start, True)
                after = data.find(b"endstream", body)
                pos = len(data) if after < 0 else after + 9
                region = data[start:body]
            else:
                span = _Span(data, start, False)
                pos = len(data) if end < 0 else end + 6
                region = data[start:pos]
            doc.spans[int(m.group(1))] = span
            if _WORTH.search(region):
                doc.worth.append(span)
        for header, content in object_streams:
            check_time()
            doc._object_stream(header, content)
        doc._classify(check_time)
        return doc

    def _object_stream(self, header: bytes, content: bytes) -> None:
        start = header.find(b"<<")
        info = _Parser(header, start).value() if start >= 0 else _Parser(b"<<" + header).value()
        if not isinstance(info, dict):
            return
        try:
            first = int(info.get("First", b"0"))
            count = min(int(info.get("N", b"0")), _MAX_OBJECTS)
        except (TypeError, ValueError):
            return
        numbers = [int(n) for n in re.findall(rb"\d+", content[:first])[:2 * count]]
        offsets = [first + numbers[i] for i in range(1, len(numbers), 2)] + [len(content)]
        for i in range(0, len(numbers) - 1, 2):
            num, begin = numbers[i], offsets[i // 2]
            span = _Span(content, begin, False)
            if _WORTH.search(content, begin, max(begin, offsets[i // 2 + 1])):
                self.worth.append(span)  # defined twice too: the reader picks one, we see both
            current = self.spans.get(num)
            if current is None or (current.stream and self._type(num) == "ObjStm"):
                self.spans[num] = span
                self._parsed.pop(num, None)

    # --- navigation -----------------------------------------------------------
    def _value(self, span: _Span) -> Any:
        return _Parser(span.buffer, span.start).value()

    def get(self, num: int) -> Any:
        if num not in self._parsed:
            span = self.spans.get(num)
            self._parsed[num] = None if span is None else self._value(span)
        return self._parsed[num]

    def _type(self, num: int) -> str:
        value = self.get(num)
        kind = value.get("Type") if isinstance(value, dict) else None
        return kind.value if isinstance(kind, Name) else ""

    def stream(self, num: int) -> tuple[dict[str, Any], bytes] | None:
        """The dictionary and raw body of stream object ``num``."""
        span = self.spans.get(num)
        if span is None or not span.stream:
            return None
        parser = _Parser(span.buffer, span.start)
        info = parser.value()
        body = _stream_body(span.buffer, parser.pos) if isinstance(info, dict) else None
        return None if body is None or not isinstance(info, dict) else (info, body[0])

    def resolve(self, value: Any) -> Any:
        for _ in range(16):
            if not isinstance(value, Ref):
                return value
            value = self.get(value.num)
        return None

    def _actions(self, value: Any) -> Iterator[dict[str, Any]]:
        """An action and those it chains to with /Next, each once."""
        todo = [value]
        seen: set[int] = set()
        steps = 0
        while todo and steps < 256:
            steps += 1
            item = todo.pop()
            if isinstance(item, Ref):
                if item.num in seen:
                    continue
                seen.add(item.num)
            item = self.resolve(item)
            if isinstance(item, list):
                todo.extend(item[:256])
            elif isinstance(item, dict):
                yield item
                if "Next" in item:
                    todo.append(item["Next"])

    def _script(self, action: dict[str, Any]) -> bytes:
        js = action.get("JS")
        if isinstance(js, Ref):
            stream = self.stream(js.num)
            if stream is not None:
                return (self.decode(*stream) or b"")[:_MAX_SCRIPT]
            js = self.resolve(js)
        return js[:_MAX_SCRIPT] if isinstance(js, bytes) else b""

    def _run(self, value: Any, trigger: str, at_open: bool) -> None:
        for action in self._actions(value):
            kind = action.get("S")
            kind = kind.value if isinstance(kind, Name) else ""
            if at_open and kind:
                self.open_action_types.add(kind)
            if kind == "JavaScript" or "JS" in action:
                script = PdfScript(trigger, self._script(action))
                (self.open_scripts if at_open else self.user_scripts).append(script)

    def _name_tree(self, node: Any) -> Iterator[Any]:
        todo = [node]
        visited = 0
        while todo and visited < 4096:
            visited += 1
            item = self.resolve(todo.pop())
            if not isinstance(item, dict):
                continue
            names = self.resolve(item.get("Names"))
            if isinstance(names, list):
                yield from names[1::2]
            kids = self.resolve(item.get("Kids"))
            if isinstance(kids, list):
                todo.extend(kids[:4096])

    def dicts(self) -> Iterator[dict[str, Any]]:
        """Every dictionary of the objects worth parsing, nested ones included
        (references not followed)."""
        for span in self.worth:
            todo = [self._value(span)]
            while todo:
                item = todo.pop()
                if isinstance(item, dict):
                    yield item
                    todo.extend(item.values())
                elif isinstance(item, list):
                    todo.extend(item)

    def _classify(self, check_time: Callable[[], None]) -> None:
        for count, d in enumerate(self.dicts()):
            if count % 4096 == 0:
                check_time()
            catalog = d.get("Type") == Name("Catalog")
            if catalog:
                opening = self.resolve(d.get("OpenAction"))
                if isinstance(opening, dict):  # an array is a destination: a page and zoom
                    self._run(d["OpenAction"], "OpenAction", True)
                names = self.resolve(d.get("Names"))
                if isinstance(names, dict) and "JavaScript" in names:
                    for action in self._name_tree(names["JavaScript"]):
                        self._run(action, "Names", True)
            aa = self.resolve(d.get("AA"))
            if isinstance(aa, dict):
                for key, action in aa.items():
                    # O: a page opened; PO/PV: the page of an annotation opened or shown.
                    # The others wait for the user (K/F/V/C on a field, a click, a save).
                    at_open = key in ("O", "PO", "PV") and not catalog
                    self._run(action, f"AA/{key}", at_open)
            if "A" in d and not catalog:  # a link or button clicked
                self._run(d["A"], "A", False)

    def embedded_files(self) -> list[tuple[str, bytes | None]]:
        """(name, bytes or None when unreadable) of every embedded file."""
        out: list[tuple[str, bytes | None]] = []
        done: set[int] = set()
        for d in self.dicts():
            ef = self.resolve(d.get("EF"))
            if not isinstance(ef, dict):
                continue
            name = text_of(self.resolve(d.get("UF"))) or text_of(self.resolve(d.get("F")))
            name = re.split(r"[\\/]", name)[-1].strip() or "fichier-incorporé"
            for ref in ef.values():
                if not isinstance(ref, Ref) or ref.num in done:
                    continue
                done.add(ref.num)
                stream = self.stream(ref.num)
                out.append((name, None if stream is None else self.decode(*stream)))
        worth = {id(span) for span in self.worth}
        for num, span in self.spans.items():
            if num in done or not span.stream or id(span) not in worth:
                continue
            stream = self.stream(num)
            if stream is not None and stream[0].get("Type") == Name("EmbeddedFile"):
                out.append(("fichier-incorporé", self.decode(*stream)))
        return out


_FILTERS = {"FlateDecode": "flate", "Fl": "flate", "ASCIIHexDecode": "hex", "AHx": "hex",
            "ASCII85Decode": "a85", "A85": "a85"}


def filters(info: dict[str, Any]) -> list[str] | None:
    """The stream's filters by our names, None when one is not supported."""
    value = info.get("Filter")
    items = value if isinstance(value, list) else [value] if value is not None else []
    out: list[str] = []
    for item in items:
        if not isinstance(item, Name) or item.value not in _FILTERS:
            return None
        out.append(_FILTERS[item.value])
    parms = info.get("DecodeParms")
    for p in parms if isinstance(parms, list) else [parms]:
        if isinstance(p, dict) and p.get("Predictor") not in (None, b"1"):
            return None
    return out


def decode_stream(info: dict[str, Any], raw: bytes, room: int) -> tuple[bytes, int] | None:
    """``raw`` through its filters, at most ``room`` bytes (more means over budget);
    with the number of compressed bytes it came from. None when unreadable."""
    steps = filters(info)
    if steps is None:
        return None
    data = raw
    try:
        for step in steps:
            if step == "flate":
                data = zlib.decompressobj().decompress(data, room + 1)
            elif step == "hex":
                digits = re.sub(rb"[^0-9A-Fa-f]", b"", data.split(b">", 1)[0])
                data = binascii.unhexlify(digits + b"0" * (len(digits) % 2))
            else:
                body = data.strip()
                body = body[2:] if body.startswith(b"<~") else body
                data = base64.a85decode(body.split(b"~>", 1)[0] + b"~>", adobe=True)
    except (zlib.error, ValueError, binascii.Error):
        return None
    return data, len(raw)
