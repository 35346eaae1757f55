"""
``python -m twisted_journey`` is the ``journey`` command.
"""

from twisted_journey.cli import main

raise SystemExit(main())
