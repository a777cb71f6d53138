/* SPDX-License-Identifier: MIT */
/* gw_fsafe.c - ownership and permission checks for local trust (see gw_fsafe.h). */
#include "gw_fsafe.h"
#include "gw_error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int gw_fsafe_judge(const struct stat *st, uid_t euid, unsigned flags, char *why, size_t whylen)
{
    mode_t m = st->st_mode;
    unsigned perm = (unsigned)(m & 07777);
    if (S_ISLNK(m)) {
        gw_errf(why, whylen, "is a symbolic link (refused: it could point anywhere)");
        return GW_EUNSAFE;
    }
    if ((flags & (GW_FS_DIR | GW_FS_ANCESTOR)) && !S_ISDIR(m)) {
        gw_errf(why, whylen, "is not a directory");
        return GW_EUNSAFE;
    }
    if ((flags & GW_FS_REG) && !S_ISREG(m)) {
        gw_errf(why, whylen, "is not a regular file");
        return GW_EUNSAFE;
    }
    if ((flags & GW_FS_FIFO) && !S_ISFIFO(m)) {
        gw_errf(why, whylen, "is not a FIFO");
        return GW_EUNSAFE;
    }
    bool root_ok = (flags & (GW_FS_ROOT_OK | GW_FS_ANCESTOR)) != 0;
    if (st->st_uid != euid && !(root_ok && st->st_uid == 0)) {
        if (root_ok && euid != 0)
            gw_errf(why, whylen,
                    "is owned by uid %u, neither by root nor by uid %u (the gateway's user)",
                    (unsigned)st->st_uid, (unsigned)euid);
        else
            gw_errf(why, whylen, "is owned by uid %u, not by uid %u (the gateway's user)",
                    (unsigned)st->st_uid, (unsigned)euid);
        return GW_EUNSAFE;
    }
    /* A shared directory with the sticky bit (/tmp, /dev/shm) lets nobody
     * rename or remove what another user put in it, so it may be above us. */
    bool sticky_dir = (flags & GW_FS_ANCESTOR) && (m & S_ISVTX);
    if ((perm & (S_IWGRP | S_IWOTH)) && !sticky_dir) {
        gw_errf(why, whylen, "has mode %04o: group/other may write it (chmod go-w)", perm);
        return GW_EUNSAFE;
    }
    if (flags & GW_FS_SECRET) {
        unsigned readers = (flags & GW_FS_GROUP_READ_OK) ? S_IROTH : (S_IRGRP | S_IROTH);
        if (perm & readers) {
            gw_errf(why, whylen,
                    "has mode %04o: %s may read it, and it holds secrets or state (chmod %s)", perm,
                    (flags & GW_FS_GROUP_READ_OK) ? "other users" : "group/other",
                    (flags & GW_FS_GROUP_READ_OK) ? "o-rwx" : "go-rwx");
            return GW_EUNSAFE;
        }
    }
    return 0;
}

static int judge_path(const struct stat *st, const char *path, unsigned flags, char *err,
                      size_t errlen)
{
    char why[200];
    int rc = gw_fsafe_judge(st, geteuid(), flags, why, sizeof(why));
    if (rc)
        gw_errf(err, errlen, "%s %s", path, why);
    return rc;
}

int gw_fsafe_check(const char *path, unsigned flags, bool follow, char *err, size_t errlen)
{
    struct stat st;
    if ((follow ? stat(path, &st) : lstat(path, &st)) != 0) {
        int e = errno;
        gw_errf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    return judge_path(&st, path, flags, err, errlen);
}

int gw_fsafe_check_fd(int fd, const char *path, unsigned flags, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        gw_errf(err, errlen, "fstat(%s): %s", path, strerror(e));
        return -e;
    }
    return judge_path(&st, path, flags, err, errlen);
}

