"""A minimal org.freedesktop.Notifications service for tests: records each Notify call.

Run as the desktop user: python notify_server.py BUS_ADDRESS. It prints "ready" once it
owns the name, then one JSON line per notification on stdout.
"""

from __future__ import annotations

import json
import sys

from jeepney import HeaderFields, MessageType, new_method_return
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection


def main() -> None:
    address = sys.argv[1]
    conn = open_dbus_connection(address)
    reply = conn.send_and_get_reply(message_bus.RequestName("org.freedesktop.Notifications", 4))
    if reply.body[0] != 1:
        raise SystemExit(f"could not own the name: {reply.body}")
    print("ready", flush=True)
    count = 0
    while True:
        msg = conn.receive()
        if msg.header.message_type != MessageType.method_call:
            continue
        member = msg.header.fields.get(HeaderFields.member)
        if member == "Notify":
            count += 1
            app, _, _, summary, body, _, _, timeout = msg.body
            print(json.dumps({"app": app, "summary": summary, "body": body,
                              "timeout": timeout}), flush=True)
            conn.send(new_method_return(msg, "u", (count,)))


if __name__ == "__main__":
    main()
