// layerfs's own FUSE transport, native part: the few things JavaScript cannot do itself.
// It opens /dev/fuse, mounts it (mount(2)), and registers the descriptor with libuv's event
// loop (uv_poll), so that each request is read and handed to JavaScript on the JS thread — no
// second thread, no hand-off. The protocol (decoding requests, encoding replies) is TypeScript
// (lib/fuse/kernel/); replies are written from JS with fs.writeSync on the same descriptor.
// Also: the passthrough ioctls (FUSE_DEV_IOC_BACKING_OPEN/CLOSE) and a write from a worker
// thread for kernel notifications (an invalidation may wait on a request this thread serves),
// and lstat into numbers and mknod for the core. copy_up.c: a regular file's copy-up in one call.
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include "layerfs.h"

// From linux/fuse.h 7.40 (Debian's linux-libc-dev may be older than the running kernel).
struct layerfs_backing_map {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
#define LAYERFS_DEV_IOC_MAGIC 229
#define LAYERFS_DEV_IOC_BACKING_OPEN _IOW(LAYERFS_DEV_IOC_MAGIC, 1, struct layerfs_backing_map)
#define LAYERFS_DEV_IOC_BACKING_CLOSE _IOW(LAYERFS_DEV_IOC_MAGIC, 2, uint32_t)

// Requests read per wake-up before yielding back to the loop (fairness with timers, IPC).
#define MAX_BATCH 64

#define CHECK(call)                                                    \
  do {                                                                 \
    if ((call) != napi_ok) {                                           \
      napi_throw_error(env, NULL, "layerfs_fuse: " #call " failed");   \
      return NULL;                                                     \
    }                                                                  \
  } while (0)

static napi_value throw_errno(napi_env env, const char* what, int err) {
  napi_value msg, code, error;
  char text[256];
  snprintf(text, sizeof text, "%s: %s", what, strerror(err));
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_int32(env, err, &code);
  napi_create_error(env, NULL, msg, &error);
  napi_set_named_property(env, error, "errno", code);
  napi_throw(env, error);
  return NULL;
}

static napi_value number(napi_env env, double n) {
  napi_value v;
  napi_create_double(env, n, &v);
  return v;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value* argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, "layerfs_fuse: missing arguments");
    return 0;
  }
  return 1;
}

static int get_string(napi_env env, napi_value v, char* out, size_t size) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, out, size, &len) != napi_ok || len >= size - 1) {
    napi_throw_type_error(env, NULL, "layerfs_fuse: bad or too long string argument");
    return 0;
  }
  return 1;
}

// openDevice(): a non-blocking, close-on-exec descriptor of /dev/fuse.
static napi_value open_device(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return throw_errno(env, "open /dev/fuse", errno);
  return number(env, fd);
}

// mount(source, target, fstype, flags, data)
static napi_value do_mount(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!get_args(env, info, 5, argv)) return NULL;
  char source[256], target[4200], fstype[64], data[4096];
  double flags;
  if (!get_string(env, argv[0], source, sizeof source) || !get_string(env, argv[1], target, sizeof target) ||
      !get_string(env, argv[2], fstype, sizeof fstype) || !get_string(env, argv[4], data, sizeof data))
    return NULL;
  CHECK(napi_get_value_double(env, argv[3], &flags));
  if (mount(source, target, fstype, (unsigned long)flags, data) != 0) return throw_errno(env, "mount", errno);
  return NULL;
}

// ---- the request loop ----------------------------------------------------------------------

typedef struct {
  napi_env env;
  uv_poll_t poll;
  int fd;
  napi_ref callback;      // (length) => void, or (-errno) when the device ends
  napi_ref buffer;        // the Buffer requests are read into (JS may swap it: setBuffer)
  uint8_t* data;
  size_t size;
  napi_async_context context;
  int stopped;
  // Busy polling (see poll_adapt): the window now and its bound (0: never poll), when the loop
  // last went back to libuv to sleep, and counts for status: requests read while polling, and
  // returns to libuv.
  uint64_t poll_ns, poll_max_ns, slept_at;
  double caught, returns;
} session_t;

static void on_closed(uv_handle_t* handle) {
  session_t* s = (session_t*)handle->data;
  napi_delete_reference(s->env, s->callback);
  napi_delete_reference(s->env, s->buffer);
  napi_async_destroy(s->env, s->context);
  free(s);
}

static void stop_session(session_t* s) {
  if (s->stopped) return;
  s->stopped = 1;
  uv_poll_stop(&s->poll);
  uv_close((uv_handle_t*)&s->poll, on_closed);
}

