"""``AMLResponse(message, status_code, response_headers=None, json_str=False)``."""
import json


class AMLResponse(object):
    def __init__(self, message, status_code, response_headers=None, json_str=False):
        if json_str:
            message = json.dumps(message)
        self.message = message
        self.status_code = int(status_code)
        self.headers = dict(response_headers or {})

    def body_bytes(self):
        m = self.message
        if m is None:
            return b""
        if isinstance(m, (bytes, bytearray)):
            return bytes(m)
        if isinstance(m, str):
            return m.encode("utf-8")
        return json.dumps(m).encode("utf-8")
