#!/usr/bin/env python3
"""A client of mfpsync's local API in Python (standard library only): what firmware that is not Node
does to drive and follow the agent. See docs/api.md for every operation and event.

    python3 mfpsync_client.py DATA/control.sock [--count N] [--timeout SECONDS]

It calls `status` and `users.list`, subscribes to `item-changed` events and prints each event it
receives as one JSON line, stopping after N of them (default 1).
"""
import argparse
import itertools
import json
import socket
import sys


class MfpsyncError(Exception):
    """A coded refusal of the agent: `code` is stable (see docs/api.md), the message may change."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code


class Client:
    """One connection to the control socket: JSON lines both ways."""

    def __init__(self, path, timeout=30.0):
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        self._sock.connect(path)
        self._lines = self._sock.makefile("r", encoding="utf-8", newline="\n")
        self._ids = itertools.count(1)
        self._events = []

    def close(self):
        self._lines.close()
        self._sock.close()

    def _read(self):
        line = self._lines.readline()
        if not line:
            raise ConnectionError("the agent closed the control socket")
        return json.loads(line)

    def call(self, method, **params):
        """Runs one operation and returns its result, or raises MfpsyncError with its code."""
        request_id = next(self._ids)
        message = {"id": request_id, "method": method, "params": params}
        self._sock.sendall((json.dumps(message) + "\n").encode("utf-8"))
        while True:
            answer = self._read()
            if "event" in answer:
                # An event that arrived before the answer: kept for events().
                self._events.append(answer)
                continue
            if answer.get("id") != request_id:
                continue
            if "error" in answer:
                raise MfpsyncError(answer["error"]["code"], answer["error"]["message"])
            return answer["result"]

    def subscribe(self, *events):
        """Follows the events named (all when none are); returns the names subscribed."""
        params = {"events": list(events)} if events else {}
        return self.call("events.subscribe", **params)["subscribed"]

    def events(self):
        """The events, as they come: dicts with the event's name in `event`."""
        while True:
            if self._events:
                yield self._events.pop(0)
            else:
                message = self._read()
                if "event" in message:
                    yield message


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("socket", help="the agent's control socket, DATA/control.sock")
    parser.add_argument("--count", type=int, default=1, help="stop after this many item-changed events")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the agent")
    args = parser.parse_args()

    client = Client(args.socket, timeout=args.timeout)
    try:
        status = client.call("status")
        print(json.dumps({"status": {"name": status["name"], "role": status["role"], "health": status["health"]}}), flush=True)
        users = client.call("users.list", search="")["users"]
        print(json.dumps({"users": [u["id"] for u in users]}), flush=True)
        try:
            client.call("users.list", search=5)
        except MfpsyncError as refused:
            print(json.dumps({"refused": refused.code}), flush=True)
        print(json.dumps({"subscribed": client.subscribe("item-changed")}), flush=True)
        for event in itertools.islice(client.events(), args.count):
            print(json.dumps(event), flush=True)
    except MfpsyncError as err:
        print(f"error {err}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