// Calls the JS callback through napi_make_callback, so promise jobs queued by the handler run
// right after it (as for any I/O callback).
static int deliver(session_t* s, double arg) {
  napi_env env = s->env;
  napi_handle_scope scope;
  napi_value cb, global, value, result;
  int ok = 1;
  napi_open_handle_scope(env, &scope);
  napi_get_reference_value(env, s->callback, &cb);
  napi_get_global(env, &global);
  napi_create_double(env, arg, &value);
  if (napi_make_callback(env, s->context, global, cb, 1, &value, &result) != napi_ok) {
    // An exception escaped the handler: report it as Node would, keep serving.
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
    ok = 0;
  }
  napi_close_handle_scope(env, scope);
  return ok;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

// The smallest window worth polling for: below it, the window closes.
#define POLL_MIN_NS 4000u

// Sizes the polling window from how long the loop slept before this wake-up, as KVM sizes its
// halt-polling window: a request that came within the bound of the queue emptying would have been
// caught by a longer window (double it); one that came later was not worth polling for (halve it,
// down to none). A client issuing syscalls back to back keeps the window; a mount with sparse
// requests polls a few times, for less each time, then not at all.
static void poll_adapt(session_t* s, uint64_t now) {
  if (s->slept_at == 0) return;
  uint64_t waited = s->poll_ns + (now - s->slept_at);
  if (waited <= s->poll_max_ns) {
    s->poll_ns = s->poll_ns ? s->poll_ns * 2 : POLL_MIN_NS;
    if (s->poll_ns > s->poll_max_ns) s->poll_ns = s->poll_max_ns;
  } else if (s->poll_ns) {
    s->poll_ns /= 2;
    if (s->poll_ns < POLL_MIN_NS) s->poll_ns = 0;
  }
}

// Reads and answers requests until the queue is empty; then, for the polling window, keeps
// reading instead of going back to sleep. The next request of a client that waits on this one
// (GETXATTR then WRITE for one write(2), lstat after lstat, a path walk's LOOKUPs) comes 10–20 µs
// after the reply on this machine. Caught here, it costs no sleep and wake-up of this thread
// (epoll, then libuv), and finds its caches warm: an empty round trip took 13–15 µs instead of
// 22–24 (docs/transport.md, "Busy polling").
static void on_readable(uv_poll_t* handle, int status, int events) {
  session_t* s = (session_t*)handle->data;
  (void)events;
  if (status < 0) {
    stop_session(s);
    deliver(s, -EIO);
    return;
  }
  if (s->poll_max_ns) poll_adapt(s, now_ns());
  uint64_t deadline = 0;  // set when the queue first empties; 0 again after each request
  for (int i = 0; i < MAX_BATCH && !s->stopped;) {
    ssize_t n = read(s->fd, s->data, s->size);
    if (n < 0) {
      int err = errno;
      if (err == EAGAIN) {
        if (s->poll_ns == 0) break;
        uint64_t t = now_ns();
        if (deadline == 0) deadline = t + s->poll_ns;
        else if (t >= deadline) break;
        continue;
      }
      if (err == EINTR || err == ENOENT) continue;  // ENOENT: the request was interrupted meanwhile
      stop_session(s);
      deliver(s, -err);  // ENODEV: unmounted and every file closed
      return;
    }
    if (deadline != 0) s->caught++;
    deliver(s, (double)n);
    deadline = 0;
    i++;
  }
  // Back to libuv: the queue is empty (or MAX_BATCH requests were answered: fairness).
  s->returns++;
  if (s->poll_max_ns) s->slept_at = now_ns();
}

static int set_buffer(napi_env env, session_t* s, napi_value buf) {
  void* data;
  size_t size;
  if (napi_get_buffer_info(env, buf, &data, &size) != napi_ok) {
    napi_throw_type_error(env, NULL, "layerfs_fuse: expected a Buffer");
    return 0;
  }
  if (s->buffer) napi_delete_reference(env, s->buffer);
  napi_create_reference(env, buf, 1, &s->buffer);
  s->data = data;
  s->size = size;
  return 1;
}

static void finalize_session(napi_env env, void* data, void* hint) {
  (void)env; (void)data; (void)hint;  // the session is freed by on_closed (stop)
}

// start(fd, buffer, callback, pollMicros) -> session handle
static napi_value start(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  int32_t fd;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  uint32_t poll_us;
  CHECK(napi_get_value_uint32(env, argv[3], &poll_us));
  session_t* s = calloc(1, sizeof *s);
  if (!s) return throw_errno(env, "start", ENOMEM);
  s->env = env;
  s->fd = fd;
  s->poll_ns = s->poll_max_ns = (uint64_t)poll_us * 1000u;
  if (!set_buffer(env, s, argv[1])) { free(s); return NULL; }
  CHECK(napi_create_reference(env, argv[2], 1, &s->callback));
  napi_value name;
  napi_create_string_utf8(env, "layerfs:fuse", NAPI_AUTO_LENGTH, &name);
  CHECK(napi_async_init(env, NULL, name, &s->context));
  uv_loop_t* loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  int r = uv_poll_init(loop, &s->poll, fd);
  if (r == 0) {
    s->poll.data = s;
    r = uv_poll_start(&s->poll, UV_READABLE, on_readable);
  }
  if (r != 0) return throw_errno(env, "uv_poll", -r);
  napi_value handle;
  CHECK(napi_create_external(env, s, finalize_session, NULL, &handle));
  return handle;
}

static session_t* session_arg(napi_env env, napi_value v) {
  void* p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || !p) napi_throw_type_error(env, NULL, "layerfs_fuse: bad session");
  return p;
}

