# cython: language_level=3
"""C entry points of the hooks the compiled core calls (:mod:`carbonbook.core._cbook`), offered
by compiled hooks (:mod:`carbonbook._cvenue`) without the core knowing them.

A book's ``risk`` (:class:`~carbonbook.core.book.PreTradeRisk`) may offer its ``admit`` as a C
function, and an engine's stage (:data:`~carbonbook.core.engine.Stage`) its call: a class
attribute ``c_admit`` or ``c_stage``, a capsule of that name holding a function that does
exactly what the Python method does. The compiled core calls it instead of the method: no
bound method, argument tuple or argument parsing (a venue message on the compiled gate: 21,288
-> 20,696 instructions, bench/venue.py --instructions). Other hooks, and the pure core, call
the methods."""

from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_IsValid

# risk.admit(book, cmd): None, or the refusal (reason, detail)
ctypedef object (*AdmitC)(object risk, object book, object cmd)
# stage(command, events, start)
ctypedef int (*StageC)(object stage, object command, list events, Py_ssize_t start) except -1
# the compiled core's open_order(index, oid), which it offers the other way, to compiled hooks: its
# module's capsule ``c_open_order`` (a gate's check after each trade, 180 -> 40 instructions)
ctypedef object (*OpenOrderC)(object index, object oid)

cdef inline void* entry(object hook, str attribute, const char* name) except? NULL:
    """The C function ``hook``'s class offers as the capsule ``attribute`` named ``name``, or NULL."""
    capsule = getattr(type(hook), attribute, None)
    if capsule is None or not PyCapsule_IsValid(capsule, name):
        return NULL
    return PyCapsule_GetPointer(capsule, name)
