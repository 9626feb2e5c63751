# Schema decorators as in the seed guide: a scikit-learn model and numpy samples (needs python3-numpy and
# python3-sklearn). The model is fitted in init() on a tiny data set instead of loaded from a pickle.
import json
import numpy as np
from sklearn.linear_model import LinearRegression
from azureml.core.model import Model

from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType


def init():
    global model
    with open(Model.get_model_path('salary')) as f:
        points = json.load(f)
    model = LinearRegression().fit(np.array(points['x']), np.array(points['y']))


input_sample = np.array([[1.8]])
output_sample = np.array([43638.88])


@input_schema('data', NumpyParameterType(input_sample))
@output_schema(NumpyParameterType(output_sample))
def run(data):
    # data arrives as a numpy array (converted by the decorator)
    assert isinstance(data, np.ndarray), type(data)
    y_hat = model.predict(data)
    return y_hat.tolist()
