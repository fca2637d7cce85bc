// The namespace edge of `layerfs run`: a pure builder for the unshare(1) command line, and the
// stage-2 script unshare runs inside the new namespaces (mounts, pivot_root, exec CMD).
// Pure: no I/O here, so every flag and every line of the script is unit-tested.

/** What the container gets besides its mount and PID namespaces. */
export type NetMode = 'host' | 'none'

export interface LaunchOptions {
  /** The merged view (the FUSE mount point) that becomes the container's `/`. A host path. */
  readonly root: string
  /** CMD and its arguments, as given (CMD is looked up in the image's PATH). */
  readonly cmd: readonly string[]
  /** A UTS namespace with this host name; without it the container shares the host's. */
  readonly hostname?: string
  /** 'none': a network namespace with only a loopback device; 'host' (default): the host's. */
  readonly net?: NetMode
  /** process.arch, to pick the pivot_root/umount2 syscall numbers for the stage-2 helper. */
  readonly arch: string
  /** The unshare(1) program (default 'unshare', from PATH). */
  readonly unshare?: string
  /** The shell that runs stage 2 on the host side (default '/bin/sh'). */
  readonly shell?: string
}

/** The devices bind-mounted from the host into the container's fresh /dev (a tmpfs). */
export const DEV_NODES = ['null', 'zero', 'full', 'random', 'urandom', 'tty'] as const

/** Directories the container's mounts need; the init layer provides them (init-layer.ts). */
export const MOUNT_POINTS = ['/proc', '/dev', '/sys', '/tmp'] as const

/** Exit codes of the launcher itself, as docker run uses them. */
export const EXIT_SETUP_FAILED = 125
export const EXIT_CANNOT_RUN = 126
export const EXIT_NOT_FOUND = 127

/**
 * pivot_root(2) and umount2(2) numbers per architecture (asm/unistd.h). Node cannot make these
 * calls, so stage 2 hands them to perl's syscall(), the one tool that runs after the pivot
 * without needing any file of the old root. Undefined: chroot(2) instead (see docs/launcher.md).
 */
export const SYSCALLS: Readonly<Record<string, { pivotRoot: number; umount2: number }>> = {
  x64: { pivotRoot: 155, umount2: 166 },
  ia32: { pivotRoot: 217, umount2: 52 },
  arm: { pivotRoot: 218, umount2: 52 },
  arm64: { pivotRoot: 41, umount2: 39 },
  riscv64: { pivotRoot: 41, umount2: 39 },
  loong64: { pivotRoot: 41, umount2: 39 },
  s390x: { pivotRoot: 217, umount2: 52 },
  ppc64: { pivotRoot: 203, umount2: 52 },
}

/** The PATH the container's command runs with (docker's default). */
export const CONTAINER_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

/**
 * Stage 2 runs as PID 1 of the new namespaces, still seeing the host's files: $1 root, $2
 * hostname ('' = keep), $3 net mode, $4 pivot_root nr, $5 umount2 nr ('' = chroot), $6 the
 * perl helper's source, then `--` and CMD. Every failure prints one `layerfs:` line and exits 125.
 * The order matters: (1) /proc, /dev, /sys are mounted on the merged view's mount points while
 * the host's mount and hostname tools are still reachable; (2) the host name is set through
 * the host's /proc, which is this PID namespace's parent view; (3) the pivot comes last, since
 * afterwards no host file can be opened.
 */
export const STAGE2_SCRIPT = `set -u
fail() { printf 'layerfs: %s\\n' "$*" >&2; exit ${EXIT_SETUP_FAILED}; }
root=$1 hostname=$2 net=$3 pivot_nr=$4 umount_nr=$5 helper=$6
shift 6
[ "\${1-}" = -- ] && shift
mount -t proc -o nosuid,nodev,noexec proc "$root/proc" || fail "cannot mount /proc in the container"
mount -t tmpfs -o nosuid,mode=755,size=65536k tmpfs "$root/dev" || fail "cannot mount /dev in the container"
for d in ${DEV_NODES.join(' ')}; do
  : > "$root/dev/$d" && mount --bind "/dev/$d" "$root/dev/$d" || fail "cannot bind /dev/$d into the container"
done
# Optional extras (a pty instance, shm, the fd links): the six nodes above are the contract.
mkdir -m 755 "$root/dev/pts" && mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$root/dev/pts" 2>/dev/null && ln -s pts/ptmx "$root/dev/ptmx"
mkdir -m 1777 "$root/dev/shm" && mount -t tmpfs -o nosuid,nodev,mode=1777 shm "$root/dev/shm" 2>/dev/null
ln -s /proc/self/fd "$root/dev/fd"; ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"; ln -s /proc/self/fd/2 "$root/dev/stderr"
# The terminal passed through is a host pty, absent from the new devpts: bind it as /dev/console
# (as lxc does), so ttyname() and tty(1) find it.
if term=$(tty 2>/dev/null); then
  : > "$root/dev/console" && mount --bind "$term" "$root/dev/console" || fail "cannot bind the terminal into the container"
fi
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys" 2>/dev/null ||
  { mount --rbind /sys "$root/sys" && mount -o remount,bind,ro "$root/sys"; } ||
  fail "cannot mount /sys read-only in the container"
if [ -n "$hostname" ]; then
  printf '%s' "$hostname" > /proc/sys/kernel/hostname || fail "cannot set the host name"
fi
if [ "$net" = none ]; then
  ip link set lo up 2>/dev/null || true
fi
if [ -n "$umount_nr" ] && command -v perl >/dev/null 2>&1; then
  exec perl -e "$helper" -- "$root" "$pivot_nr" "$umount_nr" "$@"
fi
printf 'layerfs: %s\\n' "no perl on the host for pivot_root(2): using chroot(2), a weaker isolation" >&2
exec chroot "$root" "$@"
`

