"""Python scoring worker of this project's runtime (standard library only).

Started by the Node front (runtime/pool.ts), one process per worker. It imports the entry script, calls its
init() once, then serves requests read from fd 3 and writes responses to fd 4 (stdout and stderr stay free
for the script's own prints). Frame: 4-byte big-endian header length, 4-byte body length, JSON header, body.

Environment: AML_ENTRY_SCRIPT (path of score.py), AZUREML_MODEL_DIR, AML_MAX_CONCURRENT, AML_DEBUG,
AML_COLLECT_MODEL_DATA (1: azureml.monitoring records are sent to the front).
"""
import importlib.util
import io
import json
import os
import struct
import sys
import threading
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from azureml.contrib.services.aml_request import AMLRequest  # noqa: E402
from azureml.contrib.services.aml_response import AMLResponse  # noqa: E402
from azureml import monitoring as _monitoring  # noqa: E402
from inference_schema.parameter_types._swagger_from_dtype import to_jsonable  # noqa: E402
from inference_schema.schema_decorators import InputConversionError  # noqa: E402
from inference_schema.schema_util import (accepts_kwargs, get_arg_names, get_input_schema,  # noqa: E402
                                          get_output_schema)

DEBUG = os.environ.get("AML_DEBUG") == "1"
_in = io.open(3, "rb", buffering=1 << 16)
_out_fd = 4
_write_lock = threading.Lock()


def send(header, body=b""):
    h = json.dumps(header).encode("utf-8")
    data = struct.pack(">II", len(h), len(body)) + h + body
    with _write_lock:
        view = memoryview(data)
        while view:
            n = os.write(_out_fd, view)
            view = view[n:]


def read_frame():
    prefix = _in.read(8)
    if len(prefix) < 8:
        return None, None
    hlen, blen = struct.unpack(">II", prefix)
    header = json.loads(_in.read(hlen).decode("utf-8"))
    body = _in.read(blen) if blen else b""
    return header, body


