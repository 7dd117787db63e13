/* delay.so: LD_PRELOAD shim that adds DELAY_US microseconds (default 1000) to every
 * directory open (opendir, fdopendir), as a network file system's round trip would.
 * Build: cc -O2 -shared -fPIC -o delay.so delay.c -ldl
 * Used by bench/walk/run.sh to compare walkers under per-directory latency. */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

static void pause_once(void) {
    const char *s = getenv("DELAY_US");
    usleep(s ? (useconds_t)atoi(s) : 1000);
}

DIR *opendir(const char *name) {
    static DIR *(*real)(const char *);
    if (!real) real = (DIR * (*)(const char *)) dlsym(RTLD_NEXT, "opendir");
    pause_once();
    return real(name);
}

DIR *fdopendir(int fd) {
    static DIR *(*real)(int);
    if (!real) real = (DIR * (*)(int)) dlsym(RTLD_NEXT, "fdopendir");
    pause_once();
    return real(fd);
}
