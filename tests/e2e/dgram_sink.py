# SPDX-License-Identifier: LGPL-2.1-only
# A unix datagram socket that writes every datagram it receives as one line to a file:
# stands in for syslog's /dev/log and for systemd's NOTIFY_SOCKET in the e2e tests.
# Usage: python3 dgram_sink.py SOCKET-PATH OUT-FILE  (runs until killed)
import os
import socket
import sys

path, out = sys.argv[1], sys.argv[2]
try:
    os.unlink(path)
except FileNotFoundError:
    pass
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
with open(out, "a", buffering=1) as f:
    f.write("# listening\n")
    while True:
        data = s.recv(65536)
        f.write(data.decode("utf-8", "replace").replace("\n", "\\n") + "\n")
