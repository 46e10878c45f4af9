# cython: language_level=3, boundscheck=False, wraparound=False
"""A venue's hot path compiled: the registry's ledger and the venue's gate.

:class:`Ledger` (holds and DvP settlement) is the twin of
:class:`carbonbook.registry._ledger.Ledger`, with the same effect: the same results, registry
state, journal rows, SQL rows written and state after a rollback at any point (the same test
suite runs against both), though not the same undo records. It carries out the common case
itself, in C: a hold taken or given back whose every check passes, and each settlement the
ledger's checks let through (the refusals are named by the registry's ``_refuse_settlement``, as
in the reference). Anything else (a refusal of a hold, a value of an unusual type, a test hook
between a settlement's legs, a block that is not a C row) is handed to the reference ledger,
which raises or does the same. Its registry's journal is a :class:`Journal`, which keeps the
hold rows as C records; its holds are a :class:`HoldTable` of C records, and each account's
reserved totals, holdings of units and cash balances C integers (a ``Purse`` per asset), its
counters too (``Counters``), its unit blocks C rows (``Blocks``), its settlement records C
records by trade id (``Settlements``), all read by the rule families as the reference's dicts; and the undo records of its hold changes are C records of its own, one
shared mark each in the registry's undo log (``Ledger.undo``).

:class:`Gate` is the common case of a venue's hold gate and stage
(:class:`carbonbook.venue.holds.HoldGate`, :meth:`carbonbook.venue.Venue._stage`) over a compiled
ledger, with the same events and registry state: every other case is handed to them; the hold
gate keeps its resting buys in the gate's :class:`Limits`. :func:`fold_packed` is the compiled
fold of the venue checkpoint's digest (version 2, :mod:`carbonbook.venue.checkpoint`);
:func:`engine_only` tells a venue's batch with no registry command.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.mem cimport PyMem_Calloc, PyMem_Free, PyMem_Malloc, PyMem_Realloc, PyObject_Free
from cpython.object cimport PyObject, PyTypeObject, Py_TPFLAGS_HAVE_GC, Py_TYPE
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_IsValid, PyCapsule_New
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_XDECREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_New, PyTuple_SET_ITEM
from libc.string cimport memcpy, memset
from carbonbook._hooks cimport AdmitC, OpenOrderC, StageC
from carbonbook._slots cimport field, slot_offset
from collections import deque
from functools import partial
from itertools import count

from msgspec import Raw
from msgspec.msgpack import Encoder
from msgspec.structs import replace

from carbonbook._types import UnitType
from carbonbook._types import INT64_MAX as _INT64_MAX, OrderType, SelfTradePrevention, Side, TimeInForce
from carbonbook.commands import CancelOrder, ListInstrument, NewOrder
from carbonbook.errors import DuplicateTrade, RegistryError
from carbonbook.events import (
    Accepted,
    AuctionCleared,
    Cancelled,
    InstrumentListed,
    Modified,
    Rejected,
    Trade,
    TradeSettled,
)
from carbonbook.registry import _ledger
from carbonbook.registry._store import (_FAST, _LEDGER, _MISSING, _OPEN, _TERMINAL_KINDS, PAGE as _PAGE, Store, _named,
                                        _stored)
from carbonbook.registry.base import Account, Block, BlockState, Entry, Settled, SettlementFailed

cdef object MISSING = _MISSING
cdef object LEDGER = _LEDGER
cdef object FAST = _FAST
cdef object OPEN = _OPEN
cdef frozenset TERMINAL = frozenset(_TERMINAL_KINDS)
cdef object UNIT_TYPE = UnitType
cdef dict UNIT_NAMES = {u: str(u) for u in UnitType}  # str(unit) without making it again
cdef object ENTRY = Entry
cdef object SETTLED = Settled
cdef object HOOK = Store._between_legs
cdef object REPLACE = replace
cdef tuple KW_ROW = ("id", "start", "end", "holder")
cdef object BUY = Side.BUY
cdef object SELL = Side.SELL
cdef object NEW_ORDER = NewOrder
cdef object LIST_INSTRUMENT = ListInstrument
cdef object TRADE = Trade
cdef object CANCELLED = Cancelled
cdef object AUCTION_CLEARED = AuctionCleared
cdef object LISTED = InstrumentListed
cdef object TRADE_SETTLED = TradeSettled
cdef object BIG = _INT64_MAX
cdef tuple QUIET = (Accepted, Rejected, Modified)
# the fields the gate reads, at their slot offsets (carbonbook._slots)
cdef Py_ssize_t O_ID = slot_offset(NewOrder, "id")
cdef Py_ssize_t O_ACCOUNT = slot_offset(NewOrder, "account")
cdef Py_ssize_t O_SIDE = slot_offset(NewOrder, "side")
cdef Py_ssize_t O_QTY = slot_offset(NewOrder, "qty")
cdef Py_ssize_t O_PRICE = slot_offset(NewOrder, "price")
cdef Py_ssize_t O_CAP = slot_offset(NewOrder, "cap")
cdef object CANCEL_ORDER = CancelOrder
cdef Py_ssize_t S_BUYER = slot_offset(Settled, "buyer")
cdef Py_ssize_t S_SELLER = slot_offset(Settled, "seller")
cdef Py_ssize_t S_CURRENCY = slot_offset(Settled, "currency")
cdef Py_ssize_t T_SEQ = slot_offset(Trade, "seq")
cdef Py_ssize_t T_SYMBOL = slot_offset(Trade, "symbol")
cdef Py_ssize_t T_PRICE = slot_offset(Trade, "price")
cdef Py_ssize_t T_QTY = slot_offset(Trade, "qty")
cdef Py_ssize_t T_BUY_ID = slot_offset(Trade, "buy_id")
cdef Py_ssize_t T_SELL_ID = slot_offset(Trade, "sell_id")
cdef Py_ssize_t T_BUYER = slot_offset(Trade, "buy_account")
cdef Py_ssize_t T_SELLER = slot_offset(Trade, "sell_account")
cdef Py_ssize_t C_ID = slot_offset(Cancelled, "id")
cdef Py_ssize_t C_QTY = slot_offset(Cancelled, "qty")
cdef Py_ssize_t S_TRADE_ID = slot_offset(Settled, "trade_id")
cdef Py_ssize_t S_TXID = slot_offset(Settled, "txid")
cdef object ACCOUNT = Account
cdef object BLOCK = Block
cdef Py_ssize_t B_START = slot_offset(Block, "start")
cdef Py_ssize_t B_END = slot_offset(Block, "end")
cdef Py_ssize_t B_ID = slot_offset(Block, "id")
cdef Py_ssize_t B_HOLDER = slot_offset(Block, "holder")
cdef tuple B_NAMES = Block.__struct_fields__  # a Block's every field, in order, and their offsets:
cdef Py_ssize_t B_AT[16]


cdef int _block_offsets() except -1:
    cdef Py_ssize_t j
    if len(B_NAMES) > 16:
        raise ImportError("a Block has more than 16 fields: make B_AT larger")
    for j in range(len(B_NAMES)):
        B_AT[j] = slot_offset(BLOCK, B_NAMES[j])
    return 0


_block_offsets()
cdef Py_ssize_t J_ID = B_NAMES.index("id"), J_START = B_NAMES.index("start"), J_END = B_NAMES.index("end")
cdef Py_ssize_t J_HOLDER = B_NAMES.index("holder")
cdef int PAGE = _PAGE
cdef Py_ssize_t A_STATUS = slot_offset(Account, "status")
cdef Py_ssize_t A_KIND = slot_offset(Account, "kind")
cdef Py_ssize_t A_UNITS = slot_offset(Account, "units")
cdef long long INT64_MAX = 0x7FFFFFFFFFFFFFFF
cdef long long SMALL = 0x3FFFFFFF
cdef long long SPENT_MAX = 0x4000000000000000  # 2**62: a sum below it plus a product of two SMALLs fits
cdef long long EMPTY_KEY = -1  # a free slot of Limits


cdef extern from "Python.h":
    ctypedef struct PyASCIIObject:
        Py_hash_t hash  # -1 until computed
    PyTypeObject PyLong_Type, PyUnicode_Type
    bint PyUnicode_IS_ASCII(object s)
    const char* PyUnicode_DATA(object s)
    Py_ssize_t PyUnicode_GET_LENGTH(object s)
    object PyObject_Vectorcall(object callable, PyObject** args, size_t nargsf, PyObject* kwnames)


cdef extern from *:
    """
    /* PyLong_AsLongLongAndOverflow(v, overflow), an exact int of one digit (ids, prices and
       quantities below 2**30) read in place instead of by the call (about 150 instructions fewer
       per venue message: the gate's, the ledger's and the digest's reads; callgrind,
       bench/venue.py --instructions). */
    static CYTHON_INLINE long long cb_long_long(PyObject* v, int* overflow) {
    #if PY_VERSION_HEX >= 0x030C0000
        if (PyLong_CheckExact(v) && PyUnstable_Long_IsCompact((PyLongObject*)v)) {
            *overflow = 0;
            return PyUnstable_Long_CompactValue((PyLongObject*)v);
        }
    #else
        if (PyLong_CheckExact(v) && (size_t)(Py_SIZE(v) + 1) <= 2) {
            *overflow = 0;
            return Py_SIZE(v) * (long long)((PyLongObject*)v)->ob_digit[0];
        }
    #endif
        return PyLong_AsLongLongAndOverflow(v, overflow);
    }
    """
    long long _long_long "cb_long_long"(object v, int* overflow) except? -1


cdef extern from *:
    """
    /* The version of dict ``d``, which changes with every change of it (CPython before 3.12;
       0, unknown, after it: PEP 699). */
    #if PY_VERSION_HEX < 0x030C0000
    #define cb_dict_version(d) (((PyDictObject*)(d))->ma_version_tag)
    #else
    #define cb_dict_version(d) ((unsigned long long)0)
    #endif

    /* A new instance of the msgspec Struct class ``cls`` (gc=False, its fields its slots:
       ``_plain_struct`` checked it at import) with its fields ``args[0..n-1]``, at their offsets
       ``at[0..n-1]``. */
    static PyObject* cv_struct(PyObject* cls, const Py_ssize_t* at, PyObject** args, Py_ssize_t n) {
        PyTypeObject* type = (PyTypeObject*)cls;
        PyObject* obj = (PyObject*)PyObject_Malloc(type->tp_basicsize);
        Py_ssize_t i;
        if (obj == NULL)
            return PyErr_NoMemory();
        PyObject_Init(obj, type);
        for (i = 0; i < n; i++) {
            Py_INCREF(args[i]);
            *(PyObject**)((char*)obj + at[i]) = args[i];
        }
        return obj;
    }
    """
    unsigned long long _dict_version "cb_dict_version"(dict d) noexcept
    object _struct "cv_struct"(object cls, const Py_ssize_t* at, PyObject** args, Py_ssize_t n)


cdef enum:
    KNOWN = 1024  # the ledger's slots of accounts seen (``Ledger._known``)
    NOT_HELD = -2  # ``Ledger._held``: not the common case, nothing done


cdef int _plain_struct(cls, Py_ssize_t* at, Py_ssize_t n) except -1:
    """The offsets of the ``n`` fields of the msgspec Struct class ``cls`` into ``at``, checked so that
    ``_struct`` may make its instances as ``tp_alloc`` would (freed by ``PyObject_Free``, no cyclic
    GC, so no header before the object), its every slot a field, no ``__post_init__``.
    A Settled made by its constructor's call costs about 300 instructions (``Struct_vectorcall``,
    whose ``tp_alloc`` is about 110), here about 70 (callgrind, bench/venue.py --instructions)."""
    cdef Py_ssize_t j
    cdef PyTypeObject* t = <PyTypeObject*>cls
    fields = cls.__struct_fields__
    if (len(fields) != n or t.tp_flags & Py_TPFLAGS_HAVE_GC or t.tp_itemsize or t.tp_free is not PyObject_Free
            or getattr(cls, "__post_init__", None) is not None
            or t.tp_basicsize != <Py_ssize_t>(sizeof(PyObject) + len(fields) * sizeof(PyObject*))):
        raise ImportError(f"{cls.__name__} is not a plain msgspec Struct of {n} fields (gc=False, its fields "
                          "its slots)")
    for j in range(len(fields)):
        at[j] = slot_offset(cls, fields[j])
    return 0


cdef Py_ssize_t SETTLED_AT[8]
cdef Py_ssize_t TRADE_SETTLED_AT[3]
_plain_struct(Settled, SETTLED_AT, 8)
_plain_struct(TradeSettled, TRADE_SETTLED_AT, 3)


cdef inline object _replaced(object b, tuple names, object v0, object v1, object v2, object v3):
    """``replace(b, **dict(zip(names, (v0, v1, v2, v3))))`` in one vectorcall (msgspec takes the
    names as a tuple; the keyword call builds a dict)."""
    cdef PyObject* args[5]
    args[0] = <PyObject*>b
    args[1] = <PyObject*>v0
    args[2] = <PyObject*>v1
    args[3] = <PyObject*>v2
    args[4] = <PyObject*>v3
    return PyObject_Vectorcall(REPLACE, args, 1, <PyObject*>names)


cdef extern from *:
    """
    /* The C function of the method descriptor ``descr`` (a builtin type's method) when it takes
       one argument (METH_O, called as ``f(self, arg)``), else NULL. */
    typedef PyObject* (*MethodO)(PyObject*, PyObject*);
    static MethodO cv_method_o(PyObject* descr) {
        PyMethodDef* def;
        if (Py_TYPE(descr) != &PyMethodDescr_Type)
            return NULL;
        def = ((PyMethodDescrObject*)descr)->d_method;
        return def->ml_flags == METH_O ? (MethodO)def->ml_meth : NULL;
    }
    """
    ctypedef object (*MethodO)(object, object)
    MethodO _method_o "cv_method_o"(object descr)


cdef extern from *:
    """
    /* A list of no items with room for ``n`` (PyList_New's, its items NULL, past its size). */
    static PyObject* cv_roomy(Py_ssize_t n) {
        PyObject* items = PyList_New(n);
        if (items != NULL)
            Py_SET_SIZE(items, 0);
        return items;
    }

    /* ``items.append(item)``, in place while the list has room (Cython's own append calls
       PyList_Append while the list is at most half full). */
    static int cv_append(PyObject* items, PyObject* item) {
        Py_ssize_t n = PyList_GET_SIZE(items);
        if (((PyListObject*)items)->allocated > n) {
            Py_INCREF(item);
            PyList_SET_ITEM(items, n, item);
            Py_SET_SIZE(items, n + 1);
            return 0;
        }
        return PyList_Append(items, item);
    }
    """
    list _roomy "cv_roomy"(Py_ssize_t n)
    int _append "cv_append"(list items, object item) except -1


cdef object DEQUE = deque
cdef object DEQUE_APPEND = deque.append
cdef MethodO DEQUE_APPEND_C = _method_o(DEQUE_APPEND)  # deque_append, called in C (NULL: by the descriptor)
cdef object COUNT = count


cdef inline int _push(object queue, object bid) except -1:
    """``queue.append(bid)`` (a block queue, a deque): deque's C function called directly (about
    80 instructions fewer per block a settlement moves than the call through the method's
    descriptor; callgrind, bench/venue.py --instructions), else through the descriptor, without
    looking the method up (about 150 fewer than ``queue.append(bid)``)."""
    cdef PyObject* args[2]
    if DEQUE_APPEND_C is not NULL and type(queue) is DEQUE:
        DEQUE_APPEND_C(queue, bid)
        return 0
    args[0] = <PyObject*>queue
    args[1] = <PyObject*>bid
    PyObject_Vectorcall(DEQUE_APPEND, args, 2, NULL)
    return 0


cdef inline long long _small_value(object value) noexcept:
    """``value`` if it is an int in 0..2**30 - 1, else -1."""
    cdef int overflow = 0
    cdef long long v
    if Py_TYPE(value) is not &PyLong_Type:
        return -1
    v = _long_long(value, &overflow)
    return v if not overflow and 0 <= v <= SMALL else -1


cdef inline long long _small_at(object e, Py_ssize_t offset) noexcept:
    """``_small_value`` of the field at ``offset`` of the engine's event ``e`` (each set), read in
    place (about 10 instructions fewer than ``field``)."""
    return _small_value(<object>(<PyObject**>((<char*><PyObject*>e) + offset))[0])


cdef inline bint _may_trade(acc, unit) except -1:
    """Is ``acc`` (an Account or None) open and not terminal, and may it hold ``unit`` (None:
    not asked)? Its fields read at their slots (about 800 instructions fewer per settlement
    call than attribute reads and a tuple's ``in``)."""
    if acc is None:
        return False
    if type(acc) is not ACCOUNT:
        return (acc.status is OPEN and acc.kind not in TERMINAL
                and (unit is None or acc.units is None or unit in acc.units))
    if field(acc, A_STATUS, "status") is not OPEN or field(acc, A_KIND, "kind") in TERMINAL:
        return False
    if unit is None:
        return True
    units = field(acc, A_UNITS, "units")
    return units is None or unit in units


@cython.final
@cython.no_gc
cdef class Purse:
    """One account's numbers of one asset, a unit type (``units``) or a currency: what it holds
    (its active units of the type, or its cash balance: ``have``, absent until set) and how much
    of that its holds reserve. The holds point at it; ``key`` is the registry's ``(account,
    asset)`` key (its block queue's, see ``Ledger._purse``), ``name`` the asset as a hold row names
    it."""

    cdef readonly object account, asset, name
    cdef readonly tuple key
    cdef object queue  # units: the registry's block queue at ``key`` (see ``Ledger._purse``)
    cdef readonly long long reserved, have
    cdef bint units, present, keyed  # keyed: the block queues were given ``key`` since the last bind
    cdef PyObject* trader  # its account's Trader whose purse it is (borrowed, see ``Ledger._trader``), or NULL


cdef struct Row:  # a Journal's row (32 bytes)
    PyObject* item  # a hold row's Purse (its account and asset); any other row itself (referenced)
    long long txid, hold  # a hold row's
    long long delta  # a hold row's: what it adds to the purse's reserved total (> 0: a reserve)


cdef str RESERVE = "reserve", RELEASE = "release", SETTLE = "settle"  # journal rows' kinds
cdef bytes NAMED_RUN = b"\x93\x01"  # a run of named rows: [1, names, rows] (``_sql``)


cdef enum:
    CHUNK_BITS = 10
    CHUNK = 1 << CHUNK_BITS  # the rows of a chunk of a Journal or of Blocks (``_add_chunk``)
cdef object RAW = Raw


cdef extern from *:
    """
    #include <string.h>
    /* The byte ``code`` at ``p``, then the low ``n`` (1, 2, 4 or 8) bytes of ``u``, big-endian, as
       one store each (the compiler folds the switch where ``n`` is a constant); the end. */
    static inline char* cv_pack_be(char* p, int code, int n, unsigned long long u) {
        p[0] = (char)code;
        switch (n) {
        case 1: p[1] = (char)u; break;
        case 2: { unsigned short x = __builtin_bswap16((unsigned short)u); memcpy(p + 1, &x, 2); break; }
        case 4: { unsigned int x = __builtin_bswap32((unsigned int)u); memcpy(p + 1, &x, 4); break; }
        default: { unsigned long long x = __builtin_bswap64(u); memcpy(p + 1, &x, 8); }
        }
        return p + n + 1;
    }

    /* MessagePack ``v`` at ``p`` in its shortest form (as msgspec writes it); the end. */
    static inline char* cv_pack_int(char* p, long long v) {
        if (v >= -32 && v < 128) {
            p[0] = (char)v;
            return p + 1;
        }
        if (v >= 0)
            return v < 0x100 ? cv_pack_be(p, 0xcc, 1, v) : v < 0x10000 ? cv_pack_be(p, 0xcd, 2, v)
                : v < 0x100000000LL ? cv_pack_be(p, 0xce, 4, v) : cv_pack_be(p, 0xcf, 8, v);
        return v >= -0x80 ? cv_pack_be(p, 0xd0, 1, v) : v >= -0x8000 ? cv_pack_be(p, 0xd1, 2, v)
            : v >= -0x80000000LL ? cv_pack_be(p, 0xd2, 4, v) : cv_pack_be(p, 0xd3, 8, v);
    }
    """
    char* _pack_be "cv_pack_be"(char* p, int code, int n, unsigned long long u) noexcept
    char* _pack_int "cv_pack_int"(char* p, long long v) noexcept


cdef inline char* _pack_str(char* p, const char* text, Py_ssize_t size) noexcept:
    """MessagePack the UTF-8 ``text`` of ``size`` bytes at ``p`` (room for it and 5 more); the end."""
    if size < 32:
        p[0] = <char>(0xa0 | size)
        p += 1
    else:
        p = (_pack_be(p, 0xd9, 1, size) if size < 0x100 else _pack_be(p, 0xda, 2, size) if size < 0x10000
             else _pack_be(p, 0xdb, 4, size))
    memcpy(p, text, size)
    return p + size


cdef char* _pack_row(char* p, Row* r, long long prev, Py_ssize_t kind, Py_ssize_t account, Py_ssize_t asset):
    """Hold row ``r`` at ``p`` as a run of named rows stores it (``_store._named``), the MessagePack
    array of its Entry's fields to ``ref`` (``_store._stored``: the rest are defaults), its txid less
    ``prev`` and its names as their indices ``kind``, ``account`` and ``asset``, as msgspec encodes
    them (room for 64 bytes); the end."""
    p[0] = <char>0x99  # txid, kind, account, counterparty, unit, qty, currency, amount, ref
    p = _pack_int(_pack_int(_pack_int(p + 1, r.txid - prev), kind), account)
    p[0] = <char>0xc0
    if (<Purse>r.item).units:
        p = _pack_int(_pack_int(p + 1, asset), abs(r.delta))
        p[0] = <char>0xc0
        p[1] = 0
        p += 2
    else:
        p[1] = <char>0xc0
        p[2] = 0
        p = _pack_int(_pack_int(p + 3, asset), abs(r.delta))
    return _pack_int(p, r.hold)


cdef enum:
    NAMES_BITS = 8
    NAMES_SEEN = 1 << NAMES_BITS  # the name objects a run remembers by address (``Names``), at most half full


cdef struct Names:  # a run's names (``_store._named``): ``names``, the dict of each name's index
    # (by first appearance), and the index of each of up to NAMES_SEEN / 2 name objects by address,
    # an open-addressing table (``seen``; ``count`` full): a name object seen again costs about 10
    # instructions, against about 200 to look it up in the dict (callgrind of a commit's runs)
    PyObject* names
    PyObject* seen[NAMES_SEEN]
    Py_ssize_t at[NAMES_SEEN]
    Py_ssize_t count


cdef inline Py_ssize_t _index(Names* names, PyObject* name) except -1:
    """The str ``name``'s index in a run's ``names``, a new name added."""
    cdef size_t slot = (<size_t>name * <size_t>0x9E3779B97F4A7C15) >> (8 * sizeof(size_t) - NAMES_BITS)
    cdef PyObject* got
    cdef Py_ssize_t i
    while names.seen[slot] is not NULL:
        if names.seen[slot] == name:
            return names.at[slot]
        slot = (slot + 1) & (NAMES_SEEN - 1)
    got = PyDict_GetItem(<dict>names.names, <object>name)
    if got is NULL:
        i = len(<dict>names.names)
        (<dict>names.names)[<object>name] = i
    else:
        i = <Py_ssize_t><object>got
    if names.count < NAMES_SEEN // 2:
        names.seen[slot] = name
        names.at[slot] = i
        names.count += 1
    return i


cdef Py_ssize_t _header_size(Py_ssize_t n):
    """The bytes of the MessagePack header of an array of ``n`` items."""
    return 1 if n < 16 else 3 if n < 0x10000 else 5


cdef char* _pack_header(char* p, Py_ssize_t n):
    """The MessagePack header of an array of ``n`` items at ``p``; the end."""
    if n < 16:
        p[0] = <char>(0x90 | n)
        return p + 1
    return _pack_be(p, 0xdc, 2, n) if n < 0x10000 else _pack_be(p, 0xdd, 4, n)


@cython.final
cdef class Journal:
    """The registry's journal for the compiled ledger: a list of rows to the registry (``len``,
    iteration, an index or slice read, ``append``, ``del journal[n:]``), whose hold rows
    (``reserve``, ``release``) the ledger writes as C records (:c:type:`Row`: its txid, hold id,
    amount, and the Purse of its account and asset, referenced), made into their
    :class:`~carbonbook.registry.base.Entry` only when read, or encoded for an SQL commit
    (``wire``). Every other row is the object appended. Costs: a hold row about 100
    instructions, against about 800 for its Entry (callgrind); a read, one Entry per hold row.

    Its rows sit in chunks of ``CHUNK`` rows (32 KiB), never moved: row ``i`` is row
    ``i % CHUNK`` of chunk ``i // CHUNK``. An append takes a new chunk when the last is full (the
    chunks' array of pointers doubles when full), so no row is ever copied; a truncation keeps its
    chunks for the rows to come (an SQL registry's journal, emptied at each commit, reuses
    them). A memory registry's venue, 200,000 busy messages (277,000 rows): 3,970 page faults
    against 5,250 with rows of 48 bytes (two names, a kind) in one array grown by ``realloc``
    (whose copies' pages, in chunks of those rows, other growing arrays took: 4,960); 65
    instructions fewer per message (callgrind, bench/venue.py --instructions)."""

    cdef Row** chunks  # chunk ``c``: rows ``c * CHUNK`` to ``(c + 1) * CHUNK - 1``
    cdef Py_ssize_t n, made, slots  # rows; chunks made, their pointers' room

    def __dealloc__(self):
        cdef Py_ssize_t c
        self._truncate(0)
        for c in range(self.made):
            PyMem_Free(self.chunks[c])
        PyMem_Free(self.chunks)

    cdef inline Row* _at(self, Py_ssize_t i) noexcept:
        """Row ``i`` (below ``n``, or a made chunk's)."""
        return &self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]

    cdef Row* _push(self) except NULL:
        """A new row at the end (its fields to fill)."""
        if self.n == self.made << CHUNK_BITS:
            _add_chunk(<void***>&self.chunks, &self.made, &self.slots, sizeof(Row), False)
        self.n += 1
        return self._at(self.n - 1)

    cdef int hold_row(self, long long txid, Purse purse, long long delta, long long hold) except -1:
        """Journal a hold transaction of ``purse`` (its account's, of its asset) under ``hold``:
        a reserve of ``delta`` (> 0), or a release of ``-delta`` (``delta`` < 0)."""
        cdef Row* r = self._push()
        Py_INCREF(purse)
        r.item = <PyObject*>purse
        r.txid = txid
        r.hold = hold
        r.delta = delta
        return 0

    def append(self, row):
        """Journal ``row`` as it is (any row but a Purse, which only the ledger writes)."""
        if type(row) is Purse:
            raise TypeError("a journal row is an Entry or a Settled, not a Purse")
        self.push(row)

    cdef int push(self, row) except -1:
        """``append``, from C."""
        cdef Row* r = self._push()
        Py_INCREF(row)
        r.item = <PyObject*>row
        return 0

    cdef int _truncate(self, Py_ssize_t n) except -1:
        """Drop the rows from ``n`` on."""
        while self.n > n:
            self.n -= 1
            Py_DECREF(<object>self._at(self.n).item)
        return 0

    cdef object _row(self, Py_ssize_t i):
        """Row ``i`` as the registry reads it."""
        cdef Row* r = self._at(i)
        cdef Purse purse
        if type(<object>r.item) is not Purse:
            return <object>r.item
        purse = <Purse>r.item
        kind = RESERVE if r.delta > 0 else RELEASE
        if purse.units:
            return ENTRY(r.txid, kind, purse.account, None, purse.name, abs(r.delta), None, 0, r.hold)
        return ENTRY(r.txid, kind, purse.account, None, None, 0, purse.name, abs(r.delta), r.hold)

    def wire(self, Py_ssize_t start, Py_ssize_t run, encode):
        """The rows from ``start`` on as a commit stores them: (the last row's txid, the run of named
        rows of its rows) per ``run`` rows, byte for byte what the reference's ``wire`` gives with
        ``encode`` (a msgspec MessagePack encoder's). Hold rows (without making their Entries) and
        Settled records of plain values (``_put_settle_row``) are written here; any other row by
        ``encode`` (see ``_array``), and the run's names."""
        cdef Py_ssize_t lo, hi
        cdef Row* r
        cdef list out = []
        for lo in range(start, self.n, run):
            hi = min(lo + run, self.n)
            r = self._at(hi - 1)
            out.append((r.txid if type(<object>r.item) is Purse else (<object>r.item).txid,
                        self._run(lo, hi, encode)))
        return out

    cdef bytes _run(self, Py_ssize_t lo, Py_ssize_t hi, encode):
        """Rows ``lo`` to ``hi`` as one run of named rows (see ``wire``)."""
        cdef Lines out
        cdef list items = []
        cdef dict named = {}
        cdef Names names
        cdef Py_ssize_t i, kind, account, asset, mark = _header_size(hi - lo)
        cdef long long prev = 0
        cdef Row* r
        cdef Purse purse
        out.data, out.size, out.room = NULL, mark, 0
        _names(&names, named)
        try:
            _room(&out, 24 * (hi - lo))  # about a hold row's or a settlement's size each
            for i in range(lo, hi):
                r = self._at(i)
                if type(<object>r.item) is not Purse:
                    _put_object(&out, &names, <object>r.item, items, &mark, &prev)
                    continue
                purse = <Purse>r.item
                kind = _index(&names, <PyObject*>(RESERVE if r.delta > 0 else RELEASE))  # in the order of the
                account = _index(&names, <PyObject*>purse.account)  # row's fields
                asset = _index(&names, <PyObject*>purse.name)
                _room(&out, 64)
                out.size = _pack_row(out.data + out.size, r, prev, kind, account, asset) - out.data
                prev = r.txid
            return _named_run(&out, mark, hi - lo, items, named, encode)
        finally:
            PyMem_Free(out.data)

    def __len__(self):
        return self.n

    def __iter__(self):
        cdef Py_ssize_t i = 0
        while i < self.n:
            yield self._row(i)
            i += 1

    def __getitem__(self, index):
        cdef Py_ssize_t i, start, stop, step
        if isinstance(index, slice):
            start, stop, step = index.indices(self.n)
            return [self._row(i) for i in range(start, stop, step)]
        i = index
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError("journal index out of range")
        return self._row(i)

    def __delitem__(self, index):
        """``del journal[n:]`` only (an undo, or a commit's ``del journal[:]``)."""
        cdef Py_ssize_t start, stop, step
        if not isinstance(index, slice):
            raise TypeError("a journal drops its rows from an index on: del journal[n:]")
        start, stop, step = index.indices(self.n)
        if stop != self.n or step != 1:
            raise TypeError("a journal drops its rows from an index on: del journal[n:]")
        self._truncate(start)


