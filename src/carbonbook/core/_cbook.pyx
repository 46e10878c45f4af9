# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The compiled order book: :mod:`carbonbook.core.book`'s classes, rules and events, in Cython.

The same classes (``Order``, ``PriceLevel``, ``BookSide``, ``OrderBook``) and the same small
interface that the phase books of :mod:`carbonbook.core.phases`, snapshots, the venue and the
queries use (a dict of levels and a sorted key list per side, each level's ``live()`` orders,
the book's ``_rest``, ``_take_off`` and ``_resize``, an id index with a dict's ``get``, ``in``,
item setting and ``items()``), so they work on either core unchanged. Storage differs: an
:class:`Order` is 64 bytes with its id, quantity and codes as C integers and its price and
symbol on its level; a level's queue is a singly linked list through its orders (no deque); the
id index is an :class:`IdIndex`, a C hash table (no dict, no int object per id). So a resting
order costs ~90 bytes instead of ~123, and a cancel of a random order of a deep book waits for
its index slot and, at the same time, the order and its id's pair (where the index's hint for
its run of ids says they are), then its level, nothing else. Orders live in 64-byte
blocks of one arena (one cache line each, the last freed handed out first), so the index's slot
of a resting order's id names the order itself by its block and the order knows its id's pair,
and a batch fetches what its next few commands will read into the cache ahead of them. The hot
path runs on typed C locals, reads the fields of new orders and cancels at their slot offsets,
uses the C API for lists and dicts, routes commands with one :class:`Router` per engine (no
Python frame each), and :class:`Out` gives events as msgspec Structs or writes them as JSON
Lines without building them (replay). A level's total is a 128-bit integer, so it never
overflows where the pure book's Python integers would not. :mod:`carbonbook.core.book` is the
reference: every rule here is its rule, and the test suite runs against both
(``tests/test_cores.py`` requires byte-identical events, snapshots and state hashes).
"""

cimport cython
from cpython.dict cimport PyDict_DelItem, PyDict_SetItem
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE, PyList_Insert
from cpython.tuple cimport PyTuple_GET_ITEM
from cpython.long cimport PyLong_AsLongLong, PyLong_AsLongLongAndOverflow, PyLong_FromLongLong
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.object cimport PyObject
from cpython.pycapsule cimport PyCapsule_New
from carbonbook._hooks cimport AdmitC, OpenOrderC, StageC, entry as _entry
from carbonbook._slots cimport field as _field, slot_offset as _slot_offset
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.unicode cimport PyUnicode_GET_LENGTH
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.limits cimport LLONG_MAX, LLONG_MIN
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy

from collections import deque

import msgspec
from itertools import count

from carbonbook.core import book as _pure
from carbonbook._types import (
    NAME_MAX,
    CancelReason,
    OrderType,
    Phase,
    RejectReason,
    SelfTradePrevention,
    Side,
    TimeInForce,
)
from carbonbook.commands import CancelOrder, NewOrder
from carbonbook.events import Accepted, Cancelled, Modified, Rejected, Trade

cdef extern from *:
    ctypedef long long i128 "__int128"

cdef extern from *:
    """
    static inline size_t carbonbook_spread(long long id, int shift) {
        unsigned long long run = ((unsigned long long)id >> 4) * 0x9E3779B97F4A7C15ULL;
        return (size_t)(((run >> shift) & ~15ULL) | ((unsigned long long)id & 15));
    }
    """
    size_t _spread "carbonbook_spread"(long long id, int shift)  # a slot of a table of 2 ** (64 - shift) >= 16

cdef extern from *:
    """
    /* A hint: never faults, no effect on results. The empty asm is a side effect: GCC 12 at -O2
       (its mod/ref analysis) deletes calls of a function whose only effect is a prefetch, so
       IdIndex.fetch_slot and fetch_entry compiled to nothing until it was there. */
    static inline void carbonbook_prefetch(const void* address) {
        __asm__ volatile("" : "+r"(address));
        __builtin_prefetch(address);
    }
    """
    void _prefetch "carbonbook_prefetch"(const void* address)
    PyObject* _type_of "(PyObject*)Py_TYPE"(PyObject* o)

cdef extern from "Python.h":
    PyObject* PyDict_GetItemWithError(object d, object key) except? NULL
    bint PyUnicode_IS_COMPACT_ASCII(object o)
    void* PyUnicode_DATA(object o)
    int _del_items "PyList_SetSlice"(object keys, Py_ssize_t low, Py_ssize_t high, PyObject* items) except -1

COMPILED = True

cdef object FILLED = _pure.FILLED
cdef object CANCELLED = _pure.CANCELLED
cdef object _BUY = Side.BUY
cdef object _SELL = Side.SELL
cdef object _LIMIT = OrderType.LIMIT
cdef object _MARKET = OrderType.MARKET
cdef object _GTC = TimeInForce.GTC
cdef object _IOC = TimeInForce.IOC
cdef object _FOK = TimeInForce.FOK
cdef object _CANCEL_INCOMING = SelfTradePrevention.CANCEL_INCOMING
cdef object _CANCEL_RESTING = SelfTradePrevention.CANCEL_RESTING
cdef object _CANCEL_BOTH = SelfTradePrevention.CANCEL_BOTH
cdef object _USER = CancelReason.USER
cdef object _SELF_TRADE = CancelReason.SELF_TRADE
cdef object _FOK_REASON = CancelReason.FOK
cdef object _IOC_REASON = CancelReason.IOC
cdef object _MARKET_REASON = CancelReason.MARKET
cdef object _POST_ONLY = RejectReason.POST_ONLY
cdef object _BAD_PRICE = RejectReason.BAD_PRICE
cdef object _BAD_QTY = RejectReason.BAD_QTY
cdef object _NewOrder = NewOrder
cdef object _Accepted = Accepted
cdef object _Cancelled = Cancelled
cdef object _Modified = Modified
cdef object _Rejected = Rejected
cdef object _Trade = Trade
cdef object _order_rejection = _pure.order_rejection
cdef object _bad_price = _pure.bad_price
cdef object _bad_qty = _pure.bad_qty

# time in force and self-trade prevention as small integers on the hot path
cdef enum:
    GTC, IOC, FOK
cdef enum:
    INCOMING, RESTING, BOTH
cdef enum:
    COMPACT_MIN = 32  # a level is compacted only when it holds more dead entries than this...


# -- the fields of a NewOrder or CancelOrder, read at their slot offsets -------------------
# (carbonbook._slots): 1,070 instructions less per busy message in a batch (callgrind,
# 200,000 messages: 2,315.8 M with getattr, 2,101.0 M at the offsets).

cdef Py_ssize_t _ID = _slot_offset(NewOrder, "id")
cdef Py_ssize_t _ACCOUNT = _slot_offset(NewOrder, "account")
cdef Py_ssize_t _SIDE = _slot_offset(NewOrder, "side")
cdef Py_ssize_t _QTY = _slot_offset(NewOrder, "qty")
cdef Py_ssize_t _PRICE = _slot_offset(NewOrder, "price")
cdef Py_ssize_t _ORDER_TYPE = _slot_offset(NewOrder, "order_type")
cdef Py_ssize_t _TIF = _slot_offset(NewOrder, "tif")
cdef Py_ssize_t _POST = _slot_offset(NewOrder, "post_only")
cdef Py_ssize_t _STP = _slot_offset(NewOrder, "stp")
cdef Py_ssize_t _CAP = _slot_offset(NewOrder, "cap")
cdef Py_ssize_t _SYMBOL = _slot_offset(NewOrder, "symbol")
cdef Py_ssize_t _CANCEL_ID = _slot_offset(CancelOrder, "id")


cdef inline bint _int64(object value, long long* out) noexcept:
    """Is ``value`` an int (not a bool) that fits in 64 bits? Sets ``out`` when it is."""
    cdef int overflow = 0
    if type(value) is not int:
        return False
    out[0] = PyLong_AsLongLongAndOverflow(value, &overflow)
    return overflow == 0


cdef inline bint _plain_name(str name):
    """Is ``name`` printable ASCII (so no control character)? Other names take the full test
    of the rule of names (:func:`carbonbook._types.name_fault`), which may accept them."""
    cdef const unsigned char* data
    cdef Py_ssize_t i
    if not PyUnicode_IS_COMPACT_ASCII(name):
        return False
    data = <const unsigned char*>PyUnicode_DATA(name)
    for i in range(PyUnicode_GET_LENGTH(name)):
        if data[i] < 32 or data[i] == 127:
            return False
    return True


cdef inline int _tif_code(object tif):
    return FOK if tif == _FOK else IOC if tif == _IOC else GTC


cdef inline int _stp_code(object stp):
    return RESTING if stp == _CANCEL_RESTING else BOTH if stp == _CANCEL_BOTH else INCOMING


# -- the sorted key list of a side -----------------------------------------------------------

cdef inline long long _key_at(list keys, Py_ssize_t i):
    return PyLong_AsLongLong(<object>PyList_GET_ITEM(keys, i))


cdef Py_ssize_t _bisect_left(list keys, long long key):
    cdef Py_ssize_t lo = 0, hi = PyList_GET_SIZE(keys), mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if _key_at(keys, mid) < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef inline int _drop_key(list keys, long long key) except -1:
    """Remove ``key``: a pop when it is the best (last), else a bisect and a deletion."""
    cdef Py_ssize_t n = PyList_GET_SIZE(keys)
    cdef Py_ssize_t i = n - 1 if _key_at(keys, n - 1) == key else _bisect_left(keys, key)
    return _del_items(keys, i, i + 1, NULL)


# -- large memory: 2 MiB-aligned, on huge pages where the kernel agrees --------------------------
# A deep book's orders and index span tens of MiB; on 4 KiB pages a random cancel's reads each
# miss the TLB too (a page walk before the cache miss). Regions of whole 2 MiB pages, aligned
# and advised MADV_HUGEPAGE (what THP's `madvise` mode asks for), take one TLB entry per 2 MiB.
# The advice is a hint: where refused or unknown, the region simply stays on small pages.

cdef extern from *:
    """
    #include <sys/mman.h>
    #define CB_HUGE ((size_t)1 << 21)
    #define CB_ARRAY_DOMAIN 0x63620002  /* tracemalloc domain of the mapped arrays */

    /* n bytes (a multiple of CB_HUGE) at a CB_HUGE boundary, advised onto huge pages; NULL when
       out of memory. Maps CB_HUGE more and unmaps the unaligned ends. */
    static char* cb_map_huge(size_t n) {
        char* p = (char*)mmap(NULL, n + CB_HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        size_t lead;
        if (p == (char*)MAP_FAILED)
            return NULL;
        lead = (CB_HUGE - ((uintptr_t)p & (CB_HUGE - 1))) & (CB_HUGE - 1);
        if (lead)
            munmap(p, lead);
        munmap(p + lead + n, CB_HUGE - lead);
    #ifdef MADV_HUGEPAGE
        madvise(p + lead, n, MADV_HUGEPAGE);
    #endif
        return p + lead;
    }

    /* n zeroed bytes: from PyMem below CB_HUGE, else a mapping rounded up to whole huge pages
       (traced as its mapped size); give it back with cb_array_free(p, n). */
    static void* cb_array_alloc(size_t n) {
        void* p;
        if (n < CB_HUGE)
            return PyMem_Calloc(1, n);
        n = (n + CB_HUGE - 1) & ~(CB_HUGE - 1);
        p = cb_map_huge(n);
        if (p)
            PyTraceMalloc_Track(CB_ARRAY_DOMAIN, (uintptr_t)p, n);
        return p;
    }

    static void cb_array_free(void* p, size_t n) {
        if (n < CB_HUGE) {
            PyMem_Free(p);
        } else if (p) {
            PyTraceMalloc_Untrack(CB_ARRAY_DOMAIN, (uintptr_t)p);
            munmap(p, (n + CB_HUGE - 1) & ~(CB_HUGE - 1));
        }
    }

    /* cb_array_alloc(m) holding the first n bytes of p (an array of n bytes, n <= m), p given
       back; NULL when out of memory (p kept). Mapped to mapped, the pages move (mremap into the
       new mapping's head, both 2 MiB-aligned): nothing is copied or faulted in at once. */
    static void* cb_array_grow(void* p, size_t n, size_t m) {
        void* q = cb_array_alloc(m);
        size_t whole = (n + CB_HUGE - 1) & ~(CB_HUGE - 1);
        if (q == NULL)
            return NULL;
    #ifdef MREMAP_FIXED
        if (n >= CB_HUGE && mremap(p, whole, whole, MREMAP_MAYMOVE | MREMAP_FIXED, q) != MAP_FAILED) {
            PyTraceMalloc_Untrack(CB_ARRAY_DOMAIN, (uintptr_t)p);
            return q;
        }
    #endif
        memcpy(q, p, n);
        cb_array_free(p, n);
        return q;
    }
    """
    void* _array_alloc "cb_array_alloc"(size_t n)
    void _array_free "cb_array_free"(void* p, size_t n)
    void* _array_grow "cb_array_grow"(void* p, size_t n, size_t m)


# -- the id index ----------------------------------------------------------------------------

cdef struct Entry:
    long long id
    PyObject* entry  # an owned reference; its low bit set when the id's slot names the order (see IdIndex)


cdef extern from *:
    """
    static inline PyObject* cb_named(PyObject* p) { return (PyObject*)((uintptr_t)p | 1); }
    static inline PyObject* cb_object(PyObject* p) { return (PyObject*)((uintptr_t)p & ~(uintptr_t)1); }
    static inline int cb_is_named(PyObject* p) { return (int)((uintptr_t)p & 1); }
    """
    PyObject* _named "cb_named"(PyObject* entry) noexcept
    PyObject* _object "cb_object"(PyObject* entry) noexcept
    bint _is_named "cb_is_named"(PyObject* entry) noexcept


cdef struct Hint:
    unsigned long long run  # the run of ids (id >> HINT_SHIFT) it is for; HINT_NONE: none yet
    unsigned long long delta  # a block minus the id of the order named there (mod 2**64)
    unsigned long long pair  # the position of its id's pair minus the id (mod 2**64)


cdef enum:
    HINT_SHIFT = 12  # a run of 4,096 ids shares a hint
    HINTS = 512  # hints an index keeps (12 KiB), run number modulo HINTS
cdef unsigned long long HINT_NONE = <unsigned long long>-1


cdef enum:
    MOVED = 0x7FFFFFFF  # an old table's slot whose id's slot moved (no position + 1 reaches it)
    MOVE_STEP = 2  # ids whose slots move from the old table for each id added while growing


@cython.final
cdef class IdIndex:
    """The engine's id index (see :data:`carbonbook.core.book.Index`): every accepted id, in the
    order first set, to its resting :class:`Order` or its final status.

    Laid out as CPython's dict but with C keys: an array of (id, entry) pairs in insertion
    order, and a table of 32-bit slots (open addressing, linear probing, at most half full).
    A slot names its id's pair by position, or, while the entry is an :class:`Order` of that
    id, the order itself (its block in the order arena, see ``cb_handle``; the order knows its
    pair, ``Order.at``, and the pair's entry pointer carries a mark, its low bit, so growing
    the table reads no order). Ids go in runs of 16 (``id >> 4``), each run to one 64-byte line of
    the table, the runs spread by Fibonacci hashing: consecutive new ids (the usual) find their
    slots in cache, where a random slot each would be a cache miss on a deep book. About 25
    bytes an id (16 in the array, 8 in the table), where a dict takes 42 and the id's int
    object 32 more. A lookup reads one table slot and then the order, or the pair of an id
    that does not rest, never an int object: a cancel of a random order of a deep book waits
    for three cache misses (slot, order, level), not four, and for two when the index's hint
    (:meth:`fetch_order`: per run of 4,096 ids, where its last streak of orders and their
    pairs went, 12 KiB in all) finds the order and its pair while its slot is read. ``get``,
    ``in`` and setting are O(1) expected; ids are never removed. A key that is not a 64-bit
    int is never present and cannot be set.

    The table grows a step at a time, so no command waits while every id is placed again (at
    a million ids that took 8 ms of CPU, up to 32 ms wall, inside one new order of the deep
    book's mix): past half full, a table twice the size takes the new ids, and each id added
    then moves the slots of the next two ids of the old table, in insertion order, into the
    new one (``_move``; the old slot is marked ``MOVED``, which a probe passes over; the next
    step's lines and pairs are fetched ahead). Meanwhile each id's slot is in exactly one of
    the two and a lookup reads the old one first, unless the id is above every id the old one
    holds (a new order's, or a recent one's: one table read, as when not growing); the old one
    is freed once its last id moved, after (its size) / 4 ids added, when the new one is 3/8
    full. Two a step, as an incremental rehash moves a bucket an operation: each id is moved
    once per doubling whatever the step, and a smaller one spreads that work thin, where 64 a
    step made each new order of the 16,000 after 2**20 ids wait ~0.5 us. On the deep book's
    mix (1M resting, it crosses 2**20 ids) by ``Engine.apply``: the mix's median rate +5 %
    (2.10 -> 2.21 M/s, plain, Xeon, same process), p99 1.18 -> 1.11 us.
    """

    cdef Entry* entries
    cdef Py_ssize_t used
    cdef Py_ssize_t room
    cdef int* table  # 0: empty; > 0: a position in entries + 1; < 0: -1 - the handle of an Order
    cdef size_t mask  # table size - 1
    cdef int shift  # 64 - log2(table size)
    cdef int* old  # while growing, the table before (slots as table's, or MOVED); else NULL
    cdef size_t old_mask
    cdef int old_shift
    cdef Py_ssize_t moved  # while growing, the ids at positions moved..old_end - 1 have their
    cdef Py_ssize_t old_end  # slots in old, every other id in table
    cdef long long top  # the largest id added
    cdef long long old_top  # while growing, the largest id old holds (larger ones are in table)
    cdef Hint hints[HINTS]  # where runs of ids were placed in the arena (see fetch_order)
    cdef unsigned long long last_id  # the id and block of the order named last
    cdef unsigned int last_handle

    def __cinit__(self):
        cdef Py_ssize_t i
        self.table = <int*>_array_alloc(16 * sizeof(int))
        if self.table is NULL:
            raise MemoryError()
        self.mask, self.shift = 15, 60
        self.top = self.old_top = LLONG_MIN
        for i in range(HINTS):
            self.hints[i].run = HINT_NONE

    def __dealloc__(self):
        cdef Py_ssize_t i
        for i in range(self.used):
            Py_XDECREF(_object(self.entries[i].entry))
        _array_free(self.entries, self.room * sizeof(Entry))
        _array_free(self.table, (self.mask + 1) * sizeof(int))
        _array_free(self.old, (self.old_mask + 1) * sizeof(int))

    cdef inline size_t probe(self, int* table, size_t mask, int shift, long long oid) noexcept:
        """The slot of ``oid`` in ``table`` (the table, or the old one while growing, of ``mask``
        and ``shift``), or the empty slot ending its probe."""
        cdef size_t i = _spread(oid, shift)
        cdef int s
        while True:
            s = table[i]
            if s == 0:
                return i
            if s > 0:
                if s != MOVED and self.entries[s - 1].id == oid:
                    return i
            elif (<Order>_order_at(<unsigned int>(-1 - s))).id == oid:
                return i
            i = (i + 1) & mask

    cdef inline bint in_old(self, long long oid) noexcept:
        """Can ``oid``'s slot be in the old table? Only while growing, and only for an id no
        larger than the largest the old table holds."""
        return self.old is not NULL and oid <= self.old_top

    cdef inline int* home(self, long long oid, size_t* i) noexcept:
        """The table holding the slot of ``oid``, that slot in ``i``; for an absent id, the table
        and the empty slot where it goes."""
        if self.in_old(oid):
            i[0] = self.probe(self.old, self.old_mask, self.old_shift, oid)
            if self.old[i[0]]:
                return self.old
        i[0] = self.probe(self.table, self.mask, self.shift, oid)
        return self.table

    cdef inline bint vacant(self, long long oid, size_t* i) noexcept:
        """Is ``oid`` absent? Then ``i`` is the slot where it goes (see :meth:`add`)."""
        return self.home(oid, i)[i[0]] == 0

    cdef inline PyObject* entry_of(self, int s) noexcept:
        """The entry a non-empty slot names (borrowed)."""
        return self.entries[s - 1].entry if s > 0 else _order_at(<unsigned int>(-1 - s))

    cdef inline PyObject* get_c(self, long long oid) noexcept:
        """The entry of ``oid`` (borrowed), or NULL."""
        cdef size_t i
        cdef int s = self.home(oid, &i)[i]
        return NULL if s == 0 else self.entry_of(s)

    cdef inline void fetch_slot(self, long long oid) noexcept:
        """Start reading ``oid``'s first table slot into the cache (while growing, both tables')."""
        _prefetch(&self.table[_spread(oid, self.shift)])
        if self.in_old(oid):
            _prefetch(&self.old[_spread(oid, self.old_shift)])

    cdef inline void fetch_entry(self, long long oid) noexcept:
        """Start reading what ``oid``'s first table slot names, its order or its pair (the slot is read)."""
        cdef int s = self.table[_spread(oid, self.shift)]
        if s == 0 and self.in_old(oid):
            s = self.old[_spread(oid, self.old_shift)]
        if s > 0 and s != MOVED:
            _prefetch(&self.entries[s - 1])
        elif s < 0:
            _prefetch(_order_at(<unsigned int>(-1 - s)))

    cdef inline void fetch_pair(self, Order order) noexcept:
        """Start reading the pair of a resting ``order``."""
        if order.at < self.used:
            _prefetch(&self.entries[order.at])

    cdef inline void note_place(self, unsigned long long oid, unsigned int handle, Py_ssize_t at) noexcept:
        """An order of ``oid`` was named at block ``handle``, its pair at ``at``: when it follows
        the order named last in both id and block, make that placement its run's hint (see
        :meth:`fetch_order`)."""
        cdef Hint* hint
        if oid == self.last_id + 1 and handle == self.last_handle + 1:
            hint = &self.hints[(oid >> HINT_SHIFT) % HINTS]
            hint.run, hint.delta, hint.pair = oid >> HINT_SHIFT, handle - oid, <unsigned long long>at - oid
        self.last_id, self.last_handle = oid, handle

    cdef inline void fetch_order(self, long long oid) noexcept:
        """Start reading the block where ``oid``'s order would be if it took its block in the
        last streak of its run of ids (orders of consecutive ids in consecutive blocks, as
        when orders rest in id order and no freed block waits: a book built up or restored in
        id order), so that a lookup's two reads, the slot and the order it names, overlap
        instead of following each other; and the pair the streak's last order had at the same
        distance from its id (ids added in order, so the pairs of a streak are consecutive too),
        which a cancel writes last. Only a hint: the slot decides. On the deep book's mix by
        ``Engine.apply``, the deep/busy rate 0.54 -> 0.60 built profile-guided, 0.57 -> 0.64
        plain (two builds in one process, alternated: ``bench/deep_ratio.py --build``) with the
        block alone; the pair's fetch besides, the mix's median rate +2.5 % (0.626 -> 0.646 plain,
        Xeon, same process: before, ``IdIndex.leave`` waited for the pair on 85 % of its samples)."""
        cdef Hint* hint = &self.hints[(<unsigned long long>oid >> HINT_SHIFT) % HINTS]
        cdef unsigned long long handle = <unsigned long long>oid + hint.delta
        cdef unsigned long long at = <unsigned long long>oid + hint.pair
        if hint.run == <unsigned long long>oid >> HINT_SHIFT and handle < _blocks():
            _prefetch(_order_at(<unsigned int>handle))
            if at < <unsigned long long>self.used:
                _prefetch(&self.entries[at])

    cdef inline void put(self, int* table, size_t i, Py_ssize_t at, object entry) noexcept:
        """Make ``entry`` (a new reference taken) the entry of the pair at ``at``, whose id's
        slot is ``table[i]``: named by its handle when it is an Order of that id."""
        Py_INCREF(entry)
        if type(entry) is Order and (<Order>entry).id == self.entries[at].id:
            (<Order>entry).at = <int>at
            self.entries[at].entry = _named(<PyObject*>entry)
            table[i] = -1 - <int>_handle(<PyObject*>entry)
            self.note_place(<unsigned long long>self.entries[at].id, _handle(<PyObject*>entry), at)
        else:
            self.entries[at].entry = <PyObject*>entry
            table[i] = <int>at + 1

    cdef Py_ssize_t pair_of(self, Order order) noexcept:
        """The pair of an order a slot names: ``order.at``, or, should another index have
        named the order since (an order put in two by hand), a search. O(1), else O(ids)."""
        cdef Py_ssize_t at = order.at
        if at < self.used and self.entries[at].entry is _named(<PyObject*>order):
            return at
        for at in range(self.used):
            if self.entries[at].entry is _named(<PyObject*>order):
                return at
        return -1  # unreachable: a slot names only an order whose pair is marked

    cdef Py_ssize_t set_c(self, long long oid, object entry) except -1:
        """Set the entry of ``oid``, adding the id when it is new; its position in the entries."""
        cdef size_t i
        cdef int* table = self.home(oid, &i)
        cdef int s = table[i]
        cdef Py_ssize_t at
        cdef PyObject* before
        if s:
            at = s - 1 if s > 0 else self.pair_of(<Order>_order_at(<unsigned int>(-1 - s)))
            before = _object(self.entries[at].entry)
            self.put(table, i, at, entry)
            Py_XDECREF(before)
            return at
        if self.used == self.room:
            self._grow_entries()
        if 2 * (self.used + 1) > <Py_ssize_t>(self.mask + 1):
            self._grow_table()
            i = self.probe(self.table, self.mask, self.shift, oid)
        return self._append(i, oid, entry)

    cdef Py_ssize_t add(self, size_t i, Py_ssize_t used, long long oid, object entry) except -1:
        """:meth:`set_c` for an id found absent at slot ``i`` (:meth:`vacant`) when the index held
        ``used`` ids: no search if none was added since (ids are never removed and slots move
        only when one is added, so the slot is still the empty one where the id goes) and the
        table need not grow."""
        if used != self.used or used == self.room or 2 * (used + 1) > <Py_ssize_t>(self.mask + 1):
            return self.set_c(oid, entry)
        return self._append(i, oid, entry)

    cdef inline Py_ssize_t _append(self, size_t i, long long oid, object entry) noexcept:
        """Add ``oid`` (absent, room for it) at the table's empty slot ``i``; while growing, then
        move the next ids' slots from the old table."""
        cdef Py_ssize_t at = self.used
        self.entries[at].id = oid
        self.put(self.table, i, at, entry)
        self.used = at + 1
        if oid > self.top:
            self.top = oid
        if self.old is not NULL:
            self._move(MOVE_STEP)
        return at

    cdef int leave(self, Order order, object entry) except -1:
        """Set the entry of ``order``'s id, whose entry ``order`` was, to ``entry`` (a final
        status, or the order that replaces it): its slot found by the order's handle, from
        the id's first slot (already in cache after a lookup) in the table that holds it."""
        cdef int* table = self.table
        cdef size_t mask = self.mask, i
        cdef int s, named = -1 - <int>_handle(<PyObject*>order)
        cdef Py_ssize_t at = order.at
        if self.old is not NULL and self.moved <= at < self.old_end:
            table, mask, i = self.old, self.old_mask, _spread(order.id, self.old_shift)
        else:
            i = _spread(order.id, self.shift)
        while True:
            s = table[i]
            if s == named and at < self.used and self.entries[at].entry is _named(<PyObject*>order):
                break  # (an order in two indexes is named by either, its pair in one)
            if s == 0:  # not in this index as its id's entry
                self.set_c(order.id, entry)
                return 0
            i = (i + 1) & mask
        self.put(table, i, at, entry)
        Py_XDECREF(<PyObject*>order)  # the pair's reference: the caller holds one
        return 0

    cdef int _grow_entries(self) except -1:
        cdef Py_ssize_t room = 2 * self.room if self.room else 8
        cdef Entry* grown
        if room > 0x7FFFFFFE:
            raise MemoryError("more than 2**31 - 2 order ids")
        grown = <Entry*>_array_grow(self.entries, self.room * sizeof(Entry), room * sizeof(Entry))
        if grown is NULL:
            raise MemoryError()
        self.entries, self.room = grown, room
        return 0

    cdef int _grow_table(self) except -1:
        """Start growing: an empty table of twice the slots takes the new ids, the old one's
        move in steps (:meth:`_move`). O(1) but the new table's allocation."""
        cdef size_t size = 2 * (self.mask + 1)
        cdef int* table = <int*>_array_alloc(size * sizeof(int))
        if table is NULL:
            raise MemoryError()
        if self.old is not NULL:  # never: a growth ends 3/8 full, the next starts half full
            self._move(self.old_end)
        self.old, self.old_mask, self.old_shift = self.table, self.mask, self.shift
        self.old_top = self.top
        self.table, self.mask, self.shift = table, size - 1, self.shift - 1
        self.moved, self.old_end = 0, self.used
        return 0

    cdef void _move(self, Py_ssize_t n) noexcept:
        """Move the slots of the old table's next ``n`` ids (insertion order) into the table,
        and free the old one after its last. Each slot is found by its value (the id's
        position or its order's handle, both in its pair), so no order is read. O(n)."""
        cdef Py_ssize_t k, last, end = min(self.moved + n, self.old_end)
        cdef size_t i
        cdef int s
        cdef PyObject* entry
        for k in range(self.moved, end):
            entry = self.entries[k].entry
            s = -1 - <int>_handle(_object(entry)) if _is_named(entry) else <int>k + 1
            i = _spread(self.entries[k].id, self.old_shift)
            while self.old[i] != s:
                i = (i + 1) & self.old_mask
            self.old[i] = MOVED
            i = _spread(self.entries[k].id, self.shift)
            while self.table[i]:
                i = (i + 1) & self.mask
            self.table[i] = s
        self.moved = end
        if end == self.old_end:
            _array_free(self.old, (self.old_mask + 1) * sizeof(int))
            self.old = NULL
            return
        # Ahead: the next step's lines, a run's each and the last id's (a step need not start a
        # run), and the pairs of the step after. Perf, the deep mix by apply: the growth's share
        # of its time 4.8 % (the next step's runs' lines alone) -> 3.5 %, the mix 3-4 % faster.
        last = min(end + n, self.old_end) - 1
        for k in range(end, last, 16):
            self._fetch_lines(k)
        self._fetch_lines(last)
        for k in range(last + 1, min(last + 1 + n, self.old_end), 4):
            _prefetch(&self.entries[k])

    cdef inline void _fetch_lines(self, Py_ssize_t k) noexcept:
        """Start reading the lines of the old table and the table where the id at ``k`` goes."""
        _prefetch(&self.old[_spread(self.entries[k].id, self.old_shift)])
        _prefetch(&self.table[_spread(self.entries[k].id, self.shift)])

    def get(self, key, default=None):
        cdef long long oid
        cdef PyObject* found
        if not _int64(key, &oid):
            return default
        found = self.get_c(oid)
        return default if found is NULL else <object>found

    def __contains__(self, key):
        cdef long long oid
        return _int64(key, &oid) and self.get_c(oid) is not NULL

    def __getitem__(self, key):
        cdef long long oid
        cdef PyObject* found = NULL
        if _int64(key, &oid):
            found = self.get_c(oid)
        if found is NULL:
            raise KeyError(key)
        return <object>found

    def __setitem__(self, key, entry):
        cdef long long oid
        if not _int64(key, &oid):
            raise TypeError(f"an order id is a 64-bit int, not {key!r}")
        self.set_c(oid, entry)

    def __len__(self):
        return self.used

    def __iter__(self):
        return iter(self.keys())

    def keys(self):
        """The ids, in insertion order. O(ids)."""
        return [self.entries[i].id for i in range(self.used)]

    def values(self):
        """The entries, in insertion order. O(ids)."""
        return [<object>_object(self.entries[i].entry) for i in range(self.used)]

    def items(self):
        """(id, entry) pairs, in insertion order. O(ids)."""
        return [(self.entries[i].id, <object>_object(self.entries[i].entry)) for i in range(self.used)]


def new_index():
    """An empty id index of this core: an :class:`IdIndex`."""
    return IdIndex()


def open_order(IdIndex index, oid):
    """The resting order ``oid`` of ``index`` (its entry while it rests), or None. O(1)."""
    return _open_order(index, oid)


cdef object _open_order(object index, object oid):
    """``open_order``, a C function (``c_open_order``, see :mod:`carbonbook._hooks`)."""
    cdef long long key
    cdef PyObject* found
    if not _int64(oid, &key):
        return None
    found = (<IdIndex>index).get_c(key)
    return None if found is NULL or type(<object>found) is str else <object>found


c_open_order = PyCapsule_New(<void*><OpenOrderC>_open_order, b"carbonbook.open_order", NULL)


# -- where orders live: 64-byte blocks of one arena -------------------------------------------
# pymalloc puts a 64-byte object 48 bytes into a pool, so every order it gives straddles two
# cache lines; on a deep book (orders in L3, not L2) a cancel's or a fill's order costs two
# misses instead of one. Here each order has a line of its own, in one arena per process: an
# address range reserved once (up to 128 GiB of address space, no memory: PROT_NONE and
# MAP_NORESERVE, halved until the kernel agrees), made usable from its start as orders come
# (64 KiB steps for the first 2 MiB, then whole 2 MiB huge pages, see cb_map_huge). So an
# order is named by a 31-bit number, its block's index in the arena (``cb_handle``), which the
# id index keeps in place of a position (see IdIndex). Freed blocks are one stack, so the next
# order takes the block of the last one freed (still in cache); taking or giving back a block
# touches that block and a few globals, nothing else. Taking a freed block starts fetching the
# next one (on a deep book most were freed long before: 3 % of the deep mix's time in
# apply_all waited for them, 1 % since). When no order is left, all but the first 64 KiB go
# back to the kernel (their pages dropped, the range reserved again), so a process holds its
# peak of resting orders until then; tracemalloc sees the usable part as one allocation while
# any order lives.

cdef extern from *:
    """
    #define CB_CHUNK ((size_t)1 << 16)  /* a small step: 1,024 orders */
    #define CB_BLOCK 64
    #define CB_TRACE_DOMAIN 0x63620001  /* tracemalloc domain of the arena */
    #define CB_RESERVE_MAX ((size_t)CB_BLOCK << 31)  /* 2**31 orders: handles of 31 bits */

    static char* cb_arena = NULL;  /* the reserved range, 2 MiB-aligned... */
    static size_t cb_reserved = 0;  /* ...of this many bytes... */
    static size_t cb_usable = 0;  /* ...of which the first ones are readable and writable */
    static char* cb_free = NULL;  /* freed blocks, last freed first; each holds the next */
    static char* cb_fresh = NULL;  /* the usable blocks never handed out: from here... */
    static char* cb_end = NULL;  /* ...to here, the end of the usable part */
    static Py_ssize_t cb_live = 0;

    static inline unsigned int cb_handle(const void* order) {
        return (unsigned int)(((const char*)order - cb_arena) >> 6);
    }

    static inline unsigned long long cb_blocks(void) { return cb_usable / CB_BLOCK; }  /* handles below it are blocks */
    static inline PyObject* cb_order_at(unsigned int handle) {
        return (PyObject*)(cb_arena + ((size_t)handle << 6));
    }

    /* Reserve the arena (once), then make the next step of it usable; -1 when out of memory. */
    static int cb_grow_arena(void) {
        size_t n, step;
        char* p;
        if (cb_arena == NULL) {
            for (n = CB_RESERVE_MAX; n >= CB_HUGE; n >>= 1) {
                p = (char*)mmap(NULL, n + CB_HUGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
                if (p != (char*)MAP_FAILED)
                    break;
            }
            if (n < CB_HUGE)
                return -1;
            cb_arena = p + ((CB_HUGE - ((uintptr_t)p & (CB_HUGE - 1))) & (CB_HUGE - 1));
            if (cb_arena > p)
                munmap(p, cb_arena - p);
            munmap(cb_arena + n, p + CB_HUGE - cb_arena);
            cb_reserved = n;
            cb_fresh = cb_arena;
        }
        step = cb_usable < CB_HUGE ? CB_CHUNK : CB_HUGE;
        if (cb_usable + step > cb_reserved || mprotect(cb_arena + cb_usable, step, PROT_READ | PROT_WRITE))
            return -1;
    #ifdef MADV_HUGEPAGE
        if (step == CB_HUGE)
            madvise(cb_arena + cb_usable, step, MADV_HUGEPAGE);
    #endif
        cb_usable += step;
        cb_end = cb_arena + cb_usable;
        if (cb_live)
            PyTraceMalloc_Track(CB_TRACE_DOMAIN, (uintptr_t)cb_arena, cb_usable);
        return 0;
    }

    static PyObject* cb_order_alloc(PyTypeObject* type, Py_ssize_t nitems) {
        char* block = cb_free;
        if (block) {
            cb_free = *(char**)block;
            carbonbook_prefetch(cb_free);  /* the next one out: on a deep book freed blocks go cold */
        } else {
            if (cb_fresh == cb_end && cb_grow_arena() < 0)
                return PyErr_NoMemory();
            block = cb_fresh;
            cb_fresh += CB_BLOCK;
        }
        if (cb_live++ == 0)
            PyTraceMalloc_Track(CB_TRACE_DOMAIN, (uintptr_t)cb_arena, cb_usable);
        memset(block, 0, CB_BLOCK);
        return PyObject_Init((PyObject*)block, type);
    }

    static void cb_order_free(void* p) {
        *(char**)p = cb_free;
        cb_free = (char*)p;
        if (--cb_live)
            return;
        /* no order left: give back all but the first small step */
        if (cb_usable > CB_CHUNK && mmap(cb_arena + CB_CHUNK, cb_usable - CB_CHUNK, PROT_NONE,
                                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) != MAP_FAILED)
            cb_usable = CB_CHUNK, cb_end = cb_arena + CB_CHUNK;
        PyTraceMalloc_Untrack(CB_TRACE_DOMAIN, (uintptr_t)cb_arena);
        cb_free = NULL;
        cb_fresh = cb_arena;
    }

    static int cb_use_arena(PyObject* cls) {
        PyTypeObject* type = (PyTypeObject*)cls;
        if (type->tp_basicsize > CB_BLOCK || type->tp_itemsize || (type->tp_flags & Py_TPFLAGS_HAVE_GC)) {
            PyErr_SetString(PyExc_TypeError, "an Order must be a fixed 64-byte object outside the GC");
            return -1;
        }
        type->tp_alloc = cb_order_alloc;
        type->tp_free = cb_order_free;
        return 0;
    }
    """
    int _use_arena "cb_use_arena"(object type) except -1
    unsigned int _handle "cb_handle"(void* order)
    PyObject* _order_at "cb_order_at"(unsigned int handle)
    unsigned long long _blocks "cb_blocks"()


# -- orders, levels and sides ----------------------------------------------------------------

_STPS = (_CANCEL_INCOMING, _CANCEL_RESTING, _CANCEL_BOTH)


@cython.no_gc
@cython.final
cdef class Order:
    """A resting order. ``qty`` is its open quantity; 0 marks a dead entry in its level's queue.

    64 bytes, one cache line (see ``cb_order_alloc``): the id and quantity are C integers; the
    price and symbol are its level's (a market order of a call, or an order built by hand, has
    a level of its own); side, self-trade prevention and post-only are small codes (``side``,
    ``stp`` and ``post_only`` give the values back); ``next``, the order queued after it; and
    ``at``, its id's pair in the index while the index names it (see :class:`IdIndex`). Not tracked by the
    garbage collector: the only cycle an order is in, with its level, is broken by the book
    (see :class:`PriceLevel`).
    """

    cdef readonly long long id
    cdef public str account
    cdef readonly PriceLevel level
    cdef public long long qty
    cdef Order next
    cdef char buy
    cdef char stp_code
    cdef char post
    cdef int at  # its id's pair in its engine's index, while the index's slot names it (see IdIndex)

    def __init__(self, id, account, symbol, side, price, qty, post_only, stp):
        self.id = id
        self.account = account
        self.level = _lone_level(symbol, price)
        self.side = side
        self.qty = qty
        self.post_only = post_only
        self.stp = stp

    @property
    def side(self):
        return _BUY if self.buy else _SELL

    @side.setter
    def side(self, value):
        self.buy = value == _BUY

    @property
    def stp(self):
        return _STPS[self.stp_code]

    @stp.setter
    def stp(self, value):
        self.stp_code = _stp_code(value)

    @property
    def post_only(self):
        return bool(self.post)

    @post_only.setter
    def post_only(self, value):
        self.post = bool(value)

    @property
    def symbol(self):
        return self.level.symbol

    @property
    def price(self):
        """Its level's price (0 for a market order of a call). Setting it moves the order to a
        level of its own at that price, off its book's queues: what a test of ``check`` does."""
        return self.level.price

    @price.setter
    def price(self, value):
        self.level = _lone_level(self.level.symbol, value)

    def _fields(self):
        return (self.id, self.account, self.symbol, self.side, self.price, self.qty, self.post_only, self.stp)

    def __eq__(self, other):
        return type(other) is Order and self._fields() == (<Order>other)._fields()

    __hash__ = None

    def __repr__(self):
        return ("Order(id={!r}, account={!r}, symbol={!r}, side={!r}, price={!r}, qty={!r}, "
                "post_only={!r}, stp={!r})").format(*self._fields())


_use_arena(Order)


@cython.no_gc
@cython.final
cdef class PriceLevel:
    """The orders resting at one price, oldest first, and their live total quantity.

    The queue runs through the orders: the level holds the oldest (``head``) and newest
    (``tail``), each order the next one, so a queue costs no container and an order one
    pointer. A cancelled order (qty 0) stays queued, *dead*, until matching reaches it or the
    level is compacted (when the dead outnumber the live and exceed 32), so a cancel touches
    its order and level only. ``dead`` counts the dead entries, ``size`` all of them.

    An order refers to its level (for its price and symbol), so a level and its queue are a
    reference cycle outside the garbage collector: the book breaks it (``_clear``) when
    it removes the level, and a book side for each of its levels when it is freed.

    What a cancel of an order that stays queued reads and writes (``symbol``, ``qty`` and
    ``dead``, not the reference count) is bytes 16-47, in one cache line whether pymalloc's
    96-byte block starts 16 or 48 bytes into a line (it alternates): no vtable pointer (its
    queue operations are functions), and the cancel takes no reference to the level. On the deep
    book's mix a cancel's level is a cache miss, and it was two (the header's line and the
    fields'): callgrind's 4 MiB last level, 4.5 -> 4.2 misses per message of the deep mix on
    Engine.apply (3,846 -> 3,843 instructions), busy unchanged (3,638 -> 3,639).
    """

    cdef readonly object symbol
    cdef public long long dead
    cdef public i128 qty
    cdef long long size
    cdef Order head
    cdef Order tail
    cdef public object price
    cdef object key  # its key in its side's dict

    def __init__(self, price, symbol=None):
        self.price = price
        self.symbol = symbol

    @property
    def orders(self):
        """Every queued order, dead ones included, oldest first. O(entries)."""
        cdef list out = []
        cdef Order o = self.head
        while o is not None:
            out.append(o)
            o = o.next
        return out

    def live(self):
        """The live orders in priority order. O(entries)."""
        cdef list out = []
        cdef Order o = self.head
        while o is not None:
            if o.qty:
                out.append(o)
            o = o.next
        return out


cdef inline void _enqueue(PriceLevel level, Order order):
    """Queue ``order`` last."""
    order.next = None
    if level.tail is None:
        level.head = order
    else:
        level.tail.next = order
    level.tail = order
    level.size += 1


cdef inline Order _dequeue(PriceLevel level):
    """Dequeue the oldest order."""
    cdef Order order = level.head
    level.head = order.next
    order.next = None
    if level.head is None:
        level.tail = None
    level.size -= 1
    return order


cdef void _compact(PriceLevel level):
    """Unlink the dead entries. O(entries)."""
    cdef Order o = level.head, last = None, nxt
    while o is not None:
        nxt = o.next
        if o.qty:
            if last is None:
                level.head = o
            else:
                last.next = o
            last = o
        else:
            o.next = None
        o = nxt
    if last is None:
        level.head = None
    else:
        last.next = None
    level.tail = last
    level.size -= level.dead
    level.dead = 0


cdef void _clear(PriceLevel level):
    """Unqueue every order, one at a time (freeing a long queue recursively would not do)."""
    cdef Order o = level.head, nxt
    level.head = level.tail = None
    while o is not None:
        nxt = o.next
        o.next = None
        o = nxt
    level.size = level.dead = 0


cdef PriceLevel _lone_level(object symbol, object price):
    cdef PriceLevel level = PriceLevel.__new__(PriceLevel)
    level.price, level.symbol = price, symbol
    return level


@cython.no_gc  # it refers to a dict of levels and a list of ints, neither of which refers back
cdef class BookSide:
    """One side of a book: levels by key (``sign * price``) and the sorted keys, best last."""

    cdef public long long sign
    cdef public dict levels
    cdef public list keys

    def __init__(self, sign):
        self.sign = sign
        self.levels = {}
        self.keys = []

    def __dealloc__(self):
        if self.levels is not None:
            for level in self.levels.values():
                if type(level) is PriceLevel:
                    _clear(<PriceLevel>level)

    def best(self):
        """The best level, or None when the side is empty. O(1)."""
        keys = self.keys
        return self.levels[keys[len(keys) - 1]] if keys else None

    def in_priority(self):
        """The levels, best first. O(levels)."""
        levels = self.levels
        return (levels[k] for k in reversed(self.keys))

    cdef inline bint crosses(self, long long limit_key):
        """Does the best key reach ``limit_key``?"""
        cdef Py_ssize_t n = PyList_GET_SIZE(self.keys)
        return n > 0 and _key_at(self.keys, n - 1) >= limit_key

    cdef int drop(self, PriceLevel level) except -1:
        """Remove an emptied level (its queue holds dead entries only)."""
        _drop_key(self.keys, self.sign * PyLong_AsLongLong(level.price))
        PyDict_DelItem(self.levels, level.key)
        _clear(level)
        return 0


# -- the book -----------------------------------------------------------------------------

cdef class Book:
    """The compiled base of :class:`OrderBook`; see :class:`carbonbook.core.book.OrderBook`."""

    cdef public object symbol
    cdef public object unit
    cdef public long long tick
    cdef public long long lot
    cdef public BookSide bids
    cdef public BookSide asks
    cdef public IdIndex _index
    cdef public object _seq
    cdef public object phase
    cdef public bint call_only
    cdef public object band
    cdef public object reference
    cdef public bint pending
    cdef public object market_bids
    cdef public object market_asks
    cdef public dict _arrival
    cdef public object _clock
    cdef public dict _expiring
    cdef public object call_row
    cdef public object currency
    cdef object _risk
    cdef AdmitC admit_c  # _risk's admit in C (carbonbook._hooks), or NULL

    def __init__(self, symbol, unit, tick, lot, IdIndex index, seq):
        self.symbol = symbol
        self.unit = unit
        self.tick = tick
        self.lot = lot
        self.bids = BookSide(1)
        self.asks = BookSide(-1)
        self._index = index
        self._seq = seq
        self.phase = Phase.CONTINUOUS
        self.call_only = False
        self.band = None
        self.reference = None
        self.pending = False
        self.market_bids = deque()
        self.market_asks = deque()
        self._arrival = {}
        self._clock = count(1)
        self._expiring = {}
        self.call_row = None
        self.currency = None
        self._risk = None
        self.admit_c = NULL

    @property
    def risk(self):
        """The pre-trade check (:class:`~carbonbook.core.book.PreTradeRisk`), or None; its C
        ``admit`` is called instead of its method when it offers one (:mod:`carbonbook._hooks`)."""
        return self._risk

    @risk.setter
    def risk(self, risk):
        self.admit_c = NULL if risk is None else <AdmitC>_entry(risk, "c_admit", b"carbonbook.admit")
        self._risk = risk

    # -- commands (Python entry points) ------------------------------------------------------

    def submit(self, cmd, list events, bint decoded=False):
        """Enter a new order for this book: :meth:`carbonbook.core.book.OrderBook.submit`."""
        self._submit(cmd, Out(events), decoded)

    def cancel(self, Order order, list events, reason=_USER):
        """Cancel a resting order's open remainder. O(1) amortised."""
        self._index.fetch_pair(order)  # to be written last: its fetch overlaps the rest
        self._cancel(order, Out(events), reason)

    def modify(self, Order order, price, qty, list events):
        """Change a resting order's price and/or open quantity: :meth:`carbonbook.core.book.OrderBook.modify`."""
        self._modify(order, price, qty, Out(events))

    def _rest(self, oid, account, side, price, qty, post_only, stp, is_buy):
        return self._c_rest(oid, account, price, price, qty, post_only, is_buy, _stp_code(stp))

    def _take_off(self, Order order):
        self._c_take_off(order)

    def _resize(self, Order order, long long qty):
        """:meth:`carbonbook.core.book.OrderBook._resize`. O(1)."""
        order.level.qty -= order.qty - qty
        order.qty = qty

    def _executable(self, BookSide opp, account, limit_key, qty, stp, cap=None):
        return self._c_executable(opp, account, limit_key, qty, _stp_code(stp), cap)

    def check(self):
        """Assert every invariant of the book: :func:`carbonbook.core.book.check`. O(orders)."""
        _pure.check(self)

    # -- the hot path ------------------------------------------------------------------------

    cdef int _submit(self, object cmd, Out out, bint decoded) except -1:
        cdef object oid, price_o, qty_o, side, tif, stp, cap_o, order_type, post_only, refusal
        cdef str account
        cdef object account_o
        cdef long long oid_c = 0, qty = 0, price = 0, cap = 0, limit_key, left, held_back
        cdef bint is_buy, ok, crosses
        cdef int tif_c, stp_c
        cdef BookSide opp
        cdef Order order
        cdef object seq = self._seq
        cdef IdIndex index = self._index
        cdef size_t vacant = 0  # the id's slot, empty: where it goes (see IdIndex.add)
        cdef Py_ssize_t ids
        if type(cmd) is _NewOrder:
            oid = _field(cmd, _ID, "id")
            account_o = _field(cmd, _ACCOUNT, "account")
            side = _field(cmd, _SIDE, "side")
            qty_o = _field(cmd, _QTY, "qty")
            price_o = _field(cmd, _PRICE, "price")
            order_type = _field(cmd, _ORDER_TYPE, "order_type")
            tif = _field(cmd, _TIF, "tif")
            post_only = _field(cmd, _POST, "post_only")
            stp = _field(cmd, _STP, "stp")
            cap_o = _field(cmd, _CAP, "cap")
        else:
            oid, account_o, side, qty_o, price_o = cmd.id, cmd.account, cmd.side, cmd.qty, cmd.price
            order_type, tif, post_only, stp, cap_o = cmd.order_type, cmd.tif, cmd.post_only, cmd.stp, cmd.cap
        is_buy = side is _BUY
        # one pass over every refusal but post_only, as the pure book's; order_rejection() says which
        ok = (decoded or (
            type(account_o) is str and 0 < PyUnicode_GET_LENGTH(account_o) <= NAME_MAX
            and _plain_name(account_o)
            and (is_buy or side is _SELL)
            and (tif is _GTC or tif is _IOC or tif is _FOK)
            and (stp is _CANCEL_INCOMING or stp is _CANCEL_RESTING or stp is _CANCEL_BOTH))) \
            and _int64(oid, &oid_c) and oid_c >= 0 \
            and _int64(qty_o, &qty) and qty > 0 and qty % self.lot == 0
        if ok:
            if price_o is None:
                ok = order_type is _MARKET
            else:
                ok = order_type is _LIMIT and _int64(price_o, &price) and price > 0 and price % self.tick == 0
        if ok:
            ok = post_only is False or (post_only is True and tif is _GTC and price_o is not None)
        if ok and cap_o is not None:
            ok = _int64(cap_o, &cap) and cap > 0 and is_buy and price_o is None
        if ok:
            ok = index.vacant(oid_c, &vacant)
        if ok:
            tif_c = GTC if tif is _GTC else IOC if tif is _IOC else FOK
            stp_c = INCOMING if stp is _CANCEL_INCOMING else RESTING if stp is _CANCEL_RESTING else BOTH
        else:
            refusal = _order_rejection(self, cmd)
            if refusal is not None:
                out.event(refusal)
                return 0
            # well formed with plain values equal to the members (checked by order_rejection())
            is_buy = side == _BUY
            tif_c = _tif_code(tif)
            stp_c = _stp_code(stp)
            oid_c = PyLong_AsLongLong(oid)
            qty = PyLong_AsLongLong(qty_o)
            if price_o is not None:
                price = PyLong_AsLongLong(price_o)
            index.vacant(oid_c, &vacant)
        ids = index.used
        account = account_o
        if is_buy:
            opp = self.asks
            limit_key = LLONG_MIN if price_o is None else -price
        else:
            opp = self.bids
            limit_key = LLONG_MIN if price_o is None else price
        crosses = opp.crosses(limit_key)
        if crosses and post_only:
            out.event(_Rejected(next(seq), oid, _POST_ONLY, "post-only order would cross"))
            return 0
        if self._risk is not None:
            refusal = self._risk.admit(self, cmd) if self.admit_c is NULL else self.admit_c(self._risk, self, cmd)
            if refusal is not None:
                out.event(_Rejected(next(seq), oid, refusal[0], refusal[1]))
                return 0
        out.accepted(next(seq), oid, self.symbol)
        if crosses:
            if tif_c == FOK and self._c_executable(opp, account, limit_key, qty, stp_c, cap_o) < qty:
                index.add(vacant, ids, oid_c, CANCELLED)
                out.cancelled(next(seq), oid_c, qty, _FOK_REASON)
                return 0
            if cap_o is None:
                left = self._match(opp, oid, account, is_buy, limit_key, qty, stp_c, out)
            else:  # trade only what the cap pays for; the rest is cancelled with the remainder
                held_back = qty - self._c_executable(opp, account, limit_key, qty, RESTING, cap_o)
                left = self._match(opp, oid, account, is_buy, limit_key, qty - held_back, stp_c, out) \
                    if qty > held_back else 0
                left = left - held_back if left < 0 else left + held_back
            if left == 0:
                index.add(vacant, ids, oid_c, FILLED)
                return 0
            if left < 0:
                index.add(vacant, ids, oid_c, CANCELLED)
                out.cancelled(next(seq), oid_c, -left, _SELF_TRADE)
                return 0
            qty = left
        if tif_c == GTC and price_o is not None:
            order = self._c_rest(oid_c, account, price_o, price, qty, post_only, is_buy, stp_c)
            index.add(vacant, ids, oid_c, order)
        else:
            index.add(vacant, ids, oid_c, CANCELLED)
            out.cancelled(next(seq), oid_c, qty, _FOK_REASON if tif_c == FOK
                          else _MARKET_REASON if price_o is None else _IOC_REASON)
        return 0

    cdef int _cancel(self, Order order, Out out, object reason) except -1:
        """Cancel ``order``; its pair, written last, is already being fetched (by the caller)."""
        out.cancelled(next(self._seq), order.id, order.qty, reason)
        self._c_take_off(order)
        self._index.leave(order, CANCELLED)
        return 0

    cdef int _modify(self, Order order, object price_o, object qty_o, Out out) except -1:
        cdef object seq = self._seq
        cdef object oid = order.id
        cdef object refusal
        cdef long long price, qty, limit_key, left
        cdef bint crosses, is_buy = order.buy
        cdef BookSide opp
        cdef Order moved
        if price_o is None:
            price_o = order.level.price
            price = PyLong_AsLongLong(price_o)
        else:
            price = PyLong_AsLongLong(price_o)
            if price <= 0 or price % self.tick:
                out.event(_Rejected(next(seq), oid, _BAD_PRICE, _bad_price(price_o, self.tick)))
                return 0
        if qty_o is None:
            qty = order.qty
        else:
            qty = PyLong_AsLongLong(qty_o)
            if qty <= 0 or qty % self.lot:
                out.event(_Rejected(next(seq), oid, _BAD_QTY, _bad_qty(qty_o, self.lot)))
                return 0
        if price == PyLong_AsLongLong(order.level.price) and qty <= order.qty:
            if self._risk is not None:
                refusal = self._risk.amend(self, order, price_o, qty)
                if refusal is not None:
                    out.event(_Rejected(next(seq), oid, refusal[0], refusal[1]))
                    return 0
            out.modified(next(seq), order.id, price_o, qty)
            order.level.qty -= order.qty - qty
            order.qty = qty
            return 0
        opp = self.asks if is_buy else self.bids
        limit_key = opp.sign * price
        crosses = opp.crosses(limit_key)
        if crosses and order.post:
            out.event(_Rejected(next(seq), oid, _POST_ONLY, "post-only order would cross"))
            return 0
        if self._risk is not None:
            refusal = self._risk.amend(self, order, price_o, qty)
            if refusal is not None:
                out.event(_Rejected(next(seq), oid, refusal[0], refusal[1]))
                return 0
        out.modified(next(seq), order.id, price_o, qty)
        self._c_take_off(order)
        if crosses:
            left = self._match(opp, oid, order.account, is_buy, limit_key, qty, order.stp_code, out)
            if left == 0:
                self._index.leave(order, FILLED)
                return 0
            if left < 0:
                self._index.leave(order, CANCELLED)
                out.cancelled(next(seq), order.id, -left, _SELF_TRADE)
                return 0
            qty = left
        moved = self._c_rest(order.id, order.account, price_o, price, qty, order.post, is_buy, order.stp_code)
        self._index.leave(order, moved)
        return 0

    cdef Order _c_rest(self, long long oid, str account, object price_o, long long price,
                       long long qty, bint post_only, bint is_buy, int stp_code):
        cdef BookSide own = self.bids if is_buy else self.asks
        cdef object key = price_o if is_buy else PyLong_FromLongLong(-price)
        cdef PyObject* found = PyDict_GetItemWithError(own.levels, key)
        cdef PriceLevel level
        cdef Order order
        if found is NULL:
            level = PriceLevel.__new__(PriceLevel)
            level.price, level.key, level.symbol = price_o, key, self.symbol
            PyDict_SetItem(own.levels, key, level)
            PyList_Insert(own.keys, _bisect_left(own.keys, -price if not is_buy else price), key)
        else:
            level = <PriceLevel>found
        order = Order.__new__(Order)
        order.id = oid
        order.account = account
        order.level = level
        order.qty = qty
        order.post = post_only
        order.buy = is_buy
        order.stp_code = stp_code
        _enqueue(level, order)
        level.qty += qty
        return order

    cdef int _c_take_off(self, Order order) except -1:
        """Mark a resting order dead; drop its level if it empties, compact it if it is mostly
        dead. The level is reached through the order, no reference taken: an order that stays
        queued touches only the level's line of ``qty`` and ``dead`` (see PriceLevel)."""
        cdef long long dead
        order.level.qty = order.level.qty - order.qty  # (``-=`` would take a reference)
        order.qty = 0
        if order.level.qty == 0:
            (self.bids if order.buy else self.asks).drop(order.level)
        else:
            dead = order.level.dead + 1
            order.level.dead = dead
            if dead > COMPACT_MIN and 2 * dead > order.level.size:  # ...and than live ones
                _compact(order.level)
        return 0

    cdef long long _c_executable(self, BookSide opp, str account, long long limit_key, long long qty,
                                 int stp_code, object cap) except? -1:
        """How much of ``qty`` would trade at once (and, with a ``cap``, cost at most ``cap``):
        :meth:`carbonbook.core.book.OrderBook._executable`."""
        cdef bint skip_own = stp_code == RESTING
        cdef long long left = qty, take
        cdef list keys = opp.keys
        cdef Py_ssize_t i
        cdef PriceLevel level
        cdef Order o
        for i in range(PyList_GET_SIZE(keys) - 1, -1, -1):
            if _key_at(keys, i) < limit_key:
                break
            level = <PriceLevel>opp.levels[<object>PyList_GET_ITEM(keys, i)]
            o = level.head
            while o is not None:
                if not o.qty:
                    o = o.next
                    continue
                if o.account == account:
                    if skip_own:
                        o = o.next
                        continue
                    return qty - left
                take = o.qty if o.qty < left else left
                if cap is not None:  # Python integers: a price times a quantity exceeds 64 bits
                    if take * level.price > cap:
                        take = cap // level.price // self.lot * self.lot
                        return qty - left + take
                    cap = cap - take * level.price
                left -= take
                if not left:
                    return qty
                o = o.next
        return qty - left

    cdef long long _match(self, BookSide opp, object taker_id, str account, bint is_buy,
                          long long limit_key, long long qty, int stp_code, Out out) except? -1:
        """Trade ``qty`` against ``opp`` down to ``limit_key``: the unexecuted quantity, negated
        when self-trade prevention stopped the order (its remainder must then be cancelled)."""
        cdef list keys = opp.keys
        cdef dict levels = opp.levels
        cdef IdIndex index = self._index
        cdef object seq = self._seq
        cdef object symbol = self.symbol
        cdef object key_o, price
        cdef PriceLevel level
        cdef Order maker
        cdef long long mq, fill
        cdef Py_ssize_t n
        while True:
            n = PyList_GET_SIZE(keys)
            if n == 0:
                break
            key_o = <object>PyList_GET_ITEM(keys, n - 1)
            if PyLong_AsLongLong(key_o) < limit_key:
                break
            level = <PriceLevel>levels[key_o]
            price = level.price
            while True:
                maker = level.head
                mq = maker.qty
                if not mq:
                    _dequeue(level)
                    level.dead -= 1
                    continue
                _prefetch(<PyObject*>maker.next)  # the maker after it, needed by this taker or a later one
                index.fetch_slot(maker.id)  # what leave() writes if it fills: read while its trade is made
                index.fetch_pair(maker)
                if maker.account == account:
                    if stp_code == INCOMING:
                        return -qty
                    _dequeue(level)
                    maker.qty = 0
                    level.qty -= mq
                    index.leave(maker, CANCELLED)
                    out.cancelled(next(seq), maker.id, mq, _SELF_TRADE)
                    if stp_code == BOTH:
                        if not level.qty:
                            opp.drop(level)
                        return -qty
                else:
                    fill = mq if mq <= qty else qty
                    maker.qty = mq - fill
                    level.qty -= fill
                    qty -= fill
                    self.reference = price
                    out.trade(next(seq), symbol, price, fill, maker.id, taker_id, is_buy, maker.account, account)
                    if fill == mq:
                        _dequeue(level)
                        index.leave(maker, FILLED)
                if not level.qty:
                    opp.drop(level)
                    break
                if not qty:
                    return 0
            if not qty:
                return 0
        return qty


class OrderBook(Book):
    """The book of one instrument (compiled): see :class:`carbonbook.core.book.OrderBook`."""

    __slots__ = ()
    order_class = Order


# -- routing commands to the books ---------------------------------------------------------------

cdef object _CancelOrder = CancelOrder


cdef enum:
    AHEAD = 4  # the ring of commands being fetched ahead (a power of two above the 3 steps)

cdef struct Ahead:
    long long id  # a NewOrder's or CancelOrder's id, when it is a 64-bit int
    bint cancel


cdef inline bint _one_of(object cls, tuple classes) noexcept:
    """``cls in classes`` by identity (a tuple's ``in`` compares each: about 150 instructions more)."""
    cdef Py_ssize_t i
    for i in range(len(classes)):
        if <PyObject*>cls is PyTuple_GET_ITEM(classes, i):
            return True
    return False


cdef inline PyObject* _id_field(PyObject* command, bint* cancel) noexcept:
    """The id of a NewOrder or CancelOrder (borrowed; NULL when unset or another command)."""
    cdef PyObject* cls = _type_of(command)
    cancel[0] = cls is <PyObject*>_CancelOrder
    if cls is <PyObject*>_NewOrder:
        return (<PyObject**>((<char*>command) + _ID))[0]
    if cancel[0]:
        return (<PyObject**>((<char*>command) + _CANCEL_ID))[0]
    return NULL


cdef class Router:
    """Routes an engine's commands: new orders and cancels of a continuous, unbanded book go
    straight to it, every other command to ``dispatch(command, events, decoded)`` (the
    engine's). Bound once to the engine's books, id index and dispatch (again after a restore).

    The book of the last new order or cancel is kept with its symbol: a run of orders for one
    instrument compares strings instead of hashing each (decoded symbols are new strings). Books
    are never removed and never replaced (a phase change swaps a book's class in place), so it
    stays right.
    """

    cdef dict books
    cdef IdIndex index
    cdef object dispatch
    cdef object last_symbol
    cdef object last_book
    cdef Out out  # one's sink, pointed at each call's list

    def __init__(self, dict books, IdIndex index, dispatch):
        self.books, self.index, self.dispatch = books, index, dispatch
        self.out = Out([])

    def one(self, command):
        """The events of one command, as Structs (what ``Engine.apply`` returns)."""
        cdef list events = []
        cdef Out out = self.out
        cdef list outer = out.events  # a handler that applied a command itself would nest
        out.events = events
        try:
            self._route(command, out, False)
        finally:
            out.events = outer
        return events

    def batch(self, commands, list events, bint decoded=False, stage=None, tuple quiet=()):
        """Apply ``commands`` in order, appending their events to ``events`` as Structs; then,
        after each command, ``stage(command, events, start)`` (an engine's stage, see
        :data:`carbonbook.core.engine.Stage`: a venue's settler) when one is given, unless the
        command made one event of a class in ``quiet`` (the stage's, :data:`~carbonbook.core.engine.Stage`);
        its C call when it offers one (:mod:`carbonbook._hooks`)."""
        cdef Out out = Out(events)
        cdef Py_ssize_t start
        cdef StageC stage_c
        if stage is None:
            self._run(commands, out, decoded)
            return
        stage_c = <StageC>_entry(stage, "c_stage", b"carbonbook.stage")
        for command in commands:
            start = len(events)
            self._route(command, out, decoded)
            if len(events) - start != 1 or not _one_of(type(events[start]), quiet):
                if stage_c is NULL:
                    stage(command, events, start)
                else:
                    stage_c(stage, command, events, start)

    def json(self, commands, Out out, bint decoded=False):
        """Apply ``commands`` in order, writing their events into the JSON :class:`Out` ``out``."""
        self._run(commands, out, decoded)

    cdef int _run(self, object commands, Out out, bint decoded) except -1:
        """Route ``commands`` in order. In a list, what the next few commands will read on a book
        too large for the L2 cache is fetched ahead, a step a command, each step only once the
        one before it has arrived: command i + 5 itself, i + 4's id, i + 3's index slot; for a
        cancel also i + 2's resting order (or pair) and i + 1's level and the pair its
        cancel writes (a random cancel of a deep book: ~205 -> ~190 ns). Each id is read once,
        into a ring; the fetches change nothing but timing."""
        cdef Py_ssize_t i, n
        cdef IdIndex index = self.index
        cdef Ahead ring[AHEAD]
        cdef Ahead* a
        cdef PyObject* oid
        cdef PyObject* entry
        cdef bint cancel
        if type(commands) is not list:
            for command in commands:
                self._route(command, out, decoded)
            return 0
        n = PyList_GET_SIZE(commands)
        for i in range(AHEAD):
            ring[i].cancel = False
        for i in range(n):
            if i + 5 < n:
                _prefetch(PyList_GET_ITEM(commands, i + 5))
            if i + 4 < n:
                oid = _id_field(PyList_GET_ITEM(commands, i + 4), &cancel)
                if oid is not NULL:
                    _prefetch(oid)
            a = &ring[(i + 3) & (AHEAD - 1)]
            a.cancel = False
            if i + 3 < n:
                oid = _id_field(PyList_GET_ITEM(commands, i + 3), &cancel)
                if oid is not NULL and _int64(<object>oid, &a.id):
                    a.cancel = cancel
                    index.fetch_slot(a.id)
            a = &ring[(i + 2) & (AHEAD - 1)]
            if a.cancel:
                index.fetch_entry(a.id)
            a = &ring[(i + 1) & (AHEAD - 1)]
            if a.cancel:  # the entry may have changed since
                entry = index.get_c(a.id)
                if entry is not NULL and type(<object>entry) is Order:
                    _prefetch(<PyObject*>(<Order>entry).level)
                    index.fetch_pair(<Order>entry)
            self._route(<object>PyList_GET_ITEM(commands, i), out, decoded)
        return 0

    cdef int _route(self, object command, Out out, bint decoded) except -1:
        cdef object cls = type(command)
        cdef object book, entry, symbol
        cdef long long oid
        cdef PyObject* found = NULL
        if cls is _NewOrder:
            symbol = _field(command, _SYMBOL, "symbol")
            if self.last_symbol is not None and type(symbol) is str and (
                    symbol is self.last_symbol or <str>symbol == <str>self.last_symbol):
                found = <PyObject*>self.last_book
            elif type(symbol) is str:  # anything else is malformed (a list would not even hash)
                found = PyDict_GetItemWithError(self.books, symbol)
                if found is not NULL:
                    self.last_symbol, self.last_book = symbol, <object>found
            if found is not NULL:
                book = <object>found
                if type(book) is OrderBook:
                    return (<Book>book)._submit(command, out, decoded)
                return out.call(book.submit, command, decoded)
        elif cls is _CancelOrder:
            if _int64(_field(command, _CANCEL_ID, "id"), &oid):
                self.index.fetch_order(oid)  # while its slot is read
                found = self.index.get_c(oid)
                if found is not NULL and type(<object>found) is Order:
                    entry = <object>found
                    self.index.fetch_pair(<Order>entry)  # while the level is read
                    symbol = (<Order>entry).level.symbol
                    if symbol is self.last_symbol:
                        book = self.last_book
                    else:
                        book = self.books[symbol]
                    if type(book) is OrderBook:
                        return (<Book>book)._cancel(<Order>entry, out, _USER)
                    return out.call(book.cancel, entry, None)
        return out.call(self.dispatch, command, decoded)


# -- where events go: Structs in a list, or JSON Lines in a buffer -----------------------------

cdef object _json_encode = msgspec.json.Encoder().encode
cdef dict _ENUM_JSON = {m: _json_encode(m) for m in CancelReason}
"""The JSON of each cancel reason (an enum member is not a plain str, so _str would encode it)."""
cdef bytes _PAIRS_BYTES = "".join(f"{i:02d}" for i in range(100)).encode()
cdef const char* _PAIRS = _PAIRS_BYTES


cdef bytes _key(cls, Py_ssize_t i):
    """The bytes between the value before field ``i`` of event class ``cls`` and its value."""
    name = cls.__struct_fields__[i]
    if i == 0:
        return ('{"' + cls.__struct_config__.tag_field + '":"' + cls.__struct_config__.tag
                + '","' + name + '":').encode()
    return (',"' + name + '":').encode()


cdef class _Keys:
    """The JSON between the values of one event class, as msgspec writes it."""

    cdef list keys

    def __init__(self, cls, tuple fields):
        if cls.__struct_fields__ != fields:
            raise TypeError(f"{cls.__name__} fields {cls.__struct_fields__} are not {fields}")
        self.keys = [_key(cls, i) for i in range(len(fields))]


cdef _Keys _ACCEPTED_KEYS = _Keys(Accepted, ("seq", "id", "symbol"))
cdef _Keys _TRADE_KEYS = _Keys(Trade, ("seq", "symbol", "price", "qty", "maker_id", "taker_id", "buy_id",
                                       "sell_id", "buy_account", "sell_account"))
cdef _Keys _CANCELLED_KEYS = _Keys(Cancelled, ("seq", "id", "qty", "reason"))
cdef _Keys _MODIFIED_KEYS = _Keys(Modified, ("seq", "id", "price", "qty"))


@cython.no_gc
cdef class SymbolTrades:
    """What a JSON :class:`Out` wrote of one instrument's trades: count, volume, notional, last price."""

    cdef public long long trades
    cdef public i128 volume
    cdef public i128 notional
    cdef public object last
    cdef public object last_seq


@cython.no_gc  # it refers to its lists and dicts, which never refer back to it
cdef class Out:
    """Where the compiled core's events go.

    ``Out(events)`` appends them to the list ``events`` as msgspec Structs (what
    ``Engine.apply`` returns). ``Out()`` writes them as JSON Lines into a buffer instead,
    byte for byte what msgspec writes for the Structs but without building them (the path of
    ``carbonbook replay``): :meth:`take` returns the bytes written since the last take, and
    :meth:`tally` says what they were. Events the core does not write itself (rejections,
    other phases' and commands' events) are encoded with msgspec and kept for the tally.
    Appending costs O(1) amortised.
    """

    cdef list events
    cdef readonly bint json
    cdef char* buf
    cdef Py_ssize_t size
    cdef Py_ssize_t cap
    cdef dict trades
    cdef list structs
    cdef long long n_accepted, n_trade, n_cancelled, n_modified
    cdef object last_symbol
    cdef SymbolTrades last_trades

    def __cinit__(self, list events=None):
        self.json = events is None
        self.events = events
        if self.json:
            self.trades = {}
            self.structs = []

    def __dealloc__(self):
        free(self.buf)

    def take(self):
        """The JSON Lines written since the last take. O(bytes)."""
        data = PyBytes_FromStringAndSize(self.buf, self.size)
        self.size = 0
        return data

    def tally(self):
        """What was written since the last tally: the counts of the events the core wrote
        itself (by tag), their trades (:class:`SymbolTrades` by symbol) and the Structs it
        encoded, in order. O(symbols + Structs)."""
        counts = {tag: n for tag, n in ((Accepted.__struct_config__.tag, self.n_accepted),
                                        (Trade.__struct_config__.tag, self.n_trade),
                                        (Cancelled.__struct_config__.tag, self.n_cancelled),
                                        (Modified.__struct_config__.tag, self.n_modified)) if n}
        self.n_accepted = self.n_trade = self.n_cancelled = self.n_modified = 0
        trades, structs = self.trades, self.structs
        self.trades, self.structs = {}, []
        self.last_symbol = self.last_trades = None
        return counts, trades, structs

    # -- events ------------------------------------------------------------------------------

    cdef int event(self, object event) except -1:
        """Any event Struct."""
        if self.json:
            self.structs.append(event)
            self._bytes(_json_encode(event))
            self._put("\n", 1)
        else:
            self.events.append(event)
        return 0

    cdef int call(self, handler, object arg, object decoded) except -1:
        """``handler(arg, events[, decoded])`` for a Python-level handler (a phase book, the
        engine's dispatch): into the events list itself, or a list then written here."""
        cdef list events = self.events if not self.json else []
        if decoded is None:
            handler(arg, events)
        else:
            handler(arg, events, decoded)
        if self.json:
            for event in events:
                self.event(event)
        return 0

    cdef int accepted(self, object seq, object oid, object symbol) except -1:
        cdef list k
        if not self.json:
            self.events.append(_Accepted(seq, oid, symbol))
            return 0
        k = _ACCEPTED_KEYS.keys
        self._bytes(k[0]); self._pyint(seq)
        self._bytes(k[1]); self._pyint(oid)
        self._bytes(k[2]); self._str(symbol)
        self._put("}\n", 2)
        self.n_accepted += 1
        return 0

    cdef int cancelled(self, object seq, long long oid, long long qty, object reason) except -1:
        cdef list k
        if not self.json:
            self.events.append(_Cancelled(seq, oid, qty, reason))
            return 0
        k = _CANCELLED_KEYS.keys
        self._bytes(k[0]); self._pyint(seq)
        self._bytes(k[1]); self._int(oid)
        self._bytes(k[2]); self._int(qty)
        self._bytes(k[3]); self._str(reason)
        self._put("}\n", 2)
        self.n_cancelled += 1
        return 0

    cdef int modified(self, object seq, long long oid, object price, long long qty) except -1:
        cdef list k
        if not self.json:
            self.events.append(_Modified(seq, oid, price, qty))
            return 0
        k = _MODIFIED_KEYS.keys
        self._bytes(k[0]); self._pyint(seq)
        self._bytes(k[1]); self._int(oid)
        self._bytes(k[2]); self._pyint(price)
        self._bytes(k[3]); self._int(qty)
        self._put("}\n", 2)
        self.n_modified += 1
        return 0

    cdef int trade(self, object seq, object symbol, object price, long long qty, long long maker_id,
                   object taker_id, bint taker_buys, str maker_account, str taker_account) except -1:
        cdef list k
        cdef SymbolTrades stats
        cdef object maker
        if not self.json:
            maker = maker_id
            if taker_buys:
                self.events.append(_Trade(seq, symbol, price, qty, maker, taker_id, taker_id, maker,
                                          taker_account, maker_account))
            else:
                self.events.append(_Trade(seq, symbol, price, qty, maker, taker_id, maker, taker_id,
                                          maker_account, taker_account))
            return 0
        k = _TRADE_KEYS.keys
        self._bytes(k[0]); self._pyint(seq)
        self._bytes(k[1]); self._str(symbol)
        self._bytes(k[2]); self._pyint(price)
        self._bytes(k[3]); self._int(qty)
        self._bytes(k[4]); self._int(maker_id)
        self._bytes(k[5]); self._pyint(taker_id)
        if taker_buys:
            self._bytes(k[6]); self._pyint(taker_id)
            self._bytes(k[7]); self._int(maker_id)
            self._bytes(k[8]); self._str(taker_account)
            self._bytes(k[9]); self._str(maker_account)
        else:
            self._bytes(k[6]); self._int(maker_id)
            self._bytes(k[7]); self._pyint(taker_id)
            self._bytes(k[8]); self._str(maker_account)
            self._bytes(k[9]); self._str(taker_account)
        self._put("}\n", 2)
        self.n_trade += 1
        if symbol is not self.last_symbol:
            stats = self.trades.get(symbol)
            if stats is None:
                stats = self.trades[symbol] = SymbolTrades()
            self.last_symbol, self.last_trades = symbol, stats
        stats = self.last_trades
        stats.trades += 1
        stats.volume += qty
        stats.notional += <i128>qty * PyLong_AsLongLong(price)
        stats.last = price
        stats.last_seq = seq
        return 0

    # -- the buffer --------------------------------------------------------------------------

    cdef inline int _reserve(self, Py_ssize_t n) except -1:
        cdef Py_ssize_t cap
        cdef char* grown
        if self.size + n > self.cap:
            cap = max(2 * self.cap, self.size + n, 1 << 16)
            grown = <char*>realloc(self.buf, cap)
            if grown is NULL:
                raise MemoryError()
            self.buf, self.cap = grown, cap
        return 0

    cdef inline int _put(self, const char* data, Py_ssize_t n) except -1:
        self._reserve(n)
        memcpy(self.buf + self.size, data, n)
        self.size += n
        return 0

    cdef inline int _bytes(self, bytes data) except -1:
        return self._put(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))

    @cython.cdivision(True)
    cdef inline int _int(self, long long value) except -1:
        """Two digits a step (a table of "00" to "99"), written from the end."""
        cdef char digits[24]
        cdef int i = 24
        cdef unsigned long long v = <unsigned long long>value if value >= 0 else \
            <unsigned long long>0 - <unsigned long long>value
        cdef unsigned int pair
        while v >= 100:
            pair = <unsigned int>(v % 100) * 2
            v //= 100
            i -= 2
            digits[i] = _PAIRS[pair]
            digits[i + 1] = _PAIRS[pair + 1]
        if v >= 10:
            i -= 2
            digits[i] = _PAIRS[v * 2]
            digits[i + 1] = _PAIRS[v * 2 + 1]
        else:
            i -= 1
            digits[i] = <char>(48 + v)
        if value < 0:
            i -= 1
            digits[i] = 45  # "-"
        return self._put(digits + i, 24 - i)

    cdef inline int _pyint(self, object value) except -1:
        return self._int(PyLong_AsLongLong(value))

    cdef int _str(self, object text) except -1:
        """A JSON string: plain ASCII is copied; anything else is msgspec's encoding."""
        cdef Py_ssize_t n, i
        cdef const unsigned char* data
        cdef unsigned char c
        if type(text) is str and PyUnicode_IS_COMPACT_ASCII(text):
            n = PyUnicode_GET_LENGTH(text)
            data = <const unsigned char*>PyUnicode_DATA(text)
            for i in range(n):
                c = data[i]
                if c < 32 or c == 34 or c == 92 or c == 127:
                    break
            else:
                self._reserve(n + 2)
                self.buf[self.size] = 34
                memcpy(self.buf + self.size + 1, data, n)
                self.buf[self.size + n + 1] = 34
                self.size += n + 2
                return 0
        found = PyDict_GetItemWithError(_ENUM_JSON, text) if type(text) is not str else NULL
        return self._bytes(<bytes>found if found is not NULL else _json_encode(text))


def _self_test():
    """Check that the JSON writers give msgspec's bytes for sample events (run at import: the
    JSON path is switched off, with the reason, if they do not)."""
    out = Out()
    samples = [Accepted(7, 2**63 - 1, "JPA-2010"), Cancelled(8, 0, 5, CancelReason.SELF_TRADE),
               Modified(9, 12, 1500, 3), Trade(10, 'a"b\\c\u00e9', 1450, 200, 1, 2, 2, 1, "bob", "alice\n"),
               Cancelled(11, 3, -(2**63), CancelReason.USER)]
    out.accepted(7, 2**63 - 1, "JPA-2010")
    out.cancelled(8, 0, 5, CancelReason.SELF_TRADE)
    out.modified(9, 12, 1500, 3)
    out.trade(10, 'a"b\\c\u00e9', 1450, 200, 1, 2, True, "alice\n", "bob")
    out.cancelled(11, 3, int("-9223372036854775808"), CancelReason.USER)
    got, want = out.take(), msgspec.json.Encoder().encode_lines(samples)
    if got != want:
        raise AssertionError(f"JSON writers give {got!r}, msgspec {want!r}")


try:
    _self_test()
except AssertionError as exc:
    JSON_OK = False
    """The JSON path writes exactly msgspec's bytes (checked at import)."""
    JSON_WHY = str(exc)
else:
    JSON_OK = True
    JSON_WHY = None


# -- the call auction's price ---------------------------------------------------------------

cdef struct Row:
    long long p
    i128 d  # demand at p: market buys and bids at p or above
    i128 s  # supply at p: market sells and asks at p or below


cdef inline Py_ssize_t _bisect_right(list keys, long long key):
    return PyList_GET_SIZE(keys) if key == LLONG_MAX else _bisect_left(keys, key + 1)


cdef inline i128 _qty_at(BookSide side, Py_ssize_t i):
    """The total of the level whose key is ``side.keys[i]``."""
    return (<PriceLevel>side.levels[<object>PyList_GET_ITEM(side.keys, i)]).qty


cdef bint _up(Book book, Row* row):
    """Move ``row`` to the lowest limit price above it; False (row unchanged) if none. O(log L)."""
    cdef list bk = book.bids.keys, ak = book.asks.keys  # bid keys are prices, ask keys -price
    cdef Py_ssize_t i = _bisect_right(bk, row.p), j = _bisect_left(ak, -row.p)
    cdef bint bid = i < PyList_GET_SIZE(bk), ask = j > 0  # ak[j - 1]: the lowest ask above p
    cdef long long nxt
    if not bid and not ask:
        return False
    nxt = _key_at(bk, i) if bid else -_key_at(ak, j - 1)
    if ask and -_key_at(ak, j - 1) < nxt:
        nxt = -_key_at(ak, j - 1)
    if i and _key_at(bk, i - 1) == row.p:
        row.d -= _qty_at(book.bids, i - 1)
    if ask and -_key_at(ak, j - 1) == nxt:
        row.s += _qty_at(book.asks, j - 1)
    row.p = nxt
    return True


cdef bint _down(Book book, Row* row):
    """Move ``row`` to the highest limit price below it; False (row unchanged) if none. O(log L)."""
    cdef list bk = book.bids.keys, ak = book.asks.keys
    cdef Py_ssize_t i = _bisect_left(bk, row.p), j = _bisect_right(ak, -row.p)
    cdef bint bid = i > 0, ask = j < PyList_GET_SIZE(ak)  # ak[j]: the highest ask below p
    cdef long long nxt
    if not bid and not ask:
        return False
    nxt = _key_at(bk, i - 1) if bid else -_key_at(ak, j)
    if ask and -_key_at(ak, j) > nxt:
        nxt = -_key_at(ak, j)
    if j and _key_at(ak, j - 1) == -row.p:
        row.s -= _qty_at(book.asks, j - 1)
    if bid and _key_at(bk, i - 1) == nxt:
        row.d += _qty_at(book.bids, i - 1)
    row.p = nxt
    return True


cdef inline bint _listed(Book book, long long p):
    """Is ``p`` a limit price of the book?"""
    cdef list bk = book.bids.keys, ak = book.asks.keys
    cdef Py_ssize_t i = _bisect_left(bk, p), j = _bisect_left(ak, -p)
    return (i < PyList_GET_SIZE(bk) and _key_at(bk, i) == p) or (j < PyList_GET_SIZE(ak) and _key_at(ak, j) == -p)


cdef Row* _push(Row* rows, Py_ssize_t n, Py_ssize_t* room, Row r) except NULL:
    """``rows`` (``n`` of them, room for ``room[0]``) with ``r`` added, grown if need be."""
    cdef Row* grown = rows
    if n == room[0]:
        grown = <Row*>PyMem_Realloc(rows, (2 * room[0] + 8) * sizeof(Row))
        if grown is NULL:
            raise MemoryError()  # rows is still the caller's, to free
        room[0] = 2 * room[0] + 8
    grown[n] = r
    return grown


cdef inline tuple _row_tuple(Row r):
    return (r.p, r.d, r.s)


cdef inline i128 _abs(i128 x):
    return -x if x < 0 else x


def choose(book, tuple start):
    """:func:`carbonbook.core.phases.choose` for a compiled book: the same walk over the same
    rows, with C integers (quantities 128-bit, as the levels' totals)."""
    cdef Book b = <Book?>book
    cdef Row row, left, right
    cdef bint has_left, has_right
    cdef i128 volume, least, surplus, demand, supply
    cdef long long low, high, price
    cdef Py_ssize_t n = 0, room = 0, k, first, last, at
    cdef Row* rows = NULL
    if not b.bids.keys and not b.asks.keys:  # D and S are the market orders
        mb, ms, ref = start[1], start[2], b.reference
        if mb and ms and ref is not None:
            return (ref, min(mb, ms), mb - ms), start
        return (None, 0, 0), start
    row.p, row.d, row.s = start[0], start[1], start[2]
    if not _listed(b, row.p):
        if not _up(b, &row):
            _down(b, &row)
    # left: the highest limit price with D > S; right: the lowest with D <= S
    if row.d > row.s:
        left, right = row, row
        has_left, has_right = True, _up(b, &right)
        while has_right and right.d > right.s:
            left = right
            has_right = _up(b, &right)
    else:
        left, right = row, row
        has_left, has_right = _down(b, &left), True
        while has_left and left.d <= left.s:
            right = left
            has_left = _down(b, &left)
    here = _row_tuple(right if has_right else left)
    # min(D, S) is S up to left and D from right on: the largest volume is at one of
    # them, and the prices tied on it are next to it
    volume = 0
    if has_left and left.s > volume:
        volume = left.s
    if has_right and right.d > volume:
        volume = right.d
    if not volume:
        return (None, 0, 0), here
    try:  # the tied rows, lowest price first: left's run reversed, then right's
        while has_left and left.s == volume:
            rows = _push(rows, n, &room, left)
            n += 1
            has_left = _down(b, &left)
        for k in range(n // 2):
            rows[k], rows[n - 1 - k] = rows[n - 1 - k], rows[k]
        while has_right and right.d == volume:
            rows = _push(rows, n, &room, right)
            n += 1
            has_right = _up(b, &right)
        least = _abs(rows[0].d - rows[0].s)
        for k in range(1, n):
            if _abs(rows[k].d - rows[k].s) < least:
                least = _abs(rows[k].d - rows[k].s)
        first, last = -1, -1  # the tied rows: those with the least surplus
        for k in range(n):
            if _abs(rows[k].d - rows[k].s) == least:
                if first < 0:
                    first = k
                last = k
        if least:
            surplus = 0
            for k in range(first, last + 1):  # all on one side of zero?
                if _abs(rows[k].d - rows[k].s) == least:
                    if surplus == 0:
                        surplus = rows[k].d - rows[k].s
                    elif (surplus > 0) != (rows[k].d - rows[k].s > 0):
                        surplus = 0
                        break
            if surplus > 0:
                return (rows[last].p, volume, rows[last].d - rows[last].s), here
            if surplus < 0:
                return (rows[first].p, volume, rows[first].d - rows[first].s), here
        low, high = rows[first].p, rows[last].p
        ref = b.reference
        if ref is None:
            price = <long long>((<i128>low + high) // 2)
            price -= (price - low) % b.tick
        else:
            price = low if ref < low else high if ref > high else ref
        for k in range(first, last + 1):
            if rows[k].p == price and _abs(rows[k].d - rows[k].s) == least:
                return (price, volume, rows[k].d - rows[k].s), here
        # between two tied prices, or at one that has more surplus: from the row at or below it
        k = n - 1
        while rows[k].p > price:
            k -= 1
        demand, supply = rows[k].d, rows[k].s
        if rows[k].p < price:
            at = _bisect_left(b.bids.keys, rows[k].p)
            if at < PyList_GET_SIZE(b.bids.keys) and _key_at(b.bids.keys, at) == rows[k].p:
                demand -= _qty_at(b.bids, at)
        return (price, demand if demand < supply else supply, demand - supply), here
    finally:
        PyMem_Free(rows)
