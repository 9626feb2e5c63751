"""Where decorated functions keep their schemas (``__functions_schema__``, keyed by qualified name)."""
import inspect

from ._constants import INPUT_SCHEMA_ATTR, OUTPUT_SCHEMA_ATTR

__functions_schema__ = {}


def _get_decorators(func):
    """The chain of wrappers down to the user's function (last item)."""
    chain = [func]
    while hasattr(chain[-1], "__wrapped__"):
        chain.append(chain[-1].__wrapped__)
    return chain


def _base_function(func):
    return _get_decorators(func)[-1]


def _get_function_full_qual_name(func):
    base = _base_function(func)
    return "{0}.{1}".format(base.__module__, base.__qualname__)


def get_input_schema(func):
    return __functions_schema__.get(_get_function_full_qual_name(func), {}).get(INPUT_SCHEMA_ATTR, {})


def get_output_schema(func):
    return __functions_schema__.get(_get_function_full_qual_name(func), {}).get(OUTPUT_SCHEMA_ATTR, {})


def get_schemas_dict():
    return __functions_schema__


def is_schema_decorated(func):
    entry = __functions_schema__.get(_get_function_full_qual_name(func), {})
    return INPUT_SCHEMA_ATTR in entry or OUTPUT_SCHEMA_ATTR in entry


def get_arg_names(func):
    return inspect.getfullargspec(_base_function(func)).args


def accepts_kwargs(func):
    return inspect.getfullargspec(_base_function(func)).varkw is not None
