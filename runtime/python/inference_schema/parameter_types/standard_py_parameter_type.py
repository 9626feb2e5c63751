"""Plain Python samples (int, float, str, bool, bytes, date/time, list, dict, nested parameter types)."""
import base64
from datetime import date, datetime, time

from .abstract_parameter_type import AbstractParameterType

DATE_FORMAT = "%Y-%m-%d"
DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"
TIME_FORMAT = "%H:%M:%S.%f"


def swagger_for_value(sample):
    t = type(sample)
    if isinstance(sample, AbstractParameterType):
        return sample.input_to_swagger()
    if t is bool:
        return {"type": "boolean", "example": sample}
    if t is int:
        return {"type": "integer", "format": "int64", "example": sample}
    if t is float:
        return {"type": "number", "format": "double", "example": sample}
    if t is str:
        return {"type": "string", "example": sample}
    if t in (bytes, bytearray):
        return {"type": "string", "format": "byte", "example": base64.b64encode(bytes(sample)).decode("ascii")}
    if t is datetime:
        return {"type": "string", "format": "date-time", "example": sample.strftime(DATETIME_FORMAT)}
    if t is date:
        return {"type": "string", "format": "date", "example": sample.strftime(DATE_FORMAT)}
    if t is time:
        return {"type": "string", "format": "time", "example": sample.strftime(TIME_FORMAT)}
    if t in (list, tuple, range):
        items = {"type": "object"}
        example = []
        for value in sample:
            s = swagger_for_value(value)
            example.append(s.pop("example", None))
            items = s
        return {"type": "array", "items": items, "example": example}
    if t is dict:
        props, example = {}, {}
        for k, v in sample.items():
            s = swagger_for_value(v)
            example[k] = s.pop("example", None)
            props[k] = s
        return {"type": "object", "required": list(sample.keys()), "properties": props, "example": example}
    return {"type": "object", "example": sample}


def convert_value(sample, value):
    """Convert a parsed JSON value to the type of ``sample`` (recursing into lists and dicts)."""
    if isinstance(sample, AbstractParameterType):
        if isinstance(value, sample.sample_data_type):
            return value
        return sample.deserialize_input(value)
    t = type(sample)
    if value is None:
        return None
    if t is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if t is datetime and isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    if t is date and isinstance(value, str):
        return date.fromisoformat(value)
    if t is time and isinstance(value, str):
        return time.fromisoformat(value)
    if t in (bytes, bytearray) and isinstance(value, str):
        return t(base64.b64decode(value))
    if t in (list, tuple) and isinstance(value, list) and len(sample) > 0:
        return t(convert_value(sample[0], v) for v in value)
    if t is dict and isinstance(value, dict):
        return {k: (convert_value(sample[k], v) if k in sample else v) for k, v in value.items()}
    return value


class StandardPythonParameterType(AbstractParameterType):
    def __init__(self, sample_input):
        super(StandardPythonParameterType, self).__init__(sample_input)

    def deserialize_input(self, input_data):
        return convert_value(self.sample_input, input_data)

    def input_to_swagger(self):
        return swagger_for_value(self.sample_input)
