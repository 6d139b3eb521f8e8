# Handing a part's struct of C functions from its module to the pool, through a PyCapsule.
from cpython.pycapsule cimport PyCapsule_New, PyCapsule_GetPointer, PyCapsule_IsValid


cdef inline object part_capsule(void* table, const char* kind):
    """A capsule holding ``table`` (a module-level RootRule / LeafValue / Beliefs)."""
    return PyCapsule_New(table, kind, NULL)


cdef inline void* part_table(object capsule, const char* kind, str where) except NULL:
    """The struct a part's ``part()`` capsule holds; ValueError naming ``where`` (the option and
    module) if the module hands out another kind of part."""
    if not PyCapsule_IsValid(capsule, kind):
        raise ValueError(f"{where} does not hand out a {kind.decode()} "
                         f"(is it in the right table of blobcore/search/parts.py?)")
    return PyCapsule_GetPointer(capsule, kind)
