# The seed guide's schema example verbatim in shape: decorated run(raw_data) that parses the body itself.
import json
import numpy as np
from azureml.core.model import Model

from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType


def init():
    global coef
    coef = 2.0


input_sample = np.array([[1.8]])
output_sample = np.array([43638.88])

@input_schema('data', NumpyParameterType(input_sample))
@output_schema(NumpyParameterType(output_sample))
def run(raw_data):
    data = np.array(json.loads(raw_data)['data'])
    y_hat = data[:, 0] * coef
    return json.dumps(y_hat.tolist())
