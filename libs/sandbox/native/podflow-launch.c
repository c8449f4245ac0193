/*
 * podflow-launch: the root link of a process sandbox's launch chain in one exec (launch.ts).
 *
 *   podflow-launch [--home DIR BYTES] [--cgroup PROCS_FILE]... [--netns PATH] [--uid UID]
 *                  [--as=N] [--fsize=N] [--nofile=N] [--core=N] [--nproc=N] -- COMMAND...
 *
 * In this order, as the shell chain it replaces (sh -c ... -> mount -> nsenter -> setpriv ->
 * prlimit) does: mounts the home tmpfs (size BYTES, mode 0700, owned by UID, nosuid, nodev),
 * writes its own pid into each cgroup.procs file (a pid written before exec stays the same, so
 * everything the command starts is in the groups), enters the network namespace, drops to UID
 * (gid UID, no supplementary groups), sets each rlimit (soft = hard), then execs COMMAND. Five
 * execs and a fork became one exec: ~3 ms of CPU of every sandbox start.
 *
 * Any failure ends it with exit code 125 and one line on stderr after "podflow-launch: ", which
 * the driver reports as the sandbox's set-up failure (process-outcome.ts). Only the worker runs
 * it, as root; its arguments are the worker's, never an execution's.
 *
 *   podflow-launch --unmount-server WORK_ROOT PARENT_PID
 *
 * The other half of the home's life: one long-lived child of the worker that detaches homes
 * (umount2 MNT_DETACH) as their paths arrive on stdin, one per line, answering each with a line:
 * "0", or "<errno> <why>". Only canonical absolute paths strictly under WORK_ROOT (no ".", "..",
 * symlink or NUL byte) are touched. It ends when stdin closes or the worker (PARENT_PID) dies.
 * A `umount` spawned per batch forked the whole worker each time (execution-sandbox.ts).
 *
 *   podflow-launch --spawn-server PARENT_PID
 *
 * Starts the worker's sandboxes for it (spawn-server.ts): a spawn from the worker forks the whole
 * worker and blocks its event loop until the child has exec'd (~1.5 ms per sandbox there); this
 * small process forks in microseconds. Requests arrive on stdin as "<length>:<fields>", each
 * field ending in a NUL byte:
 *   spawn ID PIPES MODE CWD ENVC ENV... ARGC ARGV...
 *       PIPES has one letter per child fd from 0: "w" the worker writes it, "r" the worker reads
 *       it (fds below 3 that are no pipe get /dev/null). The child gets its own session, those
 *       fds, CWD and ENV. MODE "exec" execs ARGV; MODE "launch" runs this program's launch (ARGV
 *       as its arguments) in the child without exec'ing it again. "spawned" is answered once the
 *       child leads its session (a group kill then always reaches it), "failed" when its set-up
 *       or the exec failed.
 *   close ID   the worker has opened its ends (/proc/<this pid>/fd/N): this process closes its copies
 *   reap ID    the worker has seen the exit: the zombie is reaped (until then its pid, and the
 *              group id the worker kills, cannot be reused)
 * Answers are lines on stdout: "spawned ID PID FD..." (this process's fd of the worker's end of
 * each pipe), "failed ID ERRNO", "exit ID CODE SIGNAL" (CODE -1 when killed by SIGNAL). It ends
 * when stdin closes, a write to stdout fails or a request cannot be read (killing what it started,
 * in each case), or when the worker (PARENT_PID) dies.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <grp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define SETUP_FAILED 125
#define MAX_CGROUPS 8
#define MAX_RLIMITS 8

static void fail(const char *format, ...) {
  int saved = errno;
  va_list args;
  va_start(args, format);
  fputs("podflow-launch: ", stderr);
  vfprintf(stderr, format, args);
  va_end(args);
  if (saved != 0) fprintf(stderr, ": %s", strerror(saved));
  fputc('\n', stderr);
  _exit(SETUP_FAILED);
}

/* A decimal number that fits `max`, or the launch fails naming `what`. */
static unsigned long long number(const char *text, unsigned long long max, const char *what) {
  char *end = NULL;
  errno = 0;
  if (text[0] < '0' || text[0] > '9') fail("%s is not a number: %s", what, text);
  unsigned long long value = strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0' || value > max) {
    errno = 0;
    fail("%s is not a number up to %llu: %s", what, max, text);
  }
  return value;
}

