# A crash-test client (issue 7 §1): runs random operations in its own part of a mount until the
# daemon dies under it, journaling each one on the host: 'I' (intent) before it starts and 'A'
# (acknowledged) once it returned and was fsync'ed. test/helpers/crash.ts replays the journals
# to know what the merged view may hold after the kill.
#   python3 crash_client.py MNT PLAN.json JOURNAL CLIENT ROUND SEED
import errno, hashlib, json, os, random, sys

mnt, plan_path, journal_path, cid, rnd, seed = sys.argv[1:7]
plan = json.load(open(plan_path))
rng = random.Random(int(seed))
os.umask(0o022)
jfd = os.open(journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
DEAD = (errno.ENOTCONN, errno.ECONNABORTED)


def log(rec):
    os.write(jfd, (json.dumps(rec) + '\n').encode())


def gen(s, size):
    h = hashlib.sha256(s.encode()).hexdigest().encode()
    return (h * (size // 64 + 1))[:size]


def p(rel):
    return os.path.join(mnt, rel)


def fsync_dir(rel):
    fd = os.open(p(rel), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def do(op):
    kind = op['op']
    if kind == 'tag':  # the first write to a lower file: a copy-up, then 16 bytes at offset 0
        fd = os.open(p(op['path']), os.O_RDWR)
        try:
            os.pwrite(fd, op['tag'].encode(), 0)
            os.fsync(fd)
        finally:
            os.close(fd)
    elif kind == 'chmod':  # metadata-only copy-up
        os.chmod(p(op['path']), op['mode'])
    elif kind == 'create':
        fd = os.open(p(op['path']), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            data = gen(op['seed'], op['size'])
            off = 0
            while off < len(data):
                off += os.write(fd, data[off:off + 65536])
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(os.path.dirname(op['path']))
    elif kind == 'rename':
        os.rename(p(op['src']), p(op['dst']))
        fsync_dir(os.path.dirname(op['dst']))
    elif kind == 'unlink':
        os.unlink(p(op['path']))
        fsync_dir(os.path.dirname(op['path']))
    elif kind == 'mkdir':
        os.mkdir(p(op['path']), 0o755)
        fsync_dir(os.path.dirname(op['path']))


def run(op):
    log(dict(op, t='I'))
    do(op)
    log(dict(op, t='A'))


files = {f['path']: f['size'] for f in plan['files']}  # regular files of this client, by size
dirs = list(plan['dirs'])
base = 'c%s' % cid
k = 0


def fresh(prefix):
    global k
    k += 1
    return '%s/%s%s_%d' % (base, prefix, rnd, k)


try:
    # Even clients start with their large copy-up, odd ones do it after a few other operations.
    big_at = 0 if int(cid) % 2 == 0 else rng.randint(3, 40)
    n = 0
    while True:
        if n == big_at:
            run({'op': 'tag', 'path': plan['big'], 'tag': ('B%s.%s' % (cid, rnd)).ljust(16, '.')})
        n += 1
        r = rng.random()
        taggable = [f for f, s in files.items() if s >= 16]
        if r < 0.30 and taggable:
            f = rng.choice(taggable)
            run({'op': 'tag', 'path': f, 'tag': ('T%s.%s.%d' % (cid, rnd, k)).ljust(16, '.')[:16]})
            k += 1
        elif r < 0.40 and files:
            run({'op': 'chmod', 'path': rng.choice(list(files)), 'mode': rng.choice([0o600, 0o640, 0o664, 0o755])})
        elif r < 0.65:
            path = fresh('n')
            size = rng.choice([0, 1, 100, 4096, 70000, 300000])
            run({'op': 'create', 'path': path, 'seed': path, 'size': size})
            files[path] = size
        elif r < 0.77 and files:
            src = rng.choice(list(files))
            dst = fresh('m')
            run({'op': 'rename', 'src': src, 'dst': dst})
            files[dst] = files.pop(src)
        elif r < 0.85 and files:
            f = rng.choice(list(files))
            run({'op': 'unlink', 'path': f})
            files.pop(f)
        elif r < 0.92:
            d = fresh('d')
            run({'op': 'mkdir', 'path': d})
            dirs.append(d)
        elif dirs:
            src = rng.choice(dirs)
            dst = fresh('D')
            run({'op': 'rename', 'src': src, 'dst': dst})
            dirs.remove(src)
            dirs.append(dst)
except OSError as e:
    if e.errno in DEAD:
        sys.exit(0)
    log({'t': 'E', 'errno': errno.errorcode.get(e.errno, str(e.errno)), 'msg': str(e)})
    sys.exit(2)
