"""Python scoring worker of this project's runtime (standard library only).

Started by the Node front (runtime/pool.ts), one process per worker. It imports the entry script, calls its
init() once, then serves requests read from fd 3 and writes responses to fd 4 (stdout and stderr stay free
for the script's own prints). Frame: 4-byte big-endian header length, 4-byte body length, JSON header, body.
With one run() at a time (AML_MAX_CONCURRENT=1) requests run in the order they come; the front may queue a few
behind the one running (pipelining) and cancel one of those before it starts.

Environment: AML_ENTRY_SCRIPT (path of score.py), AZUREML_MODEL_DIR, AML_MAX_CONCURRENT, AML_DEBUG,
AML_COLLECT_MODEL_DATA (1: azureml.monitoring records are sent to the front).
"""
import importlib.util
import json
import os
import select
import struct
import sys
import threading
import time
import traceback
from collections import deque

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
_in_fd = 3
_out_fd = 4
_write_lock = threading.Lock()
_prefix = struct.Struct(">II")


def send(header, body=b""):
    send_encoded(json.dumps(header).encode("utf-8"), body)


def send_encoded(h, body):
    data = _prefix.pack(len(h), len(body)) + h + body
    with _write_lock:
        view = memoryview(data)
        while view:
            n = os.write(_out_fd, view)
            view = view[n:]


class FrameReader(object):
    """The request frames of fd 3, read as they come: one read() returns every frame the front has written so far
    (a pipelined worker, runtime/pool.ts, gets several at once). Cancel frames (the front answered that request
    503 while it was queued here) mark the request to be skipped."""

    # A frame larger than this is read straight into a buffer of its own size.
    BIG = 1 << 20

    def __init__(self, fd):
        self.fd = fd
        self.buf = bytearray()
        self.frames = deque()
        self.cancelled = set()
        self.last_started = 0
        self.last_read = time.monotonic()
        self.eof = False

    def fill(self, block=True):
        """Reads what is there (waits for something if block); False at the end of the stream."""
        if not block and not select.select([self.fd], [], [], 0)[0]:
            self.last_read = time.monotonic()
            return True
        chunk = os.read(self.fd, 1 << 16)
        self.last_read = time.monotonic()
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        self._parse()
        return True

    def _parse(self):
        buf = self.buf
        pos = 0
        while len(buf) - pos >= 8:
            hlen, blen = _prefix.unpack_from(buf, pos)
            end = pos + 8 + hlen + blen
            if end > len(buf):
                if end - pos > self.BIG:
                    self._read_big(pos, hlen, blen)
                    pos = 0
                    buf = self.buf
                    continue
                break
            header = json.loads(buf[pos + 8:pos + 8 + hlen].decode("utf-8"))
            body = bytes(buf[pos + 8 + hlen:end]) if blen else b""
            pos = end
            if header.get("kind") == "cancel":
                if header["id"] > self.last_started:
                    self.cancelled.add(header["id"])
            else:
                self.frames.append((header, body))
        if pos:
            del buf[:pos]

    def _read_big(self, pos, hlen, blen):
        """A large frame: its bytes are read into one buffer of the frame's size (not grown chunk by chunk)."""
        size = 8 + hlen + blen
        frame = bytearray(size)
        have = len(self.buf) - pos
        frame[:have] = self.buf[pos:]
        view = memoryview(frame)
        while have < size:
            n = os.readv(self.fd, [view[have:]])
            if n == 0:
                raise EOFError("the front closed the pipe in the middle of a frame")
            have += n
        view.release()
        self.buf = frame

    def next(self):
        """The next request to run (skipping cancelled ones), or None when none is buffered."""
        # Cancels for queued requests arrive while a run is under way: looked for before starting the next one
        # when the last read is more than 5 ms old (a cancel comes max_request_wait_time after its request).
        if self.frames and time.monotonic() - self.last_read > 0.005:
            self.fill(block=False)
        while self.frames:
            header, body = self.frames.popleft()
            rid = header.get("id", 0)
            self.last_started = max(self.last_started, rid)
            if rid in self.cancelled:
                self.cancelled.discard(rid)
                send({"t": "skipped", "id": rid})
                continue
            return header, body
        return None


_content_types = {}


def send_reply(rid, status, ctype, headers, body):
    """A `res` frame; its header is built by hand for the usual types (json.dumps of the dict costs ~10x more)."""
    if type(rid) is not int or type(status) is not int or type(ctype) is not str:
        send({"t": "res", "id": rid, "status": status, "contentType": ctype, "headers": headers}, body)
        return
    encoded = _content_types.get(ctype)
    if encoded is None:
        encoded = json.dumps(ctype)
        if len(_content_types) < 64:
            _content_types[ctype] = encoded
    h = '{"t":"res","id":%d,"status":%d,"contentType":%s,"headers":%s}' % (
        rid, status, encoded, json.dumps(headers) if headers else "{}")
    send_encoded(h.encode("utf-8"), body)


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
        send_reply(rid, status, ctype, headers, out)
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
    reader = FrameReader(_in_fd)
    while True:
        frame = reader.next()
        if frame is None:
            if reader.eof or not reader.fill():
                break
            continue
        header, body = frame
        if executor is None:
            handle(script, header, body)
        else:
            executor.submit(handle, script, header, body)
    if executor is not None:
        executor.shutdown(wait=True)


if __name__ == "__main__":
    main()