static const struct {
  const char *flag;
  int resource;
} RLIMITS[] = {
    {"--as=", RLIMIT_AS}, {"--fsize=", RLIMIT_FSIZE}, {"--nofile=", RLIMIT_NOFILE}, {"--core=", RLIMIT_CORE}, {"--nproc=", RLIMIT_NPROC},
};

/* Whether `path` is WORK_ROOT/<something>, absolute, with no empty, "." or ".." component. */
static int under_root(const char *path, const char *root) {
  size_t length = strlen(root);
  if (path[0] != '/' || strncmp(path, root, length) != 0 || path[length] != '/' || path[length + 1] == '\0') return 0;
  for (const char *part = path + 1; *part != '\0';) {
    const char *end = strchr(part, '/');
    size_t size = end ? (size_t)(end - part) : strlen(part);
    if (size == 0 || (size == 1 && part[0] == '.') || (size == 2 && part[0] == '.' && part[1] == '.')) return 0;
    part += size + (end ? 1 : 0);
    if (end && *part == '\0') return 0; /* a trailing slash */
  }
  return 1;
}

static int unmount_server(const char *root, const char *parent) {
  /* Dies with the worker: the parent it was told, so a worker that is pid 1 works too. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != (pid_t)number(parent, 0x7fffffff, "the parent pid")) return SETUP_FAILED;
  if (root[0] != '/' || strlen(root) < 2) fail("the work root must be an absolute path: %s", root);
  char *line = NULL, resolved[PATH_MAX];
  size_t capacity = 0;
  ssize_t length;
  while ((length = getline(&line, &capacity, stdin)) > 0) {
    if (line[length - 1] == '\n') line[--length] = '\0';
    if ((size_t)length != strlen(line) || length >= PATH_MAX) {
      printf("%d not a path: a NUL byte, or too long\n", EINVAL);
    } else if (!under_root(line, root)) {
      printf("%d not a path under %s\n", EINVAL, root);
    } else if (realpath(line, resolved) == NULL || strcmp(resolved, line) != 0) {
      /* Every component as written, no symlink: the worker's home paths are never links. */
      printf("%d not a canonical path (a symlink, or gone)\n", EINVAL);
    } else if (umount2(line, MNT_DETACH | UMOUNT_NOFOLLOW) != 0) {
      printf("%d %s\n", errno, strerror(errno));
    } else {
      puts("0");
    }
    if (fflush(stdout) != 0) return SETUP_FAILED;
  }
  return 0;
}

