/*
 * greetload: a connection-rate load generator for greeting servers.
 *
 * Single-threaded epoll client.  Keeps CONCURRENCY connections in flight to
 * HOST:PORT (IPv4, loopback only); each one connects, reads until the server
 * closes, checks that the bytes read equal EXPECTED exactly, and closes with
 * SO_LINGER {1, 0} (an RST, so the client leaves no TIME_WAIT behind and the
 * ephemeral ports last the whole run; an artefact of the load tool, not of the
 * server).  Starts new connections for SECONDS seconds or until COUNT have been
 * started (0: no count limit), then waits at most 5 s for the ones in flight;
 * any still open then count as errors.  Always stops by itself.
 *
 * Usage: greetload HOST PORT CONCURRENCY SECONDS COUNT EXPECTED
 *
 * Prints one line: "completed N errors E seconds S cpu C", where C is this
 * process's own user+system CPU seconds, so a run can show the client was not
 * the bottleneck.  Exit status 0 unless the arguments were wrong.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXCONC 4096
#define DRAIN_SECONDS 5.0

struct conn {
    int fd;
    size_t got;
    int bad;
};

static struct sockaddr_in target;
static const char *expected;
static size_t expectedLength;
static long completed, errors, started;
static int inFlight;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void finish(int ep, struct conn *c, int ok)
{
    struct linger lin = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
    (void)ep; /* close() takes the descriptor out of the epoll set: no EPOLL_CTL_DEL. */
    close(c->fd);
    c->fd = -1;
    inFlight--;
    if (ok)
        completed++;
    else
        errors++;
}

static void start(int ep, struct conn *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        errors++;
        return;
    }
    started++;
    c->fd = fd;
    c->got = 0;
    c->bad = 0;
    inFlight++;
    if (connect(fd, (struct sockaddr *)&target, sizeof target) < 0 && errno != EINPROGRESS) {
        finish(ep, c, 0);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        finish(ep, c, 0);
}

/* Read what is there; return 1 when the connection is finished. */
static int readSome(int ep, struct conn *c)
{
    char buf[65536];
    for (int round = 0; round < 64; round++) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n > 0) {
            if (c->got + (size_t)n > expectedLength || memcmp(buf, expected + c->got, (size_t)n) != 0)
                c->bad = 1;
            c->got += (size_t)n;
            continue;
        }
        if (n == 0) {
            finish(ep, c, !c->bad && c->got == expectedLength);
            return 1;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        if (errno == EINTR)
            continue;
        finish(ep, c, 0);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: %s HOST PORT CONCURRENCY SECONDS COUNT EXPECTED\n", argv[0]);
        return 2;
    }
    memset(&target, 0, sizeof target);
    target.sin_family = AF_INET;
    target.sin_port = htons((unsigned short)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &target.sin_addr) != 1) {
        fprintf(stderr, "greetload: %s is not an IPv4 address\n", argv[1]);
        return 2;
    }
    int concurrency = atoi(argv[3]);
    double seconds = atof(argv[4]);
    long count = atol(argv[5]);
    expected = argv[6];
    expectedLength = strlen(expected);
    if (concurrency < 1 || concurrency > MAXCONC || seconds <= 0 || seconds > 3600 || count < 0) {
        fprintf(stderr, "greetload: CONCURRENCY 1..%d, SECONDS 0..3600, COUNT >= 0\n", MAXCONC);
        return 2;
    }

    static struct conn conns[MAXCONC];
    for (int i = 0; i < concurrency; i++)
        conns[i].fd = -1;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event events[MAXCONC];

    double begin = now();
    double stopStarting = begin + seconds;
    double giveUp = stopStarting + DRAIN_SECONDS;
    int starting = 1;
    for (int i = 0; i < concurrency; i++)
        start(ep, &conns[i]);

    while (inFlight > 0 || starting) {
        double t = now();
        if (starting && (t >= stopStarting || (count && started >= count))) {
            starting = 0;
            if (inFlight == 0)
                break;
        }
        if (t >= giveUp)
            break;
        int n = epoll_wait(ep, events, MAXCONC, 100);
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c->fd < 0)
                continue;
            int done;
            if (events[i].events & EPOLLIN)
                done = readSome(ep, c);
            else {
                /* Error or hang-up without data: a refused or reset connection. */
                finish(ep, c, 0);
                done = 1;
            }
            if (done && starting && !(count && started >= count))
                start(ep, c);
        }
    }
    /* Connections still open after the drain period never finished: errors. */
    for (int i = 0; i < concurrency; i++)
        if (conns[i].fd >= 0)
            finish(ep, &conns[i], 0);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    double elapsed = now() - begin;
    printf("completed %ld errors %ld seconds %.3f cpu %.3f\n", completed, errors, elapsed, cpu);
    return 0;
}
