/*
 * The process starter in Python, used where a python3 (3.8 or newer) is found: the same protocol as
 * spawner.ts (read its comment), with posix_spawn. Node can only fork() to start a process, which
 * costs the spawner about 2 ms of CPU a stage (its page tables are copied); posix_spawn (a vfork
 * in glibc) costs 0.14 ms. On two cores, with stages of a few milliseconds, that was a sixth of a
 * run's CPU. The first line it reads is the environment the others are told relative to (the
 * engine's, not Python's own: Python may set LC_CTYPE for itself, which no stage must see).
 *
 * Beyond spawner.ts's protocol it says when each stage's leader started (its pid line's `start`)
 * and whether its group was gone once the leader was reaped (its exit line's `alone`): the engine's
 * thread would read /proc and take an exception for each stage otherwise.
 *
 * Run as `python3 -I -S -X utf8 -c SOURCE NODE SPAWNER_JS`; an older Python hands over to the Node
 * spawner. Its first line out is { ready }: one that ends before it (no python3 there, a broken
 * one) started nothing, and the engine hands its requests to the Node spawner.
 */
export const PYTHON_SPAWNER = String.raw`
import sys, os
if sys.version_info < (3, 8):
    os.execv(sys.argv[1], [sys.argv[1], sys.argv[2]])
import errno, json, selectors, signal

def end_all():
    # The engine exited or was killed: nothing still running can be committed (spawner.ts).
    for pid in running:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    os._exit(0)

def say(message):
    try:
        os.write(1, (json.dumps(message, separators=(',', ':')) + '\n').encode())
    except OSError:
        end_all()  # the engine is gone

# Ctrl-C and the like are the engine's to handle. Handlers, not SIG_IGN, and every signal back to
# its default in a stage: an ignored disposition would outlive exec (Python ignores SIGPIPE).
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, lambda *_: None)
DEFAULTS = signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}
wake_r, wake_w = os.pipe()
os.set_blocking(wake_r, False)
os.set_blocking(wake_w, False)
signal.set_wakeup_fd(wake_w)
signal.signal(signal.SIGCHLD, lambda *_: None)

base = None
running = {}

def start(r):
    env = dict(base)
    for k, v in r['env'].items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    try:
        log = os.open(r['log'], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as e:
        say({'id': r['id'], 'error': errno.errorcode.get(e.errno, 'EIO')})
        return
    try:
        # Each time: the path may lead elsewhere since the last stage (posix_spawn has no chdir of its own).
        os.chdir(r['cwd'])
        spawn = os.posix_spawn if '/' in r['file'] else os.posix_spawnp
        pid = spawn(r['file'], [r['file']] + r['args'], env,
                    file_actions=[(os.POSIX_SPAWN_OPEN, 0, '/dev/null', os.O_RDONLY, 0),
                                  (os.POSIX_SPAWN_DUP2, log, 1), (os.POSIX_SPAWN_DUP2, log, 2)],
                    setsid=True, setsigmask=(), setsigdef=DEFAULTS)
    except OSError as e:
        say({'id': r['id'], 'error': errno.errorcode.get(e.errno, 'EINVAL')})
        return
    except Exception:
        say({'id': r['id'], 'error': 'EINVAL'})  # what posix_spawn cannot take (a name or value it cannot encode)
        return
    finally:
        os.close(log)
    running[pid] = r['id']
    say({'id': r['id'], 'pid': pid, 'start': started_at(pid)})

def started_at(pid):
    # Read here, on the starter's core, not on the engine's thread: the field processStart reads.
    try:
        with open('/proc/%d/stat' % pid, 'rb') as f:
            stat = f.read()
        return stat[stat.rindex(b')') + 2:].split(b' ')[19].decode()
    except (OSError, ValueError, IndexError):
        return None

def alone(pgid):
    # Its group is gone with its leader reaped: no process can join it again, and the engine
    # need not look for what the stage left running.
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        pass
    return False

def reap():
    while running:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        rid = running.pop(pid, None)
        if rid is None:
            continue
        if os.WIFSIGNALED(status):
            n = os.WTERMSIG(status)
            try:
                name = signal.Signals(n).name
            except ValueError:
                name = 'SIG%d' % n
            say({'id': rid, 'exit': [None, name], 'alone': alone(pid)})
        else:
            say({'id': rid, 'exit': [os.WEXITSTATUS(status), None], 'alone': alone(pid)})

# Ready before it reads a request: a starter that ends before this line started nothing.
say({'ready': True})
sel = selectors.DefaultSelector()
sel.register(0, selectors.EVENT_READ, 'in')
sel.register(wake_r, selectors.EVENT_READ, 'wake')
pending = b''
while True:
    for key, _ in sel.select():
        if key.data == 'wake':
            try:
                os.read(wake_r, 4096)
            except BlockingIOError:
                pass
            reap()
            continue
        chunk = os.read(0, 1 << 16)
        if not chunk:
            end_all()
        lines = (pending + chunk).split(b'\n')
        pending = lines.pop()
        for line in lines:
            message = json.loads(line)
            if base is None:
                base = message['base']
            else:
                start(message)
    reap()
`;