/* The launch itself: argv[0] is ignored, the options and "-- COMMAND..." follow (see the top). */
static int launch(int argc, char **argv) {
  const char *home = NULL, *home_size = NULL, *netns = NULL, *cgroups[MAX_CGROUPS];
  int cgroup_count = 0, rlimit_count = 0;
  long long uid = -1;
  struct {
    int resource;
    rlim_t value;
  } rlimits[MAX_RLIMITS];

  int i = 1;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    const char *arg = argv[i];
    int has_value = i + 1 < argc;
    if (strcmp(arg, "--home") == 0 && i + 2 < argc) {
      home = argv[++i];
      home_size = argv[++i];
    } else if (strcmp(arg, "--cgroup") == 0 && has_value) {
      if (cgroup_count == MAX_CGROUPS) fail("more than %d cgroups", MAX_CGROUPS);
      cgroups[cgroup_count++] = argv[++i];
    } else if (strcmp(arg, "--netns") == 0 && has_value) {
      netns = argv[++i];
    } else if (strcmp(arg, "--uid") == 0 && has_value) {
      uid = (long long)number(argv[++i], 0xfffffffeULL, "the uid");
    } else {
      size_t known = 0;
      for (; known < sizeof RLIMITS / sizeof RLIMITS[0]; known++) {
        size_t length = strlen(RLIMITS[known].flag);
        if (strncmp(arg, RLIMITS[known].flag, length) != 0) continue;
        if (rlimit_count == MAX_RLIMITS) fail("more than %d rlimits", MAX_RLIMITS);
        rlimits[rlimit_count].resource = RLIMITS[known].resource;
        rlimits[rlimit_count++].value = (rlim_t)number(arg + length, RLIM_INFINITY - 1, arg);
        break;
      }
      if (known == sizeof RLIMITS / sizeof RLIMITS[0]) fail("unknown argument %s", arg);
    }
  }
  if (i + 1 >= argc) fail("no command after --");
  if (home != NULL && uid < 0) fail("--home needs --uid");

  if (home != NULL) {
    char options[128];
    unsigned long long size = number(home_size, 1ULL << 50, "the home size");
    snprintf(options, sizeof options, "size=%llu,mode=0700,uid=%lld,gid=%lld", size, uid, uid);
    if (mount("podflow-home", home, "tmpfs", MS_NOSUID | MS_NODEV, options) != 0) fail("cannot mount the home tmpfs at %s", home);
  }
  for (int k = 0; k < cgroup_count; k++) {
    int fd = open(cgroups[k], O_WRONLY | O_CLOEXEC);
    char pid[24];
    int length = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (fd < 0 || write(fd, pid, (size_t)length) != length) fail("cannot join cgroup %s", cgroups[k]);
    close(fd);
  }
  if (netns != NULL) {
    int fd = open(netns, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) fail("cannot enter the network namespace %s", netns);
    close(fd);
  }
  if (uid >= 0) {
    if (setgroups(0, NULL) != 0 || setresgid((gid_t)uid, (gid_t)uid, (gid_t)uid) != 0 || setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) != 0) {
      fail("cannot switch to uid %lld", uid);
    }
    /* Belt and braces: a process that could get root back must not run the command. */
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;
    errno = 0;
    if (setresuid(0, 0, 0) == 0 || getresuid(&ruid, &euid, &suid) != 0 || getresgid(&rgid, &egid, &sgid) != 0 || ruid != (uid_t)uid ||
        euid != (uid_t)uid || suid != (uid_t)uid || rgid != (gid_t)uid || egid != (gid_t)uid || sgid != (gid_t)uid || getgroups(0, NULL) != 0) {
      errno = 0;
      fail("uid %lld was not dropped for good", uid);
    }
  }
  for (int k = 0; k < rlimit_count; k++) {
    struct rlimit limit = {rlimits[k].value, rlimits[k].value};
    if (setrlimit(rlimits[k].resource, &limit) != 0) fail("cannot set rlimit %d to %llu", rlimits[k].resource, (unsigned long long)rlimits[k].value);
  }
  execvp(argv[i + 1], argv + i + 1);
  fail("cannot execute %s", argv[i + 1]);
  return SETUP_FAILED;
}

#define MAX_PIPES 8
#define MAX_CHILDREN 4096
#define MAX_MESSAGE (4 << 20)

struct served {
  unsigned long long id;
  pid_t pid;
  int fds[MAX_PIPES];
  int pipes;
  int reported;
};

static struct served served[MAX_CHILDREN];
static int served_count;
static sigset_t original_mask;

static struct served *served_by_id(unsigned long long id) {
  for (int k = 0; k < served_count; k++)
    if (served[k].id == id) return &served[k];
  return NULL;
}

static void close_worker_ends(struct served *child) {
  for (int k = 0; k < child->pipes; k++)
    if (child->fds[k] >= 0) close(child->fds[k]);
  child->pipes = 0;
}

static void forget(struct served *child) {
  close_worker_ends(child);
  *child = served[--served_count];
}

