"""What the SQL backends share: the schema, row conversions and the write-through commit.

An SQL registry is a single writer with a write-through cache. It loads the database
into the in-memory state when it opens (``reload()``), applies the rules there, and at
the end of each outermost transaction writes every touched row (upserts and deletes)
and the new journal entries in **one** database transaction. If the write fails, the
cached state is rolled back too, so cache and database never disagree.

The journal is append-only and read whole or from a txid on (``journal(since)``), never by
another key, so a transaction's entries are stored as runs, not one row each: a row of the
``journal_runs`` table per up to ``RUN`` entries, keyed by the run's last txid, its entries one
**run of named rows**: the MessagePack array ``[1, names, rows]``, ``names`` the distinct names its
entries hold (kinds, accounts, unit types, currencies, details, actors), each once, in the order
they first appear, and ``rows`` an :class:`~carbonbook.registry.base.Entry` each as the array of
its fields up to the last that is not its default (``_store._stored``: a hold's and a settlement's
9 of 13), its txid as the step from the previous row's (the first's from 0) and each name as its
index in ``names`` (``_store._named``). Older runs are read as before: a run of whole rows (a
MessagePack array of the rows, each the array of its fields to the last not at its default, as
carbonbook wrote them from 2026-12 until named rows, or all 13 before), told from a run of named
rows by its second byte (a row's array or map header, never the positive int 1).

Settlement records are written once (a trade settles or fails once) and read only when the
registry loads, so they are stored as runs too: ``settlement_runs``, keyed by the trade id of a
run's first record, each a run of named rows (``_ledger._named_run``), a
:class:`~carbonbook.registry.base.Settled` record as its journal row (``_store._entry``), a
:class:`~carbonbook.registry.base.SettlementFailed` as its map. A venue's commit then writes two
such rows instead of about 1.7 rows per command. Older runs are read as before: a Settled record
as the array of its fields (2026-12 until named rows) or as its map (before 2026-12, when a
settlement's journal row was the record's map too).

Bytes a message on the busy flow (100,000 messages, SQLite, all commits): the journal 20.6 (a
hold's row about 14 bytes, a settlement's 20), block pages 14.2, settlement records 4.8, holds and
cash 0.7; the WAL 55. With the names and txid in each row, the journal was 50.8 (a hold's row 35, a
settlement's 46) and the records 11.1 (40 each), the WAL 91; before 2026-12, as maps, a
settlement's row and record were 101 bytes each.

Blocks are stored in pages: a row of ``block_pages`` per ``2**PAGE`` block ids (``_store.PAGE``,
5: 32 ids), keyed by the page number (id >> PAGE), its live blocks one MessagePack array (a
:class:`~carbonbook.registry.base.Block` as its array of fields), in order of ids. A commit
rewrites each page it touched once, from the cache (``Ledger.page``), and deletes each it left
empty. A venue makes a long-lived block per trade (0.285 a message on the busy flow), at new
ids: a commit writes a row per 32 of them instead of a row each (about 16,000 instructions a row
in SQLite): SQLite venue 18,041 -> about 13,400 instructions per message (bench/venue.py
--instructions). A page costs about 1,400 instructions per block it holds (gathered and encoded)
plus about 20,000 for its row, so a commit that touches old blocks here and there costs more than
rows did: one block, about 70,000 instructions more (its page and the newest); 448 blocks, one in
every 64 ids of 28,672, 44 M instructions against 28 M as rows (bench/block_pages.py
--instructions; in CPU time 7 ms either way on SQLite, 9 ms against 5 on PostgreSQL). No commit
rewrites a block more than once: at most every live block, about 1,400 instructions each. The
page size by the same benchmarks: 2**4 ids cost the venue about 120 instructions more per message
(the spread commit 34 M), 2**6 save it about 70 (and cost the spread commit 67 M). The compiled
ledger writes a page's MessagePack from its block rows itself (``Blocks.page``): the spread
commit 44 M -> 31 M instructions, one block 424,000 -> 388,000.

A database written before runs and pages (a ``journal``, a ``settlements`` and a ``blocks`` table
of one row each) has them moved into runs and pages when it opens.

Concurrency is optimistic: a ``version`` row in ``meta`` counts commits. A commit locks
it (SQLite ``BEGIN IMMEDIATE``, PostgreSQL ``SELECT ... FOR UPDATE``) and refuses with
:class:`~carbonbook.errors.ConcurrentModification` if another writer moved it since this
registry loaded; ``reload()`` and retry. The journal is not cached: ``journal()`` reads
the database.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterator
from typing import Any, cast

import msgspec
import msgspec.json as _json

from carbonbook._types import OffsetLimit, UnitType
from carbonbook.errors import RegistryIntegrityError
from carbonbook.registry._ledger import Ledger
from carbonbook.registry._state import StateRegistry
from carbonbook.registry._store import _FAST, _HOLD, _LEDGER, _MISSING, NAMED, PAGE, Log, Store, _entry
from carbonbook.registry.base import (
    Account,
    AccountKind,
    AccountStatus,
    Block,
    BlockState,
    Entry,
    Scheme,
    Settled,
    SettlementFailed,
    SettlementRecord,
)

Row = tuple[Any, ...]

_TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # table: (key columns, value columns)
    "accounts": (("account",), ("kind", "status", "units", "scheme")),
    "schemes": (("name",), ("allowances", "credits", "offset_percent", "banking", "phases", "phase_banking",
                            "borrowing", "removals", "borrow_limit", "offset_limits", "excluded", "links",
                            "import_limit", "control_periods", "banking_into")),
    "caps": (("scheme", "period"), ("cap", "issued")),
    "issuances": (("origin", "first"), ("last", "unit", "scheme", "period")),
    "cash": (("account", "currency"), ("amount",)),
    "holds": (("id",), ("account", "kind", "asset", "amount")),
    "compliance": (("account", "period"), ("verified", "surrendered", "offsets", "borrowed")),
    "deadlines": (("scheme", "period"), ("day", "penalty", "currency", "passed", "multiple", "report",
                                          "reported")),
    "finals": (("account", "period"), ("status", "obligation", "surrendered", "shortfall", "penalty", "txid",
                                        "carried")),
    "missed": (("account", "period"), ("day", "txid")),
    "allocations": (("txid",), ("account", "scheme", "period", "method", "unit", "qty", "activity", "rate",
                                "per", "base", "reduction")),
    "credit_use": (("account", "period", "kind"), ("qty",)),
    "checkpoint": (("seq",), ("txid", "reason", "detail")),
    "meta": (("k",), ("v",)),
    "administrators": (("person",), ("txid",)),
    "representatives": (("account", "person"), ("txid",)),
    "controls": (("account",), ("trusted_delay", "outside_delay", "bar_outside", "transfer_limit",
                                "four_eyes")),
    "trusted": (("account", "trusted"), ("proposer", "approver", "effective")),
    "pending": (("id",), ("sender", "receiver", "unit", "qty", "proposer", "approver", "state", "due",
                          "outside", "done_txid", "done_day", "reason")),
    "days": (("day",), ("txid",)),
    "moves": (("txid",), ("how", "ranges")),
    "programmes": (("scheme",), ("methodologies",)),
    "imports": (("origin", "first"), ("last", "unit", "scheme", "period")),
    "external": (("id",), ("state", "direction", "account", "registry", "other_account", "unit", "qty",
                           "blocks", "reason")),
    "verifiers": (("programme", "person"), ("txid",)),
    "projects": (("project",), ("programme", "methodology", "account")),
    "monitoring": (("project", "period"), ("reported", "verified", "verifier", "issued")),
    "certificates": (("id",), ("account", "cancelled_into", "unit", "qty", "serials", "beneficiary", "purpose",
                               "day", "actor")),
}
_INT_COLUMNS = {"period", "cap", "issued", "first", "last", "id", "offset_percent", "banking", "amount",
                "phase_banking", "borrowing", "borrowed", "removals",
                "verified", "surrendered", "offsets", "trade_id", "txid", "qty", "v", "expiry", "ref", "seq",
                "day", "penalty", "passed", "obligation", "shortfall", "multiple", "carried", "borrow_limit",
                "import_limit", "activity", "rate", "per", "reduction",
                "trusted_delay", "outside_delay", "bar_outside", "transfer_limit", "four_eyes", "effective",
                "due", "outside", "done_txid", "done_day", "reported", "report"}
_JOURNAL = ("txid", "kind", "account", "counterparty", "unit", "qty", "currency", "amount", "ref", "detail",
            "actor", "approver")
"""The columns of a journal stored one row per entry (before runs): :class:`~carbonbook.registry.base.Entry`'s
fields but ``day``, which is read from the ``days`` table."""
_BLOCKS = ("id", "origin", "unit", "first", "last", "holder", "state", "period", "scheme", "project", "expiry",
           "project_type")
"""The columns of blocks stored one row each (before pages)."""
_SETTLEMENTS = ("trade_id", "status", "txid", "seller", "buyer", "unit", "qty", "currency", "amount", "reason",
                "detail")
"""The columns of settlement records stored one row each (before runs)."""
RUN = 65_536
"""The most journal entries or settlement records stored in one row of ``journal_runs`` or
``settlement_runs``."""
_RUNS = {"journal_runs": ("last", "entries"), "settlement_runs": ("first", "records")}
"""The tables of runs: (key column, MessagePack column)."""
_BLOBS = {**_RUNS, "block_pages": ("page", "blocks")}
"""The tables of MessagePack rows: (key column, MessagePack column)."""
_encode_run = msgspec.msgpack.Encoder().encode
_decode_run = msgspec.msgpack.Decoder(list[Entry | dict[str, Any]]).decode
_UNIT_TYPES = {u.value: u for u in UnitType}
_NAMED_RUN = b"\x93\x01"
"""How a run of named rows begins (the array ``[1, names, rows]``, see the module docstring); a run
of whole rows begins with its array's header and its first row's, never a positive int."""
_NAMED_TO = tuple(tuple(i for i in NAMED if i < n) for n in range(len(Entry.__struct_fields__) + 1))
"""The fields that hold a name (``NAMED``) of an Entry stored to its field ``n`` (``_store._stored``),
at ``n``."""
_decode_named = msgspec.msgpack.Decoder(tuple[int, list[str], list[list[Any] | SettlementFailed]]).decode
_decode_records = msgspec.msgpack.Decoder(
    list[SettlementRecord | tuple[int, int, str, str, UnitType, int, str, int]]).decode
"""A run of settlement records: a Settled record as the array of its fields (or, as carbonbook before
it wrote them, its map), a SettlementFailed as its map."""
_decode_page = msgspec.msgpack.Decoder(list[Block]).decode


def _runs(records: list[SettlementRecord], pack: Callable[[list[SettlementRecord]], bytes]) -> list[Row]:
    """The rows of ``settlement_runs`` that store ``records``: (a run's first trade id, ``pack`` of
    the run, its MessagePack array)."""
    return [(records[i].trade_id, pack(records[i:i + RUN])) for i in range(0, len(records), RUN)]


def _pages(blocks: Any, page: Callable[[Any, int, int], bytes | None],
           pages: set[int]) -> tuple[list[Row], list[Row]]:
    """The rows of ``block_pages`` that store ``pages`` of ``blocks``: (upserts: each page with a
    block now, the MessagePack array of its blocks, ``page(blocks, lo, hi)``; deletes: each without).
    O(2**PAGE ids per page)."""
    ups: list[Row] = []
    dels: list[Row] = []
    for p in sorted(pages):
        data = page(blocks, p << PAGE, (p + 1) << PAGE)
        if data is None:
            dels.append((p,))
        else:
            ups.append((p, data))
    return ups, dels


def _named_rows(data: bytes, make: Callable[..., Any] = Entry) -> list[Any]:
    """The rows of a run of named rows: ``make`` (Entry) of each row's fields, a SettlementFailed as
    it is. Its names put back cost about as much as the decoding (callgrind, a busy venue's runs, per
    row: an Entry 6,400 instructions against 3,400 from a run of whole rows; a Settled record 7,200
    against 3,700; opening a registry after 1,000,000 busy messages 0.55-0.63 -> 0.63-0.70 s CPU)."""
    _, names, rows = _decode_named(data)
    name: dict[int | None, str | None] = dict(enumerate(names))
    name[None] = None
    txid = 0
    out = []
    for row in cast(list[Any], rows):
        if type(row) is SettlementFailed:
            out.append(row)
            continue
        txid += row[0]
        row[0] = txid
        for i in _NAMED_TO[len(row)]:
            row[i] = name[row[i]]
        out.append(make(*row))
    return out


def _run_entries(data: bytes) -> list[Entry]:
    """The entries of one stored run: a run of named rows (``_NAMED_RUN``) or, as carbonbook before
    it wrote them, a run of whole rows."""
    if data[:2] == _NAMED_RUN:
        return _named_rows(data)
    return [e if type(e) is Entry else _entry(msgspec.convert(e, Settled)) for e in _decode_run(data)]


def _run_records(data: bytes) -> list[SettlementRecord]:
    """The settlement records of one stored run: a run of named rows, a Settled record as its journal
    row, or, as carbonbook before it wrote them, the array of a Settled record's fields or its map."""
    if data[:2] == _NAMED_RUN:
        return _named_rows(data, _settled)
    return [Settled(*r) if isinstance(r, tuple) else r for r in _decode_records(data)]