# -- holds and reserved totals as C records ---------------------------------------------------

cdef str UNITS = "units"
cdef str CASH = "cash"
cdef dict UNIT_OF = {str(u): u for u in UnitType}  # a unit type's name (or itself) -> the unit type
cdef Py_ssize_t EMPTY = -1, GONE = -2  # an IdTable slot never used, or whose record was removed


@cython.final
@cython.no_gc
cdef class Trader:
    """An account's purses of the unit type and currency it last settled in (``Ledger._trader``),
    and its Account as last found allowed to sell (``seller``) and to buy that unit type
    (``buyer``): an Account is frozen, so the same one found again is allowed again, and while the
    registry's accounts are at the version they were then (``seller_at``, ``buyer_at``; 0: unknown)
    it is the one found. Its purses point back to it (``Purse.trader``), so a settlement finds it
    from the holds it consumes."""

    cdef object unit, currency, seller, buyer
    cdef unsigned long long seller_at, buyer_at
    cdef Purse units, cash


@cython.final
@cython.no_gc
cdef class Known:
    """A slot of the ledger's accounts seen (``Ledger._known``): an account's name, whether its
    Account was open when the registry's accounts were at version ``tag`` (0: not known), and
    the purses its last holds of units and of cash took from (``units`` of ``unit``, ``cash`` of
    ``currency``; None: none yet)."""

    cdef object account, unit, currency
    cdef unsigned long long tag
    cdef Purse units, cash


cdef long long _id(key, str what) except? -1:
    """The id ``key`` (an int of 64 bits) of a record set in an :class:`IdTable`."""
    cdef int over = 0
    cdef long long i
    if type(key) is not int:
        raise TypeError(f"a {what} id is an int, not {key!r}")
    i = _long_long(key, &over)
    if over:
        raise OverflowError(f"{what} id {key} is not of 64 bits")
    return i


cdef struct IdRec:
    long long id
    long long amount
    PyObject* value  # NULL: removed


cdef class IdTable:
    """Records by a 64-bit id (each a value and an amount), a dict to the registry by id (``get``,
    ``[]``, ``in``, ``del``, ``pop``, ``len``, iteration, ``items``, ``values``, ``==``; a value
    read is ``_value`` of its record): the C core of :class:`HoldTable` and :class:`Settlements`.
    Records keep the order a dict would (insertion; an assignment keeps the place); an
    open-addressing index finds them by id. Costs: a lookup, insertion or removal about 30
    instructions. A table made ``ordered`` (settlements: trade ids rise) has no index while every
    id set rose: an insertion appends, an id above the last is absent at once and another is
    found by bisection (O(log n)); the first id out of order builds the index (O(n), once). A
    new trade's look-up and insertion then touch no slot of an index of megabytes (the memory
    venue: 4-5 % of its time in cache misses on those slots, perf)."""

    cdef IdRec* recs
    cdef Py_ssize_t n, cap, live  # records used (removed ones included), their room, live ones
    cdef Py_ssize_t* slots  # the index: a record's position, EMPTY or GONE
    cdef Py_ssize_t filled  # slots not EMPTY
    cdef int bits  # the index has 2**bits slots
    cdef long long top  # no id above it was ever set: a look-up of one needs no slot
    cdef bint ordered  # no index (slots NULL): the records' ids rise

    def __cinit__(self):
        self.top = -INT64_MAX - 1

    def __dealloc__(self):
        cdef Py_ssize_t i
        for i in range(self.n):
            if self.recs[i].value is not NULL:
                Py_DECREF(<object>self.recs[i].value)
        PyMem_Free(self.recs)
        PyMem_Free(self.slots)

    cdef inline Py_ssize_t _home(self, long long hold) noexcept:
        return <Py_ssize_t>((<unsigned long long>hold * 0x9E3779B97F4A7C15ULL) >> (64 - self.bits))

    cdef Py_ssize_t find(self, long long hold) noexcept:
        """The position of record ``hold``, or -1 (an id above every one set: at once)."""
        cdef Py_ssize_t i, s, mask, lo, hi
        if hold > self.top:
            return -1
        if self.ordered:
            lo, hi = 0, self.n
            while lo < hi:
                i = (lo + hi) >> 1
                if self.recs[i].id < hold:
                    lo = i + 1
                else:
                    hi = i
            return lo if lo < self.n and self.recs[lo].id == hold and self.recs[lo].value is not NULL else -1
        if self.slots is NULL:
            return -1
        mask = (<Py_ssize_t>1 << self.bits) - 1
        i = self._home(hold)
        while True:
            s = self.slots[i]
            if s == EMPTY:
                return -1
            if s >= 0 and self.recs[s].id == hold:
                return s
            i = (i + 1) & mask

    cdef Py_ssize_t find_obj(self, hold) noexcept:
        """``find`` for an id given as an object (-1 unless an int of 64 bits)."""
        cdef int over = 0
        cdef long long h
        if type(hold) is not int:
            return -1
        h = _long_long(hold, &over)
        return -1 if over else self.find(h)

    cdef inline int room(self) except -1:
        """Make sure one more ``insert`` cannot fail: compact the records and grow the index
        when need be (amortised O(1); the test inline, about 15 instructions fewer per hold)."""
        if self.n < self.cap and (self.ordered or (self.filled + 1) * 2 <= (<Py_ssize_t>1 << self.bits)):
            return 0
        return self._rebuild()

    cdef int _rebuild(self) except -1:
        """``room``'s work: the records compacted, the index made again."""
        cdef Py_ssize_t i, j, size, mask, cap
        cdef int bits
        cdef IdRec* recs
        cdef Py_ssize_t* slots = NULL
        if self.cap and self.n == self.live and (
                self.ordered or (self.filled + 1) * 2 <= (<Py_ssize_t>1 << self.bits)):
            # the records alone are full and none was removed: they grow in place, the index kept
            # (about 60 instructions fewer per settlement record)
            recs = <IdRec*>PyMem_Realloc(self.recs, 2 * self.cap * sizeof(IdRec))
            if recs is NULL:
                raise MemoryError()
            self.recs, self.cap = recs, 2 * self.cap
            return 0
        bits = 10  # both arrays are allocated before anything moves: running out of memory changes nothing
        while (<Py_ssize_t>1 << bits) < 8 * (self.live + 1):
            bits += 1
        size = <Py_ssize_t>1 << bits
        cap = 4 * self.live + 256
        if not self.ordered:
            slots = <Py_ssize_t*>PyMem_Malloc(size * sizeof(Py_ssize_t))
            if slots is NULL:
                raise MemoryError()
        if cap > self.cap:
            recs = <IdRec*>PyMem_Realloc(self.recs, cap * sizeof(IdRec))
            if recs is NULL:
                PyMem_Free(slots)
                raise MemoryError()
            self.recs, self.cap = recs, cap
        j = 0
        for i in range(self.n):  # drop the removed records, in order
            if self.recs[i].value is not NULL:
                self.recs[j] = self.recs[i]
                j += 1
        self.n = j
        if self.ordered:
            return 0
        PyMem_Free(self.slots)
        self.slots, self.bits, self.filled = slots, bits, j
        for i in range(size):
            slots[i] = EMPTY
        mask = size - 1
        for j in range(self.n):
            i = self._home(self.recs[j].id)
            while slots[i] != EMPTY:
                i = (i + 1) & mask
            slots[i] = j
        return 0

    cdef void insert(self, long long hold, value, long long amount) noexcept:
        """Add ``value`` and ``amount`` as record ``hold`` (absent, above ``top`` if ``ordered``;
        ``room`` made first), at the end."""
        cdef Py_ssize_t mask = (<Py_ssize_t>1 << self.bits) - 1
        cdef Py_ssize_t i
        if not self.ordered:
            i = self._home(hold)
            while self.slots[i] >= 0:
                i = (i + 1) & mask
            if self.slots[i] == EMPTY:
                self.filled += 1
            self.slots[i] = self.n
        Py_INCREF(value)
        if hold > self.top:
            self.top = hold
        self.recs[self.n].id = hold
        self.recs[self.n].amount = amount
        self.recs[self.n].value = <PyObject*>value
        self.n += 1
        self.live += 1

    cdef void remove(self, Py_ssize_t pos) noexcept:
        """Remove the record at ``pos``."""
        cdef Py_ssize_t mask = (<Py_ssize_t>1 << self.bits) - 1
        cdef Py_ssize_t i
        cdef PyObject* value = self.recs[pos].value
        if not self.ordered:
            i = self._home(self.recs[pos].id)
            while self.slots[i] != pos:
                i = (i + 1) & mask
            self.slots[i] = GONE
        self.recs[pos].value = NULL
        self.live -= 1
        Py_DECREF(<object>value)

    cdef int put(self, long long hold, value, long long amount) except -1:
        """Set record ``hold`` (added at the end when absent, else in its place)."""
        cdef Py_ssize_t pos = self.find(hold)
        cdef PyObject* old
        if pos < 0:
            if self.ordered and hold <= self.top:  # out of order: the index from now on
                self.ordered = False  # (no index yet, bits 0: _rebuild makes one of the size it needs)
                self._rebuild()
            self.room()
            self.insert(hold, value, amount)
            return 0
        old = self.recs[pos].value
        Py_INCREF(value)
        self.recs[pos].value = <PyObject*>value
        self.recs[pos].amount = amount
        Py_DECREF(<object>old)
        return 0

    cdef object _value(self, IdRec* r):
        return <object>r.value

    # -- as a dict ---------------------------------------------------------------------

    def __getitem__(self, hold):
        cdef Py_ssize_t pos = self.find_obj(hold)
        if pos < 0:
            raise KeyError(hold)
        return self._value(&self.recs[pos])

    def get(self, hold, default=None):
        cdef Py_ssize_t pos = self.find_obj(hold)
        return default if pos < 0 else self._value(&self.recs[pos])

    def __contains__(self, hold):
        return self.find_obj(hold) >= 0

    def __delitem__(self, hold):
        cdef Py_ssize_t pos = self.find_obj(hold)
        if pos < 0:
            raise KeyError(hold)
        self.remove(pos)

    def pop(self, hold, *default):
        cdef Py_ssize_t pos = self.find_obj(hold)
        if pos < 0:
            if default:
                return default[0]
            raise KeyError(hold)
        value = self._value(&self.recs[pos])
        self.remove(pos)
        return value

    def __len__(self):
        return self.live

    def keys(self):
        cdef Py_ssize_t i
        return [self.recs[i].id for i in range(self.n) if self.recs[i].value is not NULL]

    def __iter__(self):
        return iter(self.keys())

    def values(self):
        cdef Py_ssize_t i
        return [self._value(&self.recs[i]) for i in range(self.n) if self.recs[i].value is not NULL]

    def items(self):
        cdef Py_ssize_t i
        return [(self.recs[i].id, self._value(&self.recs[i])) for i in range(self.n)
                if self.recs[i].value is not NULL]

    def __eq__(self, other):
        return dict(self.items()) == (other if type(other) is dict else dict(other.items()))

    def __repr__(self):
        return f"{type(self).__name__}({dict(self.items())!r})"