int gw_fsafe_ancestors(const char *path, char *err, size_t errlen)
{
    if (path[0] != '/') {
        gw_errf(err, errlen, "%s: not an absolute path", path);
        return -EINVAL;
    }
    char p[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof(p)) {
        gw_errf(err, errlen, "%s: path too long", path);
        return -ENAMETOOLONG;
    }
    /* "/" first, then every prefix that ends before a '/' of the path. */
    for (size_t i = 0; i < n; i++) {
        if (path[i] != '/')
            continue;
        size_t l = i ? i : 1;
        if (l >= n)
            break;
        memcpy(p, path, l);
        p[l] = '\0';
        int rc = gw_fsafe_check(p, GW_FS_ANCESTOR, false, err, errlen);
        if (rc == GW_EUNSAFE) {
            char inner[PATH_MAX + 300];
            gw_errf(inner, sizeof(inner), "%s (a directory above %s)", err, path);
            gw_errf(err, errlen, "%s", inner);
        }
        if (rc)
            return rc;
    }
    return 0;
}

int gw_fsafe_mkdir_p(const char *path)
{
    char p[PATH_MAX];
    if ((size_t)snprintf(p, sizeof(p), "%s", path) >= sizeof(p))
        return -ENAMETOOLONG;
    if (!p[0])
        return -EINVAL;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0700) != 0 && errno != EEXIST)
                return -errno;
            *s = c;
            if (!c)
                break;
        }
    }
    struct stat st;
    if (stat(p, &st) != 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

unsigned gw_fsafe_entry_flags(const char *name, bool in_lmdb)
{
    /* Everything in an LMDB directory is state: sessions, the registry,
     * the nonce reservation, device keys. */
    if (in_lmdb)
        return GW_FS_REG | GW_FS_SECRET;
    if (!strcmp(name, "state") || !strcmp(name, "keys"))
        return GW_FS_DIR;
    if (!strcmp(name, "dev-secret") || !strcmp(name, "meshsim-devices.csv"))
        return GW_FS_REG | GW_FS_SECRET;
    /* A reader of a doorbell could swallow wake-ups; a writer could spin
     * the consumer. Only the gateway's processes open them. */
    if (!strncmp(name, "bell-", 5))
        return GW_FS_FIFO | GW_FS_SECRET;
    if (ends_with(name, ".pid") || ends_with(name, ".lock"))
        return GW_FS_REG;
    /* Anything else (temporary files, an operator's devices.csv) only has
     * to be ours and not writable by others, and not a link. */
    return 0;
}

static int check_tree(const char *dir, bool in_lmdb, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        gw_errf(err, errlen, "opendir(%s): %s", dir, strerror(e));
        return -e;
    }
    int rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char path[PATH_MAX];
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= sizeof(path))
            continue;
        unsigned flags = gw_fsafe_entry_flags(de->d_name, in_lmdb);
        rc = gw_fsafe_check(path, flags, false, err, errlen);
        if (rc == -ENOENT) {
            /* Gone since readdir (a temporary file renamed into place). */
            rc = 0;
            continue;
        }
        if (!rc && !in_lmdb && (flags & GW_FS_DIR))
            rc = check_tree(path, true, err, errlen);
    }
    closedir(d);
    return rc;
}

int gw_fsafe_data_dir(struct gw_config *cfg, char *err, size_t errlen)
{
    if (!cfg->data_dir[0]) {
        gw_errf(err, errlen, "data_dir is empty");
        return GW_ECONFIG;
    }
    /* A directory that someone else created is refused below, not used. */
    int rc = gw_fsafe_mkdir_p(cfg->data_dir);
    if (rc) {
        gw_errf(err, errlen, "data_dir %s: %s", cfg->data_dir, strerror(-rc));
        return rc;
    }
    char real[PATH_MAX];
    if (!realpath(cfg->data_dir, real)) {
        int e = errno;
        gw_errf(err, errlen, "data_dir %s: %s", cfg->data_dir, strerror(e));
        return -e;
    }
    if (strlen(real) >= sizeof(cfg->data_dir)) {
        gw_errf(err, errlen, "data_dir %s: its real path %s is too long", cfg->data_dir, real);
        return GW_ECONFIG;
    }
    if ((rc = gw_fsafe_ancestors(real, err, errlen)) != 0)
        return rc;
    if ((rc = gw_fsafe_check(real, GW_FS_DIR, false, err, errlen)) != 0)
        return rc;
    if ((rc = check_tree(real, false, err, errlen)) != 0)
        return rc;
    memcpy(cfg->data_dir, real, strlen(real) + 1);
    return 0;
}