/*
 * Ends everything the server started: their stdin loses its last writer here, the group and the
 * process itself are killed (each child has its session from before "spawned": the status pipe),
 * and the zombies are reaped.
 */
static void end_children(void) {
  for (int k = 0; k < served_count; k++) {
    close_worker_ends(&served[k]);
    kill(-served[k].pid, SIGKILL);
    kill(served[k].pid, SIGKILL);
  }
  while (served_count > 0) {
    waitpid(served[0].pid, NULL, 0);
    forget(&served[0]);
  }
}

/* Protocol errors end the server (only the worker writes to it), and what it started with it. */
static void protocol_error(const char *what) {
  fprintf(stderr, "podflow-launch: spawn server: %s\n", what);
  end_children();
  exit(SETUP_FAILED);
}

/* The fields of one message: NUL-terminated strings back to back. */
struct fields {
  char **items;
  int count;
};

static struct fields split_fields(char *payload, size_t length) {
  struct fields fields = {NULL, 0};
  if (length == 0 || payload[length - 1] != '\0') protocol_error("a message that does not end in a NUL byte");
  int count = 0;
  for (size_t k = 0; k < length; k++)
    if (payload[k] == '\0') count++;
  fields.items = calloc((size_t)count + 1, sizeof(char *));
  if (fields.items == NULL) protocol_error("out of memory");
  for (char *at = payload; at < payload + length; at += strlen(at) + 1) fields.items[fields.count++] = at;
  return fields;
}

static unsigned long long field_number(const char *text) {
  char *end = NULL;
  errno = 0;
  unsigned long long value = strtoull(text, &end, 10);
  if (text[0] < '0' || text[0] > '9' || errno != 0 || *end != '\0') protocol_error("a number field that is not a number");
  return value;
}

/* Ends a child that could not be set up; an exec-mode spawn hears why on its status pipe. */
static void child_fail(int status_fd, int error) {
  if (status_fd >= 0) {
    ssize_t ignored = write(status_fd, &error, sizeof error);
    (void)ignored;
  }
  _exit(127);
}