def _settled(txid: int, kind: str, seller: str, buyer: str, unit: str, qty: int, currency: str, amount: int,
             trade_id: int) -> Settled:
    """The Settled record of a settlement's journal row, from its fields (``_store._entry`` the other
    way)."""
    return Settled(trade_id, txid, seller, buyer, _UNIT_TYPES[unit], qty, currency, amount)


def ddl(rowid: bool = False, blob: str = "BYTEA") -> list[str]:
    """CREATE TABLE statements valid in both SQLite and PostgreSQL; ``blob`` is the binary column
    type (SQLite ``BLOB``). ``rowid`` (SQLite): a table keyed by one integer column keys its rows
    by it (``INTEGER PRIMARY KEY``, the rowid) instead of a separate index, which halves the
    B-tree work of each row written."""
    out = [f"CREATE TABLE IF NOT EXISTS {table} ({key} {'INTEGER' if rowid else 'BIGINT'} PRIMARY KEY, "
           f"{data} {blob} NOT NULL)" for table, (key, data) in _BLOBS.items()]
    for table, (keys, values) in _TABLES.items():
        if rowid and len(keys) == 1 and keys[0] in _INT_COLUMNS:
            cols = ", ".join([f"{keys[0]} INTEGER PRIMARY KEY"]
                             + [f"{c} {'BIGINT' if c in _INT_COLUMNS else 'TEXT'}" for c in values])
            out.append(f"CREATE TABLE IF NOT EXISTS {table} ({cols})")
        else:
            cols = ", ".join(f"{c} {'BIGINT' if c in _INT_COLUMNS else 'TEXT'}" for c in keys + values)
            out.append(f"CREATE TABLE IF NOT EXISTS {table} ({cols}, PRIMARY KEY ({', '.join(keys)}))")
    return out


ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("schemes", "phases", "''"), ("schemes", "phase_banking", "1"), ("schemes", "borrowing", "0"),
    ("schemes", "removals", "0"), ("schemes", "borrow_limit", "NULL"), ("schemes", "offset_limits", "'[]'"),
    ("schemes", "excluded", "'[]'"), ("schemes", "links", "'[]'"), ("schemes", "import_limit", "NULL"),
    ("compliance", "borrowed", "0"),
    ("deadlines", "report", "NULL"), ("deadlines", "reported", "0"), ("schemes", "control_periods", "'[]'"),
    ("schemes", "banking_into", "NULL"),
)
"""Columns added to a table after it was first shipped, with the value an older database's
rows get (``upgrade``)."""


