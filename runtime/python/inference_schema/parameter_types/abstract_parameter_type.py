from abc import ABC, abstractmethod


class AbstractParameterType(ABC):
    """A sample value that yields a swagger schema and converts JSON input to the sample's type."""

    def __init__(self, sample_input):
        self.sample_input = sample_input
        self.sample_data_type = type(sample_input)

    @abstractmethod
    def deserialize_input(self, input_data):
        pass

    @abstractmethod
    def input_to_swagger(self):
        pass
