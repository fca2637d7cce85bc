// The bench's timing helper: tight syscall loops over a mount, one JSON line per call, so that
// neither node nor a shell is what gets measured. Built by bench/run.mjs with `cc -O2`.
//
//   probe lstat LIST PASSES EXPECT [TIMES]
//                                    lstat each path of LIST (one per line) PASSES times;
//                                    EXPECT exist|enoent: other outcomes are counted as bad;
//                                    TIMES: a file that gets each lstat's ns, one per line
//   probe readdir LIST               opendir + readdir to the end + closedir of each dir in LIST
//                                    (counts the entries other than . and ..)
//   probe read FILE BUFSIZE          sequential read of FILE to EOF
//   probe copyup FILE                open(O_WRONLY) + pwrite 4 KiB at 0 (timed), close, verify
//   probe createunlink DIR N         create+write 64 B+close N files in DIR, then unlink them
//   probe rename SRC DST             one rename(2)
//   probe smallwrites FILE BS COUNT  create FILE, COUNT write(2)s of BS bytes (timed), close (timed
//                                    apart: a writeback cache sends the data then), verify
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static char **read_list(const char *file, size_t *n) {
  FILE *f = fopen(file, "r");
  if (!f) { perror(file); exit(2); }
  size_t cap = 1024, len = 0;
  char **v = malloc(cap * sizeof *v);
  char *line = NULL;
  size_t lcap = 0;
  ssize_t r;
  while ((r = getline(&line, &lcap, f)) > 0) {
    if (line[r - 1] == '\n') line[--r] = 0;
    if (r == 0) continue;
    if (len == cap) v = realloc(v, (cap *= 2) * sizeof *v);
    v[len++] = strdup(line);
  }
  free(line);
  fclose(f);
  *n = len;
  return v;
}

static void print_dist(const char *extra, uint64_t *t, size_t n) {
  uint64_t total = 0;
  for (size_t i = 0; i < n; i++) total += t[i];
  qsort(t, n, sizeof *t, cmp_u64);
  printf("{\"n\":%zu,\"total_ns\":%llu,\"median_ns\":%llu,\"p99_ns\":%llu,\"mean_ns\":%llu%s}\n", n,
         (unsigned long long)total, (unsigned long long)(n ? t[n / 2] : 0),
         (unsigned long long)(n ? t[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] : 0),
         (unsigned long long)(n ? total / n : 0), extra);
}

static int do_lstat(const char *list, int passes, const char *expect, const char *times) {
  size_t n;
  char **paths = read_list(list, &n);
  int want_exist = strcmp(expect, "exist") == 0;
  uint64_t *t = malloc((n * passes + 1) * sizeof *t);
  size_t k = 0, bad = 0;
  long first_bad = -1;
  int first_errno = 0;
  struct stat st;
  for (int p = 0; p < passes; p++) {
    for (size_t i = 0; i < n; i++) {
      uint64_t t0 = now_ns();
      int rc = lstat(paths[i], &st);
      uint64_t t1 = now_ns();
      int e = rc == 0 ? 0 : errno;
      t[k++] = t1 - t0;
      if (want_exist ? rc != 0 : e != ENOENT) {
        if (first_bad < 0) { first_bad = (long)i; first_errno = e; }
        bad++;
      }
    }
  }
  if (times) {
    FILE *f = fopen(times, "w");
    if (!f) { perror(times); exit(2); }
    for (size_t i = 0; i < k; i++) fprintf(f, "%llu\n", (unsigned long long)t[i]);
    fclose(f);
  }
  char extra[4300];
  snprintf(extra, sizeof extra, ",\"bad\":%zu,\"first_bad\":\"%s\",\"first_errno\":%d", bad,
           first_bad >= 0 ? paths[first_bad] : "", first_errno);
  print_dist(extra, t, k);
  return 0;
}

static int do_readdir(const char *list) {
  size_t n;
  char **paths = read_list(list, &n);
  uint64_t *t = malloc((n + 1) * sizeof *t);
  size_t entries = 0, bad = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t t0 = now_ns();
    DIR *d = opendir(paths[i]);
    if (!d) { bad++; t[i] = now_ns() - t0; continue; }
    struct dirent *e;
    while ((e = readdir(d)))
      if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) entries++;
    closedir(d);
    t[i] = now_ns() - t0;
  }
  char extra[128];
  snprintf(extra, sizeof extra, ",\"entries\":%zu,\"bad\":%zu", entries, bad);
  print_dist(extra, t, n);
  return 0;
}

static int do_read(const char *file, size_t bufsize) {
  char *buf = aligned_alloc(4096, bufsize);
  uint64_t t0 = now_ns();
  int fd = open(file, O_RDONLY);
  if (fd < 0) { printf("{\"errno\":%d}\n", errno); return 1; }
  uint64_t bytes = 0;
  ssize_t r;
  while ((r = read(fd, buf, bufsize)) > 0) bytes += (uint64_t)r;
  int e = r < 0 ? errno : 0;
  close(fd);
  uint64_t ns = now_ns() - t0;
  printf("{\"bytes\":%llu,\"ns\":%llu,\"errno\":%d}\n", (unsigned long long)bytes, (unsigned long long)ns, e);
  return 0;
}