static int check_input(const char *what, const char *path, unsigned flags, char *err, size_t errlen)
{
    char real[PATH_MAX];
    if (!realpath(path, real)) {
        int e = errno;
        gw_errf(err, errlen, "%s %s: %s", what, path, strerror(e));
        return -e;
    }
    int rc = gw_fsafe_ancestors(real, err, errlen);
    if (!rc)
        rc = gw_fsafe_check(real, flags | GW_FS_REG | GW_FS_ROOT_OK, false, err, errlen);
    if (rc == GW_EUNSAFE) {
        char inner[PATH_MAX + 300];
        gw_errf(inner, sizeof(inner), "%s: %s", what, err);
        gw_errf(err, errlen, "%s", inner);
        return rc;
    }
    if (!rc && access(real, R_OK) != 0) {
        int e = errno;
        gw_errf(err, errlen, "%s %s: %s", what, path, strerror(e));
        return -e;
    }
    return rc;
}

int gw_fsafe_inputs(const struct gw_config *cfg, char *err, size_t errlen)
{
    int rc = 0;
    if (cfg->devices_file[0])
        rc = check_input("devices_file", cfg->devices_file, GW_FS_SECRET | GW_FS_GROUP_READ_OK, err,
                         errlen);
    if (!rc && cfg->jwt_key_file[0]) {
        /* An HS256 key is the secret itself; a PEM public key is not secret. */
        unsigned f = !strcmp(cfg->jwt_alg, "HS256") ? GW_FS_SECRET | GW_FS_GROUP_READ_OK : 0;
        rc = check_input("jwt_key_file", cfg->jwt_key_file, f, err, errlen);
    }
    return rc;
}

int gw_fsafe_write_atomic(const char *final, const void *data, size_t len, mode_t mode)
{
    char tmp[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d", final, (int)getpid()) >= sizeof(tmp))
        return -ENAMETOOLONG;
    /* A leftover of an earlier process with our pid; O_EXCL refuses
     * anything still there (a link planted in between included). */
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    const uint8_t *p = data;
    size_t off = 0;
    int e = 0;
    for (int tries = 0; off < len && tries < 64; tries++) {
        ssize_t w = write(fd, p + off, len - off);
        if (w < 0 && errno != EINTR) {
            e = errno;
            break;
        }
        if (w > 0)
            off += (size_t)w;
    }
    if (!e && off != len)
        e = EIO;
    if (close(fd) != 0 && !e)
        e = errno;
    /* rename(2) replaces a symbolic link at `final` itself, never its target. */
    if (!e && rename(tmp, final) != 0)
        e = errno;
    if (e) {
        unlink(tmp);
        return -e;
    }
    return 0;
}

int gw_fsafe_open(const char *path, int oflags, unsigned flags, char *err, size_t errlen)
{
    int fd = open(path, oflags | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP)
            gw_errf(err, errlen, "%s is a symbolic link (refused: it could point anywhere)", path);
        else
            gw_errf(err, errlen, "open(%s): %s", path, strerror(e));
        return e == ELOOP ? GW_EUNSAFE : -e;
    }
    int rc = gw_fsafe_check_fd(fd, path, flags, err, errlen);
    if (rc) {
        close(fd);
        return rc;
    }
    return fd;
}
