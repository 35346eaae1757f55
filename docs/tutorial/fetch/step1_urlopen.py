"""Step 1: urlopen reads the whole body into memory, then we write it out."""

import sys
from urllib.request import urlopen

url, filename = sys.argv[1], sys.argv[2]
with urlopen(url, timeout=30) as response:
    data = response.read()
with open(filename, "wb") as f:
    f.write(data)
print(f"{len(data)} bytes, status {response.status}")
