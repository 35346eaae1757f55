"""Chapter 8: urlretrieve, but safe: .part + rename, length checks, timeouts, exit codes."""

import sys

from twisted_journey.fallback.fetch import fetch
from twisted_journey.fetch.errors import FetchError

if len(sys.argv) != 3:
    sys.exit(f"usage: python {sys.argv[0]} URL FILENAME")
url, filename = sys.argv[1], sys.argv[2]
try:
    filename, headers = fetch(url, filename, timeout=30)
except FetchError as e:
    print(f"failed: {e}", file=sys.stderr)
    sys.exit(e.exitCode)
print(f"saved {filename}")
