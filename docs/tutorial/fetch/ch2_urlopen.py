"""Chapter 2: urlopen reads the whole body into memory, then we write it out."""

import sys
from urllib.request import urlopen

if len(sys.argv) != 3:
    sys.exit(f"usage: python {sys.argv[0]} URL FILENAME")
url, filename = sys.argv[1], sys.argv[2]
with urlopen(url, timeout=30) as response:
    data = response.read()
with open(filename, "wb") as f:
    f.write(data)
print(f"{len(data)} bytes, status {response.status}")
