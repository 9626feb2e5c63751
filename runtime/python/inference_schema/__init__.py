"""Compatibility package written for this project's scoring runtime, with the public API of the
``inference-schema`` package: ``schema_decorators.input_schema`` / ``output_schema`` and the parameter types
``StandardPythonParameterType``, ``NumpyParameterType`` and ``PandasParameterType``. The decorators record an
OpenAPI schema (served as /swagger.json) and convert JSON inputs to the sample's type before run() sees them.
Standard library only; numpy/pandas are imported when the numpy/pandas parameter types are used."""