static void spawn_child(struct fields *f) {
  /* spawn ID PIPES MODE CWD ENVC ENV... ARGC ARGV... */
  if (f->count < 8) protocol_error("a spawn with too few fields");
  unsigned long long id = field_number(f->items[1]);
  const char *pipes = f->items[2], *mode = f->items[3], *cwd = f->items[4];
  int launch_mode = strcmp(mode, "launch") == 0;
  if (!launch_mode && strcmp(mode, "exec") != 0) protocol_error("a spawn mode other than exec or launch");
  size_t pipe_count = strlen(pipes);
  if (pipe_count > MAX_PIPES) protocol_error("too many pipes");
  unsigned long long envc = field_number(f->items[5]);
  if (envc > (unsigned long long)f->count - 7) protocol_error("an environment count past the end");
  char **envp = f->items + 6;
  unsigned long long argc = field_number(f->items[6 + envc]);
  if (argc < 1 || 7 + envc + argc != (unsigned long long)f->count) protocol_error("an argument count that does not match");
  char **argv = f->items + 7 + envc;
  /* execvp and the launch want NULL-terminated lists: the ENV list ends where ARGC is. */
  char *argc_field = f->items[6 + envc];
  f->items[6 + envc] = NULL;

  if (served_count == MAX_CHILDREN || served_by_id(id) != NULL) {
    printf("failed %llu %d\n", id, served_count == MAX_CHILDREN ? EAGAIN : EEXIST);
    f->items[6 + envc] = argc_field;
    return;
  }
  int worker_end[MAX_PIPES], child_end[MAX_PIPES], status[2] = {-1, -1};
  size_t made = 0;
  int error = 0;
  for (; made < pipe_count; made++) {
    int ends[2];
    if (pipes[made] != 'w' && pipes[made] != 'r') protocol_error("a pipe letter other than w or r");
    if (pipe2(ends, O_CLOEXEC) != 0) {
      error = errno;
      break;
    }
    worker_end[made] = pipes[made] == 'w' ? ends[1] : ends[0];
    child_end[made] = pipes[made] == 'w' ? ends[0] : ends[1];
  }
  /*
   * The child's errno if its set-up fails, else closed: by the exec (exec mode), or once it leads
   * its own session (launch mode), so that a group kill right after "spawned" always finds it.
   */
  if (error == 0 && pipe2(status, O_CLOEXEC) != 0) error = errno;
  pid_t pid = error == 0 ? fork() : -1;
  if (error == 0 && pid < 0) error = errno;
  if (pid == 0) {
    /* The child: its own session, the pipes as fds 0..n-1, the signals as the worker left them. */
    sigprocmask(SIG_SETMASK, &original_mask, NULL);
    signal(SIGPIPE, SIG_DFL);
    if (setsid() < 0) child_fail(status[1], errno);
    int high[MAX_PIPES];
    for (size_t k = 0; k < pipe_count; k++)
      if ((high[k] = fcntl(child_end[k], F_DUPFD_CLOEXEC, 3 + MAX_PIPES)) < 0) child_fail(status[1], errno);
    for (size_t k = 0; k < pipe_count; k++)
      if (dup2(high[k], (int)k) < 0) child_fail(status[1], errno);
    /* Never the server's own stdio (the worker's stderr) for an fd below 3 that is no pipe. */
    for (int k = (int)pipe_count; k < 3; k++) {
      int null = open("/dev/null", O_RDWR | O_CLOEXEC);
      if (null < 0 || dup2(null, k) < 0) child_fail(status[1], errno);
      close(null);
    }
    if (chdir(cwd) != 0) child_fail(status[1], errno);
    environ = envp;
    if (launch_mode) {
      close(status[1]);
      _exit(launch((int)argc, argv));
    }
    execvp(argv[0], argv);
    child_fail(status[1], errno);
  }
  for (size_t k = 0; k < made; k++) close(child_end[k]);
  if (status[1] >= 0) close(status[1]);
  if (pid > 0 && status[0] >= 0) {
    /* Closed by a successful exec or the launch's set-up, or the child's errno. */
    int child_error = 0;
    ssize_t got;
    while ((got = read(status[0], &child_error, sizeof child_error)) < 0 && errno == EINTR) {
    }
    if (got == (ssize_t)sizeof child_error) {
      error = child_error;
      waitpid(pid, NULL, 0);
      pid = -1;
    }
  }
  if (status[0] >= 0) close(status[0]);
  f->items[6 + envc] = argc_field;
  if (error != 0 || pid < 0) {
    for (size_t k = 0; k < made; k++) close(worker_end[k]);
    printf("failed %llu %d\n", id, error != 0 ? error : EAGAIN);
    return;
  }
  struct served *child = &served[served_count++];
  child->id = id;
  child->pid = pid;
  child->pipes = (int)pipe_count;
  child->reported = 0;
  printf("spawned %llu %d", id, (int)pid);
  for (size_t k = 0; k < pipe_count; k++) {
    child->fds[k] = worker_end[k];
    printf(" %d", worker_end[k]);
  }
  putchar('\n');
}

/* Reports children that have exited, leaving them zombies until the worker says "reap". */
static void report_exits(void) {
  for (int k = 0; k < served_count; k++) {
    struct served *child = &served[k];
    if (child->reported) continue;
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_PID, (id_t)child->pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid != child->pid) continue;
    child->reported = 1;
    if (info.si_code == CLD_EXITED) printf("exit %llu %d 0\n", child->id, info.si_status);
    else printf("exit %llu -1 %d\n", child->id, info.si_status);
  }
}