// setBuffer(session, buffer): read the next requests into `buffer` (the old one stays JS's).
static napi_value js_set_buffer(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  session_t* s = session_arg(env, argv[0]);
  if (s) set_buffer(env, s, argv[1]);
  return NULL;
}

// pollStats(session) -> [window µs now, its bound µs, requests caught while polling, returns to
// the loop]. Not after stop(): the session is freed once libuv has closed its handle.
static napi_value js_poll_stats(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  session_t* s = session_arg(env, argv[0]);
  if (!s) return NULL;
  double v[4] = { (double)s->poll_ns / 1000, (double)s->poll_max_ns / 1000, s->caught, s->returns };
  napi_value arr;
  CHECK(napi_create_array_with_length(env, 4, &arr));
  for (uint32_t i = 0; i < 4; i++) CHECK(napi_set_element(env, arr, i, number(env, v[i])));
  return arr;
}

// stop(session): no more reads (the descriptor stays open; JS closes it).
static napi_value js_stop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  session_t* s = session_arg(env, argv[0]);
  if (s) stop_session(s);
  return NULL;
}

// reply(fd, buffer, len) -> bytes written | -errno: one reply, written at once (fs.writeSync's
// argument checks and request object cost more than the write on this path).
static napi_value reply_js(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  int32_t fd;
  uint32_t len;
  void* data;
  size_t size;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  CHECK(napi_get_buffer_info(env, argv[1], &data, &size));
  CHECK(napi_get_value_uint32(env, argv[2], &len));
  if (len > size) len = (uint32_t)size;
  ssize_t r;
  do {
    r = write(fd, data, len);
  } while (r < 0 && errno == EINTR);
  return number(env, r < 0 ? -errno : (double)r);
}

// ---- passthrough ---------------------------------------------------------------------------

// backingOpen(devFd, fileFd) -> backing id for FOPEN_PASSTHROUGH replies.
static napi_value backing_open(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  int32_t dev, fd;
  CHECK(napi_get_value_int32(env, argv[0], &dev));
  CHECK(napi_get_value_int32(env, argv[1], &fd));
  struct layerfs_backing_map map = { .fd = fd, .flags = 0, .padding = 0 };
  int id = ioctl(dev, LAYERFS_DEV_IOC_BACKING_OPEN, &map);
  if (id < 0) return throw_errno(env, "FUSE_DEV_IOC_BACKING_OPEN", errno);
  return number(env, id);
}

// backingClose(devFd, id)
static napi_value backing_close(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  int32_t dev;
  uint32_t id;
  CHECK(napi_get_value_int32(env, argv[0], &dev));
  CHECK(napi_get_value_uint32(env, argv[1], &id));
  if (ioctl(dev, LAYERFS_DEV_IOC_BACKING_CLOSE, &id) < 0) return throw_errno(env, "FUSE_DEV_IOC_BACKING_CLOSE", errno);
  return NULL;
}

// ---- copy_file_range between two branch files ---------------------------------------------

