/* clockstep: an LD_PRELOAD shim that steps a process's wall clock, and only its wall clock,
 * the way an NTP step does: CLOCK_REALTIME (clock_gettime, gettimeofday, time) is moved by
 * the number of seconds in the file $CLOCKSTEP_FILE (re-read every 10 ms); CLOCK_MONOTONIC,
 * sleeps and timers are untouched. (libfaketime moves the monotonic clock with the wall
 * clock, or, told not to, breaks clock_nanosleep: Python's time.sleep.)
 * Built by the lab tests (tests/lab/test_20_hot_warm_drill.py): gcc -shared -fPIC -ldl. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

typedef int (*gettime_fn)(clockid_t, struct timespec *);
static long long offset_ns;    /* the step, in nanoseconds */
static long long checked_ns;   /* monotonic time of the last read of the file */

static gettime_fn real_gettime(void) {
    static gettime_fn real;
    if (!real) real = (gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    return real;
}

static long long step_ns(void) {
    struct timespec mono;
    const char *path = getenv("CLOCKSTEP_FILE");
    if (!path || real_gettime()(CLOCK_MONOTONIC, &mono) != 0) return 0;
    long long now = mono.tv_sec * 1000000000LL + mono.tv_nsec;
    if (now - __atomic_load_n(&checked_ns, __ATOMIC_RELAXED) > 10000000LL) {
        FILE *f = fopen(path, "r");
        double seconds = 0;
        if (f) {
            if (fscanf(f, "%lf", &seconds) == 1)
                __atomic_store_n(&offset_ns, (long long)(seconds * 1e9), __ATOMIC_RELAXED);
            fclose(f);
        }
        __atomic_store_n(&checked_ns, now, __ATOMIC_RELAXED);
    }
    return __atomic_load_n(&offset_ns, __ATOMIC_RELAXED);
}

static void shift(struct timespec *ts) {
    long long t = ts->tv_sec * 1000000000LL + ts->tv_nsec + step_ns();
    ts->tv_sec = t / 1000000000LL;
    ts->tv_nsec = t % 1000000000LL;
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
    int rc = real_gettime()(clock, ts);
    if (rc == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE)) shift(ts);
    return rc;
}

int gettimeofday(struct timeval *tv, void *tz) {
    struct timespec ts;
    (void)tz;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return -1;
    if (tv) { tv->tv_sec = ts.tv_sec; tv->tv_usec = ts.tv_nsec / 1000; }
    return 0;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out) *out = ts.tv_sec;
    return ts.tv_sec;
}