@cython.final
cdef class HoldTable(IdTable):
    """The registry's holds (``_holds``) for the compiled ledger: hold id -> ``(account, "units"
    or "cash", asset, amount)`` to the registry (an :class:`IdTable`, and assignment), each kept
    as a C record (its id, amount and :class:`Purse`), made into its tuple only when read. The
    purses (a list per account) hold the reserved totals, holdings and cash balances
    (:class:`Totals` reads them as dicts). A read as a dict makes one tuple per hold."""

    cdef readonly dict purses  # account -> [its Purses] (a few: scanned, not hashed)

    def __cinit__(self):
        self.purses = {}

    cdef Purse purse(self, bint units, account, asset):
        """``account``'s purse of ``asset`` (a unit type, or its name, for ``units``; else a
        currency), made when it has none."""
        cdef Purse p = self.find_purse(units, account, asset)
        if p is not None:
            return p
        mine = self.purses.get(account)
        if mine is None:
            mine = self.purses[account] = []
        p = Purse.__new__(Purse)
        if units:
            asset = UNIT_OF.get(asset, asset)
        p.account, p.asset, p.units = account, asset, units
        p.name = UNIT_NAMES.get(asset, asset) if units else asset
        p.key = (account, asset)
        (<list>mine).append(p)
        return p

    cdef Purse find_purse(self, bint units, account, asset):
        """``account``'s purse of ``asset`` (as ``purse``), or None."""
        cdef Purse p
        mine = self.purses.get(account)
        if mine is None:
            return None
        for found in <list>mine:
            p = <Purse>found
            if p.units == units and (p.asset is asset or (
                    (<str>p.asset == <str>asset) if isinstance(asset, str) and isinstance(p.asset, str)
                    else p.asset == asset)):
                return p
        return None

    cdef object _value(self, IdRec* r):
        cdef Purse p = <Purse>r.value
        return (p.account, UNITS if p.units else CASH, p.name, r.amount)

    def totals(self):
        """Every purse's reserved total summed again from the holds (the registry's ``_derive``);
        the two totals as dicts, :class:`Totals` (units, cash). O(holds + purses)."""
        cdef Py_ssize_t i
        for mine in self.purses.values():
            for p in <list>mine:
                (<Purse>p).reserved = 0
        for i in range(self.n):
            if self.recs[i].value is not NULL:
                (<Purse>self.recs[i].value).reserved += self.recs[i].amount
        return Totals(self, True, True), Totals(self, False, True)

    def holdings(self):
        """Every holding of units forgotten (the registry's ``_derive`` counts them again from the
        blocks); them as a dict, a :class:`Totals`. O(purses)."""
        for mine in self.purses.values():
            for p in <list>mine:
                if (<Purse>p).units:
                    (<Purse>p).have, (<Purse>p).present = 0, False
        return Totals(self, True, False)

    def __setitem__(self, hold, value):
        account, kind, asset, amount = value
        if kind != UNITS and kind != CASH:
            raise ValueError(f"a hold is of units or cash, not {kind!r}")
        self.put(_id(hold, "hold"), self.purse(kind == UNITS, account, asset), amount)


@cython.final
cdef class Settlements(IdTable):
    """The registry's settlement records (``_settlements``) for the compiled ledger: trade id ->
    its Settled or SettlementFailed (an :class:`IdTable`, and assignment). A settlement's look-up
    of its trade and its record's insertion about 60 instructions, not 140 and 380 in a dict
    (callgrind, bench/venue.py --instructions)."""

    def __cinit__(self):
        self.ordered = True

    def __setitem__(self, trade_id, record):
        self.put(_id(trade_id, "trade"), record, 0)


cdef class Totals:
    """One number of a :class:`HoldTable`'s purses of units or of cash, as the registry's dict
    ``(account, asset) -> number``: the reserved totals (``_ureserved``, ``_creserved``; a total
    of 0 is absent) or the holdings and balances (``_held``, ``_cash``; present once set, until
    popped). It iterates account by account, not in the order the keys were first set (which
    nothing reads: ``check`` and the SQL commit compare and look up by key)."""

    cdef HoldTable table
    cdef bint units, reserved

    def __init__(self, HoldTable table, bint units, bint reserved):
        self.table = table
        self.units = units
        self.reserved = reserved

    cdef Purse _find(self, key):
        cdef Purse p
        if type(key) is not tuple or len(<tuple>key) != 2:
            return None
        p = self.table.find_purse(self.units, (<tuple>key)[0], (<tuple>key)[1])
        if p is None or not (p.reserved != 0 if self.reserved else p.present):
            return None
        return p

    cdef inline long long _of(self, Purse p) noexcept:
        return p.reserved if self.reserved else p.have

    def __getitem__(self, key):
        cdef Purse p = self._find(key)
        if p is None:
            raise KeyError(key)
        return self._of(p)

    def get(self, key, default=None):
        cdef Purse p = self._find(key)
        return default if p is None else self._of(p)

    def __contains__(self, key):
        return self._find(key) is not None

    def __setitem__(self, key, long long value):
        account, asset = key
        cdef Purse p = self.table.purse(self.units, account, asset)
        if self.reserved:
            p.reserved = value
        else:
            p.have, p.present = value, True

    def pop(self, key, *default):
        cdef Purse p = self._find(key)
        if p is None:
            if default:
                return default[0]
            raise KeyError(key)
        value = self._of(p)
        if self.reserved:
            p.reserved = 0
        else:
            p.have, p.present = 0, False
        return value

    def __delitem__(self, key):
        self.pop(key)

    def items(self):
        cdef Purse p
        out = []
        for mine in self.table.purses.values():
            for found in <list>mine:
                p = <Purse>found
                if p.units == self.units and (p.reserved != 0 if self.reserved else p.present):
                    out.append((p.key, self._of(p)))
        return out

    def keys(self):
        return [k for k, _ in self.items()]

    def values(self):
        return [v for _, v in self.items()]

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return len(self.items())

    def __eq__(self, other):
        return dict(self.items()) == (other if type(other) is dict else dict(other.items()))

    def __repr__(self):
        return f"Totals({dict(self.items())!r})"


cdef class Counters:
    """The registry's counters (``_meta``) for the compiled ledger: ``txid`` (the last transaction
    id) and ``block`` (the last block id) as C integers, any other (``day``) in a dict; a dict to
    the registry (``get``, ``[]``, ``in``, assignment, ``pop``, ``setdefault``, ``len``,
    iteration, ``items``, ``values``, ``==``; in that order). The ledger counts in C, without an
    int object or a dict write per transaction (about 450 instructions)."""

    cdef long long txid, block
    cdef bint has_txid, has_block
    cdef dict more

    def __cinit__(self):
        self.more = {}

    cdef inline long long* _slot(self, key) noexcept:
        return &self.txid if key == "txid" else &self.block if key == "block" else NULL

    cdef inline bint _has(self, key) noexcept:
        return self.has_txid if key == "txid" else self.has_block

    def __getitem__(self, key):
        cdef long long* slot = self._slot(key)
        if slot is NULL:
            return self.more[key]
        if not self._has(key):
            raise KeyError(key)
        return slot[0]

    def get(self, key, default=None):
        cdef long long* slot = self._slot(key)
        if slot is NULL:
            return self.more.get(key, default)
        return slot[0] if self._has(key) else default

    def __contains__(self, key):
        return key in self.more if self._slot(key) is NULL else self._has(key)

    def __setitem__(self, key, long long value):
        cdef long long* slot = self._slot(key)
        if slot is NULL:
            self.more[key] = value
        else:
            slot[0] = value
            if key == "txid":
                self.has_txid = True
            else:
                self.has_block = True

    def pop(self, key, *default):
        if self._slot(key) is NULL:
            return self.more.pop(key, *default)
        if not self._has(key):
            if default:
                return default[0]
            raise KeyError(key)
        value = self[key]
        if key == "txid":
            self.has_txid = False
        else:
            self.has_block = False
        return value

    def __delitem__(self, key):
        self.pop(key)

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def keys(self):
        return [k for k in ("txid", "block") if self._has(k)] + list(self.more)

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return self.has_txid + self.has_block + len(self.more)

    def items(self):
        return [(k, self[k]) for k in self.keys()]

    def values(self):
        return [self[k] for k in self.keys()]

    def __eq__(self, other):
        return dict(self.items()) == (other if type(other) is dict else dict(other.items()))

    def __repr__(self):
        return f"Counters({dict(self.items())!r})"


cdef enum:
    FIXED = 64  # the slots of Blocks.page's cache of Blocks' fixed fields (see Blocks._put)


cdef extern from "Python.h":
    PyObject* _new_bytes "PyBytes_FromStringAndSize"(const char* data, Py_ssize_t size)
    void PyErr_Clear()


cdef struct BlockRow:
    PyObject* block  # a Block with the row's other fields (origin, unit, state, ...); NULL: none
    PyObject* holder
    long long start, end
    bint live  # a block (a row the ledger took keeps the rest, for its undo: ``Blocks.put_back``)


cdef Py_ssize_t ROWS_FREE = 1 << 20  # ids below this take rows (40 MB at most), others while the
                                     # rows are at most four times the blocks (``Blocks.fits``)


cdef class Blocks:
    """The registry's unit blocks (``_blocks``) for the compiled ledger: C rows by block id (its
    serials, holder, and a Block with the rest of its fields), a dict to the registry (``get``,
    ``[]``, ``in``, assignment, ``del``, ``pop``, ``len``, iteration, ``keys``, ``values``,
    ``items``, ``==``; by id, then the others in a dict's order): a block read is a Block, made
    again only when its row changed since. A settlement splits and moves blocks here in C,
    without a Block or a dict write per block moved (``take``, ``split``, ``moved``): about
    2,600 instructions fewer per trade settled in calls of 2 (bench/venue.py
    --settle-instructions). Ids are dense (the registry counts them), so a row is found at its
    id; an id too far past the rows (``fits``: a registry whose blocks are a few of the ids it
    ever made), any other key, or a value that is not a Block with C integer serials, is kept in
    a dict (``more``), and then every settlement goes to the reference ledger. The rows sit in
    chunks of ``CHUNK`` (40 KiB, zeroed when made), never moved (as a Journal's): one array grown
    by ``realloc`` before, copied and zeroed again at each doubling (a memory venue's settlements
    make a block id per trade: 7 instructions per message fewer, bench/venue.py --instructions,
    memset's and memcpy's bytes, which callgrind counts one a byte)."""

    cdef BlockRow** chunks  # chunk ``c``: rows ``c * CHUNK`` to ``(c + 1) * CHUNK - 1``
    cdef Py_ssize_t live, made, slots  # live rows; chunks made, their pointers' room
    cdef readonly dict more
    cdef PyObject* fixed_of[FIXED]  # ``page``'s cache: a Block (referenced) by its address's slot,
    cdef PyObject* fixed[FIXED]  # the bytes of its fields no row holds (see ``_put``),
    cdef Py_ssize_t fixed_head[FIXED]  # of which those before ``start``

    def __cinit__(self):
        self.more = {}

    def __dealloc__(self):
        cdef Py_ssize_t i
        for i in range(self.room()):
            self._clear(self.row(i))
        for i in range(self.made):
            PyMem_Free(self.chunks[i])
        PyMem_Free(self.chunks)
        for i in range(FIXED):
            Py_XDECREF(self.fixed_of[i])
            Py_XDECREF(self.fixed[i])

    cdef inline Py_ssize_t room(self) noexcept:
        """The rows allocated: the chunks made's."""
        return self.made << CHUNK_BITS

    cdef inline BlockRow* row(self, Py_ssize_t i) noexcept:
        """Row ``i`` (below ``room()``)."""
        return &self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]

    cdef inline void _clear(self, BlockRow* r) noexcept:
        if r.block is not NULL:
            Py_DECREF(<object>r.block)
            Py_DECREF(<object>r.holder)
            r.block = r.holder = NULL
        r.live = False

    cdef inline Py_ssize_t at(self, key) noexcept:
        """The row of block id ``key`` (-1: not a row's id)."""
        cdef int overflow = 0
        cdef long long i
        if type(key) is not int:
            return -1
        i = _long_long(key, &overflow)
        return i if not overflow and 0 <= i < self.room() else -1

    cdef int grow(self, long long i) except -1:
        """Room for row ``i``: the chunks up to its own made, their rows zeroed (no block)."""
        while self.room() <= i:
            _add_chunk(<void***>&self.chunks, &self.made, &self.slots, sizeof(BlockRow), True)
        return 0

    cdef inline object block(self, Py_ssize_t i):
        """The Block of live row ``i``, made again (and kept) if the row changed since."""
        cdef BlockRow* r = self.row(i)
        b = <object>r.block
        if (field(b, B_START, "start") == r.start and field(b, B_END, "end") == r.end
                and field(b, B_HOLDER, "holder") is <object>r.holder and field(b, B_ID, "id") == i):
            return b
        b = _replaced(b, KW_ROW, i, r.start, r.end, <object>r.holder)
        Py_INCREF(b)
        Py_DECREF(<object>r.block)
        r.block = <PyObject*>b
        return b

    cdef inline long long first(self, Py_ssize_t i) noexcept:
        return self.row(i).start

    cdef inline long long last(self, Py_ssize_t i) noexcept:
        return self.row(i).end

    cdef int moved(self, long long i, Py_ssize_t src, long long start, long long end, holder) except -1:
        """Make block ``i`` (a new id): serials ``start``..``end`` of row ``src``'s block, held by
        ``holder``."""
        cdef BlockRow* r
        if i >= self.room():
            self.grow(i)
        r = self.row(i)
        self._clear(r)
        Py_INCREF(<object>self.row(src).block)
        Py_INCREF(holder)
        r.block, r.holder, r.start, r.end, r.live = self.row(src).block, <PyObject*>holder, start, end, True
        self.live += 1
        return 0

    cdef inline void take(self, Py_ssize_t i) noexcept:
        """Remove block ``i`` (moved whole), its row kept for ``put_back``."""
        self.row(i).live = False
        self.live -= 1

    cdef inline void split(self, Py_ssize_t i, long long start) noexcept:
        """Block ``i`` now starts at serial ``start`` (it gave the ones before)."""
        self.row(i).start = start

    cdef bint fits(self, long long i) noexcept:
        """Does block id ``i`` take a row (see ``ROWS_FREE``)?"""
        return 0 <= i and (i < self.room() or i < ROWS_FREE or i < 4 * (self.live + len(self.more)))

    def page(self, long long lo, long long hi):
        """The MessagePack array of the blocks with ids ``lo``..``hi - 1``, by id, as msgspec writes
        the list of their Blocks (the SQL commit's page), or None when there are none. Written
        here from the rows (``_put``), without making a Block for a row changed since its
        Block was made; with blocks in ``more`` or values that are not plain ones, from the
        Blocks by msgspec. O(hi - lo)."""
        cdef Lines out
        cdef Py_ssize_t i, n = 0
        cdef char* p
        out.data, out.size, out.room = NULL, 3, 0  # room for the header: 1 byte, or 3 from 16 blocks
        try:
            if not self.more and hi - lo < 0x10000:
                for i in range(max(lo, 0), min(hi, self.room())):
                    if self.row(i).live:
                        _room(&out, BLOCK_ROOM)
                        if not self._put(&out, i):
                            break
                        n += 1
                else:
                    if not n:
                        return None
                    p = out.data + (2 if n < 16 else 0)
                    _pack_header(p, n)
                    return PyBytes_FromStringAndSize(p, out.data + out.size - p)
        finally:
            PyMem_Free(out.data)
        live = [b for b in map(self.get, range(lo, hi)) if b is not None]
        return ENCODE(live) if live else None

    cdef bint _put(self, Lines* out, Py_ssize_t i) noexcept:
        """Write block ``i`` from its row as msgspec writes its Block, the array of its fields (room
        for BLOCK_ROOM bytes), or say a value is not a plain one (``_w_plain``). The fields no row
        holds (origin and unit; state to project type) are the bytes written for the same Block
        before when it is the one cached at its address's slot (``_keep``; the blocks settlements
        make share their seller's Block)."""
        cdef BlockRow* r = self.row(i)
        cdef Py_ssize_t j, n, k = <Py_ssize_t>((<size_t>r.block >> 4) & (FIXED - 1))
        cdef char* start = out.data + out.size
        cdef char* head = _pack_int(start + 1, i)
        cdef char* tail
        cdef char* p
        cdef const char* cached
        start[0] = <char>0x9c
        if self.fixed_of[k] == r.block:
            cached, n = PyBytes_AS_STRING(<object>self.fixed[k]), self.fixed_head[k]
            memcpy(head, cached, n)
            p = _w_plain(_pack_int(_pack_int(head + n, r.start), r.end), r.holder)
            if p is NULL:
                return False
            memcpy(p, cached + n, PyBytes_GET_SIZE(<object>self.fixed[k]) - n)
            out.size = p + PyBytes_GET_SIZE(<object>self.fixed[k]) - n - out.data
            return True
        p = _w_plain(_w_plain(head, _at(<object>r.block, B_AT[1])), _at(<object>r.block, B_AT[2]))
        if p is NULL:
            return False
        n = p - head
        p = tail = _w_plain(_pack_int(_pack_int(p, r.start), r.end), r.holder)
        for j in range(6, 12):
            p = _w_plain(p, _at(<object>r.block, B_AT[j]))
        if p is NULL:
            return False
        self._keep(k, r.block, head, n, tail, p - tail)
        out.size = p - out.data
        return True

    cdef void _keep(self, Py_ssize_t k, PyObject* block, const char* head, Py_ssize_t nhead,
                    const char* tail, Py_ssize_t ntail) noexcept:
        """Cache at slot ``k`` the bytes of ``block``'s fields no row holds: ``nhead`` at ``head``
        (origin, unit), ``ntail`` at ``tail`` (state to project type). Without memory, nothing."""
        cdef PyObject* data = _new_bytes(NULL, nhead + ntail)
        if data is NULL:
            PyErr_Clear()
            return
        memcpy(PyBytes_AS_STRING(<object>data), head, nhead)
        memcpy(PyBytes_AS_STRING(<object>data) + nhead, tail, ntail)
        Py_XDECREF(self.fixed_of[k])
        Py_XDECREF(self.fixed[k])
        Py_INCREF(<object>block)
        self.fixed_of[k], self.fixed[k], self.fixed_head[k] = block, data, nhead

    def put_back(self, bid, old):
        """Undo what a settlement did to block ``bid``: ``old`` is the Block as it was (the
        reference ledger's undo record) or its first serial (this ledger's: the row kept the rest)."""
        cdef Py_ssize_t i = self.at(bid)
        if type(old) is not int:
            self[bid] = old
            return
        if not self.row(i).live:
            self.row(i).live = True
            self.live += 1
        self.row(i).start = old

    def __getitem__(self, key):
        cdef Py_ssize_t i = self.at(key)
        if i >= 0 and self.row(i).live:
            return self.block(i)
        return self.more[key]

    def get(self, key, default=None):
        cdef Py_ssize_t i = self.at(key)
        if i >= 0 and self.row(i).live:
            return self.block(i)
        return self.more.get(key, default) if self.more else default

    def __contains__(self, key):
        cdef Py_ssize_t i = self.at(key)
        return self.row(i).live if i >= 0 and self.row(i).live else key in self.more

    def __setitem__(self, key, value):
        cdef int overflow = 0
        cdef long long i = -1, start = 0, end = 0
        cdef BlockRow* r
        if type(key) is int and type(value) is BLOCK:
            i = _long_long(key, &overflow)
            start_, end_ = field(value, B_START, "start"), field(value, B_END, "end")
            if overflow or not self.fits(i) or type(start_) is not int or type(end_) is not int:
                i = -1
            else:
                start = _long_long(start_, &overflow)
                end = _long_long(end_, &overflow) if not overflow else 0
                if overflow:
                    i = -1
        if i < 0:
            self.pop(key, None)
            self.more[key] = value
            return
        if self.more:
            self.more.pop(key, None)
        if i >= self.room():
            self.grow(i)
        r = self.row(i)
        if not r.live:
            self.live += 1
        self._clear(r)
        holder = field(value, B_HOLDER, "holder")
        Py_INCREF(value)
        Py_INCREF(holder)
        r.block, r.holder, r.start, r.end, r.live = <PyObject*>value, <PyObject*>holder, start, end, True

    def pop(self, key, *default):
        cdef Py_ssize_t i = self.at(key)
        if i >= 0 and self.row(i).live:
            value = self.block(i)
            self._clear(self.row(i))
            self.live -= 1
            return value
        return self.more.pop(key, *default)

    def __delitem__(self, key):
        self.pop(key)

    def keys(self):
        cdef Py_ssize_t i
        return [i for i in range(self.room()) if self.row(i).live] + list(self.more)

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return self.live + len(self.more)

    def items(self):
        cdef Py_ssize_t i
        return [(i, self.block(i)) for i in range(self.room()) if self.row(i).live] + list(self.more.items())

    def values(self):
        cdef Py_ssize_t i
        return [self.block(i) for i in range(self.room()) if self.row(i).live] + list(self.more.values())

    def __eq__(self, other):
        return dict(self.items()) == (other if type(other) is dict else dict(other.items()))

    def __repr__(self):
        return f"Blocks({dict(self.items())!r})"


