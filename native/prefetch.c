// Metadata read-ahead: reads host directories and lstats their entries on a libuv worker, and
// throws the results away. What stays is the kernel's cache of those dentries, inodes and
// directory blocks, so that the daemon's own synchronous readdir and lstat of them later (a
// listing that follows, as in a depth-first walk) find them in memory instead of waiting for
// the disk one read at a time. The disk here serves parallel reads: scanning the bench
// fixture's directories cold took 566–726 ms on one thread and ~300 ms on four
// (docs/benchmarks.md §11). Read-only, never follows a symlink (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW).
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "layerfs.h"

typedef struct {
  char** dirs;
  uint32_t count;
  uint32_t max_entries;  // lstats per directory at most
  napi_async_work work;
  napi_deferred deferred;
  uint32_t statted;      // entries lstat'ed (the promise's value: for tests and status)
} prefetch_t;

static void scan_dir(prefetch_t* p, const char* dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return;
  DIR* d = fdopendir(fd);
  if (!d) { close(fd); return; }
  struct dirent* e;
  struct stat st;
  uint32_t n = 0;
  while (n < p->max_entries && (e = readdir(d))) {
    if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
    if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) p->statted++;
    n++;
  }
  closedir(d);
}

static void execute(napi_env env, void* data) {
  prefetch_t* p = data;
  for (uint32_t i = 0; i < p->count; i++) scan_dir(p, p->dirs[i]);
}

static void complete(napi_env env, napi_status status, void* data) {
  prefetch_t* p = data;
  napi_value result;
  napi_create_uint32(env, p->statted, &result);
  napi_resolve_deferred(env, p->deferred, result);
  napi_delete_async_work(env, p->work);
  for (uint32_t i = 0; i < p->count; i++) free(p->dirs[i]);
  free(p->dirs);
  free(p);
}

// prefetchDirs(dirs: string[], maxEntries: number) -> Promise<number of entries lstat'ed>
napi_value layerfs_prefetch_dirs(napi_env env, napi_callback_info info) {
  napi_value argv[2], promise, name;
  size_t argc = 2;
  bool is_array = false;
  uint32_t count = 0, max_entries = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[0], &count) != napi_ok ||
      napi_get_value_uint32(env, argv[1], &max_entries) != napi_ok) {
    napi_throw_type_error(env, NULL, "prefetchDirs(dirs: string[], maxEntries: number)");
    return NULL;
  }
  prefetch_t* p = calloc(1, sizeof *p);
  if (!p || !(p->dirs = calloc(count ? count : 1, sizeof *p->dirs))) {
    free(p);
    napi_throw_error(env, NULL, "prefetchDirs: out of memory");
    return NULL;
  }
  p->max_entries = max_entries;
  for (uint32_t i = 0; i < count; i++) {
    napi_value v;
    size_t len;
    char buf[PATH_MAX];
    if (napi_get_element(env, argv[0], i, &v) != napi_ok ||
        napi_get_value_string_utf8(env, v, buf, sizeof buf, &len) != napi_ok || len >= sizeof buf - 1) continue;
    p->dirs[p->count++] = strdup(buf);
  }
  napi_create_promise(env, &p->deferred, &promise);
  napi_create_string_utf8(env, "layerfs:prefetch", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, execute, complete, p, &p->work);
  napi_queue_async_work(env, p->work);
  return promise;
}