// copyFileRange(fdIn, offIn, fdOut, offOut, len) -> bytes copied (in the kernel: reflink where
// the file system can, else a kernel-side copy). Node has no binding for it.
static napi_value copy_file_range_js(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!get_args(env, info, 5, argv)) return NULL;
  int32_t fd_in, fd_out;
  double off_in_d, off_out_d, len_d;
  CHECK(napi_get_value_int32(env, argv[0], &fd_in));
  CHECK(napi_get_value_double(env, argv[1], &off_in_d));
  CHECK(napi_get_value_int32(env, argv[2], &fd_out));
  CHECK(napi_get_value_double(env, argv[3], &off_out_d));
  CHECK(napi_get_value_double(env, argv[4], &len_d));
  loff_t off_in = (loff_t)off_in_d, off_out = (loff_t)off_out_d;
  size_t total = 0, len = (size_t)len_d;
  while (total < len) {
    ssize_t n = copy_file_range(fd_in, &off_in, fd_out, &off_out, len - total, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (total > 0) break;  // a short copy; the caller asks again for the rest
      return throw_errno(env, "copy_file_range", errno);
    }
    if (n == 0) break;  // end of the source
    total += (size_t)n;
  }
  return number(env, (double)total);
}

// ---- lstat into a Float64Array (the core's hot path: no fs.Stats, no Dates per call) -------

// The 13 doubles a stat is written into (layerfs_stat_to_doubles); NULL with a TypeError thrown.
static double* stat_out(napi_env env, napi_value v) {
  napi_typedarray_type type;
  size_t count;
  void *data;
  if (napi_get_typedarray_info(env, v, &type, &count, &data, NULL, NULL) != napi_ok || type != napi_float64_array || count < 13) {
    napi_throw_type_error(env, NULL, "layerfs_fuse: out must be a Float64Array of 13");
    return NULL;
  }
  return data;
}

// A path argument into `path` (PATH_MAX bytes): 0, or -ENAMETOOLONG, which the caller answers
// as the syscall would (errno-shaped, not thrown).
static int path_arg(napi_env env, napi_value v, char* path) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, path, PATH_MAX, &len) != napi_ok || len >= PATH_MAX - 1) return -ENAMETOOLONG;
  return 0;
}

// A stat call's answer to JS: 0 with the fields in `out`, or -errno.
static napi_value stat_answer(napi_env env, int rc, const struct stat* st, double* out) {
  if (rc != 0) return number(env, -errno);
  layerfs_stat_to_doubles(st, out);
  return number(env, 0);
}

// lstat(path, out) -> 0 | -errno. out: mode, nlink, uid, gid, rdev, size, blksize, blocks, ino,
// dev, atimeMs, mtimeMs, ctimeMs (the fields and units of Node's fs.Stats).
static napi_value lstat_js(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  char path[PATH_MAX];
  int bad = path_arg(env, argv[0], path);
  if (bad) return number(env, bad);
  double* out = stat_out(env, argv[1]);
  if (!out) return NULL;
  struct stat st;
  return stat_answer(env, lstat(path, &st), &st, out);
}

// fstat(fd, out) -> 0 | -errno: as lstat, for an open file.
static napi_value fstat_js(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  int32_t fd;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  double* out = stat_out(env, argv[1]);
  if (!out) return NULL;
  struct stat st;
  return stat_answer(env, fstat(fd, &st), &st, out);
}

// mknod(path, mode, rdev) -> 0 | -errno: FIFOs, sockets and device nodes (Node has no mknod).
static napi_value mknod_js(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  char path[PATH_MAX];
  int bad = path_arg(env, argv[0], path);
  if (bad) return number(env, bad);
  uint32_t mode;
  double rdev;
  CHECK(napi_get_value_uint32(env, argv[1], &mode));
  CHECK(napi_get_value_double(env, argv[2], &rdev));
  if (mknod(path, (mode_t)mode, (dev_t)rdev) != 0) return number(env, -errno);
  return number(env, 0);
}

void layerfs_stat_to_doubles(const struct stat* st, double* o) {
  o[0] = st->st_mode; o[1] = st->st_nlink; o[2] = st->st_uid; o[3] = st->st_gid; o[4] = st->st_rdev;
  o[5] = st->st_size; o[6] = st->st_blksize; o[7] = st->st_blocks; o[8] = st->st_ino; o[9] = st->st_dev;
  o[10] = st->st_atim.tv_sec * 1e3 + st->st_atim.tv_nsec / 1e6;
  o[11] = st->st_mtim.tv_sec * 1e3 + st->st_mtim.tv_nsec / 1e6;
  o[12] = st->st_ctim.tv_sec * 1e3 + st->st_ctim.tv_nsec / 1e6;
}

