/* objstore_local.c: a local directory as an object store. A key's segments
 * are walked one openat() at a time with O_NOFOLLOW, so neither ".." nor a
 * symlink (anywhere below the root, pointing anywhere) can lead outside the
 * root: symlinks under the root are simply not objects. Puts are atomic
 * (temporary file + rename in the same directory). */
#include "storage/detail.h"
#include "storage/objstore.h"
#include "storage/objurl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TMP_PREFIX ".imgsearch-tmp."
#define MAX_DEPTH 128
#define KEY_BUF 2048

/* mkdir -p for the root itself (the admin's path; symlinks allowed there). */
static int mkdir_p(const char *path)
{
    char *p = strdup(path), *s;
    int rc = -1;

    if (!p)
        return -1;
    for (s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            goto fail;
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        goto fail;
    rc = 0;
fail:
    free(p);
    return rc;
}

static int open_root(const char *root, int create)
{
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0 && errno == ENOENT && create && mkdir_p(root) == 0)
        fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fd;
}

/* Walks the first `len` bytes of `path` ('/'-separated directory names)
 * down from `dfd` (which it closes), creating missing directories when
 * asked. Returns the final directory fd or -1 with errno set. */
static int walk_dirs(int dfd, const char *path, size_t len, int create)
{
    char name[NAME_MAX + 1];
    size_t i = 0;

    while (i < len) {
        size_t n = 0;
        int next;
        while (i + n < len && path[i + n] != '/')
            n++;
        if (n == 0 || n > NAME_MAX || (n == 1 && path[i] == '.') ||
            (n == 2 && path[i] == '.' && path[i + 1] == '.')) {
            close(dfd);
            errno = EINVAL;
            return -1;
        }
        memcpy(name, path + i, n);
        name[n] = '\0';
        next = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0 && errno == ENOENT && create) {
            if (mkdirat(dfd, name, 0755) != 0 && errno != EEXIST) {
                int e = errno;
                close(dfd);
                errno = e;
                return -1;
            }
            next = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (next < 0) {
            int e = errno;
            struct stat sb;
            /* Report a symlinked directory as the symlink it is. */
            if (e == ENOTDIR && fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
                S_ISLNK(sb.st_mode))
                e = ELOOP;
            close(dfd);
            errno = e;
            return -1;
        }
        close(dfd);
        dfd = next;
        i += n + 1;
    }
    return dfd;
}

/* The directory holding the key's last segment; *last points into key. */
static int open_parent(const char *root, const char *key, int create, const char **last)
{
    const char *slash = strrchr(key, '/');
    int dfd = open_root(root, create);

    *last = slash ? slash + 1 : key;
    if (dfd < 0)
        return -1;
    return walk_dirs(dfd, key, slash ? (size_t)(slash - key) : 0, create);
}

static enum source_status errno_status(int e)
{
    if (e == ENOENT || e == ENOTDIR)
        return SRC_OBS_MISSING;
    return SRC_OBS_FAILED; /* ELOOP (a symlink), EACCES, EIO, ... */
}

enum source_status objstore_local_get(const char *root, const char *key, size_t max_bytes,
                                      struct bytes *out, char *detail, size_t detail_len)
{
    enum source_status st = SRC_OBS_FAILED;
    const char *last;
    int dfd = -1, fd = -1;
    struct stat sb;
    uint8_t *buf = NULL;
    size_t cap, len = 0;

