"""
Chapter 7, step 4: the dropin.  twistd looks in every ``twisted/plugins/`` directory on
``sys.path`` for objects that provide IServiceMaker; ServiceMaker is one, naming the
command (``echo-tutorial``) and the module that holds Options and makeService.  Keep it
this small: importing the reactor here would break ``twistd --reactor``.  (No
``__init__.py`` in ``twisted/`` or ``twisted/plugins/``.)
"""

from twisted.application.service import ServiceMaker

echo = ServiceMaker(
    "echo-tutorial",  # the name shown in twistd --help
    "echoplugin.tap",  # the module with Options and makeService
    "Echo every line, after a prefix (the tutorial's plugin).",
    "echo-tutorial",  # the command: twistd echo-tutorial ...
)
