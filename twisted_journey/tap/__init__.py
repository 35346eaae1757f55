"""
twistd service makers: one module per tool, each with ``Options`` and ``makeService``.
"""
