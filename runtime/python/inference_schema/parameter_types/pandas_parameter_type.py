"""``PandasParameterType(sample_input, enforce_column_type=True, enforce_shape=True, apply_column_names=False,
orient='records')``: JSON records (or the given orient) ↔ DataFrame."""
from ._swagger_from_dtype import dtype_to_swagger, to_jsonable
from .abstract_parameter_type import AbstractParameterType


class PandasParameterType(AbstractParameterType):
    def __init__(self, sample_input, enforce_column_type=True, enforce_shape=True, apply_column_names=False,
                 orient="records"):
        import pandas as pd
        if not isinstance(sample_input, pd.DataFrame):
            raise Exception("Invalid sample input provided, must provide a sample Pandas Dataframe.")
        super(PandasParameterType, self).__init__(sample_input)
        self.enforce_column_type = enforce_column_type
        self.enforce_shape = enforce_shape
        self.apply_column_names = apply_column_names
        self.orient = orient

    def deserialize_input(self, input_data):
        import pandas as pd
        if isinstance(input_data, pd.DataFrame):
            return input_data
        sample = self.sample_input
        if self.orient == "records" or isinstance(input_data, list):
            if not isinstance(input_data, list):
                raise ValueError("Invalid input format: expected an array of records.")
            if self.apply_column_names and input_data and isinstance(input_data[0], list):
                frame = pd.DataFrame(input_data, columns=list(sample.columns))
            else:
                frame = pd.DataFrame.from_records(input_data)
        elif self.orient == "split":
            frame = pd.DataFrame(input_data.get("data", []), columns=input_data.get("columns"),
                                 index=input_data.get("index"))
        else:
            frame = pd.DataFrame(input_data)
        if self.enforce_shape and len(frame.columns) != len(sample.columns):
            raise ValueError("Invalid input data frame: a data frame with {0} columns is expected; input has {1} "
                             "[shape {2}]".format(len(sample.columns), len(frame.columns), frame.shape))
        if self.enforce_column_type:
            missing = [c for c in sample.columns if c not in frame.columns]
            if missing:
                raise ValueError("Invalid input data frame: missing column(s) {0}".format(missing))
            frame = frame[list(sample.columns)].astype(dict(sample.dtypes))
        return frame

    def input_to_swagger(self):
        sample = self.sample_input
        props = {str(c): dtype_to_swagger(sample[c].dtype) for c in sample.columns}
        return {
            "type": "array",
            "items": {"type": "object", "required": [str(c) for c in sample.columns], "properties": props},
            "format": "pandas.DataFrame:" + self.orient,
            "example": to_jsonable(sample),
        }
