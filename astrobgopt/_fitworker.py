"""
The helper process of `astrobgopt._isolation`: reads pickled
``(func, args, kwargs)`` requests from stdin and writes pickled
``(succeeded, result or exception, warnings)`` replies to stdout, until
stdin closes (its parent ended).
"""

import os
import pickle
import sys
import warnings


def _serve(requests, replies):
    while True:
        try:
            func, args, kwargs = pickle.load(requests)
        except EOFError:
            return
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            try:
                reply = (True, func(*args, **kwargs))
            except Exception as exc:  # raised again in the caller
                reply = (False, exc)
        reply += ([item.message for item in caught],)
        try:
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an unpicklable result or exception
            data = pickle.dumps((False, RuntimeError(f'{reply[1]!r} ({exc})'), reply[2]))
        replies.write(data)
        replies.flush()


def main():
    # The pipes are this process's stdin and stdout; anything else written
    # to stdout (a library printing) goes to the held stderr instead.
    requests = os.fdopen(os.dup(0), 'rb')
    replies = os.fdopen(os.dup(1), 'wb')
    os.dup2(2, 1)
    with open(os.devnull, 'rb') as devnull:
        os.dup2(devnull.fileno(), 0)
    sys.stdout = sys.stderr
    from ._startup import load_numerical_core

    load_numerical_core()
    _serve(requests, replies)
