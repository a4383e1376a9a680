"""Xero's `where` and `order` query parameters: a small typed parser in the spirit of Xero's.

Xero evaluates `where` as a C#-like (Dynamic LINQ) expression over the entity's properties:

    IsSupplier==true AND ContactStatus=="ACTIVE"
    Name.StartsWith("A") || Name.Contains("Ltd")
    ContactID==Guid("…") && UpdatedDateUTC>=DateTime(2025,01,01) && EmailAddress!=null

Types are checked the way Xero reports them: `IsSupplier=="true"` is a QueryParseException
("Operator '==' incompatible with operand types 'Boolean?' and 'String'"), as is comparing a
Guid property with a plain string. Property names are matched case-insensitively; string
comparisons (`==`, `!=`, `StartsWith`, `Contains`, `EndsWith`, `<`…) ignore case, as Xero's
database collation does. A missing property value is `null`.

`parse_where(text, fields, entity)` and `parse_order(text, fields, entity)` raise `QueryParseError`
(rendered by the caller as `{"ErrorNumber":16,"Type":"QueryParseException","Message":…}`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sandbox.wire import MsDate, datetime_to_ms

Getter = Callable[[Mapping[str, Any]], Any]

# Field types as Xero names them in its messages ("Boolean?" = nullable).
BOOL, STRING, GUID, DATE, DECIMAL, INT, NULL = (
    "Boolean", "String", "Guid", "DateTime", "Decimal", "Int32", "Null")
_NULLABLE = {BOOL, GUID, DATE, DECIMAL, INT}
_NUMERIC = {DECIMAL, INT}


class QueryParseError(ValueError):
    """A `where`/`order` Xero cannot parse; its message is Xero's `Message`."""


@dataclass
class Where:
    """A parsed `where`: `matches(record)` and the top-level fields it reads."""

    predicate: Getter
    fields: set[str]

    def matches(self, record: Mapping[str, Any]) -> bool:
        return self.predicate(record) is True


@dataclass
class OrderKey:
    path: tuple[str, ...]
    descending: bool
    type_: str


