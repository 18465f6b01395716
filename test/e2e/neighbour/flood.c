// A hostile guest's floods for scenario 185-neighbour, built static on the host (gcc -static) and put
// into the guest image as /bin/flood; its `sink` mode is the dom0 end the network floods go to.
//   flood console SECONDS            stdout (the guest's console) written as fast as it takes it
//   flood out SECONDS                the same, for an exec session's stdout (the control channel)
//   flood tcp IP PORT SECONDS N      N processes connecting, sending a line, reading, closing (half of
//                                    them with an RST), as fast as they can
//   flood udp IP PORT SECONDS N      1-byte datagrams round-robin over N sockets (N flows), one socket
//                                    replaced by a new one (a new flow) every 64 datagrams
//   flood hold IP PORT SECONDS N     N connections opened at once and held open until the deadline
//   flood chan SECONDS               /dev/hvc1 (the control channel's console device): an oversized
//                                    frame header, then garbage, as fast as it is taken
//   flood dial IP PORT               (the victim) one connection: prints what the other end sent
//   flood sink TCP_PORT UDP_PORT HOLD_PORT
//                                    (dom0) on 127.0.0.1: TCP_PORT accepts, answers "ok\n" and closes;
//                                    UDP_PORT reads and drops; HOLD_PORT accepts and keeps (the oldest
//                                    closed once its descriptors run short)
// Each flood ends with one line `FLOOD-STAT MODE key=value...` on stderr.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static struct sockaddr_in addr(const char *ip, const char *port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(port))};
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
    fprintf(stderr, "flood: not an IPv4 address: %s\n", ip);
    exit(2);
  }
  return a;
}

// Writes to fd until the deadline; a non-blocking fd is polled so a stalled reader cannot hold it past it.
static long long write_until(int fd, double end, const char *buf, size_t len) {
  long long total = 0;
  while (now() < end) {
    ssize_t n = write(fd, buf, len);
    if (n > 0) total += n;
    else if (n < 0 && errno == EAGAIN) {
      struct pollfd p = {.fd = fd, .events = POLLOUT};
      poll(&p, 1, 100);
    } else if (n < 0 && errno != EINTR) break;
  }
  return total;
}

static void tick(int sig) { (void)sig; }

static int flood_text(const char *mode, double secs) {
  static char buf[4096];
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (i % 64 == 63) ? '\n' : 'a' + i % 26;
  // Not O_NONBLOCK: stdout's file description is the shell's too. A 100 ms timer interrupts a blocked
  // write instead (no SA_RESTART), so a reader that stopped taking bytes cannot hold us past the deadline.
  struct sigaction sa = {.sa_handler = tick};
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval it = {.it_interval = {.tv_usec = 100000}, .it_value = {.tv_usec = 100000}};
  setitimer(ITIMER_REAL, &it, NULL);
  double t0 = now();
  long long n = write_until(1, t0 + secs, buf, sizeof buf);
  struct itimerval off = {0};
  setitimer(ITIMER_REAL, &off, NULL);
  fprintf(stderr, "\nFLOOD-STAT %s bytes=%lld seconds=%.1f\n", mode, n, now() - t0);
  return 0;
}

static int flood_chan(double secs) {
  int fd = open("/dev/hvc1", O_WRONLY | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    fprintf(stderr, "FLOOD-STAT chan error=%s\n", strerror(errno));
    return 1;
  }
  // "KC", STDOUT (0x21), no flags, stream 1, a length of 4 GiB - 1: far over MAX_PAYLOAD.
  unsigned char head[12] = {'K', 'C', 0x21, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
  static char garbage[4096];
  srand(185);
  for (size_t i = 0; i < sizeof garbage; i++) garbage[i] = rand();
  double t0 = now();
  long long n = write_until(fd, t0 + 0.5, (const char *)head, sizeof head) > 0 ? sizeof head : 0;
  n += write_until(fd, t0 + secs, garbage, sizeof garbage);
  fprintf(stderr, "FLOOD-STAT chan bytes=%lld seconds=%.1f\n", n, now() - t0);
  return 0;
}

static int flood_tcp(struct sockaddr_in a, double secs, int workers) {
  double t0 = now(), end = t0 + secs;
  int pipes[2];
  if (pipe(pipes)) return 1;
  for (int w = 0; w < workers; w++) {
    if (fork() != 0) continue;
    long long ok = 0, fail = 0;
    while (now() < end) {
      int s = socket(AF_INET, SOCK_STREAM, 0);
      struct timeval tv = {.tv_sec = 5};
      setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      char b[64];
      if (connect(s, (struct sockaddr *)&a, sizeof a) == 0 && write(s, "hello\n", 6) == 6 && read(s, b, sizeof b) > 0) ok++;
      else fail++;
      if (w % 2) {  // half of the connections end with an RST instead of a FIN
        struct linger l = {.l_onoff = 1, .l_linger = 0};
        setsockopt(s, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      }
      close(s);
    }
    char line[64];
    int len = snprintf(line, sizeof line, "%lld %lld\n", ok, fail);
    if (write(pipes[1], line, len) != len) _exit(1);
    _exit(0);
  }
  close(pipes[1]);
  FILE *f = fdopen(pipes[0], "r");
  long long ok = 0, fail = 0, o, e;
  while (fscanf(f, "%lld %lld", &o, &e) == 2) ok += o, fail += e;
  while (wait(NULL) > 0) {}
  fprintf(stderr, "FLOOD-STAT tcp connections=%lld failed=%lld seconds=%.1f\n", ok, fail, now() - t0);
  return 0;
}

static void raise_nofile(void) {
  struct rlimit r;
  getrlimit(RLIMIT_NOFILE, &r);
  r.rlim_cur = r.rlim_max;
  setrlimit(RLIMIT_NOFILE, &r);
}

static int flood_hold(struct sockaddr_in a, double secs, int n) {
  raise_nofile();
  double t0 = now(), end = t0 + secs;
  int *s = calloc(n, sizeof *s), opened = 0;
  for (; opened < n && now() < end; opened++) {
    s[opened] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s[opened] < 0) break;
    if (connect(s[opened], (struct sockaddr *)&a, sizeof a) && errno != EINPROGRESS) {
      close(s[opened]);
      break;
    }
  }
  while (now() < end) usleep(200000);
  int up = 0;
  for (int i = 0; i < opened; i++) {
    int err = 1;
    socklen_t len = sizeof err;
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    if (!getsockopt(s[i], SOL_SOCKET, SO_ERROR, &err, &len) && !err && !getpeername(s[i], (struct sockaddr *)&peer, &plen)) up++;
    close(s[i]);
  }
  fprintf(stderr, "FLOOD-STAT hold opened=%d established=%d seconds=%.1f\n", opened, up, now() - t0);
  return 0;
}

static int udp_socket(struct sockaddr_in a) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a)) {
    close(s);
    return -1;
  }
  return s;
}

