/* LD_PRELOAD recorder of file-system changes, for the crash tests (tests/fsrec.py reads its log).
 *
 * For files whose path contains $FSREC_MATCH it appends to $FSREC_LOG every open, close, write (pwrite, write,
 * sendfile: with the bytes), ftruncate, rename, renameat2 exchange and unlink, in the order the kernel saw them.
 * A SIGKILL leaves a file system equal to a prefix of that sequence, the last write possibly cut at a page
 * boundary, so replaying prefixes reproduces every state a kill can leave.
 * $FSREC_ENOSPC_AT=k makes the k-th recorded write and every later one fail with ENOSPC (a disk that fills up).
 *
 * Build: cc -shared -fPIC -O2 -o fsrec.so fsrec.c -ldl
 * Record layout: op (1 byte), len(a) u32, len(b) u32, offset i64, len(data) i64, a, b, data.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/types.h>
#include <unistd.h>

#define MAXFD 4096
static char *paths[MAXFD];
static int logfd = -1;
static long nwrites = 0, enospc_at = -1;
static const char *match = NULL;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

#define REAL(name, ret, ...) \
    static ret (*real_##name)(__VA_ARGS__) = NULL; \
    if (!real_##name) real_##name = dlsym(RTLD_NEXT, #name)

static void init(void) {
    static int done = 0;
    if (done) return;
    done = 1;
    match = getenv("FSREC_MATCH");
    const char *l = getenv("FSREC_LOG");
    REAL(open, int, const char *, int, ...);
    if (l) logfd = real_open(l, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (getenv("FSREC_ENOSPC_AT")) enospc_at = atol(getenv("FSREC_ENOSPC_AT"));
}

static int matches(const char *p) { init(); return match && p && strstr(p, match); }
static int tracked(int fd) { return fd >= 0 && fd < MAXFD && paths[fd]; }

static void rec(char op, const char *a, const char *b, int64_t off, const void *data, int64_t len) {
    REAL(write, ssize_t, int, const void *, size_t);
    if (logfd < 0) return;
    uint32_t la = a ? strlen(a) : 0, lb = b ? strlen(b) : 0;
    char hdr[25];
    hdr[0] = op;
    memcpy(hdr + 1, &la, 4); memcpy(hdr + 5, &lb, 4); memcpy(hdr + 9, &off, 8); memcpy(hdr + 17, &len, 8);
    real_write(logfd, hdr, sizeof hdr);
    if (la) real_write(logfd, a, la);
    if (lb) real_write(logfd, b, lb);
    if (data && len > 0) real_write(logfd, data, len);
}

static void fdrec(char op, int fd, int64_t off, const void *data, int64_t len) {
    char f[16];
    snprintf(f, sizeof f, "%d", fd);
    rec(op, paths[fd], f, off, data, len);
}

static void absolute(const char *p, char *out) {  /* realpath of p, or of its folder for a name not there yet */
    if (realpath(p, out)) return;
    char d[4096], r[4096];
    const char *slash = strrchr(p, '/');
    if (slash) { size_t n = slash - p; if (n > sizeof d - 1) n = sizeof d - 1; memcpy(d, p, n); d[n] = 0; }
    else strcpy(d, ".");
    if (realpath(slash && slash != p ? d : (slash ? "/" : "."), r)) snprintf(out, 4096, "%.3000s/%.1000s", r, slash ? slash + 1 : p);
    else { strncpy(out, p, 4095); out[4095] = 0; }
}

static int track(int fd, const char *p, int flags) {
    if (fd < 0 || fd >= MAXFD) return fd;
    pthread_mutex_lock(&mu);
    free(paths[fd]); paths[fd] = NULL;
    if (matches(p)) {
        char buf[4096];
        absolute(p, buf);
        paths[fd] = strdup(buf);
        rec('O', paths[fd], 0, ((int64_t)fd << 32) | (uint32_t)flags, 0, 0);
    }
    pthread_mutex_unlock(&mu);
    return fd;
}

#define OPEN_MODE(flags) mode_t m = 0; \
    if (flags & (O_CREAT | __O_TMPFILE)) { va_list ap; va_start(ap, flags); m = va_arg(ap, int); va_end(ap); }
int open(const char *p, int flags, ...) { REAL(open, int, const char *, int, ...); OPEN_MODE(flags);
    return track(real_open(p, flags, m), p, flags); }
int open64(const char *p, int flags, ...) { REAL(open64, int, const char *, int, ...); OPEN_MODE(flags);
    return track(real_open64(p, flags, m), p, flags); }
int openat(int d, const char *p, int flags, ...) { REAL(openat, int, int, const char *, int, ...); OPEN_MODE(flags);
    return track(real_openat(d, p, flags, m), p, flags); }
int openat64(int d, const char *p, int flags, ...) { REAL(openat64, int, int, const char *, int, ...);
    OPEN_MODE(flags); return track(real_openat64(d, p, flags, m), p, flags); }

int close(int fd) {
    REAL(close, int, int);
    pthread_mutex_lock(&mu);
    if (tracked(fd)) { fdrec('C', fd, fd, 0, 0); free(paths[fd]); paths[fd] = NULL; }
    pthread_mutex_unlock(&mu);
    return real_close(fd);
}

