# Handing a part's struct of C functions from its module to the pool, through a PyCapsule.
from cpython.pycapsule cimport PyCapsule_New, PyCapsule_GetPointer


cdef inline object part_capsule(void* table, const char* kind):
    """A capsule holding ``table`` (a module-level RootRule / LeafValue / Beliefs)."""
    return PyCapsule_New(table, kind, NULL)


cdef inline void* part_table(object capsule, const char* kind) except NULL:
    """The struct a part's ``part()`` capsule holds; TypeError if it is another kind."""
    return PyCapsule_GetPointer(capsule, kind)
