#!/usr/bin/env bash
# The Kafka sample end to end, without a broker: starts librdkafka's mock
# cluster (cepheus-mock-kafka), produces the fraud sample's payments to a
# 4-partition topic keyed by card, runs the card-testing pipeline from that
# topic to an `alerts` topic, and prints the alerts read back from it.
# Usage: samples/kafka-alerts/run.sh [build-dir]   (after a build)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${1:-$here/../../build}"
mock="$build/app/cepheus-mock-kafka"
work="$(mktemp -d)"
trap 'kill $holder $cluster 2>/dev/null || true; rm -rf "$work"' EXIT

# The cluster lives while its stdin is open.
mkfifo "$work/ctl"
sleep 100000 > "$work/ctl" &
holder=$!
"$mock" --topic payments:4 --topic alerts:4 --produce "$here/../fraud/payments.jsonl" \
  --into payments --key-field card_id < "$work/ctl" > "$work/boot.txt" 2> "$work/mock.log" &
cluster=$!
until grep -q bootstrap= "$work/boot.txt" 2>/dev/null; do
  kill -0 $cluster 2>/dev/null || { cat "$work/mock.log" >&2; exit 1; }
  sleep 0.1
done
export KAFKA_BROKERS="$(sed 's/bootstrap=//' "$work/boot.txt")"
echo "mock cluster at $KAFKA_BROKERS; $(cat "$work/mock.log")" >&2

cd "$here"
"$build/app/cepheus" run --restart pipeline.yaml
echo "--- alerts on topic 'alerts' (key, value):" >&2
"$mock" --print alerts --bootstrap "$KAFKA_BROKERS"