def upgrade(has_column: Callable[[str, str], bool]) -> list[str]:
    """The statements that add every column of ``ADDED_COLUMNS`` a database lacks, so a
    registry written by an older carbonbook opens (its schemes keep their rules: one phase,
    no borrowing)."""
    return [f"ALTER TABLE {table} ADD COLUMN {column} {'BIGINT' if column in _INT_COLUMNS else 'TEXT'} "
            f"DEFAULT {default}" for table, column, default in ADDED_COLUMNS if not has_column(table, column)]


def _units(units: frozenset[UnitType] | None) -> str | None:
    return None if units is None else ",".join(sorted(str(u) for u in units))


def _unit_set(text: str | None) -> frozenset[UnitType] | None:
    return None if text is None else frozenset(UnitType(u) for u in text.split(",") if u)


def _to_row(table: str, k: Any, v: Any) -> Row:
    if table == "accounts":
        return (k, str(v.kind), str(v.status), _units(v.units), v.scheme)
    if table == "schemes":
        return (k, _units(v.allowances), _units(v.credits), v.offset_percent, int(v.banking),
                ",".join(str(p) for p in sorted(v.phases)), int(v.phase_banking is True), int(v.borrowing),
                int(v.removals), v.borrow_limit, _json.encode(v.offset_limits).decode(),
                _json.encode(sorted(v.excluded)).decode(), _json.encode(sorted(v.links)).decode(),
                v.import_limit, _json.encode(v.control_periods).decode(),
                None if type(v.phase_banking) is bool else ",".join(str(p) for p in sorted(v.phase_banking)))
    if table == "holds":
        return (k, *v)
    key = k if isinstance(k, tuple) else (k,)
    value = v if isinstance(v, tuple) else (v,)
    return (*key, *value)