cdef struct Undo:
    long long hold
    long long left  # the hold's amount before (when it existed)
    long long delta  # what the change added to the purse's reserved total
    long long txid  # the txid before (-1: a settlement's cut, which keeps txid and journal)
    Py_ssize_t jlen  # the journal's length before
    PyObject* purse
    bint existed


cdef tuple _row(t, unit, currency):
    """The settlement row (``Ledger.settle``) of Trade ``t`` of an instrument of ``unit`` and
    ``currency``, its holds consumed (as a venue settles it)."""
    return (field(t, T_SEQ, "seq"), field(t, T_SELLER, "sell_account"), field(t, T_BUYER, "buy_account"), unit,
            field(t, T_QTY, "qty"), currency, field(t, T_PRICE, "price") * field(t, T_QTY, "qty"),
            field(t, T_SELL_ID, "sell_id"), field(t, T_BUY_ID, "buy_id"))


cdef void* _grown(void* records, Py_ssize_t* room, size_t size) except NULL:
    """``records``, a full array of ``room[0]`` records of ``size`` bytes, grown to ``2 * room[0] + 64``
    (``room`` set): the ledger's undo stacks, the pointers to chunks (``_add_chunk``)."""
    cdef void* grown = PyMem_Realloc(records, (2 * room[0] + 64) * size)
    if grown is NULL:
        raise MemoryError()
    room[0] = 2 * room[0] + 64
    return grown


cdef int _add_chunk(void*** chunks, Py_ssize_t* made, Py_ssize_t* slots, size_t size, bint zeroed) except -1:
    """One more chunk of ``CHUNK`` records of ``size`` bytes (``zeroed``, or to be written before
    they are read) after the ``made[0]`` of ``chunks[0]`` (an array of pointers, room for
    ``slots[0]``, grown by ``_grown`` when full): rows that never move (a Journal's, Blocks')."""
    cdef void* chunk
    if made[0] == slots[0]:
        chunks[0] = <void**>_grown(chunks[0], slots, sizeof(void*))
    chunk = PyMem_Calloc(CHUNK, size) if zeroed else PyMem_Malloc(CHUNK * size)
    if chunk is NULL:
        raise MemoryError()
    chunks[0][made[0]] = chunk
    made[0] += 1
    return 0


cdef struct Settle:  # a fast-path settlement's undo values (see ``Run``)
    PyObject* record  # its Settled (a reference of its own)
    long long first  # the block counter before it
    long long b_held, s_cash  # the buyer's holding and the seller's cash before (when present)
    Py_ssize_t jlen  # the journal's length before
    Py_ssize_t lo, n  # its consumed blocks: ``Ledger.consumed[lo:lo + n]``
    bint b_present, s_present


cdef struct Consumed:  # a block a settlement split or, ``popped``, moved whole (its row kept)
    long long bid, start  # its id and first serial before
    bint popped


cdef enum:
    SEEN = 64  # the pages an SQL commit's walk of settlements remembers having put (``Seen``)


cdef struct Seen:
    long long page[SEEN]  # by the page number's low bits; -1: none


cdef inline void _forget_pages(Seen* seen) noexcept:
    memset(seen.page, 0xff, sizeof(seen.page))


cdef inline int _add_page(set pages, Seen* seen, long long p) except -1:
    """Put page ``p`` in ``pages`` unless ``seen`` remembers it there: the settlements of a commit
    consume and make blocks in few pages, each a Python int and a set lookup otherwise."""
    if seen.page[p & (SEEN - 1)] != p:
        pages.add(p)
        seen.page[p & (SEEN - 1)] = p
    return 0


cdef int _made_pages(set pages, Seen* seen, long long first, long long new) except -1:
    """Into ``pages``, the page of each block settlements made: ids ``first + 1`` to ``new``."""
    cdef long long p
    for p in range((first + 1) >> PAGE, (new >> PAGE) + 1 if new > first else 0):
        _add_page(pages, seen, p)
    return 0


@cython.final
@cython.no_gc
@cython.freelist(1024)
cdef class Run:
    """A run of the compiled ledger's fast-path settlements, its own entry in the registry's undo
    log, read as ``(None, _FAST, run)`` (``__iter__``: no tuple per run unless read, by an undo or
    an SQL commit; 75 instructions fewer per venue message, the same on SQLite): the undo values of
    its settlements are the ledger's C records ``lo``..``hi - 1`` (no Python list or int per value:
    450 instructions fewer per venue message than the reference's segment list, 560 on SQLite,
    whose commit reads them in ``settled_keys``; callgrind, bench/venue.py --instructions), made
    into the reference's segment only to undo them (``Ledger.run_values``). A batch's runs are
    freed together when it ends: up to 1,024 are kept for the next (a busy venue batch of 4,096
    messages makes about 680; 18 instructions fewer per venue message than 8 kept)."""

    cdef Py_ssize_t lo, hi

    def __iter__(self):
        return iter((None, FAST, self))