static ssize_t put(int fd, const void *buf, size_t n, off_t off, int positional) {
    REAL(pwrite64, ssize_t, int, const void *, size_t, off_t);
    REAL(write, ssize_t, int, const void *, size_t);
    if (!tracked(fd)) return positional ? real_pwrite64(fd, buf, n, off) : real_write(fd, buf, n);
    pthread_mutex_lock(&mu);
    long k = ++nwrites;
    if (!positional) off = lseek(fd, 0, SEEK_CUR);
    if (enospc_at >= 0 && k >= enospc_at) { pthread_mutex_unlock(&mu); errno = ENOSPC; return -1; }
    fdrec('W', fd, off, buf, n);
    ssize_t r = real_pwrite64(fd, buf, n, off);
    if (!positional && r > 0) lseek(fd, off + r, SEEK_SET);
    pthread_mutex_unlock(&mu);
    return r;
}
ssize_t pwrite(int fd, const void *b, size_t n, off_t o) { return put(fd, b, n, o, 1); }
ssize_t pwrite64(int fd, const void *b, size_t n, off_t o) { return put(fd, b, n, o, 1); }
ssize_t write(int fd, const void *b, size_t n) { return put(fd, b, n, 0, 0); }

ssize_t sendfile(int out, int in, off_t *off, size_t count) {  /* as reads and recorded writes */
    REAL(sendfile, ssize_t, int, int, off_t *, size_t);
    if (!tracked(out)) return real_sendfile(out, in, off, count);
    char buf[65536];
    size_t done = 0;
    while (done < count) {
        size_t want = count - done < sizeof buf ? count - done : sizeof buf;
        ssize_t r = off ? pread(in, buf, want, *off) : read(in, buf, want);
        if (r <= 0) { if (r < 0 && !done) return -1; break; }
        ssize_t w = put(out, buf, r, 0, 0);
        if (w < 0) return done ? (ssize_t)done : -1;
        if (off) *off += w;
        done += w;
        if (w < r) break;
    }
    return done;
}
ssize_t sendfile64(int out, int in, off_t *off, size_t count) { return sendfile(out, in, off, count); }
ssize_t copy_file_range(int in, off_t *oi, int out, off_t *oo, size_t n, unsigned fl) {
    REAL(copy_file_range, ssize_t, int, off_t *, int, off_t *, size_t, unsigned);
    if (!tracked(out)) return real_copy_file_range(in, oi, out, oo, n, fl);
    errno = EXDEV;  /* callers fall back to sendfile or read/write */
    return -1;
}

int ftruncate(int fd, off_t len) {
    REAL(ftruncate, int, int, off_t);
    if (tracked(fd)) fdrec('T', fd, len, 0, 0);
    return real_ftruncate(fd, len);
}
int ftruncate64(int fd, off_t len) {
    REAL(ftruncate64, int, int, off_t);
    if (tracked(fd)) fdrec('T', fd, len, 0, 0);
    return real_ftruncate64(fd, len);
}

static void renamed(char op, const char *a, const char *b) {
    if (!(matches(a) || matches(b))) return;
    char x[4096], y[4096];
    absolute(a, x); absolute(b, y);
    rec(op, x, y, 0, 0, 0);
}
int rename(const char *a, const char *b) { REAL(rename, int, const char *, const char *);
    int r = real_rename(a, b); if (r == 0) renamed('R', a, b); return r; }
int renameat(int da, const char *a, int db, const char *b) {
    REAL(renameat, int, int, const char *, int, const char *);
    int r = real_renameat(da, a, db, b); if (r == 0) renamed('R', a, b); return r; }
int renameat2(int da, const char *a, int db, const char *b, unsigned fl) {
    REAL(renameat2, int, int, const char *, int, const char *, unsigned);
    int r = real_renameat2(da, a, db, b, fl); if (r == 0) renamed(fl & 2 ? 'X' : 'R', a, b); return r; }
int link(const char *a, const char *b) { REAL(link, int, const char *, const char *);
    int r = real_link(a, b); if (r == 0) renamed('L', a, b); return r; }
int unlink(const char *a) {
    char x[4096];
    int m = matches(a);
    if (m) absolute(a, x);
    REAL(unlink, int, const char *);
    int r = real_unlink(a);
    if (r == 0 && m) rec('U', x, 0, 0, 0, 0);
    return r;
}
int unlinkat(int d, const char *a, int fl) {
    char x[4096];
    int m = matches(a);
    if (m) absolute(a, x);
    REAL(unlinkat, int, int, const char *, int);
    int r = real_unlinkat(d, a, fl);
    if (r == 0 && m) rec('U', x, 0, 0, 0, 0);
    return r;
}

static int duped(int old, int fd) {  /* fd now refers to old's file: track it as old is tracked */
    if (fd < 0 || fd >= MAXFD) return fd;
    pthread_mutex_lock(&mu);
    free(paths[fd]);
    paths[fd] = tracked(old) ? strdup(paths[old]) : NULL;
    pthread_mutex_unlock(&mu);
    return fd;
}
int dup2(int old, int fd) { REAL(dup2, int, int, int); return duped(old, real_dup2(old, fd)); }
int dup3(int old, int fd, int fl) { REAL(dup3, int, int, int, int); return duped(old, real_dup3(old, fd, fl)); }
