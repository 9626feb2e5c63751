"""``AMLRequest`` and ``@rawhttp``: the entry script receives the HTTP request itself."""
import json
from urllib.parse import parse_qs


class _Headers(dict):
    """Case-insensitive header mapping (``request.headers['Content-Type']``)."""

    def __init__(self, items):
        super(_Headers, self).__init__()
        for k, v in items.items():
            super(_Headers, self).__setitem__(k.lower(), v)

    def __getitem__(self, key):
        return super(_Headers, self).__getitem__(key.lower())

    def get(self, key, default=None):
        return super(_Headers, self).get(key.lower(), default)

    def __contains__(self, key):
        return super(_Headers, self).__contains__(key.lower())


class AMLRequest(object):
    """The request handed to a ``@rawhttp`` run(): method, path, full_path, headers, args, get_data()."""

    def __init__(self, method, path, query_string, headers, body):
        self.method = method
        self.path = path
        self.query_string = query_string.encode("utf-8") if isinstance(query_string, str) else query_string
        self.headers = _Headers(headers)
        self._body = body
        qs = self.query_string.decode("utf-8")
        self.args = {k: v[0] for k, v in parse_qs(qs, keep_blank_values=True).items()}
        # Flask's Request.full_path always carries the '?' (``/score?``), AML scripts see the same.
        self.full_path = path + "?" + qs
        host = self.headers.get("host", "localhost")
        self.url = "http://" + host + self.full_path.rstrip("?")

    @property
    def content_type(self):
        return self.headers.get("content-type")

    @property
    def data(self):
        return self._body

    def get_data(self, cache=True, as_text=False, parse_form_data=False):
        if as_text:
            return self._body.decode("utf-8", errors="replace")
        return self._body

    def get_json(self, force=False, silent=False, cache=True):
        try:
            return json.loads(self._body.decode("utf-8"))
        except ValueError:
            if silent:
                return None
            raise

    @property
    def json(self):
        return self.get_json(silent=True)

    def __repr__(self):
        return "<AMLRequest {0} {1}>".format(self.method, self.full_path)


def rawhttp(func):
    """Mark run() as taking the raw ``AMLRequest`` (any HTTP method on /score reaches it)."""
    func.__aml_rawhttp__ = True
    return func