# --- tokens -----------------------------------------------------------------------------------
_TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>"[^"]*")
  | (?P<unterminated>"[^"]*$)
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<op>==|!=|<>|>=|<=|&&|\|\||[=<>!().,-])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
""", re.VERBOSE)


@dataclass
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if not match:
            raise QueryParseError(f"Syntax error '{text[pos]}'")
        kind = match.lastgroup or ""
        if kind == "unterminated":
            raise QueryParseError("Unterminated string literal")
        if kind != "ws":
            tokens.append(_Tok(kind, match.group(), pos))
        pos = match.end()
    tokens.append(_Tok("end", "", len(text)))
    return tokens


# --- parser -----------------------------------------------------------------------------------
_Node = tuple[Getter, str]  # evaluator, type


def _display(type_: str, nullable: bool) -> str:
    return f"{type_}?" if nullable and type_ in _NULLABLE else type_


class _Parser:
    def __init__(self, text: str, fields: Mapping[str, str], entity: str,
                 required: frozenset[str] = frozenset()) -> None:
        self.tokens = _tokenize(text)
        self.required = required
        self.index = 0
        self.fields = {name.lower(): (name, type_) for name, type_ in fields.items()}
        # "balances", "balances.accountspayable": prefixes of dotted property paths
        self.prefixes = {".".join(name.split(".")[:i]) for name in self.fields
                         for i in range(1, name.count(".") + 1)}
        self.entity = entity
        self.used: set[str] = set()
        self.nullable: dict[int, bool] = {}

    # token helpers
    def peek(self) -> _Tok:
        return self.tokens[self.index]

    def take(self) -> _Tok:
        tok = self.tokens[self.index]
        self.index += 1
        return tok

    def accept(self, *texts: str) -> _Tok | None:
        tok = self.peek()
        if tok.kind in ("op", "ident") and tok.text.lower() in texts:
            return self.take()
        return None

    def expect(self, text: str) -> None:
        if not self.accept(text):
            raise QueryParseError(f"'{text}' expected")

    # grammar
    def parse(self) -> _Node:
        if self.peek().kind == "end":
            raise QueryParseError("Expression expected")
        node = self.parse_or()
        if self.peek().kind != "end":
            raise QueryParseError("Syntax error")
        if node[1] != BOOL:
            raise QueryParseError("Expression of type 'Boolean' expected")
        return node

    def parse_or(self) -> _Node:
        left = self.parse_and()
        while self.accept("or", "||"):
            right = self.parse_and()
            self._need_bool("||", left, right)
            lf, rf = left[0], right[0]
            left = ((lambda r, lf=lf, rf=rf: lf(r) is True or rf(r) is True), BOOL)
        return left

    def parse_and(self) -> _Node:
        left = self.parse_unary()
        while self.accept("and", "&&"):
            right = self.parse_unary()
            self._need_bool("&&", left, right)
            lf, rf = left[0], right[0]
            left = ((lambda r, lf=lf, rf=rf: lf(r) is True and rf(r) is True), BOOL)
        return left

    def _need_bool(self, op: str, left: _Node, right: _Node) -> None:
        if left[1] != BOOL or right[1] != BOOL:
            raise QueryParseError(
                f"Operator '{op}' incompatible with operand types '{left[1]}' and '{right[1]}'")

    def parse_unary(self) -> _Node:
        if self.accept("!", "not"):
            inner = self.parse_unary()
            if inner[1] != BOOL:
                raise QueryParseError(f"Operator '!' incompatible with operand type '{inner[1]}'")
            fn = inner[0]
            return (lambda r: fn(r) is not True), BOOL
        return self.parse_comparison()

    def parse_comparison(self) -> _Node:
        left = self.parse_primary()
        tok = self.peek()
        if tok.kind == "op" and tok.text in ("==", "=", "!=", "<>", ">", ">=", "<", "<="):
            self.take()
            right = self.parse_primary()
            return self._compare(tok.text, left, right)
        return left

    def _compare(self, op: str, left: _Node, right: _Node) -> _Node:
        op = {"=": "==", "<>": "!="}.get(op, op)
        lt, rt = left[1], right[1]
        ok = (lt == rt or (NULL in (lt, rt) and op in ("==", "!="))
              or (lt in _NUMERIC and rt in _NUMERIC))
        if NULL in (lt, rt) and not (lt in _NULLABLE | {STRING, NULL}
                                     and rt in _NULLABLE | {STRING, NULL}):
            ok = False
        if ok and op not in ("==", "!=") and (lt in (BOOL, GUID, NULL) or rt in (BOOL, NULL)):
            ok = False
        if not ok:
            raise QueryParseError(
                f"Operator '{op}' incompatible with operand types "
                f"'{_display(lt, self.nullable.get(id(left), False))}' and "
                f"'{_display(rt, self.nullable.get(id(right), False))}'")
        lf, rf = left[0], right[0]
        fold = STRING in (lt, rt)

        def values(r: Mapping[str, Any]) -> tuple[Any, Any]:
            a, b = lf(r), rf(r)
            if fold:
                a = a.lower() if isinstance(a, str) else a
                b = b.lower() if isinstance(b, str) else b
            return a, b

        if op == "==":
            return (lambda r: _eq(*values(r))), BOOL
        if op == "!=":
            return (lambda r: not _eq(*values(r))), BOOL
        compare = {">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
                   "<": lambda a, b: a < b, "<=": lambda a, b: a <= b}[op]

        def ordered(r: Mapping[str, Any]) -> bool:
            a, b = values(r)
            if a is None or b is None:
                return False
            try:
                return bool(compare(_num(a), _num(b)))
            except TypeError:
                return False
        return ordered, BOOL

    def parse_primary(self) -> _Node:
        tok = self.take()
        if tok.kind == "op" and tok.text == "(":
            node = self.parse_or()
            if not self.accept(")"):
                raise QueryParseError("')' or operator expected")
            return self._postfix(node)
        if tok.kind == "op" and tok.text == "-" and self.peek().kind == "number":
            value = Decimal("-" + self.take().text)
            return (lambda r: value), DECIMAL
        if tok.kind == "string":
            value = tok.text[1:-1]
            return self._postfix(((lambda r: value), STRING))
        if tok.kind == "number":
            number = Decimal(tok.text)
            return (lambda r: number), (INT if "." not in tok.text else DECIMAL)
        if tok.kind == "ident":
            word = tok.text.lower()
            if word in ("true", "false"):
                flag = word == "true"
                return (lambda r: flag), BOOL
            if word == "null":
                return (lambda r: None), NULL
            if word == "guid" and self.peek().text == "(":
                return self._guid()
            if word == "datetime" and self.peek().text == "(":
                return self._datetime()
            return self._postfix(self._field(tok.text))
        if tok.kind == "end":
            raise QueryParseError("Expression expected")
        raise QueryParseError(f"Expression expected at '{tok.text}'")

    def _field(self, name: str) -> _Node:
        path = [name]
        while ".".join(path).lower() in self.prefixes and self.peek().text == "." \
                and self.tokens[self.index + 1].kind == "ident":
            self.take()
            path.append(self.take().text)
        key = ".".join(path).lower()
        if key not in self.fields:
            raise QueryParseError(
                f"No property or field '{name}' exists in type '{self.entity}'")
        canonical, type_ = self.fields[key]
        parts = tuple(canonical.split("."))
        self.used.add(parts[0])
        getter = _path_getter(parts)
        node: _Node = (getter, type_)
        self.nullable[id(node)] = canonical not in self.required
        return node

    def _postfix(self, node: _Node) -> _Node:
        while self.peek().text == ".":
            self.take()
            method_tok = self.take()
            if method_tok.kind != "ident":
                raise QueryParseError("Identifier expected")
            method = method_tok.text.lower()
            if node[1] != STRING:
                raise QueryParseError(
                    f"No applicable method '{method_tok.text}' exists in type '{node[1]}'")
            self.expect("(")
            args: list[_Node] = []
            if not self.accept(")"):
                args.append(self.parse_or())
                while self.accept(","):
                    args.append(self.parse_or())
                if not self.accept(")"):
                    raise QueryParseError("')' or ',' expected")
            node = self._method(node, method, method_tok.text, args)
        return node

    def _method(self, node: _Node, method: str, shown: str, args: list[_Node]) -> _Node:
        fn = node[0]
        if method in ("tolower", "toupper", "trim") and not args:
            conv = {"tolower": str.lower, "toupper": str.upper, "trim": str.strip}[method]
            return (lambda r: None if fn(r) is None else conv(fn(r))), STRING
        if method in ("startswith", "endswith", "contains", "equals") and len(args) == 1:
            if args[0][1] != STRING:
                raise QueryParseError(
                    f"No applicable method '{shown}' exists in type 'String'")
            arg = args[0][0]
            test = {"startswith": str.startswith, "endswith": str.endswith,
                    "contains": str.__contains__, "equals": str.__eq__}[method]

            def call(r: Mapping[str, Any]) -> bool:
                value, needle = fn(r), arg(r)
                if not isinstance(value, str) or not isinstance(needle, str):
                    return False
                return bool(test(value.lower(), needle.lower()))
            return call, BOOL
        raise QueryParseError(f"No applicable method '{shown}' exists in type 'String'")

    def _guid(self) -> _Node:
        self.expect("(")
        tok = self.take()
        if tok.kind != "string":
            raise QueryParseError("Guid expects a string")
        try:
            value = str(uuid.UUID(tok.text[1:-1]))
        except ValueError as exc:
            raise QueryParseError(f"'{tok.text[1:-1]}' is not a valid Guid") from exc
        if not self.accept(")"):
            raise QueryParseError("')' expected")
        return (lambda r: value), GUID

    def _datetime(self) -> _Node:
        self.expect("(")
        numbers: list[int] = []
        while True:
            tok = self.take()
            if tok.kind != "number" or "." in tok.text:
                raise QueryParseError("Integer expected in DateTime(...)")
            numbers.append(int(tok.text))
            if self.accept(")"):
                break
            if not self.accept(","):
                raise QueryParseError("')' or ',' expected")
        if len(numbers) not in (3, 6):
            raise QueryParseError("No matching constructor in type 'DateTime'")
        try:
            value = MsDate(datetime_to_ms(datetime(*numbers, tzinfo=UTC)))
        except ValueError as exc:
            raise QueryParseError(f"Invalid DateTime: {exc}") from exc
        return (lambda r: value), DATE


def _path_getter(parts: tuple[str, ...]) -> Getter:
    if len(parts) == 1:
        key = parts[0]
        return lambda r: r.get(key)

    def get(r: Mapping[str, Any]) -> Any:
        value: Any = r
        for part in parts:
            if not isinstance(value, Mapping):
                return None
            value = value.get(part)
        return value
    return get


def _num(value: Any) -> Any:
    """Comparable form: dates by millisecond, numbers as Decimal."""
    if isinstance(value, MsDate):
        return value.ms
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return Decimal(str(value))
    if isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation:
            return value
    return value


def _eq(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, MsDate) or isinstance(b, MsDate):
        return _num(a) == _num(b)
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return _num(a) == _num(b)


def parse_where(text: str, fields: Mapping[str, str], entity: str,
                required: frozenset[str] = frozenset()) -> Where:
    """Parse a `where` over `fields` ({name or dotted path: type}); raises QueryParseError.

    `required` names never-null properties (the primary key): Xero shows their type without `?`.
    """
    parser = _Parser(text, fields, entity, required)
    predicate, _ = parser.parse()
    return Where(predicate=predicate, fields=parser.used)


_ORDER_RE = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(?:\s(ASC|DESC|ASCENDING|DESCENDING))?\s*$", re.IGNORECASE)


def parse_order(text: str, fields: Mapping[str, str], entity: str) -> list[OrderKey]:
    """Parse `order` (`Name ASC, UpdatedDateUTC DESC`); raises QueryParseError."""
    lookup = {name.lower(): (name, type_) for name, type_ in fields.items()}
    keys: list[OrderKey] = []
    for part in text.split(","):
        match = _ORDER_RE.match(part)
        if not match:
            raise QueryParseError("Expression expected" if not part.strip() else "Syntax error")
        name, direction = match.group(1), (match.group(2) or "ASC").upper()
        if name.lower() not in lookup:
            raise QueryParseError(
                f"No property or field '{name.split('.')[0]}' exists in type '{entity}'")
        canonical, type_ = lookup[name.lower()]
        keys.append(OrderKey(tuple(canonical.split(".")), direction.startswith("DESC"), type_))
    return keys


def sort_records(records: list[Mapping[str, Any]], keys: list[OrderKey], primary_key: str
                 ) -> list[Mapping[str, Any]]:
    """Stable sort by `keys` (nulls first ascending), ties broken by the primary key."""
    result = sorted(records, key=lambda r: str(r.get(primary_key) or ""))
    for key in reversed(keys):
        getter = _path_getter(key.path)

        def sort_key(r: Mapping[str, Any], getter: Getter = getter) -> tuple[int, Any]:
            value = getter(r)
            if value is None:
                return (0, 0)
            if isinstance(value, str):
                return (1, value.lower())
            if isinstance(value, MsDate):
                return (1, value.ms)
            if isinstance(value, bool):
                return (1, int(value))
            if isinstance(value, int | float | Decimal):
                return (1, Decimal(str(value)) if isinstance(value, float) else value)
            return (1, str(value))
        try:
            result.sort(key=sort_key, reverse=key.descending)
        except TypeError:  # mixed types after a change_type mutation: compare as text
            result.sort(key=lambda r, g=getter: (g(r) is not None, str(g(r))),
                        reverse=key.descending)
    return result
