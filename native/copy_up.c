// Copy-up of one regular file in one addon call (the JS path in lib/copyup/ is the fallback and
// does the same steps): open the source, create the copy in the work area, copy the data
// (reflink, else copy_file_range, else read/write), set owner, mode, xattrs and times on the
// copy's descriptor, rename it into place, read its stats, and give the parent dir back the
// times that linking the copy into it changed. Through Node this is ~17 path-based calls of
// 4–6 µs each; here it is the syscalls alone (docs/benchmarks.md, "copy-up in one call").
// Small files are copied on the JS thread (copyUpFile); large ones on a worker (copyUpFileAsync).
// A copy begun on the JS thread may also end on a worker: the data of a file not in the page
// cache is copied in slices while no FUSE request waits, and the rest goes to a worker as soon as
// one does (copyUpFile with a watched descriptor).
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "layerfs.h"

#define PRIVATE_XATTR_PREFIX "trusted.overlay."
#define COPY_BUF (128 * 1024)
// Uncached data copied on the JS thread between two looks at the request queue: ~250 µs of
// reading on the bench machine's disk (a cold 4 MiB file took 2 ms); a request that comes
// meanwhile waits for at most one slice.
#define COPY_SLICE (512 * 1024)
#define XATTR_VALUE_MAX (64 * 1024)

// What one copy-up needs. Paths are copied in: the async variant reads them on a worker thread.
typedef struct {
  char src[PATH_MAX], tmp[PATH_MAX], dst[PATH_MAX], parent[PATH_MAX];
  uint32_t uid, gid;  // owner a new entry in the work area gets (chown only when the source differs)
  int truncate;       // the caller truncates at once: no data to copy
  int keep;           // leave the copy open (read-write) and hand its descriptor back in `fd`
  int cached_only;    // do nothing (EAGAIN) unless the source's data is in the page cache (mostly_cached)
  int watch_fd;       // with cached_only: uncached data is copied in slices while no request waits on it (-1: none)
  int fd;             // the kept descriptor, else -1
  // A copy under way (copy_begin, copy_data, copy_end): the descriptors, the source's and the
  // parent's stats, the bytes copied, and whether the data goes by read/write.
  int in, out, made, dir, have_parent, by_read_write, begun;
  int suspended;      // copy_data stopped for a waiting request: a worker is to go on (copyUpFile)
  struct stat st, parent_st;
  off_t done;
  // Results.
  int err;            // 0 or errno of the failed step (then nothing is left at tmp or dst)
  int xattrs;         // names the source has (private ones included, as the JS path counts)
  int xattr_failures; // names the upper's file system refused (the copy is kept, as in JS)
  int xattr_errno;    // errno of the first refusal
  struct stat out_st; // the copy, after the rename
} copy_job_t;

// Source devices whose files could not be reflinked to the rw branch (one syscall saved per
// copy-up after the first). Racy between worker threads, harmlessly: a miss only tries again.
#define NO_CLONE_SLOTS 8
static dev_t no_clone[NO_CLONE_SLOTS];
static int no_clone_count;

static int clone_known_unsupported(dev_t dev) {
  for (int i = 0; i < no_clone_count && i < NO_CLONE_SLOTS; i++)
    if (no_clone[i] == dev) return 1;
  return 0;
}

// Whether a request waits on `fd` (or it has ended: let a worker finish the copy then too).
static int request_waits(int fd) {
  struct pollfd p = { .fd = fd, .events = POLLIN };
  return poll(&p, 1, 0) != 0;
}

