"""numpy dtype → swagger item schema."""


def dtype_to_swagger(dtype):
    if dtype.names:
        props = {}
        for name in dtype.names:
            props[name] = dtype_to_swagger(dtype.fields[name][0])
        return {"type": "object", "properties": props}
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return nest_array(dtype_to_swagger(base), len(shape))
    kind = dtype.kind
    if kind == "b":
        return {"type": "boolean"}
    if kind in ("i", "u"):
        return {"type": "integer", "format": "int64" if dtype.itemsize > 4 else "int32"}
    if kind == "f":
        return {"type": "number", "format": "double" if dtype.itemsize > 4 else "float"}
    if kind in ("U", "S"):
        return {"type": "string"}
    if kind == "M":
        return {"type": "string", "format": "date-time"}
    if kind == "m":
        return {"type": "string", "format": "timedelta"}
    return {"type": "object"}


def nest_array(item, dims):
    schema = item
    for _ in range(max(dims, 1)):
        schema = {"type": "array", "items": schema}
    return schema


_PLAIN = (str, int, bool, type(None))


def to_jsonable(value):
    """numpy / pandas values → plain JSON values (used for swagger examples and run() results)."""
    if type(value) in _PLAIN:
        return value
    if hasattr(value, "to_dict") and hasattr(value, "columns"):
        return [to_jsonable(r) for r in value.to_dict(orient="records")]
    if hasattr(value, "tolist"):
        return to_jsonable(value.tolist())
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and value != value:
        return None
    return value
