{
  "targets": [{
    "target_name": "layerfs_fuse",
    "sources": ["layerfs_fuse.c"],
    "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
  }]
}
