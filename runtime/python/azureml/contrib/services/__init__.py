"""azureml.contrib.services: raw HTTP access for entry scripts (``@rawhttp``, ``AMLRequest``, ``AMLResponse``)."""
from .aml_request import AMLRequest, rawhttp
from .aml_response import AMLResponse

__all__ = ["AMLRequest", "AMLResponse", "rawhttp"]
