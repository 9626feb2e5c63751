"""``NumpyParameterType(sample_input, enforce_column_type=True, enforce_shape=True)``."""
from ._swagger_from_dtype import dtype_to_swagger, nest_array, to_jsonable
from .abstract_parameter_type import AbstractParameterType


class NumpyParameterType(AbstractParameterType):
    def __init__(self, sample_input, enforce_column_type=True, enforce_shape=True):
        import numpy as np
        if not isinstance(sample_input, np.ndarray):
            raise Exception("Invalid sample input provided, must provide a sample Numpy array.")
        super(NumpyParameterType, self).__init__(sample_input)
        self.enforce_column_type = enforce_column_type
        self.enforce_shape = enforce_shape

    def deserialize_input(self, input_data):
        import numpy as np
        if isinstance(input_data, np.ndarray):
            return input_data
        if not isinstance(input_data, list):
            raise ValueError("Invalid input format: expected an array of items.")
        dtype = self.sample_input.dtype
        if self.enforce_column_type:
            if dtype.names:
                input_data = [tuple(row) if isinstance(row, list) else
                              tuple(row[n] for n in dtype.names) if isinstance(row, dict) else row
                              for row in input_data]
            array = np.array(input_data, dtype=dtype)
        else:
            array = np.array(input_data)
        if self.enforce_shape:
            expected = self.sample_input.shape
            if array.ndim != len(expected):
                raise ValueError("Invalid input array: an array with {0} dimensions is expected; input has {1} "
                                 "[shape {2}]".format(len(expected), array.ndim, array.shape))
            for dim in range(1, len(expected)):
                if array.shape[dim] != expected[dim]:
                    raise ValueError("Invalid input array: array has size {0} on dimension #{1}, while expected "
                                     "value is {2}".format(array.shape[dim], dim, expected[dim]))
        return array

    def input_to_swagger(self):
        sample = self.sample_input
        schema = nest_array(dtype_to_swagger(sample.dtype), sample.ndim)
        if sample.dtype.names:
            example = [dict(zip(sample.dtype.names, to_jsonable(list(row)))) for row in sample]
        else:
            example = to_jsonable(sample)
        schema["example"] = example
        return schema