@cython.final
cdef class Ledger:
    """Holds and settlement over ``reg``'s state (see the module docstring and the reference).

    Its undo records are its own: each hold change (a reserve, a release, what a settlement
    takes of a hold) pushes one C record (:c:type:`Undo`) and appends one shared mark,
    ``(ledger, _LEDGER, None)``, to the registry's undo log, which ``Store._undo`` hands back
    (``undo``: the newest record) and the SQL commit reads (``touched``); those of its
    settlements are C records too (``Run``)."""

    cdef readonly object reg
    cdef readonly object ref
    cdef dict accounts, index
    cdef Settlements settlements
    cdef Blocks blocks
    cdef HoldTable table
    cdef Counters meta
    cdef Journal journal
    cdef dict attrs  # the registry's __dict__: a test's hook, without a lookup
    cdef list log  # the registry's undo log (``_log``) while a transaction is open (``begin``)
    cdef Py_ssize_t logged  # the entries of the last log that ended with some
    cdef dict traders  # account -> its Trader (see ``_trader``)
    cdef PyObject** known  # KNOWN slots, by the account name's hash: a Known or NULL (see ``_known``)
    cdef bint hooked  # the registry's class has its own _between_legs
    cdef Undo* stack  # the undo records of the open transaction
    cdef Py_ssize_t depth, room
    cdef tuple mark
    cdef bint lent  # the open transaction handed a hold change or a settlement to ``ref`` (``_lend``)
    cdef Settle* settles  # the undo values of the open transaction's fast-path settlements (``Run``)
    cdef Py_ssize_t nsettles, settles_room
    cdef Consumed* consumed  # and of the blocks they consumed
    cdef Py_ssize_t nconsumed, consumed_room

    def __init__(self, reg):
        self.reg = reg
        self.ref = _ledger.Ledger(reg)
        self.mark = (self, LEDGER, None)

    def __dealloc__(self):
        self._drop()
        self._forget_known()
        PyMem_Free(self.known)
        PyMem_Free(self.stack)
        PyMem_Free(self.settles)
        PyMem_Free(self.consumed)

    @staticmethod
    def new_journal():
        """An empty journal (see :class:`Journal`)."""
        return Journal()

    @staticmethod
    def new_holds():
        """An empty hold table (see :class:`HoldTable`)."""
        return HoldTable()

    @staticmethod
    def new_blocks():
        """No blocks (see :class:`Blocks`)."""
        return Blocks()

    @staticmethod
    def new_settlements():
        """No settlement records (see :class:`Settlements`)."""
        return Settlements()

    @staticmethod
    def page(blocks, long long lo, long long hi):
        """As the reference's ``page``, written from the C rows (see :meth:`Blocks.page`)."""
        return (<Blocks>blocks).page(lo, hi)

    @staticmethod
    def put_back(blocks, bid, old):
        """As the reference's ``put_back``; ``old`` may be this ledger's undo record, the block's
        first serial (see :meth:`Blocks.put_back`)."""
        (<Blocks>blocks).put_back(bid, old)

    @staticmethod
    def new_meta():
        """The registry's counters, at 0 (see :class:`Counters`)."""
        cdef Counters meta = Counters()
        meta["txid"] = meta["block"] = 0
        return meta

    @staticmethod
    def new_cash(holds):
        """The registry's cash balances: the cash purses of ``holds`` (a :class:`HoldTable`) as a
        dict (see :class:`Totals`)."""
        return Totals(holds, False, False)

    @staticmethod
    def holdings(holds):
        """The registry's holdings of units, forgotten: the units purses of ``holds`` as a dict
        (see :meth:`HoldTable.holdings`)."""
        return (<HoldTable>holds).holdings()

    @staticmethod
    def reserved(holds):
        """The reserved totals of ``holds`` (a :class:`HoldTable`), summed again: its dict views
        (units, cash)."""
        return (<HoldTable>holds).totals()

    @staticmethod
    def wire(journal, Py_ssize_t start, Py_ssize_t run, encode):
        """As the reference's ``wire``, hold rows encoded here (see :meth:`Journal.wire`)."""
        if type(journal) is Journal:
            return (<Journal>journal).wire(start, run, encode)
        return _ledger.Ledger.wire(journal, start, run, encode)

    @staticmethod
    def pack(list rows):
        """As the reference's ``pack``, Settled records of plain values written here
        (``_put_object``)."""
        cdef Lines out
        cdef list items = []
        cdef dict named = {}
        cdef Names names
        cdef Py_ssize_t mark = _header_size(len(rows))
        cdef long long prev = 0
        out.data, out.size, out.room = NULL, mark, 0
        _names(&names, named)
        try:
            for row in rows:
                _put_object(&out, &names, row, items, &mark, &prev)
            return _named_run(&out, mark, len(rows), items, named, ENCODE)
        finally:
            PyMem_Free(out.data)

    def bind(self):
        """Take the registry's containers again (they are new after a reset or a derive)."""
        reg = self.reg
        self.ref.bind()
        self.accounts = reg._accounts
        self.table = reg._holds
        self.blocks = reg._blocks
        self.index = reg._index
        self.meta = reg._meta
        self.journal = reg._journal
        self.settlements = reg._settlements
        for mine in self.table.purses.values():
            for p in <list>mine:
                (<Purse>p).keyed = False
                (<Purse>p).trader = NULL
        self.traders = {}
        self._forget_known()
        self.attrs = reg.__dict__
        self.hooked = type(reg)._between_legs is not HOOK

    cdef Purse _purse(self, bint units, account, asset):
        """``account``'s purse of ``asset`` (:meth:`HoldTable.purse`). The first time since the
        last bind, a units purse takes the registry's block queue of that account and unit type
        (``queue``; an empty one made if there is none, as ``_inner_of`` makes it), so a settlement
        finds both queues without a lookup, and the queue
        is keyed by the purse's ``key`` instead of an equal tuple (the same value; only the order
        of the queues changes, which nothing reads), so a lookup finds it by identity, without
        comparing tuples (about 150 instructions fewer). An account's Trader (``_trader``) has the
        purses it last settled in, found first (about 90 instructions fewer per venue message;
        callgrind, bench/venue.py --instructions)."""
        cdef Trader t = self.traders.get(account)
        if t is not None and (t.unit if units else t.currency) is asset:
            return t.units if units else t.cash
        cdef Purse p = self.table.purse(units, account, asset)
        if not p.keyed:
            if units:
                queue = self.index.pop(p.key, None)
                self.index[p.key] = p.queue = deque() if queue is None else queue
            p.keyed = True
        return p

    cdef void _forget_known(self) noexcept:
        """Forget the accounts seen (their purses may be another table's after a bind)."""
        cdef Py_ssize_t i
        if self.known is not NULL:
            for i in range(KNOWN):
                Py_XDECREF(self.known[i])
                self.known[i] = NULL

    cdef Known _known(self, str account):
        """The slot of the accounts seen for ``account``: a hold's account and purses found by its
        name's hash (the str keeps it once computed) and one comparison instead of two dict
        lookups (the accounts' and the traders'), when the accounts did not change since (their
        dict's version, CPython before 3.12; later the account is looked up each time): about
        170 instructions fewer per venue message (callgrind, bench/venue.py --instructions). A
        slot another account held is taken over, empty."""
        cdef Py_hash_t hashed = (<PyASCIIObject*><PyObject*>account).hash  # as the str keeps it
        if hashed == -1:
            hashed = hash(account)
        cdef Py_ssize_t i = <Py_ssize_t>(<size_t>hashed & (KNOWN - 1))
        cdef Known k
        if self.known is NULL:
            self.known = <PyObject**>PyMem_Calloc(KNOWN, sizeof(PyObject*))
            if self.known is NULL:
                raise MemoryError()
        if self.known[i] is not NULL:
            k = <Known>self.known[i]
            if k.account is account or <str>k.account == account:
                return k
        else:
            k = Known.__new__(Known)
            Py_INCREF(k)
            self.known[i] = <PyObject*>k
        k.account, k.tag, k.unit, k.currency, k.units, k.cash = account, 0, None, None, None, None
        return k

    cdef Trader _trader(self, account, unit, currency):
        """``account``'s Trader for ``unit`` and ``currency``, kept per account for its last unit
        type and currency: a settlement's purses (and keys) without their lookups, in every call
        (about 1,700 instructions fewer per trade settled in calls of 2, as a venue settles;
        callgrind, bench/venue.py --settle-instructions)."""
        cdef Trader t = self.traders.get(account)
        if t is None or t.unit is not unit or t.currency is not currency:
            if t is not None:
                t.units.trader = t.cash.trader = NULL
            t = Trader.__new__(Trader)
            t.unit, t.currency = unit, currency
            t.units, t.cash = self._purse(True, account, unit), self._purse(False, account, currency)
            t.units.trader = t.cash.trader = <PyObject*>t
            self.traders[account] = t
        return t

    cdef inline Trader _trader_of(self, Py_ssize_t pos, bint units, account, unit, currency):
        """``account``'s Trader for ``unit`` and ``currency`` found through the purse of the hold
        at ``pos`` (-1: none; None: not so found) a settlement consumes (the seller's units,
        ``units``, or the buyer's cash): about 60 instructions instead of ``_trader``'s 180
        (callgrind, bench/venue.py --instructions). A purse points to its account's Trader while
        the Trader is in ``traders`` (``_trader`` and ``bind`` clear it)."""
        cdef Purse p
        cdef Trader t
        if pos >= 0:
            p = <Purse>self.table.recs[pos].value
            if p.trader is not NULL:
                t = <Trader>p.trader
                if (t.unit is unit and t.currency is currency and (t.units if units else t.cash) is p
                        and (p.account is account or p.account == account)):
                    return t
        return None

    cdef Trader _allowed(self, Py_ssize_t pos, bint units, account, unit, currency):
        """``account``'s Trader for ``unit`` and ``currency`` (``_trader_of`` the hold at ``pos``,
        else ``_trader``) if its Account may sell (``units``), or buy ``unit``; else None (and no
        Trader made). The Account is looked up unless the accounts are at the version its Trader
        last found it allowed at (about 145 instructions fewer per account of a trade settled:
        callgrind, bench/venue.py --instructions); the same Account found again is allowed again."""
        cdef unsigned long long version = _dict_version(self.accounts)
        cdef Trader t = self._trader_of(pos, units, account, unit, currency)
        if t is not None and version != 0 and (t.seller_at if units else t.buyer_at) == version:
            return t
        acc = self.accounts.get(account)
        if acc is None:
            return None
        if t is None:
            t = self._trader(account, unit, currency)
        if not (acc is (t.seller if units else t.buyer) or _may_trade(acc, None if units else unit)):
            return None
        if type(acc) is ACCOUNT:
            if units:
                t.seller, t.seller_at = acc, version
            else:
                t.buyer, t.buyer_at = acc, version
        return t

    # -- undo records --------------------------------------------------------------------

    cdef Undo* _logged(self, list log) except NULL:
        """A new undo record, its mark appended to ``log`` (the open transaction's): the caller
        fills it in before anything else can fail."""
        if self.depth == self.room:
            self.stack = <Undo*>_grown(self.stack, &self.room, sizeof(Undo))
        _append(log, self.mark)
        self.depth += 1
        return &self.stack[self.depth - 1]

    cdef void _drop(self) noexcept:
        """Forget every undo record."""
        while self.depth:
            self.depth -= 1
            Py_DECREF(<object>self.stack[self.depth].purse)
        self._forget(0)

    cdef void _forget(self, Py_ssize_t n) noexcept:
        """Forget the settlements' undo records from the ``n``-th on."""
        while self.nsettles > n:
            self.nsettles -= 1
            Py_DECREF(<object>self.settles[self.nsettles].record)
        self.nconsumed = self.settles[n - 1].lo + self.settles[n - 1].n if n else 0

    def begin(self):
        """An outermost transaction begins: its undo log (the registry's ``_log``), kept here too
        (read without a lookup: about 130 instructions per hold change), with room for as many
        entries as the last transaction's that ended with some (no list growth, which copies it,
        in a batch like the last: about 45 instructions fewer per venue message; callgrind)."""
        self.log = _roomy(self.logged)
        return self.log

    def end(self):
        """The outermost transaction ended (committed or undone): forget its log and undo records."""
        self._drop()
        if self.log:
            self.logged = len(self.log)
        self.log = None
        self.lent = False

    cdef object _lend(self):
        """The reference ledger, to which a call is handed (it logs its own undo entries; ``lent``
        until the transaction, the one it may open, ends)."""
        self.lent = True
        return self.ref

    def undo(self):
        """Undo the newest undo record (``Store._undo``, at its mark in the log)."""
        cdef Undo r = self.stack[self.depth - 1]
        cdef Purse purse = <Purse>r.purse
        cdef HoldTable table = self.table
        cdef Py_ssize_t pos = table.find(r.hold)
        self.depth -= 1
        Py_DECREF(purse)  # ``purse`` holds its own reference
        if r.existed:
            table.put(r.hold, purse, r.left)
        elif pos >= 0:
            table.remove(pos)
        purse.reserved -= r.delta
        if r.txid >= 0:
            self.meta.txid = r.txid
            self.journal._truncate(r.jlen)

    def marks(self):
        """The hold id and ``_MISSING`` (absent before) or None (present) of each undo record of the
        open transaction, oldest first, flat (``[hold, before, hold, before, ...]``: no tuple per
        record): the k-th pair is the k-th mark in its log (the SQL commit's)."""
        cdef Py_ssize_t i
        out = []
        for i in range(self.depth):
            out.append(self.stack[i].hold)
            out.append(None if self.stack[i].existed else MISSING)
        return out

    def touched(self, list log, set pages, list records):
        """As the reference's ``touched``: the holds the open transaction changed, each with
        ``_MISSING`` (absent before it) or None (present), but those absent both before and after
        it (taken and used up: nothing to write), and ``log`` (its undo log) without this
        ledger's marks and runs of settlements (their keys put in ``pages`` and ``records`` as
        ``settled_keys`` puts them), so the SQL commit takes no Python step per hold change (2,100
        instructions fewer per venue message on SQLite: bench/venue.py --instructions --backend
        sqlite) or per run. A hold's first change tells which, and only this ledger's records are
        in order here: when others changed holds too (the reference ledger, ``lent``, or a rule
        family, an entry on the hold table), no holds and the log as it is (``records`` as it was),
        which the commit walks in order (its marks through ``marks``). Each hold's first change is
        found by a C hash set of the records' holds, so only a hold to write takes a dict entry
        (about 580 instructions fewer per venue message on SQLite)."""
        cdef dict holds = {}
        cdef list rest = []
        cdef Py_ssize_t i, kept = len(records)
        cdef object mark = self.mark, table = self.table
        cdef Seen put
        if self.lent:
            return holds, log
        _forget_pages(&put)
        for e in log:
            if e is mark:
                continue
            if type(e) is Run:
                self._run_keys(<Run>e, pages, &put, records)
            elif (<tuple>e)[0] is table:
                del records[kept:]
                return holds, log
            else:
                rest.append(e)
        cdef Py_ssize_t bits = 4, mask, j
        while (<Py_ssize_t>1 << bits) < 2 * self.depth:
            bits += 1
        mask = (<Py_ssize_t>1 << bits) - 1
        cdef Py_ssize_t* seen = <Py_ssize_t*>PyMem_Calloc(mask + 1, sizeof(Py_ssize_t))  # 1 + a record
        cdef Undo* r
        if seen is NULL:
            raise MemoryError()
        try:
            for i in range(self.depth):  # each hold's first change, found by a C hash set of holds
                r = &self.stack[i]
                j = <Py_ssize_t>((<unsigned long long>r.hold * 0x9E3779B97F4A7C15ULL) >> (64 - bits))
                while seen[j] and self.stack[seen[j] - 1].hold != r.hold:
                    j = (j + 1) & mask
                if seen[j]:
                    continue
                seen[j] = i + 1
                if self.table.find(r.hold) >= 0:
                    holds[r.hold] = None if r.existed else MISSING
                elif r.existed:
                    holds[r.hold] = None
        finally:
            PyMem_Free(seen)
        return holds, rest

    def settled_keys(self, seg, set pages, dict holds, list records):
        """As the reference's ``settled_keys``, in C (the SQL commit's walk of a run of settlements:
        about 2,000 instructions fewer per venue message on SQLite, bench/venue.py --instructions),
        for a :class:`Run` of this ledger's or a segment of the reference ledger's."""
        cdef Py_ssize_t top, lo, i, n
        cdef long long first, new
        cdef Seen seen
        _forget_pages(&seen)
        if type(seg) is Run:
            self._run_keys(<Run>seg, pages, &seen, records)
            return
        top = len(seg)
        if top == 0:
            return
        new = <long long>seg[top - 9] + <Py_ssize_t>seg[top - 1]
        first = new
        while top > 0:
            r = seg[top - 10]
            first = seg[top - 9]
            n = seg[top - 1]
            lo = top - 10 - 3 * n
            for i in range(lo, top - 10, 3):
                _add_page(pages, &seen, <long long>seg[i] >> PAGE)
            records.append(r)
            if seg[top - 4] is not None:
                holds.setdefault(seg[top - 5], None)
            if seg[top - 2] is not None:
                holds.setdefault(seg[top - 3], None)
            top = lo
        _made_pages(pages, &seen, first, new)

    cdef int _run_keys(self, Run seg, set pages, Seen* seen, list records) except -1:
        """``settled_keys`` of a run of this ledger's (its settlements hold no hold changes: those
        are the ledger's records)."""
        cdef Py_ssize_t i, k
        cdef long long first, new
        cdef Settle* st
        if seg.hi == seg.lo:
            return 0
        st = &self.settles[seg.hi - 1]
        new = st.first + st.n
        first = new
        for k in range(seg.hi - 1, seg.lo - 1, -1):
            st = &self.settles[k]
            first = st.first
            for i in range(st.lo, st.lo + st.n):
                _add_page(pages, seen, self.consumed[i].bid >> PAGE)
            records.append(<object>st.record)
        _made_pages(pages, seen, first, new)
        return 0

    @staticmethod
    def cash_keys(list records, dict cash):
        """As the reference's ``cash_keys``, each key made once per account and currency object
        (found by a C hash set of the pairs' addresses; equal names in other objects make a key
        again, which the dict keeps once)."""
        cdef Py_ssize_t bits = 4, mask, j, k
        cdef PyObject* pair[2]
        while (<Py_ssize_t>1 << bits) < 4 * len(records):
            bits += 1
        mask = (<Py_ssize_t>1 << bits) - 1
        cdef PyObject** seen = <PyObject**>PyMem_Calloc(2 << bits, sizeof(PyObject*))  # (account, currency)
        if seen is NULL:
            raise MemoryError()
        try:
            for r in records:
                if type(r) is SETTLED:
                    buyer, seller = field(r, S_BUYER, "buyer"), field(r, S_SELLER, "seller")
                    currency = field(r, S_CURRENCY, "currency")
                else:
                    buyer, seller, currency = r.buyer, r.seller, r.currency
                pair[0], pair[1] = <PyObject*>buyer, <PyObject*>seller
                for k in range(2):
                    j = <Py_ssize_t>((((<size_t>pair[k]) ^ (<size_t><PyObject*>currency << 1)) * 0x9E3779B97F4A7C15ULL)
                                     >> (64 - bits))
                    while seen[2 * j] is not NULL and (seen[2 * j] != pair[k] or seen[2 * j + 1] != <PyObject*>currency):
                        j = (j + 1) & mask
                    if seen[2 * j] is NULL:
                        seen[2 * j], seen[2 * j + 1] = pair[k], <PyObject*>currency
                        cash[(<object>pair[k], currency)] = None
        finally:
            PyMem_Free(seen)

    def run_values(self, seg):
        """The undo values of a run of fast-path settlements as the reference's segment (see
        ``CashRules._undo_fast``), which undoes them: a :class:`Run`'s made from its C records, which
        are taken off (undo walks the log newest first, so they are the newest); a reference
        segment as it is."""
        if type(seg) is not Run:
            return seg
        cdef Run run = <Run>seg
        cdef list out = []
        cdef Settle* st
        cdef Py_ssize_t k
        for k in range(run.lo, run.hi):
            st = &self.settles[k]
            out += self._triples(st.lo, st.n)
            out += [<object>st.record, st.first, st.b_held if st.b_present else MISSING,
                    st.s_cash if st.s_present else MISSING, st.jlen, None, None, None, None, st.n]
        self._forget(run.lo)
        run.hi = run.lo
        return out

    cdef list _triples(self, Py_ssize_t lo, Py_ssize_t n):
        """The block triples of ``consumed[lo:lo + n]`` as the reference's segment has them (the
        compiled ledger's: the block's first serial before, not the block; see ``put_back``)."""
        cdef list out = []
        cdef Py_ssize_t i
        for i in range(lo, lo + n):
            out += [self.consumed[i].bid, self.consumed[i].start, self.consumed[i].popped]
        return out

    # -- holds -------------------------------------------------------------------------

    def reserve(self, hold, account, str kind, asset, amount):
        """As the reference's ``reserve``."""
        return self._reserve(hold, account, kind, asset, amount)

    cdef long long _reserve(self, hold, account, str kind, asset, amount) except -1:
        """``reserve``, its txid as a C integer."""
        cdef bint units = kind is UNITS or (kind is not CASH and kind == UNITS)
        cdef int over_a = 0, over_h = 0
        cdef long long a, h
        if type(amount) is not int or type(hold) is not int or type(account) is not str:
            return self._lend().reserve(hold, account, kind, asset, amount)
        a = _long_long(amount, &over_a)
        h = _long_long(hold, &over_h)
        if over_a or over_h:
            return self._lend().reserve(hold, account, kind, asset, amount)
        return self._take(h, account, units, asset, a)

    cdef long long _take(self, long long h, str account, bint units, asset, long long a) except -1:
        """``reserve`` of hold ``h`` and amount ``a`` (units of the unit type ``asset`` when
        ``units``, else cash of the currency ``asset``) for ``account``, its txid as a C integer:
        ``_held``, else the reference (in a transaction of its own when none is open)."""
        cdef long long txid = self._held(h, account, units, asset, a)
        if txid != NOT_HELD:
            return txid
        if self.log is None:
            with self.reg.transaction():
                return self._take(h, account, units, asset, a)
        return self._lend().reserve(h, account, UNITS if units else CASH, asset, a)

    cdef long long _held(self, long long h, str account, bint units, asset, long long a) except -1:
        """``_take``'s common case (the gate's call: no int object, no exception to catch): every
        check passes in an open transaction; its txid, or NOT_HELD (nothing done: the reference
        says what, or refuses)."""
        cdef list log = self.log
        cdef long long txid0
        cdef Purse purse
        cdef Known k
        cdef Undo* r
        if (log is None or a <= 0 or h < 0 or self.table.find(h) >= 0
                or (type(asset) is not UNIT_TYPE if units
                    else (type(asset) is not str or PyUnicode_GET_LENGTH(asset) == 0))):
            return NOT_HELD
        k = self._known(account)
        if k.tag == 0 or k.tag != _dict_version(self.accounts):
            acc = self.accounts.get(account)
            if acc is None or type(acc) is not ACCOUNT or field(acc, A_STATUS, "status") is not OPEN:
                return NOT_HELD
            k.tag = _dict_version(self.accounts)
        if units:
            if k.unit is not asset:
                k.units, k.unit = self._purse(True, account, asset), asset
            purse = k.units
        else:
            if k.currency is not asset:
                k.cash, k.currency = self._purse(False, account, asset), asset
            purse = k.cash
        if purse.have - purse.reserved < a:
            return NOT_HELD
        txid0 = self.meta.txid
        self.table.room()
        r = self._logged(log)
        r.hold, r.existed, r.left, r.delta, r.txid, r.jlen = h, False, 0, a, txid0, self.journal.n
        Py_INCREF(purse)
        r.purse = <PyObject*>purse
        self.table.insert(h, purse, a)
        purse.reserved += a
        self.meta.txid = txid0 + 1
        self.journal.hold_row(txid0 + 1, purse, a, h)
        return txid0 + 1

    def release(self, hold, amount=None):
        """As the reference's ``release``."""
        return self._release(hold, amount)

    cdef long long _release(self, hold, amount) except -1:
        """``release``, its txid as a C integer (the gate's call: no int object)."""
        cdef list log = self.log
        cdef int over = 0
        cdef long long a, left
        cdef Py_ssize_t pos
        cdef IdRec* rec
        if log is None:
            with self.reg.transaction():
                return self._release(hold, amount)
        pos = self.table.find_obj(hold)
        if pos < 0:
            return self._lend().release(hold, amount)
        rec = &self.table.recs[pos]
        left = rec.amount
        if amount is None:
            a = left
        elif type(amount) is not int:
            return self._lend().release(hold, amount)
        else:
            a = _long_long(amount, &over)
            if over or a <= 0 or a > left:
                return self._lend().release(hold, amount)
        return self._give_back(log, pos, a)

    cdef long long _give_back(self, list log, Py_ssize_t pos, long long a) except -1:
        """Release ``a`` (0 < ``a`` <= what is left) of the hold at ``pos`` in the open
        transaction whose undo log is ``log``; its txid."""
        cdef IdRec* rec = &self.table.recs[pos]
        cdef long long h = rec.id, left = rec.amount, txid0 = self.meta.txid
        cdef Purse purse = <Purse>rec.value
        cdef Undo* r = self._logged(log)
        r.hold, r.existed, r.left, r.delta, r.txid, r.jlen = h, True, left, -a, txid0, self.journal.n
        Py_INCREF(purse)
        r.purse = <PyObject*>purse
        if a == left:
            self.table.remove(pos)
        else:
            self.table.recs[pos].amount = left - a
        purse.reserved -= a
        self.meta.txid = txid0 + 1
        self.journal.hold_row(txid0 + 1, purse, -a, h)
        return txid0 + 1

    cdef int _cut(self, list log, Py_ssize_t pos, long long cut) except -1:
        """Take ``cut`` (at most what is left) of the hold at ``pos`` for a settlement."""
        cdef HoldTable table = self.table
        cdef long long hold = table.recs[pos].id, left = table.recs[pos].amount
        cdef Purse purse = <Purse>table.recs[pos].value
        cdef Undo* r = self._logged(log)
        r.hold, r.existed, r.left, r.delta, r.txid, r.jlen = hold, True, left, -cut, -1, 0
        Py_INCREF(purse)
        r.purse = <PyObject*>purse
        if cut < left:
            table.recs[pos].amount = left - cut
        else:
            table.remove(pos)
        purse.reserved -= cut
        return 0

    # -- settlement ----------------------------------------------------------------------

    cpdef settle(self, rows, bint dup_raises):
        """As the reference's ``settle`` (the only settlement path; see there). Inside a
        transaction (a venue's batch) it marks the undo log as a nested transaction does, without
        making one (about 1,500 instructions per call)."""
        return self._call(rows, dup_raises, None, None)

    cdef list settle_trades(self, list trades, unit, currency):
        """``settle(rows, False)`` of the rows of ``trades``, Trade events of an instrument of
        ``unit`` and ``currency`` whose amounts are below 2**63: each trade's terms read from its
        event, no row made (see ``_row``; about 100 instructions fewer per venue message; callgrind,
        bench/venue.py --instructions)."""
        return self._call(trades, False, unit, currency)

    cdef list _call(self, rows, bint dup_raises, unit, currency):
        """``settle`` of ``rows``, or of Trade events in ``unit`` and ``currency`` (not None)."""
        reg = self.reg
        if self.hooked or "_between_legs" in self.attrs or self.blocks.more:  # a test's hook between
            if unit is not None:  # the legs, or blocks that are not rows
                rows = [_row(t, unit, currency) for t in rows]
            return self._lend().settle(rows, dup_raises)
        cdef list log = self.log
        cdef Py_ssize_t mark
        if log is None:
            with reg.transaction():
                return self._settle(reg, reg._log, rows, dup_raises, unit, currency)
        mark = len(log)
        try:
            return self._settle(reg, log, rows, dup_raises, unit, currency)
        except BaseException:
            reg._undo(log, mark)
            raise

    cdef list _settle(self, reg, list log, rows, bint dup_raises, t_unit, t_currency):
        """The settlement of ``rows`` (or of Trade events in ``t_unit`` and ``t_currency``, not None)
        in the open transaction whose undo log is ``log``."""
        cdef list out = []
        cdef Run run = None
        cdef Py_ssize_t seg_end = -1, clo, jlen, n
        cdef long long nid = 0, txid = 0, first, txid0, qty, amount, s_held = 0, b_cash = 0, s_cash2 = 0, need, start, end
        cdef long long u_cut = 0, c_cut = 0, u_free, c_free
        cdef Py_ssize_t u_pos = -1, c_pos = -1
        cdef Settlements settlements = self.settlements
        cdef long long tid
        cdef Py_ssize_t pos
        cdef Blocks blocks = self.blocks
        cdef dict index = self.index
        cdef Py_ssize_t i
        cdef Counters meta = self.meta
        cdef HoldTable table = self.table
        cdef Purse s_units, s_cash_purse, b_units, b_cash_purse  # the seller's and the buyer's
        cdef Journal journal = self.journal
        cdef Trader s_trader, b_trader
        cdef bint fast, differ, b_present, s_present
        cdef long long b_held, s_cash
        cdef Settle* st
        cdef PyObject* fields[8]  # a Settled's (``_struct``)
        cdef object a, tx
        new = None  # the newest block's id (nid as an int object, made once)
        for row in rows:
            if t_unit is None:
                trade_id, seller, buyer, unit, q, currency, a, unit_hold, cash_hold = row
                qty = _small_value(q)
                amount = _small_value(a)
            else:
                trade_id = field(row, T_SEQ, "seq")
                seller = field(row, T_SELLER, "sell_account")
                buyer = field(row, T_BUYER, "buy_account")
                q = field(row, T_QTY, "qty")
                qty = _small_value(q)
                amount = _small_value(field(row, T_PRICE, "price"))  # times qty in C, both below 2**30
                amount = amount * qty if amount > 0 and qty > 0 else -1  # (about 100 instructions fewer
                unit_hold = field(row, T_SELL_ID, "sell_id")  # per trade than in ints)
                cash_hold = field(row, T_BUY_ID, "buy_id")
                unit, currency = t_unit, t_currency
            tid = _small_value(trade_id)
            if tid < 0 or qty < 1 or not 1 <= amount <= SMALL:
                out += self._lend().settle((row if t_unit is None else _row(row, unit, currency),),
                                           dup_raises)  # the exact checks, and such a trade
                seg_end = -1  # the reference logged: open a new run
                continue
            if t_unit is not None:
                a = amount
            pos = settlements.find(tid)
            if pos >= 0:
                done = <object>settlements.recs[pos].value
                if (done.seller, done.buyer, done.unit, done.qty, done.currency, done.amount) != (
                        seller, buyer, unit, qty, currency, amount):
                    err = DuplicateTrade(f"trade {trade_id} was already recorded with other terms")
                    if dup_raises:
                        raise err
                    out.append(SettlementFailed(trade_id, err.code, str(err), seller, buyer, unit, qty,
                                                currency, amount))
                else:
                    out.append(done)
                continue
            fast = False
            if type(unit) is not UNIT_TYPE:
                out += self._lend().settle((row if t_unit is None else _row(row, unit, currency),), dup_raises)
                seg_end = -1
                continue
            if type(seller) is str and type(buyer) is str:  # compared as strs (no rich comparison)
                differ = not ((<str>seller) == (<str>buyer))
            else:
                differ = seller != buyer
            if differ and type(currency) is str and PyUnicode_GET_LENGTH(currency):
                if len(log) != seg_end:  # something else was logged since: open a new run
                    run = Run.__new__(Run)
                    run.lo = run.hi = self.nsettles
                    _append(log, run)
                    seg_end = len(log)
                    nid = meta.block
                    txid = meta.txid
                # each account as its Trader last found it allowed (the same frozen Account is
                # allowed again), else checked: about 1,000 instructions fewer per trade settled
                # in calls of 2 than checks per call, 244 per venue message (callgrind,
                # bench/venue.py --settle-instructions and --instructions)
                u_pos = table.find_obj(unit_hold)  # the holds the trade consumes (see below)
                c_pos = table.find_obj(cash_hold)
                s_trader = self._allowed(u_pos, True, seller, unit, currency)
                fast = s_trader is not None
                if fast:
                    b_trader = self._allowed(c_pos, False, buyer, unit, currency)
                    fast = b_trader is not None
                if fast:
                    s_units, s_cash_purse = s_trader.units, s_trader.cash
                    b_units, b_cash_purse = b_trader.units, b_trader.cash
                    s_held = s_units.have
                    b_cash = b_cash_purse.have
                    u_free = s_held - s_units.reserved
                    c_free = b_cash - b_cash_purse.reserved
                    u_cut = c_cut = 0
                    # the holds the trade consumes (its seller's of the unit type, its buyer's of
                    # the currency: the same purse), which count as free for it
                    if u_pos >= 0 and table.recs[u_pos].value == <PyObject*>s_units:
                        u_cut = min(qty, table.recs[u_pos].amount)
                        u_free += u_cut
                    if c_pos >= 0 and table.recs[c_pos].value == <PyObject*>b_cash_purse:
                        c_cut = min(amount, table.recs[c_pos].amount)
                        c_free += c_cut
                    if not s_cash_purse.present:
                        s_cash2 = amount
                    elif s_cash_purse.have <= INT64_MAX - amount:
                        s_cash2 = s_cash_purse.have + amount
                    else:
                        fast = False
                    fast = fast and u_free >= qty and c_free >= amount
            if not fast:  # the trade is refused: say why (nothing has changed)
                try:
                    reg._refuse_settlement(trade_id, seller, buyer, unit, qty, currency, amount,
                                           unit_hold, cash_hold)
                except RegistryError as e:
                    record = SettlementFailed(trade_id, e.code, str(e), str(seller), str(buyer), str(unit),
                                              qty, str(currency), amount)
                log.append((settlements, trade_id, MISSING))
                settlements.put(tid, record, 0)
                out.append(record)
                continue
            inner = s_units.queue
            binner = b_units.queue
            first = nid
            txid0 = txid
            jlen = journal.n
            b_held = b_units.have  # as they were, for the undo record
            b_present = b_units.present
            s_cash = s_cash_purse.have
            s_present = s_cash_purse.present
            clo = self.nconsumed
            try:
                bid = inner[0]
                i = bid
                start = blocks.first(i)
                if blocks.last(i) - start >= qty:  # the common case: the oldest block is split
                    nid += 1
                    new = nid
                    self._consume(i, start, False)
                    blocks.split(i, start + qty)
                    blocks.moved(nid, i, start, start + qty - 1, buyer)
                    _push(binner, new)
                else:
                    need = qty
                    while need:
                        bid = inner[0]
                        i = bid
                        start = blocks.first(i)
                        end = blocks.last(i)
                        nid += 1
                        new = nid
                        if end - start + 1 <= need:
                            self._consume(i, start, True)
                            inner.popleft()
                            blocks.take(i)
                            need -= end - start + 1
                            blocks.moved(nid, i, start, end, buyer)
                        else:
                            self._consume(i, start, False)
                            blocks.split(i, start + need)
                            blocks.moved(nid, i, start, start + need - 1, buyer)
                            need = 0
                        _push(binner, new)
                meta.block = nid
                s_units.have = s_held - qty
                b_units.have += qty
                b_units.present = True
                b_cash_purse.have = b_cash - amount
                s_cash_purse.have = s_cash2
                s_cash_purse.present = True
                if u_cut:  # each an undo record of its own (the run keeps none of holds)
                    self._cut(log, u_pos, u_cut)
                if c_cut:
                    self._cut(log, c_pos, c_cut)
                if u_cut or c_cut:
                    seg_end = len(log)  # the marks concern holds alone: the run goes on
                txid = txid0 + 1
                tx = txid
                meta.txid = txid
                fields[0], fields[1], fields[2], fields[3] = <PyObject*>trade_id, <PyObject*>tx, <PyObject*>seller, <PyObject*>buyer
                fields[4], fields[5], fields[6], fields[7] = <PyObject*>unit, <PyObject*>q, <PyObject*>currency, <PyObject*>a
                record = _struct(SETTLED, SETTLED_AT, fields, 8)
                journal.push(record)
                settlements.put(tid, record, 0)
                out.append(record)
            except BaseException:  # undo this half-applied settlement, then the batch's
                n = self.nconsumed - clo
                reg._undo_fast_one(seller, buyer, unit, currency, trade_id, first, s_held,
                                   b_held if b_present else MISSING, b_cash, s_cash if s_present else MISSING,
                                   txid0, jlen, self._triples(clo, n), 0, n)
                self.nconsumed = clo  # (the holds it took are undone at their marks, after this)
                raise
            st = self._settle_record()
            Py_INCREF(record)
            st.record = <PyObject*>record
            st.first, st.b_held, st.s_cash, st.jlen, st.lo, st.n = first, b_held, s_cash, jlen, clo, nid - first
            st.b_present, st.s_present = b_present, s_present
            run.hi = self.nsettles
        return out

    cdef inline int _consume(self, Py_ssize_t bid, long long start, bint popped) except -1:
        """Record that a settlement split block ``bid`` (its first serial ``start`` before) or,
        ``popped``, moved it whole."""
        if self.nconsumed == self.consumed_room:
            self.consumed = <Consumed*>_grown(self.consumed, &self.consumed_room, sizeof(Consumed))
        self.consumed[self.nconsumed].bid = bid
        self.consumed[self.nconsumed].start = start
        self.consumed[self.nconsumed].popped = popped
        self.nconsumed += 1
        return 0

    cdef Settle* _settle_record(self) except NULL:
        """A new settlement's undo record (``Run``): the caller fills it in."""
        if self.nsettles == self.settles_room:
            self.settles = <Settle*>_grown(self.settles, &self.settles_room, sizeof(Settle))
        self.nsettles += 1
        return &self.settles[self.nsettles - 1]



