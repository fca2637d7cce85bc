// The transport baseline in C: a libfuse 2.9 file system whose handlers answer at once (the
// same library and protocol level, 7.19, that fuse-native uses, without the JS thread hop).
// Built and run by bench/empty-fuse.mjs:  empty-fuse MNT -f [-s]
#define FUSE_USE_VERSION 29
#include <errno.h>
#include <fuse.h>
#include <string.h>
#include <sys/stat.h>

static int e_getattr(const char *path, struct stat *st) {
  memset(st, 0, sizeof *st);
  if (strcmp(path, "/") == 0) { st->st_mode = S_IFDIR | 0755; st->st_nlink = 2; return 0; }
  if (path[1] == 'p') { st->st_mode = S_IFREG | 0644; st->st_nlink = 1; return 0; } // "/p…" exists
  return -ENOENT;
}

static struct fuse_operations ops = { .getattr = e_getattr };

int main(int argc, char **argv) { return fuse_main(argc, argv, &ops, NULL); }