// Copies the source's data (its size at fstat: a read-only branch does not change under us) from
// j->done on: a reflink when the file systems allow, else copy_file_range, else read/write. With
// `watch` >= 0, it stops between two slices of COPY_SLICE bytes when a request waits on `watch`
// (EINPROGRESS: the descriptors' offsets are where the next call goes on).
static int copy_data(copy_job_t* j, int watch) {
  off_t size = j->st.st_size;
  if (j->done == 0 && !clone_known_unsupported(j->st.st_dev)) {
    if (ioctl(j->out, FICLONE, j->in) == 0) { j->done = size; return 0; }
    if ((errno == EOPNOTSUPP || errno == EXDEV || errno == EINVAL) && no_clone_count < NO_CLONE_SLOTS)
      no_clone[no_clone_count++] = j->st.st_dev;
  }
  // copy_file_range (a kernel-side copy); read/write where the kernel refuses it.
  while (!j->by_read_write && j->done < size) {
    if (watch >= 0 && j->done > 0 && request_waits(watch)) return EINPROGRESS;
    size_t want = (size_t)(size - j->done);
    if (watch >= 0 && want > COPY_SLICE) want = COPY_SLICE;
    ssize_t n = copy_file_range(j->in, NULL, j->out, NULL, want, 0);
    if (n > 0) { j->done += n; continue; }
    if (n == 0) return 0;  // shorter than it was
    if (errno == EINTR) continue;
    if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) return errno;
    j->by_read_write = 1;
  }
  if (!j->by_read_write) return 0;
  char* buf = malloc(COPY_BUF);
  if (!buf) return ENOMEM;
  int err = 0;
  off_t slice_end = j->done + COPY_SLICE;
  for (;;) {
    if (watch >= 0 && j->done >= slice_end) {
      if (request_waits(watch)) { err = EINPROGRESS; break; }
      slice_end = j->done + COPY_SLICE;
    }
    ssize_t n = read(j->in, buf, COPY_BUF);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) { err = n < 0 ? errno : 0; break; }
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(j->out, buf + off, (size_t)(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) { err = errno; goto done; }
      off += w;
    }
    j->done += n;
  }
done:
  free(buf);
  return err;
}

// Copies every xattr but overlayfs's own bookkeeping; a refused one is counted, not fatal.
static int copy_xattrs(copy_job_t* j, int in, int out) {
  char small[1024];
  char* names = small;
  ssize_t len = flistxattr(in, small, sizeof small);
  if (len < 0 && errno == ERANGE) {
    len = flistxattr(in, NULL, 0);
    if (len < 0) return errno;
    names = malloc((size_t)len + 1);
    if (!names) return ENOMEM;
    len = flistxattr(in, names, (size_t)len);
  }
  if (len < 0) {
    int err = errno;
    if (names != small) free(names);
    return err == ENOTSUP ? 0 : err;
  }
  char* value = len > 0 ? malloc(XATTR_VALUE_MAX) : NULL;
  int err = len > 0 && !value ? ENOMEM : 0;
  for (char* name = names; !err && name < names + len; name += strlen(name) + 1) {
    j->xattrs++;
    if (strncmp(name, PRIVATE_XATTR_PREFIX, sizeof PRIVATE_XATTR_PREFIX - 1) == 0) continue;
    ssize_t n = fgetxattr(in, name, value, XATTR_VALUE_MAX);
    if (n < 0) {
      if (errno == ENODATA) continue;  // removed meanwhile
      err = errno;
      break;
    }
    if (fsetxattr(out, name, value, (size_t)n, 0) != 0) {
      if (j->xattr_failures++ == 0) j->xattr_errno = errno;
    }
  }
  free(value);
  if (names != small) free(names);
  return err;
}

// cachestat(2) (Linux 6.5; not in every libc's headers yet).
#ifndef SYS_cachestat
#define SYS_cachestat 451
#endif
struct layerfs_cachestat_range { uint64_t off, len; };
struct layerfs_cachestat { uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted; };