def parse_json_body(text):
    """json.loads for request bodies: a body nested deeper than Python's recursion limit is bad input (ValueError),
    not a failure of the script."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply (more than about {0} levels)".format(sys.getrecursionlimit() - 50))


def error_body(code, exc):
    err = {"code": code, "message": "{0}: {1}".format(type(exc).__name__, exc) if not isinstance(exc, str) else exc}
    if DEBUG and not isinstance(exc, str):
        err["stack"] = traceback.format_exc()
    return json.dumps({"error": err}).encode("utf-8")


def load_script(path):
    script_dir = os.path.dirname(os.path.abspath(path))
    if script_dir not in sys.path:
        sys.path.insert(1, script_dir)
    os.chdir(script_dir)
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Script(object):
    def __init__(self, module):
        self.run = getattr(module, "run", None)
        if not callable(self.run):
            raise Exception("The entry script defines no run() function")
        self.raw = bool(getattr(self.run, "__aml_rawhttp__", False))
        self.input_schema = get_input_schema(self.run) or None
        self.output_schema = get_output_schema(self.run) or None
        self.arg_names = get_arg_names(self.run)
        self.varkw = accepts_kwargs(self.run)

    def call_score(self, header, body):
        if self.raw:
            req = AMLRequest(header["method"], header["path"], header.get("query", ""), header.get("headers", {}), body)
            return self.run(req)
        text = body.decode("utf-8")
        if self.input_schema is not None:
            try:
                payload = parse_json_body(text)
            except ValueError as e:
                raise InputConversionError("The request body is not valid JSON: {0}".format(e))
            if not isinstance(payload, dict):
                raise InputConversionError("The request body must be a JSON object with the inputs {0}".format(
                    sorted(self.input_schema.get("properties", {}).keys())))
            if self.varkw or all(k in self.arg_names for k in payload):
                return self.run(**payload)
            if len(self.arg_names) == 1:
                # Scripts written like the AML v1 docs: decorated run(raw_data) parses the body itself.
                return self.run(text)
            unknown = sorted(k for k in payload if k not in self.arg_names)
            raise InputConversionError("Unknown input(s) {0}; run() accepts {1}".format(unknown, self.arg_names))
        return self.run(text)


def to_response(result):
    if isinstance(result, AMLResponse):
        headers = dict(result.headers)
        ctype = None
        for k in list(headers):
            if k.lower() == "content-type":
                ctype = headers.pop(k)
        if ctype is None:
            ctype = "application/octet-stream" if isinstance(result.message, (bytes, bytearray)) else \
                "text/plain; charset=utf-8"
        return result.status_code, ctype, headers, result.body_bytes()
    return 200, "application/json", {}, json.dumps(to_jsonable(result)).encode("utf-8")


def handle(script, header, body):
    _monitoring._set_current_request(header.get("requestId"))
    try:
        _handle(script, header, body)
    finally:
        _monitoring._set_current_request(None)


def _handle(script, header, body):
    rid = header["id"]
    try:
        if header.get("kind") == "batch":
            try:
                payload = parse_json_body(body.decode("utf-8"))
                mini_batch = payload["mini_batch"]
                if not isinstance(mini_batch, list):
                    raise ValueError("mini_batch must be a list")
            except (ValueError, KeyError, TypeError) as e:
                send({"t": "res", "id": rid, "status": 400, "contentType": "application/json"},
                     error_body("InvalidMiniBatch", 'Send {"mini_batch": [...]}: ' + str(e)))
                return
            results = to_jsonable(script.run(mini_batch))
            if not isinstance(results, list):
                results = [results]
            out = json.dumps({"results": results, "count": len(results)}).encode("utf-8")
            send({"t": "res", "id": rid, "status": 200, "contentType": "application/json"}, out)
            return
        status, ctype, headers, out = to_response(script.call_score(header, body))
        send({"t": "res", "id": rid, "status": status, "contentType": ctype, "headers": headers}, out)
    except InputConversionError as e:
        send({"t": "res", "id": rid, "status": 400, "contentType": "application/json"},
             error_body("InvalidInput", str(e)))
    except Exception as e:  # noqa: BLE001 - the script's error goes back to the caller as a 500
        send({"t": "res", "id": rid, "status": 500, "contentType": "application/json"}, error_body("RunFailed", e))


def main():
    # ModelDataCollector records go to the front on the reply channel, only when collection is on.
    if os.environ.get("AML_COLLECT_MODEL_DATA") == "1":
        _monitoring._sink = send
    entry = os.environ.get("AML_ENTRY_SCRIPT")
    max_concurrent = max(1, int(os.environ.get("AML_MAX_CONCURRENT", "1")))
    try:
        module = load_script(entry)
        script = Script(module)
        init = getattr(module, "init", None)
        if callable(init):
            init()
    except BaseException as e:  # noqa: BLE001 - report any init failure, including SystemExit
        message = "init() failed: {0}: {1}".format(type(e).__name__, e)
        header = {"t": "init_error", "message": message}
        if DEBUG:
            header["stack"] = traceback.format_exc()
        traceback.print_exc()
        send(header)
        sys.exit(3)
    schema = None
    if script.input_schema or script.output_schema:
        schema = {"input": to_jsonable(script.input_schema), "output": to_jsonable(script.output_schema)}
    send({"t": "ready", "pid": os.getpid(), "rawHttp": script.raw, "schema": schema})

    executor = None
    if max_concurrent > 1:
        from concurrent.futures import ThreadPoolExecutor
        executor = ThreadPoolExecutor(max_workers=max_concurrent)
    while True:
        header, body = read_frame()
        if header is None:
            break
        if executor is None:
            handle(script, header, body)
        else:
            executor.submit(handle, script, header, body)
    if executor is not None:
        executor.shutdown(wait=True)


if __name__ == "__main__":
    main()
