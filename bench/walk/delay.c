/* delay.so: LD_PRELOAD shim that makes the first open of each directory in a process take
 * DELAY_US microseconds more (default 1000), as on a network file system or a cold cache,
 * where the first read of a directory is a round trip and later reads hit the client's
 * cache. Threads wait independently, as concurrent requests to a server do.
 * Covers opendir (Rust's read_dir: fanout, fd) and fdopendir (GNU find's fts), and openat
 * with O_DIRECTORY is left alone (fdopendir follows it).
 * Build: cc -O2 -shared -fPIC -o delay.so delay.c -ldl -lpthread
 * Used by bench/run.sh (workload d). */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLOTS (1 << 20)
static uint64_t seen[SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t hash(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h ? h : 1;
}

/* Returns 1 the first time this path is seen in the process. */
static int first_time(const char *path) {
    char abs[PATH_MAX];
    if (!realpath(path, abs)) return 1;
    uint64_t h = hash(abs);
    int first = 1;
    pthread_mutex_lock(&lock);
    for (uint64_t i = h & (SLOTS - 1);; i = (i + 1) & (SLOTS - 1)) {
        if (seen[i] == h) { first = 0; break; }
        if (seen[i] == 0) { seen[i] = h; break; }
    }
    pthread_mutex_unlock(&lock);
    return first;
}

static void wait_if_first(const char *path) {
    if (!first_time(path)) return;
    const char *s = getenv("DELAY_US");
    usleep(s ? (useconds_t)atoi(s) : 1000);
}

DIR *opendir(const char *name) {
    static DIR *(*real)(const char *);
    if (!real) real = (DIR * (*)(const char *)) dlsym(RTLD_NEXT, "opendir");
    wait_if_first(name);
    return real(name);
}

DIR *fdopendir(int fd) {
    static DIR *(*real)(int);
    if (!real) real = (DIR * (*)(int)) dlsym(RTLD_NEXT, "fdopendir");
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    wait_if_first(link);
    return real(fd);
}
