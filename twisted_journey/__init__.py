"""
twisted_journey: the network-programming chapter made real.

Three tools, each a twistd plugin on Twisted protocols beside a stdlib-only twin that speaks
the same bytes: a greeting server (:mod:`twisted_journey.greet`), a multiplexing logging
server (:mod:`twisted_journey.mux`) and an HTTP fetcher (:mod:`twisted_journey.fetch`).
"""

__version__ = "0.1.0"
