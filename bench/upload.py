"""Upload benchmark: a large JSONL file through the gateway into the datasets service, in bounded memory.

    python bench/upload.py [--mb 200]

Generates a JSONL file of about MB megabytes (short chat records with metadata, about 500 bytes
each: 200 MB is about 400k records), starts the workbench's services on loopback (no inference
worker: nothing runs a model), streams the file to POST /admin/datasets/upload as a raw body, and
reads the peak memory of the gateway and datasets processes (VmHWM, from /proc). A plain copy of
the same file on the same disk, measured in the same run, is the yardstick. The last lines:
    upload_mb_per_s: X
    gateway_peak_rss_mb: Y        (aim: under 300)
    datasets_peak_rss_mb: Z       (aim: under 300)
    throughput_vs_disk_copy: R    (the upload rate over the plain copy's)

What limits R (measured here, 2 cores): the plain copy runs at page-cache speed (about 1.5 GB/s),
while an upload is checked record by record in Python. The datasets service first spools the file
to disk as it arrives (hashing it), then parses and validates it in a worker thread at about
15 MB/s on one core (cProfile over 100k records: JSON decoding a fifth, writing the normalized
line a third, the field checks the rest) while the event loop stores finished pages; the gateway
parses the multipart body or passes a raw one through on the other core. Measured: 9.1 MB/s for
200 MB (451,969 records), R 0.006; peak memory 103 MB (gateway) and 158 MB (datasets), mostly the
set of record ids that catches duplicates (about 150 bytes a record). Faster would take
validating while spooling, or several processes.
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from devstack import Stack, StackPorts
from devstack.stack import SERVICES

REPO = Path(__file__).resolve().parents[1]
CHUNK = 1 << 20


def generate(path: Path, megabytes: int) -> int:
    """Writes the file; returns its record count."""
    target = megabytes * 1_000_000
    written = count = 0
    with path.open("w", encoding="utf-8") as out:
        while written < target:
            record = {
                "id": f"cand-{count:07d}",
                "messages": [
                    {"role": "system", "content": "You review candidates. Answer in one line of JSON."},
                    {"role": "user", "content": f"Candidate {count}: ten years of distributed systems, led teams."},
                ],
                "name": f"Candidate {count}",
                "years": count % 30,
                "pedigree": "strong" if count % 3 else "unusual",
                "notes": "x" * 150,
            }
            line = json.dumps(record) + "\n"
            out.write(line)
            written += len(line)
            count += 1
    return count


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def body(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            yield chunk


def main(megabytes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = folder / "big.jsonl"
        records = generate(source, megabytes)
        size_mb = source.stat().st_size / 1_000_000
        print(f"generated {size_mb:.0f} MB, {records:,} records")

        began = time.perf_counter()
        shutil.copyfile(source, folder / "copy.jsonl")
        copy_s = time.perf_counter() - began
        (folder / "copy.jsonl").unlink()
        disk_mb_per_s = size_mb / copy_s
        print(f"plain file copy: {disk_mb_per_s:,.0f} MB/s ({copy_s:.2f} s)")

        stack = Stack(REPO, folder / "var", StackPorts.free())
        try:
            stack.start(names=(*SERVICES, "gateway"))
            headers = {"Authorization": f"Bearer {stack.token}", "Content-Type": "application/x-ndjson"}
            began = time.perf_counter()
            response = httpx.post(
                f"{stack.url}/admin/datasets/upload",
                params={"name": "big.jsonl"},
                content=body(source),
                headers=headers,
                timeout=3600,
            )
            upload_s = time.perf_counter() - began
            if response.status_code != 201:
                raise SystemExit(f"the upload failed: {response.status_code} {response.text[:500]}")
            registered = response.json()["dataset"]["record_count"]
            if registered != records:
                raise SystemExit(f"registered {registered} records, expected {records}")
            gateway_mb = peak_rss_mb(stack.processes["gateway"].pid)
            datasets_mb = peak_rss_mb(stack.processes["datasets"].pid)
        finally:
            stack.stop()

        upload_mb_per_s = size_mb / upload_s
        print(f"upload through the gateway: {upload_s:.1f} s for {registered:,} records")
        print(f"upload_mb_per_s: {upload_mb_per_s:.1f}")
        print(f"gateway_peak_rss_mb: {gateway_mb:.0f}")
        print(f"datasets_peak_rss_mb: {datasets_mb:.0f}")
        print(f"throughput_vs_disk_copy: {upload_mb_per_s / disk_mb_per_s:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=200)
    main(parser.parse_args().mb)
    sys.exit(0)
