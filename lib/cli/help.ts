// Text appended to `layerfs --help` (docs/cli.md quotes the whole help output).
export const HELP_FOOTER = `
Branches are listed top first, separated by ':'. Without modes the first branch is
rw when it is writable and the others are ro; with any mode given, unmarked
branches are ro. At most one branch is rw, and it is the top one.

Examples:
  layerfs mount A:B ./C                  A (rw) over B (ro) at ./C, in the background
  layerfs mount A=ro:B=ro ./C            read-only mount: writes fail with EROFS
  layerfs mount --upper U A:B ./C        fresh rw branch U over the ro stack A:B
  layerfs mount -o lowerdir=A:B,upperdir=U none ./C     overlayfs-style options
  layerfs umount ./C
`
