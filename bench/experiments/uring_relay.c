// Experiment, not built by CMake: the floor relay (bench/tcp_relay.cpp) on io_uring, to see
// whether replacing epoll_wait + recv + send with one io_uring_enter per loop round lowers the
// floor. It did not here (docs/bench/history.md, 2026-11-26 afternoon).
//
//   apt-get install -y liburing-dev
//   gcc -O2 -o /tmp/uring_relay bench/experiments/uring_relay.c -luring
//   taskset -c 1 /tmp/uring_relay PORT ECHO_PORT      # 127.0.0.1 only, runs until SIGINT
//
// Same shape as the floor: one 64 KiB buffer per direction, one recv outstanding per socket,
// the send issued when it completes, the next recv when the send has gone. A connection ends
// on the first EOF or error on either side (enough for weir-bench's loads; no half-close).
#define _GNU_SOURCE
#include <liburing.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <signal.h>

#define BUF 65536
enum { OP_ACCEPT = 0, OP_CONNECT = 1, OP_RECV = 2, OP_SEND = 3 };
struct conn;
struct side { struct conn* c; int fd; int other; unsigned off, len; char buf[BUF]; };
struct conn { struct side s[2]; int ops; int dead; };
static struct io_uring ring;
static struct sockaddr_in up;
static int lfd;
static volatile sig_atomic_t stop;
static void on_sig(int x) { (void)x; stop = 1; }

static struct io_uring_sqe* sqe(void) {
  struct io_uring_sqe* e = io_uring_get_sqe(&ring);
  if (!e) { io_uring_submit(&ring); e = io_uring_get_sqe(&ring); }
  return e;
}
static void* tag(void* p, int op) { return (void*)((uintptr_t)p | (uintptr_t)op); }
static void arm_accept(void) { struct io_uring_sqe* e = sqe(); io_uring_prep_accept(e, lfd, NULL, NULL, SOCK_CLOEXEC); io_uring_sqe_set_data(e, tag(NULL, OP_ACCEPT)); }
static void arm_recv(struct side* s) { struct io_uring_sqe* e = sqe(); io_uring_prep_recv(e, s->fd, s->buf, BUF, 0); io_uring_sqe_set_data(e, tag(s, OP_RECV)); s->c->ops++; }
static void arm_send(struct side* s) { struct io_uring_sqe* e = sqe(); io_uring_prep_send(e, s->c->s[s->other].fd, s->buf + s->off, s->len, MSG_NOSIGNAL); io_uring_sqe_set_data(e, tag(s, OP_SEND)); s->c->ops++; }
static void kill_conn(struct conn* c) {
  if (!c->dead) { c->dead = 1; shutdown(c->s[0].fd, SHUT_RDWR); shutdown(c->s[1].fd, SHUT_RDWR); }
  if (c->ops == 0) { close(c->s[0].fd); close(c->s[1].fd); free(c); }
}

int main(int argc, char** argv) {
  if (argc < 3) { fprintf(stderr, "usage: uring_relay PORT UPSTREAM_PORT\n"); return 2; }
  struct io_uring_params p; memset(&p, 0, sizeof p);
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  if (io_uring_queue_init_params(4096, &ring, &p) < 0) { memset(&p, 0, sizeof p); if (io_uring_queue_init_params(4096, &ring, &p) < 0) { perror("ring"); return 1; } fprintf(stderr, "no DEFER_TASKRUN\n"); }
  signal(SIGINT, on_sig); signal(SIGTERM, on_sig);
  up.sin_family = AF_INET; up.sin_port = htons(atoi(argv[2])); inet_pton(AF_INET, "127.0.0.1", &up.sin_addr);
  struct sockaddr_in me = {0}; me.sin_family = AF_INET; me.sin_port = htons(atoi(argv[1])); inet_pton(AF_INET, "127.0.0.1", &me.sin_addr);
  lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1; setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); setsockopt(lfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (bind(lfd, (struct sockaddr*)&me, sizeof me) || listen(lfd, 4096)) { perror("listen"); return 1; }
  arm_accept();
  while (!stop) {
    int r = io_uring_submit_and_wait(&ring, 1);
    if (r < 0 && r != -EINTR) { fprintf(stderr, "enter: %s\n", strerror(-r)); break; }
    struct io_uring_cqe* cqe; unsigned head, n = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      n++;
      uintptr_t d = (uintptr_t)io_uring_cqe_get_data(cqe); int op = d & 7; int res = cqe->res;
      if (op == OP_ACCEPT) {
        arm_accept();
        if (res < 0) continue;
        struct conn* c = calloc(1, sizeof *c);
        c->s[0].c = c->s[1].c = c; c->s[0].fd = res; c->s[0].other = 1; c->s[1].other = 0;
        c->s[1].fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        setsockopt(c->s[1].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct io_uring_sqe* e = sqe(); io_uring_prep_connect(e, c->s[1].fd, (struct sockaddr*)&up, sizeof up); io_uring_sqe_set_data(e, tag(c, OP_CONNECT)); c->ops++;
        continue;
      }
      if (op == OP_CONNECT) {
        struct conn* c = (struct conn*)(d & ~(uintptr_t)7); c->ops--;
        if (res < 0) { kill_conn(c); continue; }
        arm_recv(&c->s[0]); arm_recv(&c->s[1]);
        continue;
      }
      struct side* s = (struct side*)(d & ~(uintptr_t)7); struct conn* c = s->c; c->ops--;
      if (c->dead) { kill_conn(c); continue; }
      if (op == OP_RECV) {
        if (res <= 0) { kill_conn(c); continue; }
        s->off = 0; s->len = res; arm_send(s);
      } else {
        if (res < 0) { kill_conn(c); continue; }
        s->off += res; s->len -= res;
        if (s->len) arm_send(s); else arm_recv(s);
      }
    }
    io_uring_cq_advance(&ring, n);
  }
  return 0;
}
