#!/usr/bin/env python3
"""Event-to-alert latency of a live `cepheus run`.

Writes events into a FIFO at a fixed rate (one at a time, each with event time
= its index in ms, so max_out_of_orderness 0 releases a match with the next
event) and reads alerts from the run's standard output while the input is
still open. The latency of an alert is the time from writing the event that
released it (the first event after the match's last one) to reading the
alert. Prints p50 / p99 / max in milliseconds.

Usage: latency.py CEPHEUS_BINARY WORK_DIR [RATE=1000] [SECONDS=10]
"""
import os
import subprocess
import sys
import threading
import time


def main():
    binary, work = sys.argv[1], sys.argv[2]
    rate = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 10
    n = int(rate * seconds)
    os.makedirs(work, exist_ok=True)
    fifo = os.path.join(work, "in.fifo")
    if os.path.exists(fifo):
        os.unlink(fifo)
    os.mkfifo(fifo)
    with open(os.path.join(work, "pipeline.yaml"), "w") as f:
        f.write(
            "streams:\n  s:\n    source: { type: file, path: in.fifo }\n"
            "    schema: { key: string, type: string, n: int, ts: timestamp }\n    key: key\n"
            "    event_time: { field: ts, max_out_of_orderness: 0s,"
            " follow_wall_clock_when_idle: false }\n"
            "patterns: [ { inline: \"PATTERN ab FROM s MATCH a -> b WITHIN 1 SECOND"
            " DEFINE a AS type = 'A', b AS type = 'B' EMIT b.n AS n\" } ]\n"
            "outputs: { matches: { type: stdout } }\n"
            "checkpoint: { enabled: false }\n")
    proc = subprocess.Popen([binary, "run", "--restart", "-p", "2",
                             os.path.join(work, "pipeline.yaml")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    written = [0.0] * (n + 1)
    received = {}

    def reader():
        for line in proc.stdout:
            now = time.monotonic()
            text = line.decode()
            k = text.find('"n":')
            if k >= 0:
                received[int(text[k + 4:].split("}")[0])] = now

    t = threading.Thread(target=reader)
    t.start()
    out = open(fifo, "wb", buffering=0)
    start = time.monotonic()
    for i in range(n + 1):
        target = start + i / rate
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        # Key i//2 % 100: A then B for each key; event i+2 releases the match
        # that event i+1 (a B) completed.
        rec = '{"key":"k%d","type":"%s","n":%d,"ts":%d}\n' % (
            (i // 2) % 100, "A" if i % 2 == 0 else "B", i, 1000000 + i)
        written[i] = time.monotonic()
        out.write(rec.encode())
    time.sleep(1.0)  # alerts of the last events, while the input is still open
    out.close()
    t.join()
    proc.wait()
    lat = []
    for b, at in received.items():
        release = b + 1
        if release <= n:
            lat.append((at - written[release]) * 1000)
    lat.sort()
    if not lat:
        print("no alerts received")
        sys.exit(1)

    def pct(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))]

    print("rate %d events/s, %d alerts: p50 %.2f ms, p99 %.2f ms, max %.2f ms" %
          (rate, len(lat), pct(0.50), pct(0.99), lat[-1]))


if __name__ == "__main__":
    main()