static int do_copyup(const char *file) {
  static char buf[4096];
  memset(buf, 'W', sizeof buf);
  struct stat before;
  if (lstat(file, &before) != 0) { printf("{\"errno\":%d,\"stage\":\"lstat\"}\n", errno); return 1; }
  uint64_t t0 = now_ns();
  int fd = open(file, O_WRONLY);
  if (fd < 0) { printf("{\"errno\":%d,\"stage\":\"open\"}\n", errno); return 1; }
  uint64_t t1 = now_ns();
  ssize_t w = pwrite(fd, buf, sizeof buf, 0);
  uint64_t t2 = now_ns();
  int e = w < 0 ? errno : 0;
  close(fd);
  uint64_t t3 = now_ns();
  // Verify: size kept, our bytes at 0, and (for larger files) the byte after them is lower content.
  struct stat after;
  char check[4097];
  int ok = w == (ssize_t)sizeof buf && lstat(file, &after) == 0 &&
           after.st_size == (before.st_size > 4096 ? before.st_size : 4096);
  fd = open(file, O_RDONLY);
  if (ok && fd >= 0) {
    ssize_t r = pread(fd, check, sizeof check, 0);
    ok = r >= 4096 && memcmp(check, buf, 4096) == 0 && (before.st_size <= 4096 || (r == 4097 && check[4096] != 'W'));
  } else ok = 0;
  if (fd >= 0) close(fd);
  printf("{\"open_ns\":%llu,\"write_ns\":%llu,\"close_ns\":%llu,\"ns\":%llu,\"size\":%lld,\"errno\":%d,\"ok\":%s}\n",
         (unsigned long long)(t1 - t0), (unsigned long long)(t2 - t1), (unsigned long long)(t3 - t2),
         (unsigned long long)(t2 - t0), (long long)before.st_size, e, ok ? "true" : "false");
  return 0;
}

static int do_createunlink(const char *dir, int n) {
  char path[4096];
  static const char data[64] = "layerfs bench small file ..................................\n";
  size_t bad = 0;
  uint64_t t0 = now_ns();
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/f%06d", dir, i);
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
    if (fd < 0) { bad++; continue; }
    if (write(fd, data, sizeof data) != (ssize_t)sizeof data) bad++;
    close(fd);
  }
  uint64_t t1 = now_ns();
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/f%06d", dir, i);
    if (unlink(path) != 0) bad++;
  }
  uint64_t t2 = now_ns();
  // Everything must be gone again.
  DIR *d = opendir(dir);
  size_t left = 0;
  if (d) { struct dirent *e; while ((e = readdir(d))) if (e->d_name[0] != '.') left++; closedir(d); }
  printf("{\"n\":%d,\"create_ns\":%llu,\"unlink_ns\":%llu,\"bad\":%zu,\"left\":%zu}\n", n,
         (unsigned long long)(t1 - t0), (unsigned long long)(t2 - t1), bad, left);
  return 0;
}

static int do_smallwrites(const char *file, size_t bs, int count) {
  char *buf = malloc(bs);
  for (size_t i = 0; i < bs; i++) buf[i] = (char)('a' + i % 26);
  size_t bad = 0;
  uint64_t t0 = now_ns(), t1 = t0, t2 = t0;
  int fd = open(file, O_CREAT | O_EXCL | O_WRONLY, 0644);
  if (fd >= 0) {
    for (int i = 0; i < count; i++) if (write(fd, buf, bs) != (ssize_t)bs) bad++;
    t1 = now_ns();
    if (close(fd) != 0) bad++;
    t2 = now_ns();
  } else bad = (size_t)count;
  // Read it back: the size, and every block's bytes.
  char *check = malloc(bs);
  struct stat st;
  int ok = bad == 0 && lstat(file, &st) == 0 && st.st_size == (off_t)(bs * (size_t)count);
  fd = ok ? open(file, O_RDONLY) : -1;
  for (int i = 0; ok && i < count; i++) ok = read(fd, check, bs) == (ssize_t)bs && memcmp(check, buf, bs) == 0;
  if (fd >= 0) close(fd);
  printf("{\"n\":%d,\"bs\":%zu,\"write_ns\":%llu,\"close_ns\":%llu,\"bad\":%zu,\"ok\":%s}\n", count, bs,
         (unsigned long long)(t1 - t0), (unsigned long long)(t2 - t1), bad, ok ? "true" : "false");
  free(buf);
  free(check);
  return 0;
}

static int do_rename(const char *src, const char *dst) {
  uint64_t t0 = now_ns();
  int rc = rename(src, dst);
  uint64_t t1 = now_ns();
  int e = rc == 0 ? 0 : errno;
  struct stat st;
  int src_gone = lstat(src, &st) != 0 && errno == ENOENT;
  int dst_there = lstat(dst, &st) == 0;
  printf("{\"ns\":%llu,\"errno\":%d,\"src_gone\":%s,\"dst_there\":%s}\n", (unsigned long long)(t1 - t0), e,
         src_gone ? "true" : "false", dst_there ? "true" : "false");
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 5 && !strcmp(argv[1], "lstat")) return do_lstat(argv[2], atoi(argv[3]), argv[4], argc >= 6 ? argv[5] : NULL);
  if (argc >= 3 && !strcmp(argv[1], "readdir")) return do_readdir(argv[2]);
  if (argc >= 4 && !strcmp(argv[1], "read")) return do_read(argv[2], (size_t)atol(argv[3]));
  if (argc >= 3 && !strcmp(argv[1], "copyup")) return do_copyup(argv[2]);
  if (argc >= 4 && !strcmp(argv[1], "createunlink")) return do_createunlink(argv[2], atoi(argv[3]));
  if (argc >= 4 && !strcmp(argv[1], "rename")) return do_rename(argv[2], argv[3]);
  if (argc >= 5 && !strcmp(argv[1], "smallwrites")) return do_smallwrites(argv[2], (size_t)atol(argv[3]), atoi(argv[4]));
  fprintf(stderr, "usage: probe lstat|readdir|read|copyup|createunlink|rename ...\n");
  return 2;
}
