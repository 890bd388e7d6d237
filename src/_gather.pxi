# Gathering values from mappings (included by _core.pyx): dotted paths through lists
# (ops.walk), every string value of an event (Sigma keywords). Program.gather_event,
# add_value and lookup use these; the chunk owns what they return (DESIGN.md, ownership).

cdef object _walk(object node, tuple parts):
    """ops.walk: the value a dotted path reaches, None when none; once a step meets a list,
    the list of every value reached through its mapping elements (_walk_many)."""
    cdef Py_ssize_t i
    for i in range(len(parts)):
        if PyList_Check(node):
            return _walk_many(node, parts, i)
        if not isinstance(node, _Mapping):
            return None
        node = node.get(parts[i], _MISSING)
        if node is _MISSING:
            return None
    return node


cdef list _string_values(object ev):
    """ops.string_values: every str value of ev, at any depth (lists and mappings walked), in a
    list that owns them (DESIGN.md, ownership); an explicit stack, so any depth is read."""
    cdef list out = [], stack = [ev]
    while stack:
        node = stack.pop()
        if PyUnicode_Check(node):
            out.append(node)
        elif PyDict_CheckExact(node):
            stack.extend((<dict>node).values())
        elif isinstance(node, _Mapping):
            stack.extend(node.values())
        elif PyList_Check(node):
            stack.extend(node)
    return out


cdef list _walk_many(object first, tuple parts, Py_ssize_t i):
    """The values parts[i:] reach from first (a list), in order. The returned list owns a
    reference to each (DESIGN.md, ownership): a Mapping's get may change or free the lists
    being walked, so each element is taken (and owned) by index, its list's size re-read."""
    cdef list found = [first], step, maps
    cdef Py_ssize_t k
    for part in parts[i:]:
        step = []
        for n in found:
            if PyList_Check(n):
                maps = []
                k = 0
                while k < PyList_GET_SIZE(n):
                    e = <object>PyList_GET_ITEM(n, k)
                    k += 1
                    if isinstance(e, _Mapping):
                        maps.append(e)
            elif isinstance(n, _Mapping):
                maps = [n]
            else:
                continue
            for m in maps:
                v = m.get(part, _MISSING)
                if v is not _MISSING:
                    step.append(v)
        found = step
    return found




cdef object _TRUE = "true"
cdef object _FALSE = "false"
cdef object _MISSING = object()
