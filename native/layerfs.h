// Shared between the addon's C files (layerfs_fuse.c registers everything).
#ifndef LAYERFS_H
#define LAYERFS_H
#include <limits.h>
#include <node_api.h>
#include <sys/stat.h>

// A stat's fields in the order and units of Node's fs.Stats numbers (13 doubles): mode, nlink,
// uid, gid, rdev, size, blksize, blocks, ino, dev, atimeMs, mtimeMs, ctimeMs.
void layerfs_stat_to_doubles(const struct stat* st, double* o);

napi_value layerfs_copy_up_file(napi_env env, napi_callback_info info);
napi_value layerfs_copy_up_file_async(napi_env env, napi_callback_info info);
napi_value layerfs_prefetch_dirs(napi_env env, napi_callback_info info);
#endif