    out->data = NULL;
    out->len = 0;
    if (!objurl_key_valid(key)) {
        source_detail(detail, detail_len, "invalid key");
        return SRC_OBS_BAD_URL;
    }
    dfd = open_parent(root, key, 0, &last);
    if (dfd < 0) {
        st = errno_status(errno);
        source_detail(detail, detail_len, "%s: %s", key, strerror(errno));
        goto fail;
    }
    /* O_NONBLOCK: a FIFO planted under the root must not hang the reader. */
    fd = openat(dfd, last, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        st = errno_status(errno);
        source_detail(detail, detail_len, "%s: %s", key, strerror(errno));
        goto fail;
    }
    if (fstat(fd, &sb) != 0)
        goto fail;
    if (S_ISDIR(sb.st_mode)) {
        st = SRC_OBS_MISSING;
        source_detail(detail, detail_len, "%s: is a directory", key);
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        source_detail(detail, detail_len, "%s: not a regular file", key);
        goto fail;
    }
    if ((unsigned long long)sb.st_size > max_bytes) {
        st = SRC_OBS_TOO_BIG;
        source_detail(detail, detail_len, "%s: %lld bytes > %zu", key, (long long)sb.st_size,
                      max_bytes);
        goto fail;
    }
    /* +1 so a file that grew since fstat shows up as too big. */
    cap = (size_t)sb.st_size + 1;
    buf = malloc(cap);
    if (!buf) {
        st = SRC_NOMEM;
        goto fail;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            source_detail(detail, detail_len, "%s: read: %s", key, strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max_bytes) {
            st = SRC_OBS_TOO_BIG;
            source_detail(detail, detail_len, "%s: more than %zu bytes", key, max_bytes);
            goto fail;
        }
        if (len == cap) {
            size_t ncap = cap * 2 > max_bytes + 1 ? max_bytes + 1 : cap * 2;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                st = SRC_NOMEM;
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
    }
    close(fd);
    close(dfd);
    out->data = buf;
    out->len = len;
    return SRC_OK;
fail:
    free(buf);
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    return st;
}

static int write_all(int fd, const uint8_t *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A name unique among concurrent writers (threads and processes). */
static int open_tmp(int dfd, char *name, size_t name_len)
{
    static atomic_ulong counter;
    struct timespec ts;
    int tries, fd = -1;

    for (tries = 0; tries < 16 && fd < 0; tries++) {
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(name, name_len, TMP_PREFIX "%ld.%lu.%ld", (long)getpid(),
                 atomic_fetch_add(&counter, 1), (long)ts.tv_nsec);
        fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    return fd;
}

enum source_status objstore_local_put(const char *root, const char *key, const uint8_t *data,
                                      size_t len, char *detail, size_t detail_len)
{
    const char *last;
    char tmp[128];
    int dfd, fd = -1;

    if (!objurl_key_valid(key)) {
        source_detail(detail, detail_len, "invalid key");
        return SRC_OBS_BAD_URL;
    }
    dfd = open_parent(root, key, 1, &last);
    if (dfd < 0) {
        source_detail(detail, detail_len, "%s: %s", key, strerror(errno));
        return SRC_OBS_FAILED;
    }
    fd = open_tmp(dfd, tmp, sizeof tmp);
    if (fd < 0)
        goto fail;
    if (write_all(fd, data, len) != 0 || fsync(fd) != 0)
        goto fail_unlink;
    if (close(fd) != 0) {
        fd = -1;
        goto fail_unlink;
    }
    fd = -1;
    if (renameat(dfd, tmp, dfd, last) != 0)
        goto fail_unlink;
    close(dfd);
    return SRC_OK;
fail_unlink:
    source_detail(detail, detail_len, "%s: %s", key, strerror(errno));
    unlinkat(dfd, tmp, 0);
    if (fd >= 0)
        close(fd);
    close(dfd);
    return SRC_OBS_FAILED;
fail:
    source_detail(detail, detail_len, "%s: %s", key, strerror(errno));
    close(dfd);
    return SRC_OBS_FAILED;
}

/* The key's file opened for reading (a regular file, no symlink). */
static enum source_status open_object(const char *root, const char *key, int *fd_out,
                                      struct stat *sb, char *detail, size_t detail_len)
{
    const char *last;
    int dfd, fd;

    if (!objurl_key_valid(key)) {
        source_detail(detail, detail_len, "invalid key");
        return SRC_OBS_BAD_URL;
    }
    dfd = open_parent(root, key, 0, &last);
    fd =
        dfd < 0 ? -1 : openat(dfd, last, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, sb) != 0) {
        enum source_status st = errno_status(errno);
        source_detail(detail, detail_len, "%s: %s", key, strerror(errno));
        if (fd >= 0)
            close(fd);
        if (dfd >= 0)
            close(dfd);
        return st;
    }
    close(dfd);
    if (!S_ISREG(sb->st_mode)) {
        close(fd);
        source_detail(detail, detail_len, "%s: not a regular file", key);
        return S_ISDIR(sb->st_mode) ? SRC_OBS_MISSING : SRC_OBS_FAILED;
    }
    *fd_out = fd;
    return SRC_OK;
}

enum source_status objstore_local_get_file(const char *root, const char *key, uint64_t max_bytes,
                                           FILE *out, char *detail, size_t detail_len)
{
    struct stat sb;
    int fd;
    uint64_t total = 0;
    enum source_status st = open_object(root, key, &fd, &sb, detail, detail_len);
    uint8_t *buf = st == SRC_OK ? malloc(1 << 16) : NULL;

    if (st != SRC_OK)
        return st;
    if (!buf) {
        close(fd);
        return SRC_NOMEM;
    }
    for (;;) {
        ssize_t n = read(fd, buf, 1 << 16);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            source_detail(detail, detail_len, "%s: read: %s", key, strerror(errno));
            st = SRC_OBS_FAILED;
            break;
        }
        if (n == 0)
            break;
        total += (uint64_t)n;
        if (total > max_bytes) {
            source_detail(detail, detail_len, "%s: more than %llu bytes", key,
                          (unsigned long long)max_bytes);
            st = SRC_OBS_TOO_BIG;
            break;
        }
        if (fwrite(buf, 1, (size_t)n, out) != (size_t)n) {
            source_detail(detail, detail_len, "%s: cannot write the local copy", key);
            st = SRC_OBS_FAILED;
            break;
        }
    }
    if (st == SRC_OK && fflush(out) != 0) {
        source_detail(detail, detail_len, "%s: cannot write the local copy", key);
        st = SRC_OBS_FAILED;
    }
    free(buf);
    close(fd);
    return st;
}

enum source_status objstore_local_get_head(const char *root, const char *key, uint8_t *head,
                                           size_t len, size_t *got, char *detail, size_t detail_len)
{
    struct stat sb;
    int fd;
    size_t n = 0;
    enum source_status st = open_object(root, key, &fd, &sb, detail, detail_len);

    *got = 0;
    if (st != SRC_OK)
        return st;
    while (n < len) {
        ssize_t r = read(fd, head + n, len - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            source_detail(detail, detail_len, "%s: read: %s", key, strerror(errno));
            st = SRC_OBS_FAILED;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    *got = n;
    return st;
}

enum source_status objstore_local_put_stream(const char *root, const char *key, objstore_read_fn fn,
                                             void *arg, char *detail, size_t detail_len)
{
    const char *last;
    char tmp[128];
    int dfd, fd = -1;
    uint8_t *buf = NULL;

    if (!objurl_key_valid(key)) {
        source_detail(detail, detail_len, "invalid key");
        return SRC_OBS_BAD_URL;
    }
    dfd = open_parent(root, key, 1, &last);
    if (dfd < 0) {
        source_detail(detail, detail_len, "%s: %s", key, strerror(errno));
        return SRC_OBS_FAILED;
    }
    fd = open_tmp(dfd, tmp, sizeof tmp);
    buf = fd >= 0 ? malloc(1 << 16) : NULL;
    if (fd < 0 || !buf) {
        source_detail(detail, detail_len, "%s: %s", key, fd < 0 ? strerror(errno) : "no memory");
        if (fd >= 0) {
            close(fd);
            unlinkat(dfd, tmp, 0);
        }
        close(dfd);
        return fd < 0 ? SRC_OBS_FAILED : SRC_NOMEM;
    }
    for (;;) {
        size_t n = fn(arg, buf, 1 << 16);
        if (n == (size_t)-1) {
            errno = EIO;
            goto fail;
        }
        if (n == 0)
            break;
        if (write_all(fd, buf, n) != 0)
            goto fail;
    }
    if (fsync(fd) != 0)
        goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (renameat(dfd, tmp, dfd, last) != 0)
        goto fail;
    free(buf);
    close(dfd);
    return SRC_OK;
fail:
    source_detail(detail, detail_len, "%s: %s", key, strerror(errno));
    free(buf);
    if (fd >= 0)
        close(fd);
    unlinkat(dfd, tmp, 0);
    close(dfd);
    return SRC_OBS_FAILED;
}

enum source_status objstore_local_delete(const char *root, const char *key, char *detail,
                                         size_t detail_len)
{
    const char *last;
    int dfd;

    if (!objurl_key_valid(key)) {
        source_detail(detail, detail_len, "invalid key");
        return SRC_OBS_BAD_URL;
    }
    dfd = open_parent(root, key, 0, &last);
    if (dfd < 0 && (errno == ENOENT || errno == ENOTDIR))
        return SRC_OK;
    if (dfd < 0 || (unlinkat(dfd, last, 0) != 0 && errno != ENOENT)) {
        source_detail(detail, detail_len, "%s: %s", key, strerror(errno));
        if (dfd >= 0)
            close(dfd);
        return SRC_OBS_FAILED;
    }
    close(dfd);
    return SRC_OK;
}

struct entry {
    char *name;
    int is_dir;
    size_t size;
};

/* Orders a directory's entries so that a depth-first walk yields keys in
 * byte order: a directory sorts as "name/", which is how its keys start. */
static int entry_cmp(const void *pa, const void *pb)
{
    const struct entry *a = pa, *b = pb;
    const unsigned char *x = (const unsigned char *)a->name, *y = (const unsigned char *)b->name;
    size_t i;

    for (i = 0;; i++) {
        int cx = x[i] ? x[i] : (a->is_dir ? '/' : 0);
        int cy = y[i] ? y[i] : (b->is_dir ? '/' : 0);
        if (cx != cy)
            return cx - cy;
        if (!x[i] || !y[i])
            return 0; /* equal up to the end of one: cannot happen for distinct names */
    }
}

struct walk {
    objstore_list_fn fn;
    void *arg;
    const char *after; /* NULL or: only keys after this one */
    char key[KEY_BUF];
    int stop;
};

/* A directory whose keys (all starting with `dir`, which ends in '/') come
 * before w->after: a resumed listing need not open it. */
static int dir_before_after(const struct walk *w, const char *dir, size_t len)
{
    return w->after && strncmp(dir, w->after, len) < 0;
}

static void free_entries(struct entry *e, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        free(e[i].name);
    free(e);
}

/* Reads directory `dfd` (left open) into a sorted entry array, keeping
 * names that start with `filter`. */
static int read_entries(int dfd, const char *filter, struct entry **out, size_t *n_out)
{
    int dup_fd = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    struct entry *e = NULL;
    size_t n = 0, cap = 0, flen = strlen(filter);
    struct dirent *de;

    *out = NULL;
    *n_out = 0;
    if (!d) {
        if (dup_fd >= 0)
            close(dup_fd);
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        struct stat sb;
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
            !strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) ||
            strncmp(de->d_name, filter, flen) != 0)
            continue;
        if (fstatat(dfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
            continue; /* vanished meanwhile */
        if (!S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode))
            continue; /* symlinks, FIFOs, ...: not objects */
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct entry *ne = realloc(e, ncap * sizeof *e);
            if (!ne)
                goto fail;
            e = ne;
            cap = ncap;
        }
        e[n].name = strdup(de->d_name);
        if (!e[n].name)
            goto fail;
        e[n].is_dir = S_ISDIR(sb.st_mode);
        e[n].size = (size_t)sb.st_size;
        n++;
    }
    closedir(d);
    if (n)
        qsort(e, n, sizeof *e, entry_cmp);
    *out = e;
    *n_out = n;
    return 0;
fail:
    closedir(d);
    free_entries(e, n);
    errno = ENOMEM;
    return -1;
}

/* Depth-first over `dfd` (closed here); w->key[0..keylen) is the key
 * prefix of this directory. -1 only on out-of-memory. */
static int walk_dir(int dfd, struct walk *w, size_t keylen, const char *filter, int depth)
{
    struct entry *e;
    size_t n, i;
    int rc = 0;

    if (read_entries(dfd, filter, &e, &n) != 0) {
        close(dfd);
        return errno == ENOMEM ? -1 : 0; /* unreadable directory: skipped */
    }
    for (i = 0; i < n && !w->stop && rc == 0; i++) {
        size_t nl = strlen(e[i].name);
        if (keylen + nl + 2 > sizeof w->key)
            continue;
        memcpy(w->key + keylen, e[i].name, nl + 1);
        if (e[i].is_dir) {
            int sub;
            if (depth >= MAX_DEPTH)
                continue;
            w->key[keylen + nl] = '/';
            w->key[keylen + nl + 1] = '\0';
            if (dir_before_after(w, w->key, keylen + nl + 1))
                continue;
            sub = openat(dfd, e[i].name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0)
                continue;
            rc = walk_dir(sub, w, keylen + nl + 1, "", depth + 1);
        } else if (w->after && strcmp(w->key, w->after) <= 0) {
            continue;
        } else if (objurl_key_valid(w->key)) {
            if (w->fn(w->arg, w->key, e[i].size) != 0)
                w->stop = 1;
        }
    }
    free_entries(e, n);
    close(dfd);
    return rc;
}

enum source_status objstore_local_list(const char *root, const char *prefix,
                                       const char *start_after, objstore_list_fn fn, void *arg,
                                       char *detail, size_t detail_len)
{
    const char *slash;
    size_t dir_len;
    struct walk *w;
    int dfd, rc;

    if (!objurl_prefix_valid(prefix)) {
        source_detail(detail, detail_len, "invalid prefix");
        return SRC_OBS_BAD_URL;
    }
    slash = strrchr(prefix, '/');
    dir_len = slash ? (size_t)(slash - prefix) + 1 : 0;
    if (dir_len + 2 > KEY_BUF)
        return SRC_OBS_BAD_URL;
    dfd = open_root(root, 0);
    if (dfd >= 0 && dir_len)
        dfd = walk_dirs(dfd, prefix, dir_len - 1, 0);
    if (dfd < 0) {
        if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
            return SRC_OK; /* nothing under that prefix (symlinks hold no objects) */
        source_detail(detail, detail_len, "%s: %s", root, strerror(errno));
        return SRC_OBS_FAILED;
    }
    w = calloc(1, sizeof *w);
    if (!w) {
        close(dfd);
        return SRC_NOMEM;
    }
    w->fn = fn;
    w->arg = arg;
    w->after = start_after;
    memcpy(w->key, prefix, dir_len);
    w->key[dir_len] = '\0';
    rc = walk_dir(dfd, w, dir_len, prefix + dir_len, 0);
    free(w);
    return rc == 0 ? SRC_OK : SRC_NOMEM;
}
