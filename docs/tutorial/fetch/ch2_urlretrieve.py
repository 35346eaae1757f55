"""Chapter 2: urlretrieve streams to a file in blocks, and reports progress."""

import sys
from urllib.request import urlretrieve


def report(blocknum, blocksize, totalsize):
    # Called once before the first block (blocknum 0), then after each 8 KiB block.
    pass


if len(sys.argv) != 3:
    sys.exit(f"usage: python {sys.argv[0]} URL FILENAME")
url, filename = sys.argv[1], sys.argv[2]
filename, headers = urlretrieve(url, filename, report)
print(f"saved {filename} ({headers['Content-Length']} bytes)")
