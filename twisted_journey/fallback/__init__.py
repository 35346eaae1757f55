"""
The stdlib-only twins of the Twisted tools.

Every module here imports nothing from Twisted (a test proves it), so each runs where only
Python is installed, and speaks the same bytes on the wire as its Twisted counterpart.
"""
