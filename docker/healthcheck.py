"""Container health check for the BlobZero images: exit 0 iff ``GET URL`` answers 2xx in time.

    python /app/docker/healthcheck.py http://127.0.0.1:9100/metrics [timeout_s]

Used by the selfplay and trainer images (their /metrics endpoint is the health signal) and by
docker-compose.yml. Standard library only: the runtime images carry no curl or wget.
"""
from __future__ import annotations

import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(f"usage: {argv[0]} URL [timeout_s]", file=sys.stderr)
        return 2
    url = argv[1]
    timeout = float(argv[2]) if len(argv) > 2 else 4.0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read(1)
            ok = 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if not ok:
        print(f"unhealthy: {url}: HTTP {response.status}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