@cython.final
cdef class Limits:
    """A venue's resting buys that may still hold cash (:attr:`HoldGate.buys
    <carbonbook.venue.holds.HoldGate.buys>`: order id -> limit price, 0 for a market buy) for the
    compiled gate: C integers in an open-addressing table (linear probing, removal by shifting
    back, no tombstones), read by the hold gate as the dict it was (``get``, ``[]``, ``in``,
    assignment, ``del``, ``pop``, ``len``, iteration, ``items``, ``==``; no order kept, which
    nothing reads). Ids and limits are ints of 0 to 2**63 - 1 (an engine's order ids and prices);
    another key is absent, another value refused (TypeError, OverflowError or ValueError). Costs:
    a lookup, insertion or removal about 20 instructions in C (a dict's 60 to 100 from the gate)."""

    cdef long long* keys  # EMPTY_KEY: a free slot
    cdef long long* vals
    cdef Py_ssize_t n, bits  # live entries; the table has 2**bits slots (0: none yet)

    def __dealloc__(self):
        PyMem_Free(self.keys)
        PyMem_Free(self.vals)

    cdef inline Py_ssize_t _home(self, long long key) noexcept:
        return <Py_ssize_t>((<unsigned long long>key * 0x9E3779B97F4A7C15ULL) >> (64 - self.bits))

    cdef Py_ssize_t find(self, long long key) noexcept:
        """The slot of ``key``, or -1."""
        cdef Py_ssize_t i, mask
        if self.bits == 0:
            return -1
        mask = (<Py_ssize_t>1 << self.bits) - 1
        i = self._home(key)
        while self.keys[i] != EMPTY_KEY:
            if self.keys[i] == key:
                return i
            i = (i + 1) & mask
        return -1

    cdef Py_ssize_t find_obj(self, key) noexcept:
        """The slot of the int ``key``, or -1 (for any other key too)."""
        cdef int over = 0
        cdef long long k
        if type(key) is not int:
            return -1
        k = _long_long(key, &over)
        return -1 if over or k < 0 else self.find(k)

    cdef int put(self, long long key, long long value) except -1:
        """Set ``key`` (0 to 2**63 - 1) to ``value``."""
        cdef Py_ssize_t i, mask, size, old
        cdef long long* keys
        cdef long long* vals
        if (self.n + 1) * 2 > (<Py_ssize_t>1 << self.bits):  # (always with no table: bits 0)
            old = (<Py_ssize_t>1 << self.bits) if self.bits else 0
            size = max(64, 2 * old)
            keys = <long long*>PyMem_Malloc(size * sizeof(long long))
            vals = <long long*>PyMem_Malloc(size * sizeof(long long))
            if keys is NULL or vals is NULL:
                PyMem_Free(keys)
                PyMem_Free(vals)
                raise MemoryError()
            memset(keys, 0xFF, size * sizeof(long long))  # EMPTY_KEY in every slot
            self.keys, keys = keys, self.keys
            self.vals, vals = vals, self.vals
            self.bits = size.bit_length() - 1
            self.n = 0
            for i in range(old):
                if keys[i] != EMPTY_KEY:
                    self._insert(keys[i], vals[i])
            PyMem_Free(keys)
            PyMem_Free(vals)
        mask = (<Py_ssize_t>1 << self.bits) - 1
        i = self._home(key)
        while self.keys[i] != EMPTY_KEY:
            if self.keys[i] == key:
                self.vals[i] = value
                return 0
            i = (i + 1) & mask
        self.keys[i], self.vals[i] = key, value
        self.n += 1
        return 0

    cdef inline void _insert(self, long long key, long long value) noexcept:
        """Put a key known absent, with room for it."""
        cdef Py_ssize_t mask = (<Py_ssize_t>1 << self.bits) - 1
        cdef Py_ssize_t i = self._home(key)
        while self.keys[i] != EMPTY_KEY:
            i = (i + 1) & mask
        self.keys[i], self.vals[i] = key, value
        self.n += 1

    cdef void remove(self, Py_ssize_t pos) noexcept:
        """Remove the entry at slot ``pos``: the entries after it in its run shift back."""
        cdef Py_ssize_t mask = (<Py_ssize_t>1 << self.bits) - 1
        cdef Py_ssize_t i = pos, j = pos, home
        while True:
            j = (j + 1) & mask
            if self.keys[j] == EMPTY_KEY:
                break
            home = self._home(self.keys[j])
            if (j > i and (home <= i or home > j)) or (j < i and home <= i and home > j):
                self.keys[i], self.vals[i] = self.keys[j], self.vals[j]
                i = j
        self.keys[i] = EMPTY_KEY
        self.n -= 1

    cdef inline long long _key(self, key) except -1:
        cdef long long k = key  # TypeError or OverflowError
        if k < 0:
            raise ValueError(f"a buy's order id is 0 to 2**63 - 1, not {key!r}")
        return k

    def __getitem__(self, key):
        cdef Py_ssize_t pos = self.find_obj(key)
        if pos < 0:
            raise KeyError(key)
        return self.vals[pos]

    def get(self, key, default=None):
        cdef Py_ssize_t pos = self.find_obj(key)
        return default if pos < 0 else self.vals[pos]

    def __contains__(self, key):
        return self.find_obj(key) >= 0

    def __setitem__(self, key, long long value):
        if value < 0:
            raise ValueError(f"a buy's limit is 0 to 2**63 - 1, not {value!r}")
        self.put(self._key(key), value)

    def __delitem__(self, key):
        cdef Py_ssize_t pos = self.find_obj(key)
        if pos < 0:
            raise KeyError(key)
        self.remove(pos)

    def pop(self, key, *default):
        cdef Py_ssize_t pos = self.find_obj(key)
        cdef long long value
        if pos < 0:
            if default:
                return default[0]
            raise KeyError(key)
        value = self.vals[pos]
        self.remove(pos)
        return value

    def __len__(self):
        return self.n

    def items(self):
        cdef Py_ssize_t i
        return [(self.keys[i], self.vals[i]) for i in range((<Py_ssize_t>1 << self.bits) if self.bits else 0)
                if self.keys[i] != EMPTY_KEY]

    def __iter__(self):
        return iter([k for k, _ in self.items()])

    def __eq__(self, other):
        return dict(self.items()) == other

    def __repr__(self):
        return f"Limits({dict(self.items())!r})"


cdef extern from *:
    """
    /* Empty the list ``items`` keeping its room (``del items[:]`` frees it). */
    static void cv_empty(PyObject* items) {
        Py_ssize_t i, n = PyList_GET_SIZE(items);
        Py_SET_SIZE(items, 0);
        for (i = 0; i < n; i++)
            Py_DECREF(PyList_GET_ITEM(items, i));
    }
    """
    void _empty "cv_empty"(list items) noexcept


cdef object _gate_admit(object gate, object book, object cmd):
    return (<Gate>gate)._admit(book, cmd)


cdef int _gate_stage(object gate, object command, list events, Py_ssize_t start) except -1:
    return (<Gate>gate)._stage(command, events, start)


