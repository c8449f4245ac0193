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
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <grp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

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

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--unmount-server") == 0) return unmount_server(argv[2], argv[3]);
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
