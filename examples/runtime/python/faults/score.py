# Misbehaving entry script for the runtime's fault tests: crash, hang, raise.
import json
import os
import time


def init():
    if os.environ.get("FAIL_INIT"):
        raise RuntimeError("model file is corrupt")


def run(raw_data):
    req = json.loads(raw_data)
    action = req.get("action")
    if action == "crash":
        os._exit(7)
    if action == "sleep":
        time.sleep(req.get("seconds", 1))
        return {"slept": req.get("seconds", 1), "pid": os.getpid()}
    if action == "raise":
        raise ValueError("bad input: " + str(req.get("value")))
    return {"echo": req, "pid": os.getpid()}
