{
  "targets": [{
    "target_name": "layerfs_fuse",
    "sources": ["layerfs_fuse.c", "copy_up.c", "prefetch.c"],
    "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
  }]
}