def _cash_row(k: tuple[str, str], v: int) -> Row:
    return (k[0], k[1], v)


_ROWS: dict[str, Callable[[Any, Any], Row]] = {"cash": _cash_row}
"""Row builders for the tables a settlement writes most (the others go through ``_to_row``)."""


def _record(r: Row) -> SettlementRecord:
    """A settlement record from its row (``_SETTLEMENTS``)."""
    if r[1] == "settled":
        return Settled(r[0], r[2], r[3], r[4], UnitType(r[5]), r[6], r[7], r[8])
    return SettlementFailed(r[0], r[9], r[10], r[3], r[4], r[5], r[6], r[7], r[8])


def _old_block(r: Row) -> Block:
    """A block from its row (``_BLOCKS``)."""
    return Block(r[0], r[1], UnitType(r[2]), r[3], r[4], r[5], BlockState(r[6]), r[7], r[8], r[9], r[10], r[11])


def _from_row(table: str, r: Row) -> tuple[Any, Any]:
    if table == "accounts":
        return r[0], Account(r[0], AccountKind(r[1]), AccountStatus(r[2]), _unit_set(r[3]), r[4])
    if table == "schemes":
        return r[0], Scheme(r[0], _unit_set(r[1]) or frozenset(), _unit_set(r[2]) or frozenset(), r[3],
                            bool(r[4]), frozenset(int(p) for p in r[5].split(",") if p),
                            bool(r[6]) if r[15] is None else frozenset(int(p) for p in r[15].split(",") if p),
                            bool(r[7]),
                            bool(r[8]), r[9], _json.decode(r[10], type=tuple[OffsetLimit, ...]),
                            frozenset(_json.decode(r[11], type=list[tuple[str, int]])),
                            frozenset(_json.decode(r[12], type=list[str])), r[13],
                            _json.decode(r[14], type=tuple[tuple[int, int], ...]))
    if table == "holds":
        return r[0], tuple(r[1:])
    nkeys = len(_TABLES[table][0])
    key = r[0] if nkeys == 1 else tuple(r[:nkeys])
    rest = r[nkeys:]
    return key, (rest[0] if len(rest) == 1 else tuple(rest))


