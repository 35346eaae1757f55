"""
twistd dropin for twisted_journey.

ServiceMaker lines only: importing anything else here (above all the reactor) would break
``twistd --reactor=...`` for every plugin on the system.  There is deliberately no
``__init__.py`` in ``twisted/`` or ``twisted/plugins/``.
"""

from twisted.application.service import ServiceMaker

journeyGreet = ServiceMaker(
    "twisted_journey greet",
    "twisted_journey.tap.greet",
    "Greeting server: send every client a greeting, then close.",
    "journey-greet",
)

journeyMux = ServiceMaker(
    "twisted_journey mux",
    "twisted_journey.tap.mux",
    "Multiplexing logging server: record every line every client sends.",
    "journey-mux",
)

journeyFetch = ServiceMaker(
    "twisted_journey fetch",
    "twisted_journey.tap.fetch",
    "Mirror service: keep local copies of URLs fresh with conditional GETs.",
    "journey-fetch",
)