// Whether `fd`'s `size` bytes are in the page cache, all but at most 1/16 of their pages, so
// that copying them reads little or no disk (a copy on the JS thread then takes memory time:
// ~1 ms per 4 MiB here). The slack: a file read a minute ago has lost a few pages to proactive
// reclaim on the bench machine (DAMON pageout). An older kernel without cachestat answers no.
static int mostly_cached(int fd, off_t size) {
  if (size <= 0) return 1;
  struct layerfs_cachestat_range range = { 0, (uint64_t)size };
  struct layerfs_cachestat cs;
  if (syscall(SYS_cachestat, fd, &range, &cs, 0) != 0) return 0;
  uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  uint64_t pages = ((uint64_t)size + page - 1) / page;
  return cs.nr_cache * 16 >= pages * 15;
}

// Undoes a copy that failed: nothing is left at tmp (dst is only ever made by the rename).
static void copy_fail(copy_job_t* j, int err) {
  if (j->out >= 0) close(j->out);
  if (j->made) {
    if (j->dir) rmdir(j->tmp);
    else unlink(j->tmp);
  }
  close(j->in);
  j->out = j->in = -1;
  j->err = err;
}

// Opens the source and creates the copy in the work area (0 or errno; nothing left on failure).
static int copy_begin(copy_job_t* j) {
  j->begun = 1;
  j->out = -1;
  j->have_parent = j->parent[0] && stat(j->parent, &j->parent_st) == 0;
  j->in = open(j->src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (j->in < 0) return j->err = errno;
  int err = 0;
  if (fstat(j->in, &j->st) != 0) { err = errno; goto fail; }
  j->dir = S_ISDIR(j->st.st_mode);
  if (!S_ISREG(j->st.st_mode) && !j->dir) { err = EINVAL; goto fail; }
  if (j->dir && (j->keep || j->truncate || j->cached_only)) { err = EINVAL; goto fail; }
  if (j->cached_only && j->watch_fd < 0 && !j->truncate && !mostly_cached(j->in, j->st.st_size)) { err = EAGAIN; goto fail; }
  if (j->dir) {
    if (mkdir(j->tmp, 0700) != 0) { err = errno; goto fail; }
    j->made = 1;
    j->out = open(j->tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  } else {
    j->out = open(j->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    j->made = j->out >= 0;
  }
  if (j->out < 0) { err = errno; goto fail; }
  return 0;
fail:
  copy_fail(j, err);
  return err;
}

// After the data: owner, mode, xattrs and times on the copy, the rename into place, its stats,
// and the parent's times given back.
static void copy_end(copy_job_t* j) {
  int err = 0, out = j->out;
  mode_t mode = j->st.st_mode & 07777;
  if (j->st.st_uid != j->uid || j->st.st_gid != j->gid) {
    if (fchown(out, j->st.st_uid, j->st.st_gid) != 0) { err = errno; goto fail; }
    if (fchmod(out, mode) != 0) { err = errno; goto fail; }  // after the chown: it clears setid bits
  } else if (mode != (j->dir ? 0700 : 0600) && fchmod(out, mode) != 0) {
    err = errno;
    goto fail;
  }
  if ((err = copy_xattrs(j, j->in, out))) goto fail;
  struct timespec times[2] = { j->st.st_atim, j->st.st_mtim };
  if (futimens(out, times) != 0) { err = errno; goto fail; }
  if (rename(j->tmp, j->dst) != 0) { err = errno; goto fail; }
  if (fstat(out, &j->out_st) != 0) memset(&j->out_st, 0, sizeof j->out_st);  // mode 0: JS lstats instead
  if (j->keep) j->fd = out;
  else close(out);
  close(j->in);
  j->out = j->in = -1;
  // Linking the copy into its parent changed the parent's mtime; give it back (as overlayfs).
  if (j->have_parent) {
    struct timespec ptimes[2] = { j->parent_st.st_atim, j->parent_st.st_mtim };
    utimensat(AT_FDCWD, j->parent, ptimes, AT_SYMLINK_NOFOLLOW);  // cosmetic: ignore a failure
  }
  return;
fail:
  copy_fail(j, err);
}

// The whole copy-up, or what is left of one a request interrupted (j->suspended: the caller hands
// it to a worker, which calls this again without `watch`). A directory goes through the same
// steps without data: made with mkdir (0700) and opened, its owner, mode, xattrs and times set on
// that descriptor, renamed into place (the JS walk of parents, lib/copyup/copyup.ts
// copyDirStepByStep, calls this for each directory).
static void copy_up(copy_job_t* j, int watch) {
  if (!j->begun && copy_begin(j) != 0) return;
  j->suspended = 0;
  if (!j->dir && !j->truncate && j->st.st_size > 0) {
    // Data in the page cache is memory time: copied whole, no look at the queue.
    if (watch >= 0 && j->done == 0 && mostly_cached(j->in, j->st.st_size)) watch = -1;
    int err = copy_data(j, watch);
    if (err == EINPROGRESS) { j->suspended = 1; return; }
    if (err) { copy_fail(j, err); return; }
  }
  copy_end(j);
}

// ---- JS side ------------------------------------------------------------------------------

// Arguments: (src, tmp, dst, parent, uid, gid, truncate, out: Float64Array(16)[, keep[, cachedOnly[, watchFd]]]).
static int read_job(napi_env env, napi_callback_info info, copy_job_t* j, napi_value* out_array) {
  napi_value argv[11];
  size_t argc = 11;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 8) {
    napi_throw_type_error(env, NULL, "copyUpFile: missing arguments");
    return 0;
  }
  char* paths[4] = { j->src, j->tmp, j->dst, j->parent };
  for (int i = 0; i < 4; i++) {
    size_t len;
    if (napi_get_value_string_utf8(env, argv[i], paths[i], PATH_MAX, &len) != napi_ok || len >= PATH_MAX - 1) {
      napi_throw_type_error(env, NULL, "copyUpFile: bad or too long path");
      return 0;
    }
  }
  bool truncate = false;
  if (napi_get_value_uint32(env, argv[4], &j->uid) != napi_ok || napi_get_value_uint32(env, argv[5], &j->gid) != napi_ok ||
      napi_get_value_bool(env, argv[6], &truncate) != napi_ok) {
    napi_throw_type_error(env, NULL, "copyUpFile: bad owner or flag");
    return 0;
  }
  j->truncate = truncate;
  bool keep = false;
  if (argc >= 9 && napi_get_value_bool(env, argv[8], &keep) != napi_ok) {
    napi_throw_type_error(env, NULL, "copyUpFile: bad keep flag");
    return 0;
  }
  j->keep = keep;
  bool cached_only = false;
  if (argc >= 10 && napi_get_value_bool(env, argv[9], &cached_only) != napi_ok) {
    napi_throw_type_error(env, NULL, "copyUpFile: bad cachedOnly flag");
    return 0;
  }
  j->cached_only = cached_only;
  int32_t watch = -1;
  if (argc >= 11 && napi_get_value_int32(env, argv[10], &watch) != napi_ok) {
    napi_throw_type_error(env, NULL, "copyUpFile: bad watchFd");
    return 0;
  }
  j->watch_fd = watch < 0 ? -1 : watch;
  j->fd = -1;
  napi_typedarray_type type;
  size_t count;
  if (napi_get_typedarray_info(env, argv[7], &type, &count, NULL, NULL, NULL) != napi_ok || type != napi_float64_array || count < 16) {
    napi_throw_type_error(env, NULL, "copyUpFile: out must be a Float64Array of 16");
    return 0;
  }
  *out_array = argv[7];
  return 1;
}

// out: the copy's stats as lstat_js writes them (0–12), then xattrs, refused xattrs, first refusal's errno.
static double finish(napi_env env, copy_job_t* j, napi_value out_array) {
  if (j->err) return -j->err;
  void* data;
  napi_get_typedarray_info(env, out_array, NULL, NULL, &data, NULL, NULL);
  double* o = data;
  layerfs_stat_to_doubles(&j->out_st, o);
  o[13] = j->xattrs;
  o[14] = j->xattr_failures;
  o[15] = j->xattr_errno;
  return j->fd >= 0 ? j->fd : 0;
}

typedef struct {
  copy_job_t job;
  napi_async_work work;
  napi_deferred deferred;
  napi_ref out_array;
} async_copy_t;

static void async_execute(napi_env env, void* data) {
  (void)env;
  copy_up(&((async_copy_t*)data)->job, -1);
}

static void async_complete(napi_env env, napi_status status, void* data) {
  (void)status;
  async_copy_t* a = data;
  napi_value out_array, result;
  napi_get_reference_value(env, a->out_array, &out_array);
  napi_create_double(env, finish(env, &a->job, out_array), &result);
  napi_resolve_deferred(env, a->deferred, result);
  napi_delete_reference(env, a->out_array);
  napi_delete_async_work(env, a->work);
  free(a);
}

// Hands `a` (fresh, or a copy under way) to a libuv worker: a promise of finish()'s value; NULL
// (nothing queued, `a` still the caller's) when that cannot be set up.
static napi_value queue_copy(napi_env env, async_copy_t* a, napi_value out_array) {
  napi_value promise, name;
  if (napi_create_reference(env, out_array, 1, &a->out_array) != napi_ok) return NULL;
  if (napi_create_promise(env, &a->deferred, &promise) != napi_ok) {
    napi_delete_reference(env, a->out_array);
    return NULL;
  }
  napi_create_string_utf8(env, "layerfs:copyup", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, async_execute, async_complete, a, &a->work) != napi_ok ||
      napi_queue_async_work(env, a->work) != napi_ok) {
    // The promise is dropped unsettled; the caller finishes the copy itself.
    napi_delete_reference(env, a->out_array);
    return NULL;
  }
  return promise;
}

// copyUpFile(src, tmp, dst, parent, uid, gid, truncate, out[, keep[, cachedOnly[, watchFd]]]) ->
// 0 | -errno, on the JS thread (src a regular file, or a directory without the flags); with
// `keep`, the copy's descriptor (open read-write, close-on-exec) instead of 0. With `cachedOnly`,
// -EAGAIN and nothing done when the source's data is not in the page cache (mostly_cached) —
// unless `watchFd` (/dev/fuse) is given: then that data is copied here in slices while no request
// waits on watchFd, and when one does, the rest of the copy goes to a worker and the value is a
// promise of the same (the caller's handle on it, as copyUpFileAsync's).
napi_value layerfs_copy_up_file(napi_env env, napi_callback_info info) {
  async_copy_t* a = calloc(1, sizeof *a);
  if (!a) return NULL;
  copy_job_t* j = &a->job;
  napi_value out_array, result;
  if (!read_job(env, info, j, &out_array)) { free(a); return NULL; }
  copy_up(j, j->cached_only ? j->watch_fd : -1);
  if (j->suspended) {
    napi_value promise = queue_copy(env, a, out_array);
    if (promise) return promise;
    copy_up(j, -1);  // no worker to be had: finish here
  }
  napi_create_double(env, finish(env, j, out_array), &result);
  free(a);
  return result;
}

// copyUpFileAsync(src, tmp, dst, parent, uid, gid, truncate, out[, keep]) -> Promise<0 | fd |
// -errno>, the copy on a libuv worker thread. With `keep`, the promise's value is the copy's
// descriptor: the caller must close it whatever it does next (lib/copyup/copyup.ts does).
napi_value layerfs_copy_up_file_async(napi_env env, napi_callback_info info) {
  async_copy_t* a = calloc(1, sizeof *a);
  if (!a) return NULL;
  napi_value out_array;
  if (!read_job(env, info, &a->job, &out_array)) { free(a); return NULL; }
  a->job.cached_only = 0;
  a->job.watch_fd = -1;
  napi_value promise = queue_copy(env, a, out_array);
  if (!promise) {
    free(a);
    napi_throw_error(env, NULL, "copyUpFileAsync: out of memory");
    return NULL;
  }
  return promise;
}