static int flood_udp(struct sockaddr_in a, double secs, int n) {
  raise_nofile();
  struct rlimit r;
  getrlimit(RLIMIT_NOFILE, &r);
  if ((rlim_t)n > r.rlim_cur - 16) n = r.rlim_cur - 16;
  int *s = calloc(n, sizeof *s);
  for (int i = 0; i < n; i++) s[i] = udp_socket(a);
  double t0 = now(), end = t0 + secs;
  long long sent = 0, dropped = 0, flows = n;
  for (long long i = 0; (i & 1023) || now() < end; i++) {
    int k = i % n;
    if (s[k] < 0 || send(s[k], "x", 1, 0) != 1) dropped++;
    else sent++;
    if (i % 64 == 63) {  // a new source port: a new flow for kratanet
      close(s[k]);
      s[k] = udp_socket(a);
      flows++;
    }
  }
  fprintf(stderr, "FLOOD-STAT udp datagrams=%lld refused=%lld flows=%lld seconds=%.1f\n", sent, dropped, flows, now() - t0);
  return 0;
}

static int dial(struct sockaddr_in a) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct timeval tv = {.tv_sec = 60};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char b[256];
  size_t got = 0;
  ssize_t n;
  if (connect(s, (struct sockaddr *)&a, sizeof a)) {
    fprintf(stderr, "flood dial: %s\n", strerror(errno));
    return 1;
  }
  while (got < sizeof b - 1 && (n = read(s, b + got, sizeof b - 1 - got)) > 0) got += n;
  while (got && (b[got - 1] == '\n' || b[got - 1] == '\r')) got--;
  b[got] = 0;
  puts(b);
  return 0;
}

static int sink(const char *tcp_port, const char *udp_port, const char *hold_port) {
  raise_nofile();
  struct rlimit r;
  getrlimit(RLIMIT_NOFILE, &r);
  int max = r.rlim_cur > 100000 ? 100000 : (int)r.rlim_cur - 64, *held = calloc(max, sizeof *held), next = 0;
  for (int i = 0; i < max; i++) held[i] = -1;
  struct sockaddr_in t = addr("127.0.0.1", tcp_port), u = addr("127.0.0.1", udp_port), h = addr("127.0.0.1", hold_port);
  int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int hl = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  setsockopt(hl, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int d = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (bind(l, (struct sockaddr *)&t, sizeof t) || listen(l, 512) || bind(d, (struct sockaddr *)&u, sizeof u) ||
      bind(hl, (struct sockaddr *)&h, sizeof h) || listen(hl, 512)) {
    perror("flood sink");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  char b[2048];
  for (;;) {
    struct pollfd p[3] = {{.fd = l, .events = POLLIN}, {.fd = d, .events = POLLIN}, {.fd = hl, .events = POLLIN}};
    if (poll(p, 3, -1) < 0) continue;
    for (int c; (c = accept(hl, NULL, NULL)) >= 0; next = (next + 1) % max) {
      if (held[next] >= 0) close(held[next]);
      held[next] = c;
    }
    for (int c; (c = accept(l, NULL, NULL)) >= 0;) {
      if (write(c, "ok\n", 3) < 0) {}
      close(c);
    }
    while (recv(d, b, sizeof b, 0) >= 0) {}
  }
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  const char *m = argc > 1 ? argv[1] : "";
  if (!strcmp(m, "console") && argc == 3) return flood_text("console", atof(argv[2]));
  if (!strcmp(m, "out") && argc == 3) return flood_text("out", atof(argv[2]));
  if (!strcmp(m, "chan") && argc == 3) return flood_chan(atof(argv[2]));
  if (!strcmp(m, "tcp") && argc == 6) return flood_tcp(addr(argv[2], argv[3]), atof(argv[4]), atoi(argv[5]));
  if (!strcmp(m, "udp") && argc == 6) return flood_udp(addr(argv[2], argv[3]), atof(argv[4]), atoi(argv[5]));
  if (!strcmp(m, "hold") && argc == 6) return flood_hold(addr(argv[2], argv[3]), atof(argv[4]), atoi(argv[5]));
  if (!strcmp(m, "dial") && argc == 4) return dial(addr(argv[2], argv[3]));
  if (!strcmp(m, "sink") && argc == 5) return sink(argv[2], argv[3], argv[4]);
  fprintf(stderr, "usage: flood console|out|chan SECONDS | tcp|udp|hold IP PORT SECONDS N | dial IP PORT | sink TCP_PORT UDP_PORT HOLD_PORT\n");
  return 2;
}
