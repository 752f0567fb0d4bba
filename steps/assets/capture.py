"""Packet capture on a node (privileged, host network): which MARKERS cross the wire in clear.

Reads every frame on every interface of the node but loopback (AF_PACKET, ETH_P_ALL)
for DURATION seconds and reports, per marker, how many frames carried it verbatim.
Loopback is left out: on a node it carries the kubelet's own exec stream to the
container runtime (which holds the test's command line), not traffic between pods.
Prints "capturing" when the socket is open, then one JSON summary line."""

import json
import os
import socket
import time

ETH_P_ALL = 0x0003
MARKERS = json.loads(os.environ["MARKERS"])
DURATION = float(os.environ.get("DURATION", "20"))


def main() -> None:
    sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(ETH_P_ALL))
    sniffer.settimeout(0.5)
    print("capturing", flush=True)
    seen = dict.fromkeys(MARKERS, 0)
    frames = 0
    deadline = time.monotonic() + DURATION
    while time.monotonic() < deadline:
        try:
            frame, (interface, *_) = sniffer.recvfrom(65535)
        except TimeoutError:
            continue
        if interface == "lo":
            continue
        frames += 1
        for marker in MARKERS:
            if marker.encode() in frame:
                seen[marker] += 1
    print(json.dumps({"frames": frames, "seen": seen}), flush=True)


if __name__ == "__main__":
    main()