@cython.final
cdef class Gate:
    """A venue's hold gate and stage over the compiled ``ledger`` of its registry, in C: the
    common case of :class:`~carbonbook.venue.holds.HoldGate` ``holds`` (``admit``) and of the venue's
    ``stage`` (releases, then the settlement of the command's trades with ``lag=0``), sharing
    their state (the resting buys, which ``holds`` keeps in the gate's :class:`Limits`, made by
    :meth:`new_buys`; the settlement adapter). Each call it does not serve (while
    replaying, a refusal, an auction, a listing, a settlement that fails, settlement with a lag)
    goes to them whole, so the events and the registry are the same.

    Costs: one C call per order (its hold) and per command (its stage), both from the compiled
    core (:mod:`carbonbook._hooks`), and the ledger's work. The settlement adapter's lag and
    batch are read once, when it is made; the venue's and its checkpoint's replay flags from their
    ``__dict__`` (a dict lookup, not an attribute's: about 100 instructions fewer each) until they
    are first seen false, then no more (a replay never starts again: about 220 instructions fewer
    per venue message), the resting buys' limits as C integers (about 230 fewer than a dict's),
    an order's book's unit type and currency once per book in a row, and whether a buy order is
    still open from the engine's ``open_order`` (on the compiled core its C function, offered as
    ``c_open_order``: about 40 instructions fewer per venue message than the call of the partial).
    An order's and an event's fields are read in place, borrowed. Per busy venue message: the holds
    taken about 375 instructions (740 before the ledger's slots of accounts seen, ``Ledger._held``,
    the reads in place and the final classes), the stage without its settlement about 370 (515; 390
    with a list of trades per command), its settlement's own part (the trades' checks, the
    instrument, the ``trade_settled`` events) about 200 (callgrind of bench/venue.py --instructions)."""

    cdef Ledger ledger
    cdef object holds, settler, stage, take, open_order, currency, seq
    cdef OpenOrderC open_c  # open_order's C function and index (the compiled core's), or NULL
    cdef object index
    cdef Limits buys
    cdef dict instruments
    cdef dict venue_attrs, checkpoint_attrs  # their __dict__
    cdef object book, unit, book_currency  # the last book an order came to, its unit type and currency
    cdef object symbol, unit_of, currency_of  # the last instrument settled, its unit type and currency,
    cdef unsigned long long instruments_at  # found again without a lookup while the instruments are at
                                            # this version of their dict (0: unknown)
    cdef bint replayed, folded  # the checkpoint's replay and the venue's folding one by one ended (see _folding)
    cdef bint lagged  # the settlement adapter's lag (fixed when the venue is made) is not 0
    cdef Py_ssize_t batch  # and its trades per settlement transaction
    cdef list trades  # a command's trades: one list, emptied at each stage that reads events (``_empty``),
                      # about 50 instructions fewer per venue message than a list per command (callgrind)

    c_admit = PyCapsule_New(<void*><AdmitC>_gate_admit, b"carbonbook.admit", NULL)
    c_stage = PyCapsule_New(<void*><StageC>_gate_stage, b"carbonbook.stage", NULL)

    def __init__(self, Ledger ledger, holds, settler, venue, stage):
        self.ledger = ledger
        self.holds = holds
        self.settler = settler
        adapter = settler.adapter
        if not adapter.use_holds or adapter.keep_results or adapter.on_result is not None:
            raise ValueError("a gate settles as a venue's adapter does: use_holds, no results kept, no on_result")
        self.checkpoint_attrs = holds.checkpoint.__dict__
        self.venue_attrs = venue.__dict__
        self.lagged, self.batch = adapter.lag != 0, adapter.batch
        self.stage = stage
        self.take = holds.engine.take_seq
        # an itertools.count's __next__: the count, whose next is taken in C (about 40 instructions
        # fewer per venue message than the method's call; callgrind, bench/venue.py --instructions)
        seq = getattr(self.take, "__self__", None)
        self.seq = seq if type(seq) is COUNT and self.take == seq.__next__ else None
        self.open_order = open_order = holds.engine.open_order
        capsule = getattr(holds.engine._core, "c_open_order", None)
        if (type(open_order) is partial and open_order.func is holds.engine._core.open_order
                and len(open_order.args) == 1 and not open_order.keywords and capsule is not None
                and PyCapsule_IsValid(capsule, b"carbonbook.open_order")):
            self.open_c = <OpenOrderC>PyCapsule_GetPointer(capsule, b"carbonbook.open_order")
            self.index = open_order.args[0]
        self.currency = holds.currency
        if type(holds.buys) is not Limits:
            raise ValueError("a gate's hold gate keeps its resting buys in Limits (Gate.new_buys)")
        self.buys = holds.buys
        self.instruments = adapter.instruments
        self.trades = []

    @staticmethod
    def new_buys():
        """The resting buys of a hold gate this gate will serve (see :class:`Limits`)."""
        return Limits()

    # -- the book-facing interface (PreTradeRisk) ----------------------------------------

    def admit(self, book, cmd):
        """As :meth:`HoldGate.admit <carbonbook.venue.holds.HoldGate.admit>` (the compiled core calls
        it as ``c_admit``, in C)."""
        return self._admit(book, cmd)

    cdef object _admit(self, book, cmd):
        cdef int over_h = 0, over_q = 0, over_p = 0
        cdef long long h, qty, p = 0, amount
        if not self.replayed:
            if self.checkpoint_attrs["replaying"]:
                return self.holds.admit(book, cmd)
            self.replayed = True  # a checkpoint's replay never starts again
        if type(cmd) is not NEW_ORDER:
            return self.holds.admit(book, cmd)
        if book is not self.book:
            self.unit, self.book_currency = book.unit, book.currency or self.currency
            self.book = book
        # the fields read in place, borrowed (about 30 instructions fewer than ``field``'s; the
        # engine checked them: a hand-built value of another kind goes the long way)
        cdef PyObject* oid = _at(cmd, O_ID)
        cdef PyObject* account = _at(cmd, O_ACCOUNT)
        cdef PyObject* q = _at(cmd, O_QTY)
        cdef PyObject* price = _at(cmd, O_PRICE)
        cdef PyObject* side = _at(cmd, O_SIDE)
        if (oid is NULL or q is NULL or account is NULL or price is NULL or side is NULL
                or Py_TYPE(<object>oid) is not &PyLong_Type or Py_TYPE(<object>q) is not &PyLong_Type
                or Py_TYPE(<object>account) is not &PyUnicode_Type):
            return self.holds.admit(book, cmd)
        h = _long_long(<object>oid, &over_h)
        qty = _long_long(<object>q, &over_q)
        if <object>price is not None:
            p = _long_long(<object>price, &over_p) if Py_TYPE(<object>price) is &PyLong_Type else -1
        if over_h or over_q or over_p or p < 0:
            return self.holds.admit(book, cmd)
        if <object>side is SELL or (<object>side is not BUY and <object>side != BUY):
            if self.ledger._held(h, <str>account, True, self.unit, qty) == NOT_HELD:
                return self._hold(h, <str>account, True, self.unit, qty)
            return None
        if p and 0 < qty <= SMALL and p <= SMALL:  # both below 2**30: the product fits
            amount = p * qty
        else:  # a market buy (its cap), or a large price or quantity: in ints, refused the long way
            total = field(cmd, O_CAP, "cap") if <object>price is None else <object>price * <object>q
            if total is None or total > BIG or type(total) is not int:  # refused: the reference says how
                return self.holds.admit(book, cmd)
            amount = total
        if self.ledger._held(h, <str>account, False, self.book_currency, amount) == NOT_HELD:
            refused = self._hold(h, <str>account, False, self.book_currency, amount)
            if refused is not None:
                return refused
        self.buys.put(h, p)  # (an id and a price the engine checked: 0 to 2**63 - 1; 0 for a market buy)
        return None

    cdef object _hold(self, long long h, str account, bint units, asset, long long a):
        """The hold ``_admit``'s common case did not take (``Ledger._held``), taken or refused as
        the reference does: None, or the refusal recorded (the try costs about 30 instructions,
        so the common case has none)."""
        try:
            self.ledger._take(h, account, units, asset, a)
        except RegistryError as e:
            return self.holds._refused(e)
        return None

    def amend(self, book, order, price, qty):
        """As :meth:`HoldGate.amend <carbonbook.venue.holds.HoldGate.amend>` (which it calls)."""
        return self.holds.amend(book, order, price, qty)

    # -- the stage ------------------------------------------------------------------------

    @property
    def quiet(self):
        """The event classes after which a command that made only that one event needs no
        stage (:data:`carbonbook.core.engine.Stage`): accepted, rejected, modified; none while the
        venue replays (its stage folds each command into the digest)."""
        return () if self.venue_attrs["_fold_each"] else QUIET

    def __call__(self, command, list events, Py_ssize_t start):
        """The venue's stage after one command (``events[start:]`` are its events; the compiled
        core calls it as ``c_stage``, in C)."""
        self._stage(command, events, start)

    cdef int _stage(self, command, list events, Py_ssize_t start) except -1:
        cdef Py_ssize_t end = len(events), i
        cdef list trades = self.trades  # the command's trades (the last command's kept until here)
        cdef Limits buys = self.buys
        cdef Ledger ledger = self.ledger
        cdef Py_ssize_t pos
        cdef long long limit, p, q, spent = 0  # what a market buy's trades cost, in C while below 2**62
        cdef bint counted = True  # (else they all cost ``spent`` + ``more``, ints)
        cdef int over = 0
        cdef object e, cls
        cdef PyObject* hold  # the engine's event's id field, borrowed
        if end - start == 1:
            cls = type(events[start])
            if cls is not CANCELLED and cls is not AUCTION_CLEARED and cls is not LISTED:
                if self._folding():
                    self.stage(command, events, start)
                return 0
        if self._folding() or type(command) is LIST_INSTRUMENT:
            self.stage(command, events, start)
            return 0
        for i in range(start, end):
            cls = type(events[i])
            if cls is AUCTION_CLEARED or cls is LISTED:
                self.stage(command, events, start)
                return 0
        _empty(trades)
        for i in range(start, end):  # HoldGate.released, no event replayed; the engine's events, read in place
            e = events[i]
            cls = type(e)
            if cls is TRADE:
                trades.append(e)
                hold = _at(e, T_BUY_ID)
                pos = buys.find_obj(<object>hold)
                if pos < 0:
                    continue
                limit = buys.vals[pos]
                p = _small_at(e, T_PRICE)
                q = _small_at(e, T_QTY)
                if limit == 0:
                    if counted and p >= 0 and q >= 0 and spent < SPENT_MAX:  # (below 2**30 each: their
                        spent += p * q  # product too, and the sum below 2**63)
                    else:
                        more = (0 if counted else more) + field(e, T_PRICE, "price") * field(e, T_QTY, "qty")
                        counted = False
                    continue
                if p >= 0 and q >= 0 and limit <= SMALL:  # all below 2**30: in C (with the cancels'
                    if limit > p:  # below: about 110 instructions fewer per venue message; callgrind)
                        self._give(<object>hold, (limit - p) * q)
                elif limit > field(e, T_PRICE, "price"):
                    self._release(<object>hold, (limit - field(e, T_PRICE, "price")) * field(e, T_QTY, "qty"))
            elif cls is CANCELLED:
                hold = _at(e, C_ID)
                pos = buys.find_obj(<object>hold)
                q = _small_at(e, C_QTY)
                if pos < 0:
                    if q >= 0:
                        self._give(<object>hold, q)
                    else:
                        self._release(<object>hold, field(e, C_QTY, "qty"))
                elif buys.vals[pos] != 0:
                    limit = buys.vals[pos]
                    buys.remove(pos)
                    if q >= 0 and limit <= SMALL:
                        self._give(<object>hold, limit * q)
                    else:
                        self._release(<object>hold, limit * field(e, C_QTY, "qty"))
        if type(command) is NEW_ORDER:
            cap = field(command, O_CAP, "cap")
            if cap is not None:
                oid = field(command, O_ID, "id")
                pos = buys.find_obj(oid)
                if pos >= 0:
                    limit = buys.vals[pos]
                    buys.remove(pos)
                    if limit == 0:  # (a cap and a sum below 2**63: the difference fits)
                        p = _long_long(cap, &over) if counted and type(cap) is int else -1
                        if p >= 0 and not over:
                            self._give(oid, p - spent)
                        else:
                            self._release(oid, cap - spent if counted else cap - spent - more)
        if not trades:
            return 0
        open_order = self.open_order
        for e in trades:  # a filled buy (or one done) has no more to give back
            buy_id = field(e, T_BUY_ID, "buy_id")
            pos = buys.find_obj(buy_id)
            if pos >= 0 and (self.open_c(self.index, buy_id) if self.open_c else open_order(buy_id)) is None:
                buys.remove(pos)
        return self._settle(trades, events)

    cdef inline bint _folding(self) except -1:
        """Whether the venue folds this batch's commands one by one (it replays): read of the venue
        until the first batch that does not, after which no batch does (its checkpoint's replay
        never starts again; a venue restored from a state gets a new gate)."""
        if self.folded:
            return False
        if self.venue_attrs["_fold_each"]:
            return True
        self.folded = True
        return False

    cdef int _release(self, hold, amount) except -1:
        """As :meth:`HoldGate.release <carbonbook.venue.holds.HoldGate.release>`: give back
        ``amount`` of hold ``hold``, or what is left of it if less (in C integers, the hold found
        once: about 180 instructions fewer per venue message; callgrind, bench/venue.py
        --instructions)."""
        cdef Ledger ledger = self.ledger
        cdef Py_ssize_t pos
        cdef int over = 0
        cdef long long a
        if type(amount) is int:
            a = _long_long(amount, &over)
            return 0 if over < 0 else self._give(hold, INT64_MAX if over else a)
        pos = ledger.table.find_obj(hold)
        left = 0 if pos < 0 else ledger.table.recs[pos].amount
        if amount > left:
            amount = left
        if amount > 0:
            ledger._release(hold, amount)
        return 0

    cdef int _give(self, hold, long long a) except -1:
        """``_release`` of ``a``, a C integer."""
        cdef Ledger ledger = self.ledger
        cdef Py_ssize_t pos = ledger.table.find_obj(hold)
        if pos < 0:
            return 0
        if a > ledger.table.recs[pos].amount:
            a = ledger.table.recs[pos].amount
        if a > 0:
            if ledger.log is None:
                ledger._release(hold, a)
            else:
                ledger._give_back(ledger.log, pos, a)
        return 0

    cdef int _by_settler(self, list trades, list events) except -1:
        """The settler's settlement of ``trades`` (a copy: the gate's list is kept for the next command)."""
        self.settler.settle(list(trades), events)
        return 0

    cdef int _settle(self, list trades, list events) except -1:
        """As :meth:`Settler.settle <carbonbook.venue.settler.Settler.settle>` with ``lag=0`` and
        ``SettlementAdapter._settle_chunk``: one ledger call, a ``trade_settled`` per trade (trades
        of one book, as a command makes them; any other case goes to the settler). The instrument
        is looked up when the symbol or the instruments changed since the last call (about 140
        instructions fewer per command that trades)."""
        if self.lagged or len(trades) > self.batch:
            return self._by_settler(trades, events)
        cdef object sym = <object>_at(trades[0], T_SYMBOL)  # the engine's events' fields read in place
        for t in trades:
            if _at(t, T_SYMBOL) != <PyObject*>sym:
                return self._by_settler(trades, events)
            if ((_small_at(t, T_QTY) <= 0 or _small_at(t, T_PRICE) <= 0)  # (both below 2**30: the product fits)
                    and field(t, T_PRICE, "price") * field(t, T_QTY, "qty") > BIG):
                return self._by_settler(trades, events)
        if (sym is not self.symbol or self.instruments_at == 0
                or self.instruments_at != _dict_version(self.instruments)):
            inst = self.instruments.get(sym)
            if inst is None:
                return self._by_settler(trades, events)
            self.symbol, self.unit_of, self.currency_of = sym, inst.unit, inst.currency
            self.instruments_at = _dict_version(self.instruments)
        records = self.ledger.settle_trades(trades, self.unit_of, self.currency_of)
        for r in records:
            if type(r) is not SETTLED:
                return self.settler._outcomes(records, list(trades), events) or 0
        cdef PyObject* fields[3]
        take, seq = self.take, self.seq
        for r in records:  # (the ledger's Settled records: their fields read in place)
            n = take() if seq is None else next(seq)
            fields[0], fields[1], fields[2] = <PyObject*>n, _at(r, S_TRADE_ID), _at(r, S_TXID)
            events.append(_struct(TRADE_SETTLED, TRADE_SETTLED_AT, fields, 3))
        return 0


# -- the checkpoint's digest: the commands in MessagePack ------------------------------

cdef struct Lines:
    char* data
    Py_ssize_t size, room


cdef inline int _room(Lines* out, Py_ssize_t n) except -1:
    """Make room for ``n`` more bytes."""
    if out.size + n > out.room:
        _grow(out, n)
    return 0


cdef int _grow(Lines* out, Py_ssize_t n) except -1:
    cdef char* grown = <char*>PyMem_Realloc(out.data, 2 * (out.size + n))
    if grown is NULL:
        raise MemoryError()
    out.data, out.room = grown, 2 * (out.size + n)
    return 0


cdef inline void _put(Lines* out, const char* text, Py_ssize_t n) noexcept:
    memcpy(out.data + out.size, text, n)
    out.size += n


cdef enum:
    NAME_ROOM = 250  # the longest name written here (ASCII); a longer one (or not ASCII) goes to ``encode``
    ORDER_ROOM = 16 + 12 * 16 + 6 * 9 + 2 * (2 + NAME_ROOM) + 4 * 16  # past a new order's longest (and 16)


cdef struct Members:  # a StrEnum's members (kept by the enum), each written as its
    PyObject* member[16]  # MessagePack str: 16 bytes copied, its size kept
    char packed[16][16]
    Py_ssize_t size[16]
    Py_ssize_t count


cdef object PACK = Encoder(order="deterministic").encode


cdef int _members(Members* m, cls) except -1:
    assert len(cls) <= 16
    m.count = len(cls)
    for j, member in enumerate(cls):
        packed = PACK(member)
        assert len(packed) <= 16
        m.member[j] = <PyObject*>member
        memcpy(m.packed[j], PyBytes_AS_STRING(packed), len(packed))
        m.size[j] = len(packed)
    return 0


cdef struct Key:  # a field's name as msgspec writes it in a map: 16 bytes copied, its size kept
    char b[16]
    Py_ssize_t n


cdef int _key(Key* key, name) except -1:
    packed = PACK(name)
    assert len(packed) <= 16
    memcpy(key.b, PyBytes_AS_STRING(packed), len(packed))
    key.n = len(packed)
    return 0


cdef int _head(Key* head, cls, tuple fields) except -1:
    """The map header, tag key and tag msgspec writes before the fields of ``cls``, which must be
    ``fields`` (each written here as it comes)."""
    assert cls.__struct_fields__ == fields, f"{cls.__name__}'s fields changed: write them here as they are"
    config = cls.__struct_config__
    assert len(fields) < 15 and config.tag_field == "type"
    packed = bytes([0x80 | (len(fields) + 1)]) + PACK("type") + PACK(config.tag)  # a fixmap of them all
    assert len(packed) <= 16
    memcpy(head.b, PyBytes_AS_STRING(packed), len(packed))
    head.n = len(packed)
    return 0


cdef Members SIDES, ORDER_TYPES, TIFS, STPS
_members(&SIDES, Side)
_members(&ORDER_TYPES, OrderType)
_members(&TIFS, TimeInForce)
_members(&STPS, SelfTradePrevention)
cdef Key ORDER_HEAD, CANCEL_HEAD, K_ID, K_ACCOUNT, K_SYMBOL, K_SIDE, K_QTY, K_PRICE, K_TYPE, K_TIF, K_POST, K_STP
cdef Key K_CAP, K_TS
_head(&ORDER_HEAD, NewOrder, ("id", "account", "symbol", "side", "qty", "price", "order_type", "tif", "post_only",
                             "stp", "cap", "ts"))
_head(&CANCEL_HEAD, CancelOrder, ("id", "ts"))
_key(&K_ID, "id")
_key(&K_ACCOUNT, "account")
_key(&K_SYMBOL, "symbol")
_key(&K_SIDE, "side")
_key(&K_QTY, "qty")
_key(&K_PRICE, "price")
_key(&K_TYPE, "order_type")
_key(&K_TIF, "tif")
_key(&K_POST, "post_only")
_key(&K_STP, "stp")
_key(&K_CAP, "cap")
_key(&K_TS, "ts")
cdef Py_ssize_t O_SYMBOL = slot_offset(NewOrder, "symbol")
cdef Py_ssize_t O_TYPE = slot_offset(NewOrder, "order_type")
cdef Py_ssize_t O_TIF = slot_offset(NewOrder, "tif")
cdef Py_ssize_t O_POST_ONLY = slot_offset(NewOrder, "post_only")
cdef Py_ssize_t O_STP = slot_offset(NewOrder, "stp")
cdef Py_ssize_t O_TS = slot_offset(NewOrder, "ts")
cdef Py_ssize_t X_ID = slot_offset(CancelOrder, "id")
cdef Py_ssize_t X_TS = slot_offset(CancelOrder, "ts")


cdef inline PyObject* _at(cmd, Py_ssize_t offset) noexcept:
    """The field at ``offset`` of the Struct ``cmd`` (NULL: unset)."""
    return (<PyObject**>((<char*><PyObject*>cmd) + offset))[0]


cdef inline char* _put_key(char* p, Key* key) noexcept:
    memcpy(p, key.b, 16)
    return p + key.n


# Each writer puts a field at ``p`` as msgspec writes it in a map, its key ``key`` then its value,
# and returns the end, or NULL when the value is not a plain one (an int past 64 bits, a bool for
# an int, a long name, ...: ``encode`` writes the command); given NULL, it returns NULL.

cdef inline char* _w_int(char* p, Key* key, PyObject* value, bint nullable) noexcept:
    cdef int overflow = 0
    cdef long long v
    if p is NULL or value is NULL:
        return NULL
    if type(<object>value) is int:
        v = _long_long(<object>value, &overflow)
        return NULL if overflow else _pack_int(_put_key(p, key), v)
    if nullable and <object>value is None:
        p = _put_key(p, key)
        p[0] = <char>0xc0
        return p + 1
    return NULL


cdef inline char* _w_name(char* p, Key* key, PyObject* value) noexcept:
    cdef Py_ssize_t n
    if p is NULL or value is NULL or type(<object>value) is not str or not PyUnicode_IS_ASCII(<object>value):
        return NULL
    n = PyUnicode_GET_LENGTH(<object>value)
    return NULL if n > NAME_ROOM else _pack_str(_put_key(p, key), PyUnicode_DATA(<object>value), n)


cdef inline char* _w_member(char* p, Key* key, PyObject* value, Members* m) noexcept:
    """One of ``m``'s members, by identity (a str of its value goes to ``encode``)."""
    cdef Py_ssize_t j
    if p is NULL:
        return NULL
    for j in range(m.count):
        if m.member[j] == value:
            p = _put_key(p, key)
            memcpy(p, m.packed[j], 16)
            return p + m.size[j]
    return NULL


cdef inline char* _w_bool(char* p, Key* key, PyObject* value) noexcept:
    if p is NULL or (<object>value is not True and <object>value is not False):
        return NULL
    p = _put_key(p, key)
    p[0] = <char>(0xc3 if <object>value is True else 0xc2)
    return p + 1


cdef bint _put_order(Lines* out, cmd) noexcept:
    """Write the new order ``cmd`` as msgspec writes it (room for ORDER_ROOM bytes), or say a value
    is not a plain one."""
    cdef char* p = _put_key(out.data + out.size, &ORDER_HEAD)
    p = _w_int(p, &K_ID, _at(cmd, O_ID), False)
    p = _w_name(p, &K_ACCOUNT, _at(cmd, O_ACCOUNT))
    p = _w_name(p, &K_SYMBOL, _at(cmd, O_SYMBOL))
    p = _w_member(p, &K_SIDE, _at(cmd, O_SIDE), &SIDES)
    p = _w_int(p, &K_QTY, _at(cmd, O_QTY), False)
    p = _w_int(p, &K_PRICE, _at(cmd, O_PRICE), True)
    p = _w_member(p, &K_TYPE, _at(cmd, O_TYPE), &ORDER_TYPES)
    p = _w_member(p, &K_TIF, _at(cmd, O_TIF), &TIFS)
    p = _w_bool(p, &K_POST, _at(cmd, O_POST_ONLY))
    p = _w_member(p, &K_STP, _at(cmd, O_STP), &STPS)
    p = _w_int(p, &K_CAP, _at(cmd, O_CAP), True)
    p = _w_int(p, &K_TS, _at(cmd, O_TS), True)
    if p is NULL:
        return False
    out.size = p - out.data
    return True


cdef bint _put_cancel(Lines* out, cmd) noexcept:
    """As ``_put_order``, for the cancel ``cmd``."""
    cdef char* p = _put_key(out.data + out.size, &CANCEL_HEAD)
    p = _w_int(_w_int(p, &K_ID, _at(cmd, X_ID), False), &K_TS, _at(cmd, X_TS), True)
    if p is NULL:
        return False
    out.size = p - out.data
    return True


# -- the SQL commit's runs: Settled records in MessagePack -------------------------------------

cdef Py_ssize_t S_UNIT = slot_offset(Settled, "unit")
cdef Py_ssize_t S_QTY = slot_offset(Settled, "qty")
cdef Py_ssize_t S_AMOUNT = slot_offset(Settled, "amount")
cdef object ENCODE = Encoder().encode  # the SQL commit's (``_sql``)
cdef enum:
    SETTLE_ROW_ROOM = 1 + 9 * 9  # past a settlement's named row
assert Settled.__struct_fields__ == ("trade_id", "txid", "seller", "buyer", "unit", "qty", "currency", "amount")
assert Entry.__struct_fields__[:10] == ("txid", "kind", "account", "counterparty", "unit", "qty", "currency",
                                        "amount", "ref", "detail") and len(Entry.__struct_fields__) == 13


cdef Members UNIT_TYPES
_members(&UNIT_TYPES, UnitType)
cdef Key NO_KEY  # an array's item: no key written (16 bytes copied, as for a key)
NO_KEY.n = 0


cdef tuple UNIT_VALUES = tuple(str(u) for u in UnitType)  # UNIT_TYPES' members' values, in order


cdef int _put_settle_row(Lines* out, r, Names* names, long long* prev) except -1:
    """Write the Settled record ``r``'s journal row as a run of named rows stores it
    (``_store._named``: txid less ``prev``, "settle", seller, buyer, unit, qty, currency, amount,
    trade id, each name as its index in ``names``), its txid then in ``prev`` (room for
    SETTLE_ROW_ROOM bytes): 1; or 0, nothing written and no name added, when a value is not a
    plain one (an int past 64 bits, a name not a str, ...: ``encode`` writes the row)."""
    cdef int overflow = 0
    cdef long long txid, trade, qty, amount
    cdef Py_ssize_t j, unit = -1, kind, seller, buyer, currency
    cdef char* p
    if (type(<object>_at(r, S_TXID)) is not int or type(<object>_at(r, S_TRADE_ID)) is not int
            or type(<object>_at(r, S_QTY)) is not int or type(<object>_at(r, S_AMOUNT)) is not int
            or type(<object>_at(r, S_SELLER)) is not str or type(<object>_at(r, S_BUYER)) is not str
            or type(<object>_at(r, S_CURRENCY)) is not str):
        return 0
    txid = _long_long(<object>_at(r, S_TXID), &overflow)
    trade = _long_long(<object>_at(r, S_TRADE_ID), &overflow)
    qty = _long_long(<object>_at(r, S_QTY), &overflow)
    amount = _long_long(<object>_at(r, S_AMOUNT), &overflow)
    for j in range(UNIT_TYPES.count):
        if UNIT_TYPES.member[j] == _at(r, S_UNIT):
            unit = j
    if overflow or unit < 0:
        return 0
    kind = _index(names, <PyObject*>SETTLE)  # the names in the order of the row's fields
    seller = _index(names, _at(r, S_SELLER))
    buyer = _index(names, _at(r, S_BUYER))
    unit = _index(names, PyTuple_GET_ITEM(UNIT_VALUES, unit))
    currency = _index(names, _at(r, S_CURRENCY))
    p = out.data + out.size
    p[0] = <char>(0x90 | 9)
    p = _pack_int(_pack_int(_pack_int(p + 1, txid - prev[0]), kind), seller)
    p = _pack_int(_pack_int(_pack_int(p, buyer), unit), qty)
    p = _pack_int(_pack_int(_pack_int(p, currency), amount), trade)
    out.size = p - out.data
    prev[0] = txid
    return 1


