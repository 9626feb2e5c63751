"""``@input_schema(param_name, param_type, convert_to_provided_type=True, optional=False)`` and
``@output_schema(param_type)``, as in the inference-schema package."""
import copy
import functools

from ._constants import INPUT_SCHEMA_ATTR, OUTPUT_SCHEMA_ATTR
from .parameter_types.abstract_parameter_type import AbstractParameterType
from .schema_util import __functions_schema__, _get_function_full_qual_name, get_arg_names


class InputConversionError(ValueError):
    """A request value could not be converted to the declared parameter type (the runtime answers 400)."""


def _convert(param_name, param_type, value):
    try:
        return param_type.deserialize_input(value)
    except Exception as e:  # noqa: BLE001 - any conversion failure is the caller's input
        raise InputConversionError("Invalid value for input '{0}': {1}".format(param_name, e))


def _entry(func):
    return __functions_schema__.setdefault(_get_function_full_qual_name(func), {})


def input_schema(param_name, param_type, convert_to_provided_type=True, optional=False):
    if not isinstance(param_type, AbstractParameterType):
        raise Exception("Error, provided param_type must be a subclass of the AbstractParameterType.")
    swagger = param_type.input_to_swagger()

    def decorator(user_run):
        entry = _entry(user_run)
        arg_names = get_arg_names(user_run)
        schema = entry.get(INPUT_SCHEMA_ATTR)
        if schema is None:
            schema = {"type": "object", "properties": {}, "example": {}}
            entry[INPUT_SCHEMA_ATTR] = schema
        item = copy.deepcopy(swagger)
        schema["example"][param_name] = item.pop("example", None)
        schema["properties"][param_name] = item
        if not optional:
            required = schema.setdefault("required", [])
            if param_name not in required:
                required.append(param_name)

        @functools.wraps(user_run)
        def wrapper(*args, **kwargs):
            if convert_to_provided_type:
                if param_name in kwargs:
                    if not isinstance(kwargs[param_name], param_type.sample_data_type):
                        kwargs[param_name] = _convert(param_name, param_type, kwargs[param_name])
                elif param_name in arg_names and arg_names.index(param_name) < len(args):
                    args = list(args)
                    pos = arg_names.index(param_name)
                    if not isinstance(args[pos], param_type.sample_data_type):
                        args[pos] = _convert(param_name, param_type, args[pos])
                    args = tuple(args)
            return user_run(*args, **kwargs)

        return wrapper

    return decorator


def output_schema(output_type):
    if not isinstance(output_type, AbstractParameterType):
        raise Exception("Error, provided param_type must be a subclass of the AbstractParameterType.")
    swagger = output_type.input_to_swagger()

    def decorator(user_run):
        entry = _entry(user_run)
        if OUTPUT_SCHEMA_ATTR in entry:
            raise Exception("Error, output schema already defined for function: {0}.".format(
                _get_function_full_qual_name(user_run)))
        entry[OUTPUT_SCHEMA_ATTR] = copy.deepcopy(swagger)

        @functools.wraps(user_run)
        def wrapper(*args, **kwargs):
            return user_run(*args, **kwargs)

        return wrapper

    return decorator
