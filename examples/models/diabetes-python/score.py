# Diabetes progression, linear model: written like the seed guide's score.py (Model.get_model_path + json/numpy),
# with the coefficients in a JSON file (trained by ../train_diabetes.py) instead of a pickle.
import json

import numpy as np
from azureml.core.model import Model

from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType


def init():
    global coef, intercept
    # retrieve the path to the model file using the model name
    model_path = Model.get_model_path('diabetes-linear')
    with open(model_path) as f:
        model = json.load(f)
    coef = np.array(model['coef'])
    intercept = model['intercept']


input_sample = np.array([[0.038076, 0.05068, 0.061696, 0.021872, -0.044223, -0.034821, -0.043401, -0.002592, 0.019907, -0.017646]])
output_sample = np.array([210.569375])


# Passes data to the model and returns the prediction
@input_schema('data', NumpyParameterType(input_sample))
@output_schema(NumpyParameterType(output_sample))
def run(data):
    y_hat = np.asarray(data) @ coef + intercept
    # The seed returns json.dumps(y_hat.tolist()), which AML sends as a JSON *string*; a list is sent as JSON.
    return y_hat.tolist()