cdef int _put_object(Lines* out, Names* names, row, list items, Py_ssize_t* mark, long long* prev) except -1:
    """Journal row or settlement record ``row``, an object, as a run of named rows stores it
    (``_ledger._named_run``; ``prev``: the txid of the run's previous row, then this one's): a
    Settled record of plain values written here (``_put_settle_row``); any other row in ``items``,
    as ``encode`` is to write it (``_stretch``: a SettlementFailed as it is, its map; an Entry as
    ``_store._named`` makes it)."""
    if type(row) is SETTLED:
        _room(out, SETTLE_ROW_ROOM)
        if _put_settle_row(out, row, names, prev):
            return 0
    _stretch(out, mark, items)
    if type(row) is SettlementFailed:
        items.append(row)
        return 0
    values = _stored(row)
    items.append(_named(values, <dict>names.names, prev[0]))
    prev[0] = values[0]
    return 0


cdef int _names(Names* names, dict named) except -1:
    """``names``, no names yet, their indices in ``named`` (a new dict, kept by the caller)."""
    names.names = <PyObject*>named
    memset(names.seen, 0, sizeof(names.seen))
    names.count = 0
    return 0


cdef bytes _named_run(Lines* out, Py_ssize_t mark, Py_ssize_t n, list items, dict named, encode):
    """The run of named rows of the ``n`` rows written in ``out`` and ``items`` (see ``_array``)
    and their names ``named``: ``[1, names, rows]``."""
    rows = _array(out, mark, n, items, encode)
    return b"".join((NAMED_RUN, encode(list(named)), rows))


cdef Members BLOCK_STATES
_members(&BLOCK_STATES, BlockState)
cdef enum:
    BLOCK_ROOM = 1 + 12 * 16 + 7 * 9 + 5 * (2 + NAME_ROOM) + 16  # past a block's longest
assert len(B_NAMES) == 12 and B_NAMES[:6] == ("id", "origin", "unit", "start", "end", "holder"), \
    "a Block's fields changed: see Blocks._put"


cdef inline char* _w_plain(char* p, PyObject* value) noexcept:
    """An array's item: None, an int, a name, a unit type or a block state, as ``_put_order``'s
    writers (NULL for any other value)."""
    if p is NULL or value is NULL:
        return NULL
    if <object>value is None:
        p[0] = <char>0xc0
        return p + 1
    if type(<object>value) is int:
        return _w_int(p, &NO_KEY, value, False)
    if type(<object>value) is str:
        return _w_name(p, &NO_KEY, value)
    if type(<object>value) is UNIT_TYPE:
        return _w_member(p, &NO_KEY, value, &UNIT_TYPES)
    return _w_member(p, &NO_KEY, value, &BLOCK_STATES)


cdef int _stretch(Lines* out, Py_ssize_t* mark, list items) except -1:
    """Before a row ``encode`` writes: the rows written here since ``mark`` to ``items``, as one
    ``msgspec.Raw`` (none if there are none), and ``mark`` past them."""
    if out.size > mark[0]:
        items.append(RAW(PyBytes_FromStringAndSize(out.data + mark[0], out.size - mark[0])))
        mark[0] = out.size
    return 0


cdef bytes _array(Lines* out, Py_ssize_t mark, Py_ssize_t n, list items, encode):
    """The MessagePack array of ``n`` rows written in ``out`` after room for its header (the
    header's size, ``_header_size(n)``, is where ``mark`` began), those ``encode`` writes in
    ``items`` between the stretches (``_stretch``): with none, ``out`` as it is, its header put
    in; else ``encode`` of ``items`` and the last stretch, its header set to ``n`` rows."""
    cdef Py_ssize_t skip
    cdef char* p
    if not items:
        _room(out, 0)  # none written (no rows)
        _pack_header(out.data, n)
        return PyBytes_FromStringAndSize(out.data, out.size)
    _stretch(out, &mark, items)
    data = encode(items)
    skip = _header_size(len(items))
    result = PyBytes_FromStringAndSize(NULL, _header_size(n) + PyBytes_GET_SIZE(data) - skip)
    p = _pack_header(PyBytes_AS_STRING(result), n)
    memcpy(p, PyBytes_AS_STRING(data) + skip, PyBytes_GET_SIZE(data) - skip)
    return result


# -- the digest's checksums: zlib's CRC-32 and Adler-32, fast ------------------------------------

cdef extern from "<stdint.h>":
    ctypedef unsigned int uint32_t

cdef extern from *:
    """
    static uint32_t ck_table[256];

    static void ck_init(void) {
        for (uint32_t n = 0; n < 256; n++) {
            uint32_t c = n;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            ck_table[n] = c;
        }
    }

    /* The register (not inverted) after ``len`` bytes, a byte at a time. */
    static uint32_t ck_crc_bytes(uint32_t crc, const unsigned char *p, size_t len) {
        while (len--)
            crc = ck_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
        return crc;
    }

    #if defined(__x86_64__) && defined(__GNUC__)
    #include <emmintrin.h>
    #include <wmmintrin.h>
    #define CK_SIMD 1

    /* The register after ``len`` bytes (len >= 64, a multiple of 16), folded 64 bytes at a time by
       carry-less multiplication: Gopal et al., "Fast CRC Computation for Generic Polynomials Using
       PCLMULQDQ Instruction" (Intel, 2009), with the bit-reflected constants of its end (as in
       Linux's crc32-pclmul and Chromium's zlib). */
    __attribute__((target("pclmul,sse2")))
    static uint32_t ck_crc_fold(uint32_t crc, const unsigned char *buf, size_t len) {
        const __m128i k1k2 = _mm_set_epi64x(0x01c6e41596, 0x0154442bd4);
        const __m128i k3k4 = _mm_set_epi64x(0x00ccaa009e, 0x01751997d0);
        const __m128i k5k0 = _mm_set_epi64x(0, 0x0163cd6124);
        const __m128i poly = _mm_set_epi64x(0x01f7011641, 0x01db710641);
        const __m128i mask32 = _mm_setr_epi32(~0, 0, ~0, 0);
        __m128i x0, x1, x2, x3, x4, x5, x6, x7, x8;
        x1 = _mm_loadu_si128((const __m128i *)(buf + 0x00));
        x2 = _mm_loadu_si128((const __m128i *)(buf + 0x10));
        x3 = _mm_loadu_si128((const __m128i *)(buf + 0x20));
        x4 = _mm_loadu_si128((const __m128i *)(buf + 0x30));
        x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int)crc));
        buf += 64;
        len -= 64;
        while (len >= 64) {
            x5 = _mm_clmulepi64_si128(x1, k1k2, 0x00);
            x6 = _mm_clmulepi64_si128(x2, k1k2, 0x00);
            x7 = _mm_clmulepi64_si128(x3, k1k2, 0x00);
            x8 = _mm_clmulepi64_si128(x4, k1k2, 0x00);
            x1 = _mm_clmulepi64_si128(x1, k1k2, 0x11);
            x2 = _mm_clmulepi64_si128(x2, k1k2, 0x11);
            x3 = _mm_clmulepi64_si128(x3, k1k2, 0x11);
            x4 = _mm_clmulepi64_si128(x4, k1k2, 0x11);
            x1 = _mm_xor_si128(_mm_xor_si128(x1, x5), _mm_loadu_si128((const __m128i *)(buf + 0x00)));
            x2 = _mm_xor_si128(_mm_xor_si128(x2, x6), _mm_loadu_si128((const __m128i *)(buf + 0x10)));
            x3 = _mm_xor_si128(_mm_xor_si128(x3, x7), _mm_loadu_si128((const __m128i *)(buf + 0x20)));
            x4 = _mm_xor_si128(_mm_xor_si128(x4, x8), _mm_loadu_si128((const __m128i *)(buf + 0x30)));
            buf += 64;
            len -= 64;
        }
        x0 = k3k4;  /* fold the four into one */
        x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
        x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, x0, 0x11), x2), x5);
        x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
        x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, x0, 0x11), x3), x5);
        x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
        x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, x0, 0x11), x4), x5);
        while (len >= 16) {  /* then 16 bytes at a time */
            x2 = _mm_loadu_si128((const __m128i *)buf);
            x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
            x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, x0, 0x11), x2), x5);
            buf += 16;
            len -= 16;
        }
        x2 = _mm_clmulepi64_si128(x1, x0, 0x10);  /* 128 bits to 64 */
        x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x2);
        x2 = _mm_srli_si128(x1, 4);
        x1 = _mm_and_si128(x1, mask32);
        x1 = _mm_xor_si128(_mm_clmulepi64_si128(x1, k5k0, 0x00), x2);
        x2 = _mm_and_si128(x1, mask32);  /* Barrett reduction to 32 bits */
        x2 = _mm_clmulepi64_si128(x2, poly, 0x10);
        x2 = _mm_and_si128(x2, mask32);
        x2 = _mm_clmulepi64_si128(x2, poly, 0x00);
        x1 = _mm_xor_si128(x1, x2);
        return (uint32_t)_mm_cvtsi128_si32(_mm_srli_si128(x1, 4));
    }

    static int ck_pclmul(void) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse2");
    }

    static int ck_avx2(void) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2");
    }
    #else
    #define CK_SIMD 0
    static uint32_t ck_crc_fold(uint32_t crc, const unsigned char *buf, size_t len) { return ck_crc_bytes(crc, buf, len); }
    static int ck_pclmul(void) { return 0; }
    static int ck_avx2(void) { return 0; }
    #endif

    /* zlib's crc32(crc, buf, len). */
    static uint32_t ck_crc32(uint32_t crc, const unsigned char *buf, size_t len, int fold) {
        crc = ~crc;
        if (fold && len >= 64) {
            size_t n = len & ~(size_t)15;
            crc = ck_crc_fold(crc, buf, n);
            buf += n;
            len -= n;
        }
        return ~ck_crc_bytes(crc, buf, len);
    }

    #define CK_BASE 65521u
    #define CK_NMAX 5552  /* zlib's: the most bytes before b can pass 2**32 - 1 */

    #if CK_SIMD
    /* Adler-32's ``a`` and ``b`` after a block of ``n`` bytes read ``width`` at a time (the SIMD
       loops): ``sum`` has their sum in lanes 0 and 2, ``prefix`` the sum over the reads of the bytes
       before each in lanes 0 and 2, ``weighted`` the sum of each byte times its place from its
       read's end (``width`` to 1) in its four lanes. */
    static inline void ck_adler_block(uint32_t *a, uint32_t *b, size_t n, unsigned width, __m128i sum,
                                      __m128i prefix, __m128i weighted) {
        uint32_t s[4], p[4], w[4];
        _mm_storeu_si128((__m128i *)s, sum);
        _mm_storeu_si128((__m128i *)p, prefix);
        _mm_storeu_si128((__m128i *)w, weighted);
        uint64_t bb = (uint64_t)*b + (uint64_t)n * *a + width * ((uint64_t)p[0] + p[2])
                      + (uint64_t)w[0] + w[1] + w[2] + w[3];
        *a = (uint32_t)((*a + (uint64_t)s[0] + s[2]) % CK_BASE);
        *b = (uint32_t)(bb % CK_BASE);
    }

    /* The reads of a block of ``n`` bytes at ``buf`` (moved past them), WIDTH at a time as VEC (by
       LOAD; ADD adds lanes): ``sum``, ``prefix`` and ``weighted`` for ``ck_adler_block`` (WEIGH(x):
       the bytes of read ``x`` times their places from its end, summed in lanes; SAD against
       ``zero``: their sum). */
    #define CK_ADLER_READS(VEC, WIDTH, LOAD, ADD, SAD, WEIGH) \
        VEC sum = zero, prefix = zero, weighted = zero; \
        for (size_t k = n / WIDTH; k; k--, buf += WIDTH) { \
            VEC x = LOAD((const VEC *)buf); \
            prefix = ADD(prefix, sum); \
            sum = ADD(sum, SAD(x, zero)); \
            weighted = ADD(weighted, WEIGH(x)); \
        }

    static inline __m128i ck_weigh16(__m128i x) {
        const __m128i zero = _mm_setzero_si128();
        return _mm_add_epi32(_mm_madd_epi16(_mm_unpacklo_epi8(x, zero), _mm_setr_epi16(16, 15, 14, 13, 12, 11, 10, 9)),
                             _mm_madd_epi16(_mm_unpackhi_epi8(x, zero), _mm_setr_epi16(8, 7, 6, 5, 4, 3, 2, 1)));
    }
    #endif

    /* zlib's adler32(adler, buf, len): 16 bytes at a time in SSE2 where it is there. */
    static uint32_t ck_adler32(uint32_t adler, const unsigned char *buf, size_t len) {
        uint32_t a = adler & 0xffff, b = adler >> 16;
    #if CK_SIMD
        const __m128i zero = _mm_setzero_si128();
        while (len >= 16) {
            size_t n = len < CK_NMAX ? len & ~(size_t)15 : CK_NMAX;  /* CK_NMAX is 347 * 16 */
            len -= n;
            CK_ADLER_READS(__m128i, 16, _mm_loadu_si128, _mm_add_epi32, _mm_sad_epu8, ck_weigh16)
            ck_adler_block(&a, &b, n, 16, sum, prefix, weighted);
        }
    #endif
        while (len) {
            size_t n = len < CK_NMAX ? len : CK_NMAX;
            len -= n;
            while (n--) {
                a += *buf++;
                b += a;
            }
            a %= CK_BASE;
            b %= CK_BASE;
        }
        return b % CK_BASE << 16 | a % CK_BASE;  /* as zlib: reduced, even a state past the base */
    }

    #if CK_SIMD
    #include <immintrin.h>
    #define CK_NMAX32 5536  /* 173 * 32: at most CK_NMAX bytes between reductions, 32 at a time */

    /* ``ck_adler32``, 32 bytes at a time in AVX2 (where the processor has it; the rest, fewer
       than 32 bytes, by ``ck_adler32``): the bytes' sums by vpsadbw, their weights 32..1 by
       vpmaddubsw (at most 255 * (32 + 31): no saturation), as ``ck_adler32`` does 16 at a time. */
    __attribute__((target("avx2")))
    static inline __m128i ck_halves(__m256i x) {  /* its two halves' lanes added */
        return _mm_add_epi32(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1));
    }

    __attribute__((target("avx2")))
    static inline __m256i ck_weigh32(__m256i x) {
        const __m256i weights = _mm256_setr_epi8(32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
                                                 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1);
        return _mm256_madd_epi16(_mm256_maddubs_epi16(x, weights), _mm256_set1_epi16(1));
    }

    __attribute__((target("avx2")))
    static uint32_t ck_adler32_avx2(uint32_t adler, const unsigned char *buf, size_t len) {
        uint32_t a = adler & 0xffff, b = adler >> 16;
        const __m256i zero = _mm256_setzero_si256();
        while (len >= 32) {
            size_t n = len < CK_NMAX32 ? len & ~(size_t)31 : CK_NMAX32;
            len -= n;
            CK_ADLER_READS(__m256i, 32, _mm256_loadu_si256, _mm256_add_epi32, _mm256_sad_epu8, ck_weigh32)
            ck_adler_block(&a, &b, n, 32, ck_halves(sum), ck_halves(prefix), ck_halves(weighted));
        }
        return ck_adler32(b << 16 | a, buf, len);
    }
    #else
    static uint32_t ck_adler32_avx2(uint32_t adler, const unsigned char *buf, size_t len) { return ck_adler32(adler, buf, len); }
    #endif
    """
    void ck_init()
    int ck_pclmul()
    int ck_avx2()
    uint32_t ck_crc32(uint32_t crc, const unsigned char* buf, size_t len, int fold) nogil
    uint32_t ck_adler32(uint32_t adler, const unsigned char* buf, size_t len) nogil
    uint32_t ck_adler32_avx2(uint32_t adler, const unsigned char* buf, size_t len) nogil


ck_init()
cdef int PCLMUL = ck_pclmul()
cdef int AVX2 = ck_avx2()
cdef Lines SPARE  # the buffer of the last fold, kept for the next (no allocation per batch)
SPARE.data, SPARE.room = NULL, 0


def adler32(uint32_t adler, bytes data, bint avx2):
    """``zlib.adler32(data, adler)`` by the digest's code: 32 bytes at a time in AVX2 when ``avx2``
    and the processor has it, else 16 at a time in SSE2 (a test compares both with zlib)."""
    cdef const unsigned char* buf = <const unsigned char*>PyBytes_AS_STRING(data)
    if avx2 and AVX2:
        return ck_adler32_avx2(adler, buf, PyBytes_GET_SIZE(data))
    return ck_adler32(adler, buf, PyBytes_GET_SIZE(data))


def engine_only(batch, frozenset classes):
    """Whether no command of ``batch`` (a list or tuple) is of one of ``classes`` (a venue's batch
    with no registry command goes to the engine whole: ``Venue._run``): new orders and cancels
    passed at a glance, in C (about 180 instructions fewer per venue message than a set's
    ``isdisjoint`` over ``map(type, batch)``; callgrind, bench/venue.py --instructions)."""
    for cmd in batch:
        cls = type(cmd)
        if cls is not NEW_ORDER and cls is not CANCEL_ORDER and cls in classes:
            return False
    return True


def fold_packed(long long digest, commands, encode):
    """``digest`` (CRC-32 in its high half, Adler-32 in its low half, as a signed 64-bit int) with the
    commands folded in (version 2 of the checkpoint's digest,
    :func:`carbonbook.venue.checkpoint.fold_packed`): the same value as zlib's ``crc32`` and
    ``adler32``, resumed from those halves, over ``encode(command)`` of each command, msgspec's
    deterministic MessagePack.

    New orders and cancels of plain values (ints of 64 bits, names of at most 250 ASCII characters,
    the enums' own members) are written here, in C, as msgspec writes them (their fields' keys and
    the enums' members copied from MessagePack kept for them, 16 bytes at a time); every other
    command by ``encode``. The checksums run over the bytes where they were written (no bytes
    object): CRC-32 folded 64 bytes at a time by carry-less multiplication (PCLMULQDQ, where the
    x86-64 processor has it) and Adler-32 32 bytes at a time in AVX2 (where it has it; else 16 in
    SSE2), about 0.4 and 0.45 (SSE2: 1.2) instructions a byte against zlib's 3.9 and 3.6 (callgrind;
    elsewhere a byte at a time; AVX2: 74 instructions fewer per busy venue message)."""
    cdef Lines out = SPARE
    cdef unsigned long long value = <unsigned long long>digest
    SPARE.data, SPARE.room = NULL, 0  # a fold inside this one (none is known) allocates its own
    out.size = 0
    try:
        for cmd in commands:
            cls = type(cmd)
            if cls is NEW_ORDER or cls is CANCEL_ORDER:
                _room(&out, ORDER_ROOM)
                if _put_order(&out, cmd) if cls is NEW_ORDER else _put_cancel(&out, cmd):
                    continue
            line = encode(cmd)
            _room(&out, PyBytes_GET_SIZE(line))
            _put(&out, PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line))
        value = (<unsigned long long>ck_crc32(<uint32_t>(value >> 32), <const unsigned char*>out.data,
                                              out.size, PCLMUL) << 32
                 | (ck_adler32_avx2 if AVX2 else ck_adler32)(<uint32_t>value, <const unsigned char*>out.data, out.size))
        return <long long>value
    finally:
        if SPARE.data is NULL:
            SPARE.data, SPARE.room = out.data, out.room
        else:
            PyMem_Free(out.data)