// queueEmpty(fd) -> whether no request waits on /dev/fuse (poll(2), no wait). The request being
// answered was read already; one the kernel has queued since makes this false. Copy-up asks it
// before doing a larger copy on the JS thread (lib/copyup/copyup.ts, copyUpNow).
static napi_value queue_empty(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  if (!get_args(env, info, 1, argv)) return NULL;
  int32_t fd;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  struct pollfd p = { .fd = fd, .events = POLLIN };
  int r;
  do {
    r = poll(&p, 1, 0);
  } while (r < 0 && errno == EINTR);
  CHECK(napi_get_boolean(env, r == 0, &result));
  return result;
}

// ---- writes from a worker thread (kernel notifications) ------------------------------------

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref buffer;
  int fd;
  void* data;
  size_t size;
  int err;
} notify_t;

static void notify_execute(napi_env env, void* data) {
  (void)env;
  notify_t* n = data;
  // One write(2) per message: each starts with its length (struct fuse_out_header.len).
  size_t off = 0;
  n->err = 0;
  while (off + 16 <= n->size) {
    uint32_t len;
    memcpy(&len, (uint8_t*)n->data + off, sizeof len);
    if (len < 16 || off + len > n->size) { n->err = EINVAL; return; }
    ssize_t r;
    do {
      r = write(n->fd, (uint8_t*)n->data + off, len);
    } while (r < 0 && (errno == EINTR || errno == EAGAIN));
    // ENOENT: the kernel no longer has that inode or name; the others still matter.
    if (r < 0 && errno != ENOENT && n->err == 0) n->err = errno;
    off += len;
  }
}

static void notify_complete(napi_env env, napi_status status, void* data) {
  (void)status;
  notify_t* n = data;
  napi_value v;
  napi_create_int32(env, -n->err, &v);
  napi_resolve_deferred(env, n->deferred, v);  // resolves with 0 or -errno
  napi_delete_reference(env, n->buffer);
  napi_delete_async_work(env, n->work);
  free(n);
}

// writeOffThread(fd, buffer) -> Promise<0 | -errno>
static napi_value write_off_thread(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  notify_t* n = calloc(1, sizeof *n);
  if (!n) return throw_errno(env, "writeOffThread", ENOMEM);
  CHECK(napi_get_value_int32(env, argv[0], &n->fd));
  if (napi_get_buffer_info(env, argv[1], &n->data, &n->size) != napi_ok) {
    free(n);
    napi_throw_type_error(env, NULL, "layerfs_fuse: expected a Buffer");
    return NULL;
  }
  CHECK(napi_create_reference(env, argv[1], 1, &n->buffer));
  napi_value promise, name;
  CHECK(napi_create_promise(env, &n->deferred, &promise));
  napi_create_string_utf8(env, "layerfs:notify", NAPI_AUTO_LENGTH, &name);
  CHECK(napi_create_async_work(env, NULL, name, notify_execute, notify_complete, n, &n->work));
  CHECK(napi_queue_async_work(env, n->work));
  return promise;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "openDevice", NULL, open_device, NULL, NULL, NULL, napi_default, NULL },
    { "mount", NULL, do_mount, NULL, NULL, NULL, napi_default, NULL },
    { "start", NULL, start, NULL, NULL, NULL, napi_default, NULL },
    { "setBuffer", NULL, js_set_buffer, NULL, NULL, NULL, napi_default, NULL },
    { "stop", NULL, js_stop, NULL, NULL, NULL, napi_default, NULL },
    { "pollStats", NULL, js_poll_stats, NULL, NULL, NULL, napi_default, NULL },
    { "reply", NULL, reply_js, NULL, NULL, NULL, napi_default, NULL },
    { "backingOpen", NULL, backing_open, NULL, NULL, NULL, napi_default, NULL },
    { "backingClose", NULL, backing_close, NULL, NULL, NULL, napi_default, NULL },
    { "writeOffThread", NULL, write_off_thread, NULL, NULL, NULL, napi_default, NULL },
    { "queueEmpty", NULL, queue_empty, NULL, NULL, NULL, napi_default, NULL },
    { "copyFileRange", NULL, copy_file_range_js, NULL, NULL, NULL, napi_default, NULL },
    { "lstat", NULL, lstat_js, NULL, NULL, NULL, napi_default, NULL },
    { "mknod", NULL, mknod_js, NULL, NULL, NULL, napi_default, NULL },
    { "fstat", NULL, fstat_js, NULL, NULL, NULL, napi_default, NULL },
    { "copyUpFile", NULL, layerfs_copy_up_file, NULL, NULL, NULL, napi_default, NULL },
    { "copyUpFileAsync", NULL, layerfs_copy_up_file_async, NULL, NULL, NULL, napi_default, NULL },
    { "prefetchDirs", NULL, layerfs_prefetch_dirs, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
