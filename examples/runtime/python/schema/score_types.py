# Standard Python and pandas parameter types: inputs converted before run() sees them.
import pandas as pd

from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType


def init():
    pass


@input_schema('frame', PandasParameterType(pd.DataFrame({'age': [30], 'income': [1.5]})))
@input_schema('scale', StandardPythonParameterType(2.0))
@output_schema(StandardPythonParameterType({'total': 1.0, 'kinds': ['DataFrame']}))
def run(frame, scale):
    assert isinstance(frame, pd.DataFrame), type(frame)
    assert isinstance(scale, float), type(scale)
    return {'total': float((frame['age'] * frame['income']).sum() * scale), 'kinds': [type(frame).__name__, str(frame['age'].dtype)]}
