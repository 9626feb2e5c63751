"""Compatibility module for ``azureml.monitoring`` (AML v1 model data collection), standard library only.

    from azureml.monitoring import ModelDataCollector
    inputs_dc = ModelDataCollector("best_model", designation="inputs", feature_names=["a", "b", "c"])
    prediction_dc = ModelDataCollector("best_model", designation="predictions", feature_names=["prediction"])
    correlations = inputs_dc.collect(data)          # inside run(): returns the correlation id
    prediction_dc.collect(result, correlations)     # the same id joins the predictions to their inputs

Records go to the scoring runtime's collector (runtime/collector.ts) over the worker protocol: they reach blob
storage under ``modeldata/<service>/<model>/<version>/<designation>/<yyyy>/<mm>/<dd>/`` when the deployment has
``collect_model_data: true``; otherwise ``collect`` does nothing (as in AML) and still returns a correlation id.
The correlation id is the request's ``x-ms-request-id`` when called while a request is handled, else a new UUID.
``collect`` never raises for data it cannot encode: such a record is skipped (counted as dropped by the front).
"""
import json
import threading
import uuid

__all__ = ["ModelDataCollector"]

# Set by the runtime's worker (amlworker.py): a function(header_dict, body_bytes) sending a frame to the front.
_sink = None
_current = threading.local()


def _set_current_request(request_id):
    """Called by the worker around run(): the id of the request this thread handles (None after it)."""
    _current.request_id = request_id


def _to_json_bytes(data):
    try:
        from inference_schema.parameter_types._swagger_from_dtype import to_jsonable
        data = to_jsonable(data)
    except Exception:  # noqa: BLE001 - fall back to what json can encode
        pass
    return json.dumps(data, default=str).encode("utf-8")


class ModelDataCollector(object):
    """AML's ModelDataCollector: ``collect(input_data, user_correlation_id=None)`` → correlation id."""

    def __init__(self, model_name, designation="default", feature_names=None, workspace=None, webservice_name=None,
                 model_version=None, **kwargs):
        if not isinstance(model_name, str) or not model_name:
            raise ValueError("model_name must be a non-empty string")
        self.model_name = model_name
        self.designation = str(designation or "default")
        self.feature_names = [str(f) for f in feature_names] if feature_names is not None else None
        self.model_version = None if model_version is None else str(model_version)

    def collect(self, input_data, user_correlation_id=None):
        correlation_id = user_correlation_id
        if isinstance(correlation_id, (list, tuple)):
            correlation_id = correlation_id[0] if correlation_id else None
        request_id = getattr(_current, "request_id", None)
        if correlation_id is None:
            correlation_id = request_id or str(uuid.uuid4())
        correlation_id = str(correlation_id)
        sink = _sink
        if sink is None:
            return correlation_id
        try:
            body = _to_json_bytes(input_data)
        except Exception:  # noqa: BLE001 - never fail the script's run() because of collection
            return correlation_id
        header = {"t": "collect", "designation": self.designation, "correlationId": correlation_id,
                  "model": self.model_name}
        if request_id:
            header["requestId"] = request_id
        if self.model_version:
            header["modelVersion"] = self.model_version
        if self.feature_names is not None:
            header["featureNames"] = self.feature_names
        try:
            sink(header, body)
        except Exception:  # noqa: BLE001
            pass
        return correlation_id
