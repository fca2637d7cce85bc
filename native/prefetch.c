// Metadata read-ahead: reads host directories and lstats their entries on a libuv worker. The
// kernel's cache then holds those dentries, inodes and directory blocks, so that the daemon's own
// readdir and lstat of them later (a listing that follows, as in a depth-first walk) find them in
// memory instead of waiting for the disk one read at a time. The disk here serves parallel reads:
// scanning the bench fixture's directories cold took 566–726 ms on one thread and ~300 ms on four
// (docs/benchmarks.md §11). For the directories the caller asks to keep, the worker also hands back
// what it read (the names in readdir order and their lstats), so that the JS thread need not read
// them again (lib/branches/prefetched.ts). Read-only, never follows a symlink (O_NOFOLLOW,
// AT_SYMLINK_NOFOLLOW).
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "layerfs.h"

#define STAT_DOUBLES 13

// What was read of one directory the caller asked to keep: names joined by '/' (which no name
// contains), and 13 doubles per name (mode -1 when its lstat failed). Dropped (kept = false) when
// the directory has more than max_entries entries or a name that is not UTF-8: JS could not use
// it as the whole directory.
typedef struct {
  bool keep, kept;
  char* names;
  size_t names_len, names_cap;
  double* stats;
  uint32_t count, cap;
} dir_read_t;

typedef struct {
  char** dirs;
  dir_read_t* reads;     // one per dir when the caller passed `keep`, else NULL
  uint32_t count;
  uint32_t max_entries;  // lstats per directory at most
  napi_async_work work;
  napi_deferred deferred;
  uint32_t statted;      // entries lstat'ed (for tests and status)
} prefetch_t;

static bool is_utf8(const unsigned char* s) {
  while (*s) {
    int n = *s < 0x80 ? 0 : (*s & 0xe0) == 0xc0 && *s >= 0xc2 ? 1 : (*s & 0xf0) == 0xe0 ? 2 : (*s & 0xf8) == 0xf0 && *s <= 0xf4 ? 3 : -1;
    if (n < 0) return false;
    const unsigned char c0 = *s++;
    for (int i = 0; i < n; i++, s++) {
      if ((*s & 0xc0) != 0x80) return false;
      // No overlong 3- and 4-byte forms, no surrogates, nothing above U+10FFFF.
      if (i == 0 && ((c0 == 0xe0 && *s < 0xa0) || (c0 == 0xed && *s > 0x9f) || (c0 == 0xf0 && *s < 0x90) || (c0 == 0xf4 && *s > 0x8f))) return false;
    }
  }
  return true;
}

static bool keep_entry(dir_read_t* r, const char* name, const struct stat* st) {
  size_t len = strlen(name);
  if (!is_utf8((const unsigned char*)name)) return false;
  if (r->names_len + len + 2 > r->names_cap) {  // a '/' before it, a NUL after the last (sort_read)
    size_t cap = (r->names_cap ? r->names_cap * 2 : 1024) + len;
    char* n = realloc(r->names, cap);
    if (!n) return false;
    r->names = n;
    r->names_cap = cap;
  }
  if (r->count == r->cap) {
    uint32_t cap = r->cap ? r->cap * 2 : 32;
    double* s = realloc(r->stats, (size_t)cap * STAT_DOUBLES * sizeof(double));
    if (!s) return false;
    r->stats = s;
    r->cap = cap;
  }
  if (r->count > 0) r->names[r->names_len++] = '/';
  memcpy(r->names + r->names_len, name, len);
  r->names_len += len;
  double* o = r->stats + (size_t)r->count * STAT_DOUBLES;
  if (st) layerfs_stat_to_doubles(st, o);
  else o[0] = -1;
  r->count++;
  return true;
}

static int by_name(const void* a, const void* b, void* names) {
  return strcmp(((const char**)names)[*(const uint32_t*)a], ((const char**)names)[*(const uint32_t*)b]);
}

// Puts the kept entries in the order Node's readdir gives (libuv's scandir sorts by strcmp), so
// a listing is the same whether it was read ahead or not. False when out of memory.
static bool sort_read(dir_read_t* r) {
  if (r->count < 2) return true;
  const char** names = malloc(r->count * sizeof *names);
  uint32_t* order = malloc(r->count * sizeof *order);
  char* joined = malloc(r->names_len + 1);
  double* stats = malloc((size_t)r->count * STAT_DOUBLES * sizeof(double));
  bool ok = names && order && joined && stats;
  if (ok) {
    // Split the joined names in place, sort an index by name, then join again in that order.
    char* at = r->names;
    r->names[r->names_len] = '\0';
    for (uint32_t i = 0; i < r->count; i++) {
      names[i] = at;
      order[i] = i;
      char* slash = strchr(at, '/');
      if (slash) { *slash = '\0'; at = slash + 1; }
    }
    qsort_r(order, r->count, sizeof *order, by_name, names);
    size_t len = 0;
    for (uint32_t k = 0; k < r->count; k++) {
      uint32_t i = order[k];
      size_t n = strlen(names[i]);
      if (k > 0) joined[len++] = '/';
      memcpy(joined + len, names[i], n);
      len += n;
      memcpy(stats + (size_t)k * STAT_DOUBLES, r->stats + (size_t)i * STAT_DOUBLES, STAT_DOUBLES * sizeof(double));
    }
    free(r->names);
    free(r->stats);
    r->names = joined;
    r->names_len = len;
    r->stats = stats;
    joined = NULL;
    stats = NULL;
  }
  free(names);
  free(order);
  free(joined);
  free(stats);
  return ok;
}

