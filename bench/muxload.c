/*
 * Load generator for bench/mux.py: CLIENTS connections to 127.0.0.1:PORT, each sending
 * LINES lines of SIZE bytes (newline included) as fast as the server takes them, with
 * epoll and non-blocking writes; each connection half-closes when its lines are sent and
 * is done when the server closes it.  Prints "seconds" on stdout.
 *
 *     muxload PORT CLIENTS LINES SIZE [octet]
 *
 * Every line is "c<client> n<number> xxxx...\n", so a server's output can be checked.
 * With "octet", each is instead a syslog frame of SIZE bytes, octet counted (RFC 6587):
 * "LEN <13>c<client> n<number> xxxx..." with no newline.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BLOCK_LINES 512

struct conn {
    int fd;
    int id;
    long next;      /* next line number to put in the block */
    char *block;    /* formatted lines waiting to be sent */
    size_t len, off;
    int writing;
};

static long LINES;
static int SIZE;
static int OCTET;   /* the message length of an octet-counted frame of SIZE bytes, or 0 */

static void fill(struct conn *c) {
    size_t len = 0;
    for (int i = 0; i < BLOCK_LINES && c->next < LINES; i++, c->next++) {
        if (OCTET) {
            int n = snprintf(c->block + len, SIZE + 1, "%d <13>c%d n%ld ", OCTET, c->id, c->next);
            memset(c->block + len + n, 'x', SIZE - n);
            len += SIZE;
            continue;
        }
        int n = snprintf(c->block + len, SIZE + 1, "c%d n%ld ", c->id, c->next);
        memset(c->block + len + n, 'x', SIZE - 1 - n);
        c->block[len + SIZE - 1] = '\n';
        len += SIZE;
    }
    c->len = len;
    c->off = 0;
}

int main(int argc, char **argv) {
    if (argc != 5 && !(argc == 6 && strcmp(argv[5], "octet") == 0)) {
        fprintf(stderr, "usage: muxload PORT CLIENTS LINES SIZE [octet]\n");
        return 2;
    }
    int port = atoi(argv[1]), clients = atoi(argv[2]);
    LINES = atol(argv[3]);
    SIZE = atoi(argv[4]);
    if (SIZE < 32) SIZE = 32;
    if (argc == 6) {
        /* LEN SP MSG fills SIZE bytes: the message is SIZE less the count and its space. */
        for (int digits = 1; digits < 7 && !OCTET; digits++) {
            char count[16];
            int m = SIZE - digits - 1;
            if (snprintf(count, sizeof count, "%d", m) == digits) OCTET = m;
        }
    }
    int ep = epoll_create1(0);
    struct conn *conns = calloc(clients, sizeof *conns);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < clients; i++) {
        struct conn *c = &conns[i];
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
            perror("connect");
            return 1;
        }
        fcntl(c->fd, F_SETFL, O_NONBLOCK);
        c->id = i;
        c->block = malloc((size_t)BLOCK_LINES * SIZE + SIZE + 1);
        c->writing = 1;
        fill(c);
        struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    }
    int open = clients;
    struct epoll_event events[256];
    char sink[65536];
    while (open > 0) {
        int n = epoll_wait(ep, events, 256, 60000);
        if (n <= 0) {
            fprintf(stderr, "muxload: no progress for 60 s, %d connections open\n", open);
            return 1;
        }
        for (int e = 0; e < n; e++) {
            struct conn *c = events[e].data.ptr;
            if (c->fd < 0) continue;
            if (c->writing && (events[e].events & EPOLLOUT)) {
                while (c->writing) {
                    ssize_t w = write(c->fd, c->block + c->off, c->len - c->off);
                    if (w < 0) {
                        if (errno == EAGAIN) break;
                        perror("write");
                        return 1;
                    }
                    c->off += w;
                    if (c->off == c->len) {
                        fill(c);
                        if (c->len == 0) {
                            shutdown(c->fd, SHUT_WR);
                            c->writing = 0;
                            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                        }
                    }
                }
            }
            if (events[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t r = read(c->fd, sink, sizeof sink);
                if (r == 0 || (r < 0 && errno != EAGAIN)) {
                    if (c->writing) {
                        fprintf(stderr, "muxload: server closed connection %d early\n", c->id);
                        return 1;
                    }
                    close(c->fd);
                    c->fd = -1;
                    open--;
                }
            }
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%.6f\n", (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}