/**
 * The last step of stage 2, in perl (loaded before the pivot, so it needs no file afterwards):
 * pivot_root(".", ".") stacks the old root on the new one and umount2(".", MNT_DETACH) takes it
 * away (pivot_root(2) NOTES), so no host path stays reachable, not even through "/..". Then
 * CMD is looked up in the image (127 and one line when missing) and exec'ed as PID 1.
 */
export const PIVOT_HELPER = `use strict;
sub fail { my ($code, $msg) = @_; print STDERR "layerfs: $msg\\n"; exit $code }
my ($root, $pivot_nr, $umount_nr) = splice(@ARGV, 0, 3);
chdir($root) or fail(${EXIT_SETUP_FAILED}, "cannot enter the container root: $!");
# syscall() may write through string arguments, so they must be variables, not literals.
my ($new, $old, $here) = (".", ".", ".");
syscall($pivot_nr + 0, $new, $old) == 0 or fail(${EXIT_SETUP_FAILED}, "pivot_root: $!");
syscall($umount_nr + 0, $here, 2) == 0 or fail(${EXIT_SETUP_FAILED}, "cannot detach the host root: $!");
chdir("/") or fail(${EXIT_SETUP_FAILED}, "chdir /: $!");
my $prog = $ARGV[0];
my $found;
if ($prog =~ m{/}) { $found = $prog if -e $prog }
else { for my $d (split /:/, $ENV{PATH} // '') { if (-f "$d/$prog" && -x _) { $found = "$d/$prog"; last } } }
defined $found or fail(${EXIT_NOT_FOUND}, "'$prog' not found in the image");
{ exec { $found } @ARGV }
fail(${EXIT_CANNOT_RUN}, "cannot run '$prog': $!");
`

/** The names stage 1 and 2 run under ($0), so `ps` on the host shows what they are. */
export const STAGE1_NAME = 'layerfs-stage1'
export const STAGE2_NAME = 'layerfs-stage2'

/**
 * Stage 1: what unshare execs (no --fork), in the new mount/UTS/net namespaces but still in
 * the host's PID namespace, so its one child is PID 1 of the new one. It exists because
 * `unshare --fork` (util-linux 2.38) exits 1 instead of 128+N when its child is killed by a
 * signal: a shell reports the child's status exactly. It survives the signals the terminal
 * sends the whole process group (the traps; a trap, unlike an ignore, is not inherited), and
 * setpriv's parent-death signal takes the container down if stage 1 is killed.
 * $1 shell, $2 stage-2 script, then stage 2's arguments.
 */
export const STAGE1_SCRIPT = `trap : INT QUIT TERM HUP
shell=$1 stage2=$2
shift 2
if command -v setpriv >/dev/null 2>&1; then
  setpriv --pdeathsig KILL -- "$shell" -c "$stage2" ${STAGE2_NAME} "$@"
else
  "$shell" -c "$stage2" ${STAGE2_NAME} "$@"
fi
`

/**
 * The full command line: `unshare --pid --mount … -- /bin/sh -c STAGE1 … STAGE2 … -- CMD…`. Pure.
 * Throws Error for an empty `cmd` (callers check first and say so in their own words).
 */
export function unshareArgv(opts: LaunchOptions): string[] {
  if (opts.cmd.length === 0) throw new Error('unshareArgv: empty command')
  const sys = SYSCALLS[opts.arch]
  const shell = opts.shell ?? '/bin/sh'
  return [
    opts.unshare ?? 'unshare',
    '--pid', '--mount', '--propagation', 'private',
    ...(opts.hostname !== undefined ? ['--uts'] : []),
    ...(opts.net === 'none' ? ['--net'] : []),
    '--',
    shell, '-c', STAGE1_SCRIPT, STAGE1_NAME, shell, STAGE2_SCRIPT,
    opts.root,
    opts.hostname ?? '',
    opts.net ?? 'host',
    sys ? String(sys.pivotRoot) : '',
    sys ? String(sys.umount2) : '',
    PIVOT_HELPER,
    '--',
    ...opts.cmd,
  ]
}

/** The environment CMD starts with: docker's defaults, not the host's environment. */
export function containerEnv(opts: { hostname?: string; term?: string }): Record<string, string> {
  const env: Record<string, string> = { PATH: CONTAINER_PATH, HOME: '/root', container: 'layerfs' }
  if (opts.hostname !== undefined) env.HOSTNAME = opts.hostname
  if (opts.term !== undefined) env.TERM = opts.term
  return env
}