static void scan_dir(prefetch_t* p, const char* dir, dir_read_t* r) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return;
  DIR* d = fdopendir(fd);
  if (!d) { close(fd); return; }
  struct dirent* e;
  struct stat st;
  uint32_t n = 0;
  bool keeping = r && r->keep;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
    if (n == p->max_entries) { keeping = false; break; }  // more than it may read: not the whole
    bool ok = fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (ok) p->statted++;
    if (keeping) keeping = keep_entry(r, e->d_name, ok ? &st : NULL);
    n++;
  }
  closedir(d);
  if (r) r->kept = keeping && sort_read(r);
}

static void execute(napi_env env, void* data) {
  prefetch_t* p = data;
  for (uint32_t i = 0; i < p->count; i++) {
    if (p->dirs[i]) scan_dir(p, p->dirs[i], p->reads ? &p->reads[i] : NULL);
  }
}

// One kept directory as [names: string, stats: Float64Array], or null.
static napi_value dir_read_value(napi_env env, dir_read_t* r) {
  napi_value v, names, buf, stats;
  void* data;
  size_t bytes = (size_t)r->count * STAT_DOUBLES * sizeof(double);
  if (!r->kept ||
      napi_create_string_utf8(env, r->names ? r->names : "", r->names_len, &names) != napi_ok ||
      napi_create_arraybuffer(env, bytes, &data, &buf) != napi_ok) {
    napi_get_null(env, &v);
    return v;
  }
  if (bytes) memcpy(data, r->stats, bytes);
  napi_create_typedarray(env, napi_float64_array, (size_t)r->count * STAT_DOUBLES, buf, 0, &stats);
  napi_create_array_with_length(env, 2, &v);
  napi_set_element(env, v, 0, names);
  napi_set_element(env, v, 1, stats);
  return v;
}

static void complete(napi_env env, napi_status status, void* data) {
  prefetch_t* p = data;
  napi_value result, statted;
  napi_create_uint32(env, p->statted, &statted);
  if (p->reads) {
    napi_value dirs;
    napi_create_object(env, &result);
    napi_create_array_with_length(env, p->count, &dirs);
    for (uint32_t i = 0; i < p->count; i++) napi_set_element(env, dirs, i, dir_read_value(env, &p->reads[i]));
    napi_set_named_property(env, result, "statted", statted);
    napi_set_named_property(env, result, "dirs", dirs);
  } else {
    result = statted;
  }
  napi_resolve_deferred(env, p->deferred, result);
  napi_delete_async_work(env, p->work);
  for (uint32_t i = 0; i < p->count; i++) {
    free(p->dirs[i]);
    if (p->reads) { free(p->reads[i].names); free(p->reads[i].stats); }
  }
  free(p->reads);
  free(p->dirs);
  free(p);
}

// prefetchDirs(dirs: string[], maxEntries: number, keep?: boolean[])
//   -> Promise<number of entries lstat'ed>, or with `keep`:
//   -> Promise<{ statted: number, dirs: ([names: string, stats: Float64Array] | null)[] }>
//      (dirs[i] for each dirs[i] kept; null when not asked, unreadable, too large or not UTF-8)
napi_value layerfs_prefetch_dirs(napi_env env, napi_callback_info info) {
  napi_value argv[3], promise, name;
  size_t argc = 3;
  bool is_array = false, keep_given = false;
  uint32_t count = 0, max_entries = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[0], &count) != napi_ok ||
      napi_get_value_uint32(env, argv[1], &max_entries) != napi_ok ||
      (argc > 2 && (napi_is_array(env, argv[2], &keep_given) != napi_ok || !keep_given))) {
    napi_throw_type_error(env, NULL, "prefetchDirs(dirs: string[], maxEntries: number, keep?: boolean[])");
    return NULL;
  }
  prefetch_t* p = calloc(1, sizeof *p);
  if (!p || !(p->dirs = calloc(count ? count : 1, sizeof *p->dirs)) ||
      (keep_given && !(p->reads = calloc(count ? count : 1, sizeof *p->reads)))) {
    if (p) free(p->dirs);
    free(p);
    napi_throw_error(env, NULL, "prefetchDirs: out of memory");
    return NULL;
  }
  p->max_entries = max_entries;
  // One slot per given dir (results go back by index); a path that is no string or too long
  // stays NULL and is not read.
  p->count = count;
  for (uint32_t i = 0; i < count; i++) {
    napi_value v;
    size_t len;
    char buf[PATH_MAX];
    if (napi_get_element(env, argv[0], i, &v) != napi_ok ||
        napi_get_value_string_utf8(env, v, buf, sizeof buf, &len) != napi_ok || len >= sizeof buf - 1) continue;
    if (p->reads) {
      bool keep = false;
      napi_value k;
      if (napi_get_element(env, argv[2], i, &k) == napi_ok) napi_get_value_bool(env, k, &keep);
      p->reads[i].keep = keep;
    }
    p->dirs[i] = strdup(buf);
  }
  napi_create_promise(env, &p->deferred, &promise);
  napi_create_string_utf8(env, "layerfs:prefetch", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, execute, complete, p, &p->work);
  napi_queue_async_work(env, p->work);
  return promise;
}
