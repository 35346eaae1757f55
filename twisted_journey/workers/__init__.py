# -*- test-case-name: tests.test_workers -*-
"""
``--workers N``: several processes serving the same listening sockets.

Three rooms, one per side of the hand-over:

- :mod:`twisted_journey.workers.listeners`: the listening sockets, bound by the supervisor
  and adopted by the workers (the two reactors endpoint strings are parsed against);
- :mod:`twisted_journey.workers.supervisor`: the parent, the ``twistd`` process that binds,
  spawns, restarts and stops the workers (:class:`~.supervisor.WorkerPool`);
- :mod:`twisted_journey.workers.worker`: the child, a worker process's ``main`` and what it
  knows of its place (its share of the limits, its data file, its connection numbers).

The supervisor imports the worker's module (for the status and file names they agree on),
never the reverse.  Neither reads an options mapping: the supervisor is handed
:class:`~twisted_journey.settings.ServerSettings`, and a worker, the top of a process of its
own, parses the tool's arguments again and serves with its share of those settings.

Design: **the supervisor binds, the workers adopt.**  The supervisor parses every
``--listen`` endpoint string and listens on it as usual, but hands nothing to a protocol:
it stops reading its ports at once and spawns ``N`` worker processes (``python -c "from
twisted_journey.workers.worker import main; main()" ...``), each inheriting listening
descriptors.  A worker parses the same endpoint strings against a reactor that, instead of
binding, *adopts* its inherited descriptor (``adoptStreamPort``), so whatever the string
wraps around the socket (``ssl:`` and ``tls:`` TLS, ``haproxy:`` PROXY headers) is built in
the worker exactly as a single-process server builds it.

- A ``tcp:``/``tcp6:`` endpoint (also inside ``ssl:``, ``tls:``, ``haproxy:``) gets **one
  socket per worker**, all bound to the same address with ``SO_REUSEPORT`` (Twisted's
  ``tcp.makeBinding(reusePort=True)``) by the supervisor, which keeps holding them.  The
  kernel spreads new connections over the sockets by a hash of their addresses: evenly,
  with no thundering herd, and without a fast worker taking a whole burst (which
  matters for long-lived journey-mux clients).  While a worker is down its socket is
  closed (:meth:`~.supervisor.WorkerPool.closeSlot`), so that the kernel sends its share
  to the others, and bound again for its replacement.
- A ``unix:`` or ``systemd:`` socket cannot be multiplied: it is **one socket shared** by
  every worker, with one accept queue; a worker accepts one connection per wakeup (as
  nginx does by default) so that a burst spreads over the workers that are awake.
- A journey-mux ``udp:`` listener is **one socket shared** too, bound by the supervisor
  (:class:`~.supervisor.WorkerPool`'s ``datagrams``) and read by every worker: a datagram
  is read by exactly one of them, and what waits in the socket outlives a worker's death.
  ``SO_REUSEPORT`` sockets would send all of one sender's datagrams to one worker, and
  leave those queued for a dead worker to its restart.  The kernel's drops are the
  socket's, so the supervisor reads them (``SO_MEMINFO``) rather than summing the workers'.

Binding in the supervisor also means that privileged ports are bound once, before twistd
drops privileges, and ``tcp:0`` is one port for every worker.

The supervisor:

- restarts a worker that exits while it is not stopping, or could not be started at all,
  after a delay that doubles with each quick failure
  (:attr:`~.supervisor.WorkerPool.firstDelay` to :attr:`~.supervisor.WorkerPool.maxDelay`)
  and goes back to the first once a worker has stayed up
  :attr:`~.supervisor.WorkerPool.stableAfter` seconds;
- stops the server, with the worker's sentence and exit status 1, when a worker could not
  start for a reason a restart will not change (it exits with
  :data:`~.worker.CANNOT_START`);
- forwards ``SIGUSR1`` (journey-mux reopens its data log) and the ``SIGTERM`` or
  ``SIGINT`` that stops it to every worker, waits
  :attr:`~.supervisor.WorkerPool.stopTimeout` seconds for them to finish, then
  ``SIGKILL``\\ s the rest, and only then closes its sockets;
- relays each worker's log events into its own log, marked ``worker-N``.

The supervisor is not ``twisted.runner.procmon``'s ``ProcessMonitor``: that cannot pass
descriptors (it spawns each process with only standard input, output and error).

Workers run in their own process group (the terminal's Ctrl-C reaches the supervisor
only, which forwards it) and stop by themselves within a second of the supervisor's death.

Across workers: ``--max-connections`` is shared out (worker ``i`` of ``N`` may hold
``M // N`` connections, plus one for ``i < M % N``), so the whole server never holds more
than ``M``; ``--max-per-peer`` applies in each worker, so one host may hold up to ``N``
times that many.  journey-mux writes one data file per worker, ``PATH.wI``
(:func:`~.worker.workerOutput`); a restarted worker appends to its predecessor's file,
after cutting a record its predecessor was killed in the middle of writing
(:func:`~.worker.dropTornRecord`); its connection numbers (``CONN``) are unique across
workers and restarts (:class:`~.worker.ConnectionNumbers`).
"""