class SqlRegistry(StateRegistry):
    """A registry persisted in an SQL database (see the module docstring)."""

    _ph = "?"

    def __init__(self) -> None:
        super().__init__()
        self._version = 0
        p = self._ph
        self._upsert: dict[str, str] = {}
        self._delete: dict[str, str] = {}
        for table, (keys, values) in _TABLES.items():
            cols = keys + values
            self._upsert[table] = (
                f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(p for _ in cols)}) "
                f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in values))
            self._delete[table] = f"DELETE FROM {table} WHERE " + " AND ".join(f"{k} = {p}" for k in keys)
        self._insert_run = {table: f"INSERT INTO {table} ({key}, {data}) VALUES ({p}, {p})"
                            for table, (key, data) in _RUNS.items()}
        self._put_page = (f"INSERT INTO block_pages (page, blocks) VALUES ({p}, {p}) "
                          f"ON CONFLICT (page) DO UPDATE SET blocks = excluded.blocks")
        self._drop_page = f"DELETE FROM block_pages WHERE page = {p}"

    # -- driver hooks ----------------------------------------------------------------

    @abstractmethod
    def _write(self, ops: list[tuple[str, list[Row]]], version: int) -> None:
        """In one database transaction: lock and compare the version row with ``version``
        (ConcurrentModification if it differs), run every (sql, rows) with executemany, set the
        version to ``version + 1``, commit."""

    @abstractmethod
    def _read(self, sql: str) -> list[Row]:
        """Run a query and return its rows."""

    def _regrouped(self, has_column: Callable[[str, str], bool]) -> Iterator[tuple[str, list[Row], str]]:
        """For a database written before runs or pages: (statement, rows of runs or pages, old table
        to drop) for its ``journal``, ``settlements`` and ``blocks`` tables of one row each, those
        it has. Journal rows written before entries had an actor and approver, and block rows
        before blocks had a project type, get None for them."""
        if has_column("journal", "kind"):
            cols = [c if c not in ("actor", "approver") or has_column("journal", c) else "NULL"
                    for c in _JOURNAL]
            rows = self._read(f"SELECT {', '.join(cols)} FROM journal ORDER BY txid")
            yield (self._insert_run["journal_runs"],
                   Ledger.wire([msgspec.convert(list(r), Entry) for r in rows], 0, RUN, _encode_run), "journal")
        if has_column("settlements", "status"):
            rows = self._read(f"SELECT {', '.join(_SETTLEMENTS)} FROM settlements ORDER BY trade_id")
            records = [_record(r) for r in rows]
            yield self._insert_run["settlement_runs"], _runs(records, Ledger.pack), "settlements"
        if has_column("blocks", "origin"):
            cols = [c if c != "project_type" or has_column("blocks", c) else "NULL" for c in _BLOCKS]
            rows = self._read(f"SELECT {', '.join(cols)} FROM blocks ORDER BY id")
            blocks = {r[0]: _old_block(r) for r in rows}
            yield self._put_page, _pages(blocks, Ledger.page, {bid >> PAGE for bid in blocks})[0], "blocks"

    # -- loading -------------------------------------------------------------------

    def _load_into(self, target: Store) -> int:
        """Load the database into ``target``; return its version. The tables are read one query at
        a time, so the load is repeated until the version read first is the one read with the
        rows (versions only grow): no other writer committed in between, and the rows are one
        committed state."""
        while True:
            first = self._stored_version()
            version = self._load_once(target)
            if version == first:
                return version

    def _stored_version(self) -> int:
        rows = self._read("SELECT v FROM meta WHERE k = 'version'")
        return int(rows[0][0]) if rows else 0

    def _load_once(self, target: Store) -> int:
        target._reset()
        tables = target._persisted()
        version = 0
        for table in _TABLES:
            keys, values = _TABLES[table]
            rows = self._read(f"SELECT {', '.join(keys + values)} FROM {table} ORDER BY {', '.join(keys)}")
            d = tables[table]
            for r in rows:
                k, v = _from_row(table, tuple(r))
                if table == "meta" and k == "version":
                    version = v
                    continue
                d[k] = v
        blocks = target._blocks
        for (data,) in self._read("SELECT blocks FROM block_pages ORDER BY page"):
            for b in _decode_page(data):
                blocks[b.id] = b
        settlements = target._settlements
        for (data,) in self._read("SELECT records FROM settlement_runs ORDER BY first"):
            for record in _run_records(data):
                settlements[record.trade_id] = record
        target._meta.setdefault("txid", 0)
        target._meta.setdefault("block", 0)
        target._derive()
        return version

    def stale(self) -> bool:
        """Whether another writer committed since this registry loaded the database. One small query."""
        return self._stored_version() != self._version

    def reload(self) -> None:
        """Drop the cache and load the database again (after ConcurrentModification)."""
        if self._log is not None:
            raise RuntimeError("reload() inside a transaction")
        self._version = self._load_into(self)

    # -- commit --------------------------------------------------------------------

    def _commit(self, log: Log) -> None:
        """Write every key the transaction touched, once: an upsert of its value now, or a delete
        when it is gone, unless it was absent before the transaction too (a hold taken and used
        up in one group of commands writes nothing but its journal rows); blocks by page, each page
        with a touched block once, whole (or deleted when none is left). The new settlement
        records (a trade settles once) and journal entries are written as runs."""
        tables = self._persisted()
        names = {id(d): name for name, d in tables.items()}
        # touched keys per table -> the value before the transaction (_MISSING: absent;
        # None: present or unknown); blocks by page
        pages: set[int] = set()
        cash: dict[Any, Any] = {}
        records: list[SettlementRecord] = []
        # the compiled ledger's hold changes, its marks and runs (their keys in pages and records) dropped
        holds, log = self._ledger.touched(log, pages, records)
        settled_keys = self._ledger.settled_keys
        meta: dict[Any, Any] = {"block": None, "txid": None}
        touched: dict[str, dict[Any, Any]] = {"cash": cash, "meta": meta, "holds": holds}
        marks: list[Any] = []  # the compiled ledger's hold changes, in order (hold, before, ...)
        at = 0  # the next one's
        for d, k, v in log:
            if k is _HOLD:  # a hold transaction (see _ledger.Ledger._hold_tx)
                holds.setdefault(v[0], v[1])
            elif k is _LEDGER:  # one of the compiled ledger's, left in order (see _cvenue.Ledger.touched)
                if not at:
                    marks = d.marks()
                holds.setdefault(marks[at], marks[at + 1])
                at += 2
            elif k is _FAST:  # a run of settlements
                settled_keys(v, pages, holds, records)
            else:
                name = names.get(id(d))
                if name is not None:
                    touched.setdefault(name, {}).setdefault(k, v)
        self._ledger.cash_keys(records, cash)
        records += [self._settlements[k] for k in touched.pop("settlements", ())]
        ops: list[tuple[str, list[Row]]] = []
        pages.update(bid >> PAGE for bid in touched.pop("blocks", ()))
        full, empty = _pages(self._blocks, self._ledger.page, pages)
        if empty:
            ops.append((self._drop_page, empty))
        if full:
            ops.append((self._put_page, full))
        for name, keys in touched.items():
            get = tables[name].get
            conv = _ROWS.get(name)
            ups: list[Row] = []
            dels: list[Row] = []
            for k, before in keys.items():
                v = get(k, _MISSING)
                if v is _MISSING:
                    if before is not _MISSING:
                        dels.append(k if type(k) is tuple else (k,))
                elif conv is not None:
                    ups.append(conv(k, v))
                else:
                    ups.append(_to_row(name, k, v))
            if dels:
                ops.append((self._delete[name], dels))
            if ups:
                ops.append((self._upsert[name], ups))
        if records:
            ops.append((self._insert_run["settlement_runs"], _runs(records, self._ledger.pack)))
        runs = self._ledger.wire(self._journal, self._journal_mark, RUN, _encode_run)
        if runs:
            ops.append((self._insert_run["journal_runs"], runs))
        self._write(ops, self._version)
        self._version += 1
        del self._journal[:]

    # -- queries and checks ------------------------------------------------------------

    def journal(self, since: int = 0) -> Iterator[Entry]:
        if type(since) is not int:
            raise TypeError("since must be an int")
        rows = self._read(f"SELECT entries FROM journal_runs WHERE last > {since} ORDER BY last")
        stored = [e for r in rows for e in _run_entries(r[0]) if e.txid > since]
        cached = [_entry(e) for e in self._journal if e.txid > since]  # an open transaction's own rows
        return self._dated(stored + cached)

    def check(self) -> None:
        super().check()
        stored = StateRegistry()
        self._load_into(stored)
        for name, d in stored._persisted().items():
            if d != self._persisted()[name]:
                raise RegistryIntegrityError(f"table {name} differs from the registry's state")
        stored._journal = list(self.journal())
        self._check_state(stored)
