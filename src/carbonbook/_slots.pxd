# cython: language_level=3
"""The fields of a msgspec Struct read at their slot offsets, for the compiled parts
(:mod:`carbonbook.core._cbook`, :mod:`carbonbook._cvenue`).

msgspec keeps a Struct's fields in slots (member descriptors, checked when the offset is
taken, at import); a read at the offset skips the attribute lookup (about 100 instructions
per field). Only for an object whose type is exactly the class the offset was taken from."""

from cpython.object cimport PyObject, PyTypeObject


cdef extern from "Python.h":
    PyTypeObject PyMemberDescr_Type
    ctypedef struct PyMemberDef:
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member


cdef inline Py_ssize_t slot_offset(object cls, str name) except -1:
    """The offset of field ``name`` of the Struct class ``cls`` (or of a base class)."""
    descr = getattr(cls, name)
    if (<PyObject*>descr).ob_type is not &PyMemberDescr_Type:
        raise TypeError(f"{cls.__name__}.{name} is not a slot")
    return (<PyMemberDescrObject*><PyObject*>descr).d_member.offset


cdef inline object field(object obj, Py_ssize_t offset, str name):
    """The field at ``offset`` of ``obj`` (getattr's AttributeError when it is unset)."""
    cdef PyObject* value = (<PyObject**>((<char*><PyObject*>obj) + offset))[0]
    if value is NULL:
        return getattr(obj, name)
    return <object>value
