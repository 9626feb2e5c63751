# ParallelRunStep-style entry script: run(mini_batch) gets file paths and returns one result per input.
import os


def init():
    global prefix
    prefix = "lines"


def run(mini_batch):
    results = []
    for path in mini_batch:
        with open(path) as f:
            results.append("{0},{1},{2}".format(os.path.basename(path), prefix, len(f.read().splitlines())))
    return results
