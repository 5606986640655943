"""Readers the policy's activity sources use: PSI text, TCP traffic of a socket (both ways
of asking the kernel agree), terminal output times."""

from __future__ import annotations

import os
import socket
import time

from sessionctl.linux import sockets
from sessionctl.linux.pressure import parse_pressure

PSI = ("some avg10=13.02 avg60=4.40 avg300=1.38 total=6797294\n"
       "full avg10=9.50 avg60=3.00 avg300=0.90 total=2078091\n")


def test_pressure_text() -> None:
    got = parse_pressure(PSI)
    assert got["some avg10"] == 13.02 and got["full avg10"] == 9.5 and got["full avg300"] == 0.9
    assert "some total" not in got


def test_tcp_traffic_by_descriptor_and_by_sock_diag_agree() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname()) as client:
        conn, _ = server.accept()
        with conn:
            client.sendall(b"x" * 1000)
            assert len(conn.recv(4096)) == 1000
            time.sleep(0.3)
            inode = os.fstat(client.fileno()).st_ino
            direct = sockets.traffic({inode: (os.getpid(), client.fileno())})[inode]
            dumped = sockets.tcp_traffic({inode})[inode]
            for t in (direct, dumped):
                assert t.state == 1 and t.bytes_acked >= 1000 and t.bytes_received == 0
                assert 250 <= t.last_sent_ms < 5000 and t.quiet_ms == t.last_sent_ms
            assert abs(direct.last_sent_ms - dumped.last_sent_ms) < 200
            # A listening socket and a unix socket are not TCP traffic.
            listen_inode = os.fstat(server.fileno()).st_ino
            a, b = socket.socketpair()
            with a, b:
                unix_inode = os.fstat(a.fileno()).st_ino
                got = sockets.traffic({listen_inode: (os.getpid(), server.fileno()),
                                       unix_inode: (os.getpid(), a.fileno())})
            assert got == {}
            assert (client.fileno(), inode) in sockets.socket_fds(os.getpid())