static void handle_message(char *payload, size_t length) {
  struct fields f = split_fields(payload, length);
  if (f.count < 2) protocol_error("a message with no id");
  if (strcmp(f.items[0], "spawn") == 0) {
    spawn_child(&f);
  } else {
    struct served *child = served_by_id(field_number(f.items[1]));
    if (strcmp(f.items[0], "close") == 0) {
      if (child != NULL) close_worker_ends(child);
    } else if (strcmp(f.items[0], "reap") == 0) {
      if (child != NULL && child->reported) {
        waitpid(child->pid, NULL, 0);
        forget(child);
      }
    } else {
      protocol_error("an unknown request");
    }
  }
  free(f.items);
}

/* Closes every descriptor from 3 up that this process inherited: its children get their pipes only. */
static void close_inherited(void) {
  DIR *dir = opendir("/proc/self/fd");
  if (dir == NULL) fail("cannot list /proc/self/fd");
  int fds[1024], count = 0;
  for (struct dirent *entry; (entry = readdir(dir)) != NULL && count < 1024;) {
    int fd = atoi(entry->d_name);
    if (fd > 2 && fd != dirfd(dir)) fds[count++] = fd;
  }
  closedir(dir);
  for (int k = 0; k < count; k++) close(fds[k]);
}

static int spawn_server(const char *parent) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != (pid_t)number(parent, 0x7fffffff, "the parent pid")) return SETUP_FAILED;
  close_inherited();
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &chld, &original_mask) != 0) fail("cannot block SIGCHLD");
  /* A worker that stopped reading shows as a failed write, which ends the server through end_children. */
  signal(SIGPIPE, SIG_IGN);
  sigdelset(&original_mask, SIGCHLD);
  int signals = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signals < 0) fail("cannot open a signalfd");
  if (fcntl(STDIN_FILENO, F_SETFD, FD_CLOEXEC) != 0 || fcntl(STDOUT_FILENO, F_SETFD, FD_CLOEXEC) != 0) fail("cannot set close-on-exec on stdio");
  size_t capacity = 64 * 1024, used = 0;
  char *buffer = malloc(capacity);
  if (buffer == NULL) fail("out of memory");
  for (;;) {
    struct pollfd polled[2] = {{STDIN_FILENO, POLLIN, 0}, {signals, POLLIN, 0}};
    if (poll(polled, 2, -1) < 0) {
      if (errno == EINTR) continue;
      fail("poll");
    }
    if (polled[1].revents & POLLIN) {
      struct signalfd_siginfo info;
      while (read(signals, &info, sizeof info) == (ssize_t)sizeof info) {
      }
      report_exits();
    }
    if (polled[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      if (used == capacity) {
        if (capacity >= MAX_MESSAGE + 32) protocol_error("a message over 4 MiB");
        capacity *= 2;
        if ((buffer = realloc(buffer, capacity)) == NULL) fail("out of memory");
      }
      ssize_t got = read(STDIN_FILENO, buffer + used, capacity - used);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) break;
      used += (size_t)got;
      size_t start = 0;
      for (;;) {
        char *colon = memchr(buffer + start, ':', used - start);
        if (colon == NULL) {
          if (used - start > 24) protocol_error("a message length that does not end");
          break;
        }
        *colon = '\0';
        unsigned long long length = field_number(buffer + start);
        if (length > MAX_MESSAGE) protocol_error("a message over 4 MiB");
        size_t payload = (size_t)(colon - buffer) + 1;
        if (used - payload < length) {
          *colon = ':';
          break;
        }
        handle_message(buffer + payload, (size_t)length);
        start = payload + (size_t)length;
      }
      memmove(buffer, buffer + start, used - start);
      used -= start;
      /* An exit may have come while a spawn blocked: its SIGCHLD is pending on the signalfd anyway. */
    }
    if (fflush(stdout) != 0) break;
  }
  /* The worker closed its end (or cannot read any more): nothing it started may outlive it. */
  end_children();
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--unmount-server") == 0) return unmount_server(argv[2], argv[3]);
  if (argc == 3 && strcmp(argv[1], "--spawn-server") == 0) return spawn_server(argv[2]);
  return launch(argc, argv);
}
