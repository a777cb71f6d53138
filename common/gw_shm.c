/* SPDX-License-Identifier: MIT */
/* gw_shm.c - creating, formatting and attaching the shared segment, and locating rings, bells
 * and slots in it (see gw_shm.h). */
#include "gw_shm.h"
#include "gw_error.h"
#include "gw_log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static size_t align_up(size_t v, size_t a)
{
    return (v + a - 1) & ~(a - 1);
}

static void shm_name(const struct gw_config *cfg, char *buf, size_t len)
{
    snprintf(buf, len, "/coapgw-%s", cfg->instance);
}

/* The layout a configuration asks for; compared field by field on attach. */
static void layout(const struct gw_config *cfg, struct gw_shm_hdr *h)
{
    memset(h, 0, sizeof(*h));
    h->magic = GW_SHM_MAGIC;
    h->version = GW_SHM_VERSION;
    h->hdr_size = sizeof(*h);
    h->max_frontends = (uint32_t)cfg->max_frontends;
    h->ring_slots = (uint32_t)cfg->ring_slots;
    h->slot_size = GW_RING_SLOT;
    h->nrings = 2 * h->max_frontends + 2;
    h->max_txn = (uint32_t)cfg->max_txn;
    h->txn_slot = GW_TXN_SLOT;
    h->nbells = 2 + h->max_frontends;
    h->nprocs = GW_PROC_FRONTEND0 + h->max_frontends;
    h->proc_slot_size = sizeof(struct gw_proc_slot);
    h->stats_count = GW_STAT_COUNT;
    size_t off = align_up(sizeof(*h), 4096);
    h->rings_off = off;
    h->ring_stride = align_up(gw_ring_bytes(h->ring_slots, h->slot_size), 4096);
    off += h->nrings * h->ring_stride;
    h->bells_off = off;
    off = align_up(off + h->nbells * sizeof(struct gw_bell), 4096);
    h->procs_off = off;
    off = align_up(off + h->nprocs * sizeof(struct gw_proc_slot), 4096);
    h->txn_off = off;
    off = align_up(off + (size_t)h->max_txn * h->txn_slot, 4096);
    /* The shared cache mirrors the scheduler's; none when that is off. */
    if (cfg->cache_max_entries > 0 && cfg->cache_max_bytes > 0 && cfg->cache_shm_entries > 0) {
        uint32_t n = 1;
        while ((uint64_t)n * 2 <= (uint64_t)cfg->cache_shm_entries)
            n *= 2;
        h->rcache_slots = n;
        h->rcache_slot_size = (uint32_t)cfg->cache_shm_slot_bytes & ~63u;
    }
    h->rcache_off = off;
    off = align_up(off + gw_rcache_bytes(h->rcache_slots, h->rcache_slot_size), 4096);
    h->seg_size = off;
}

static int check(const struct gw_shm_hdr *want, const struct gw_shm_hdr *have, char *err,
                 size_t errlen)
{
#define CHK(f)                                                                                                  \
    if (want->f != have->f) {                                                                                   \
        snprintf(                                                                                               \
            err, errlen,                                                                                        \
            "shared memory layout mismatch: %s is %llu, this process expects %llu "                             \
            "(another gateway version or configuration holds the instance; stop it or use another `instance`)", \
            #f, (unsigned long long)have->f, (unsigned long long)want->f);                                      \
        return GW_ELAYOUT;                                                                                      \
    }
    /* seg_size is derived from the fields after it, so it is compared last:
     * the message then names the value that actually differs (ring_slots...). */
    /* clang-format off: a list of macro statements, one field a line */
    CHK(magic)
    CHK(version)
    CHK(hdr_size)
    CHK(max_frontends)
    CHK(ring_slots)
    CHK(slot_size)
    CHK(nrings)
    CHK(max_txn)
    CHK(txn_slot)
    CHK(nbells)
    CHK(nprocs)
    CHK(proc_slot_size)
    CHK(stats_count)
    CHK(rcache_slots)
    CHK(rcache_slot_size)
    CHK(seg_size)
    /* clang-format on */
#undef CHK
    return 0;
}

static void format(struct gw_shm *shm, const struct gw_shm_hdr *want)
{
    struct gw_shm_hdr *h = shm->hdr;
    memcpy(h, want, sizeof(*h));
    for (uint32_t i = 0; i < h->nrings; i++) {
        uint32_t bell;
        if (i < h->max_frontends || i == 2 * h->max_frontends + 1)
            bell = GW_BELL_SCHEDULER;
        else if (i < 2 * h->max_frontends)
            bell = GW_BELL_FRONTEND0 + (i - h->max_frontends);
        else
            bell = GW_BELL_MESHIO;
        gw_ring_format(gw_shm_ring(shm, i), h->ring_slots, h->slot_size, bell);
    }
    /* The frontends' leases (fe_guard.h): robust, so a holder's death is
     * seen by the others; process-shared, as the segment is. */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    for (uint32_t i = 0; i < h->max_frontends; i++)
        pthread_mutex_init(&gw_shm_proc(shm, GW_PROC_FRONTEND0 + i)->fe_lease.m, &ma);
    pthread_mutexattr_destroy(&ma);
    uint64_t boot;
    if (getrandom(&boot, sizeof(boot), 0) != sizeof(boot))
        boot = (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL);
    atomic_store(&h->boot_id, boot);
}

/* Where shm_open(3) keeps the object: /dev/shm on Linux (glibc). */
static void shm_path(const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "/dev/shm%s", name);
}

/* S9.2: a segment that another user created, or that others may open, is
 * refused: its creator could read every ring and push records that look
 * like our frontends' (requests with no session), or watch answers sealed
 * for devices. Only an object of our own user with mode 0600 is used. */
static int shm_judge(const struct stat *st, const char *name, char *err, size_t errlen)
{
    char path[128];
    shm_path(name, path, sizeof(path));
    if (S_ISLNK(st->st_mode) || !S_ISREG(st->st_mode)) {
        snprintf(err, errlen,
                 "shared memory %s is not a plain shared-memory object; refusing to use it", path);
        return GW_EUNSAFE;
    }
    if (st->st_uid != geteuid()) {
        snprintf(
            err, errlen,
            "shared memory %s is owned by uid %u, not by uid %u (the gateway's user): another "
            "user created it; refusing to use it (remove it, as root, after looking at who made it)",
            path, (unsigned)st->st_uid, (unsigned)geteuid());
        return GW_EUNSAFE;
    }
    if ((st->st_mode & 07777) != 0600) {
        snprintf(
            err, errlen,
            "shared memory %s has mode %04o, not 0600: others could open it; refusing to use it "
            "(stop the gateway, remove it and start again)",
            path, (unsigned)(st->st_mode & 07777));
        return GW_EUNSAFE;
    }
    return 0;
}

int gw_shm_check(const struct gw_config *cfg, char *err, size_t errlen)
{
    char name[96], path[128];
    shm_name(cfg, name, sizeof(name));
    shm_path(name, path, sizeof(path));
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -errno;
    return shm_judge(&st, name, err, errlen);
}

/* Opens the segment, creating it (O_EXCL, 0600) when it does not exist. */
static int shm_open_safe(const char *name, bool fresh, char *err, size_t errlen)
{
    struct stat st;
    char path[128];
    shm_path(name, path, sizeof(path));
    if (fresh) {
        /* Unlink only our own object: one that someone else planted is
         * refused (and left for the operator to look at). */
        if (lstat(path, &st) == 0) {
            int rc = shm_judge(&st, name, err, errlen);
            if (rc)
                return rc;
            shm_unlink(name);
        }
    }
    for (int attempt = 0; attempt < 4; attempt++) {
        if (!fresh || attempt > 0) {
            int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
            if (fd >= 0) {
                int rc = fstat(fd, &st) == 0 ? shm_judge(&st, name, err, errlen) : -errno;
                if (rc) {
                    if (rc != GW_EUNSAFE)
                        snprintf(err, errlen, "fstat(%s): %s", path, strerror(-rc));
                    close(fd);
                    return rc;
                }
                return fd;
            }
            if (errno == EACCES && lstat(path, &st) == 0 &&
                shm_judge(&st, name, err, errlen) == GW_EUNSAFE)
                return GW_EUNSAFE;
            if (errno != ENOENT) {
                int e = errno;
                snprintf(err, errlen, "shm_open(%s): %s", name, strerror(e));
                return -e;
            }
        }
        int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            /* The umask may have taken bits away; attachers want exactly 0600. */
            if (fchmod(fd, 0600) != 0) {
                int e = errno;
                snprintf(err, errlen, "fchmod(%s): %s", path, strerror(e));
                close(fd);
                return -e;
            }
            return fd;
        }
        if (errno != EEXIST) {
            int e = errno;
            snprintf(err, errlen, "shm_open(%s, O_CREAT | O_EXCL): %s", name, strerror(e));
            return -e;
        }
        /* Created by someone else in between: attach to it, after the checks. */
    }
    snprintf(err, errlen, "shm_open(%s): created and removed repeatedly by someone else; refusing",
             name);
    return GW_EUNSAFE;
}

int gw_shm_open(const struct gw_config *cfg, bool fresh, struct gw_shm *shm, char *err,
                size_t errlen)
{
    memset(shm, 0, sizeof(*shm));
    shm->fd = -1;
    shm_name(cfg, shm->name, sizeof(shm->name));
    struct gw_shm_hdr want;
    layout(cfg, &want);
    int fd = shm_open_safe(shm->name, fresh, err, errlen);
    if (fd < 0)
        return fd;
    /* Whoever holds the lock while the object is empty formats it; everyone
     * else waits on the lock and then checks the header. */
    if (flock(fd, LOCK_EX) != 0) {
        int e = errno;
        snprintf(err, errlen, "flock(%s): %s", shm->name, strerror(e));
        close(fd);
        return -e;
    }
    struct stat st;
    int rc = 0;
    bool create = false;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        snprintf(err, errlen, "fstat(%s): %s", shm->name, strerror(-rc));
        goto out;
    }
    if (st.st_size == 0) {
        if (ftruncate(fd, (off_t)want.seg_size) != 0) {
            rc = -errno;
            snprintf(err, errlen, "ftruncate(%s, %llu): %s", shm->name,
                     (unsigned long long)want.seg_size, strerror(-rc));
            goto out;
        }
        create = true;
    } else if ((uint64_t)st.st_size != want.seg_size) {
        /* Name the differing header field when the object has a header. */
        struct gw_shm_hdr have;
        if (pread(fd, &have, sizeof(have), 0) == (ssize_t)sizeof(have) &&
            (rc = check(&want, &have, err, errlen)) != 0)
            goto out;
        snprintf(err, errlen,
                 "shared memory layout mismatch: %s has %lld bytes, this process expects %llu "
                 "(another configuration holds the instance; stop it or use another `instance`)",
                 shm->name, (long long)st.st_size, (unsigned long long)want.seg_size);
        rc = GW_ELAYOUT;
        goto out;
    }
    void *p = mmap(NULL, want.seg_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        rc = -errno;
        snprintf(err, errlen, "mmap(%s): %s", shm->name, strerror(-rc));
        goto out;
    }
    shm->base = p;
    shm->hdr = p;
    shm->size = want.seg_size;
    if (create)
        format(shm, &want);
    else if ((rc = check(&want, shm->hdr, err, errlen)) != 0) {
        munmap(p, want.seg_size);
        shm->base = NULL;
        shm->hdr = NULL;
    }
out:
    flock(fd, LOCK_UN);
    if (rc) {
        close(fd);
        return rc;
    }
    shm->fd = fd;
    return 0;
}

void gw_shm_close(struct gw_shm *shm)
{
    if (shm->hdr)
        gw_log_detach_level(&shm->hdr->log_level);
    if (shm->base)
        munmap(shm->base, shm->size);
    if (shm->fd >= 0)
        close(shm->fd);
    shm->base = NULL;
    shm->hdr = NULL;
    shm->fd = -1;
}

int gw_shm_unlink(const struct gw_config *cfg)
{
    char name[96];
    shm_name(cfg, name, sizeof(name));
    return shm_unlink(name) == 0 ? 0 : -errno;
}

struct gw_ring *gw_shm_ring(const struct gw_shm *shm, uint32_t idx)
{
    return (struct gw_ring *)(shm->base + shm->hdr->rings_off +
                              (size_t)idx * shm->hdr->ring_stride);
}

struct gw_bell *gw_shm_bell(const struct gw_shm *shm, uint32_t idx)
{
    return (struct gw_bell *)(shm->base + shm->hdr->bells_off) + idx;
}

struct gw_proc_slot *gw_shm_proc(const struct gw_shm *shm, uint32_t idx)
{
    return (struct gw_proc_slot *)(shm->base + shm->hdr->procs_off) + idx;
}

void *gw_shm_txn(const struct gw_shm *shm, uint32_t idx)
{
    return shm->base + shm->hdr->txn_off + (size_t)idx * shm->hdr->txn_slot;
}

void gw_shm_rcache(const struct gw_shm *shm, struct gw_rcache *t)
{
    const struct gw_shm_hdr *h = shm->hdr;
    gw_rcache_attach(t, h->rcache_slots ? shm->base + h->rcache_off : NULL, h->rcache_slots,
                     h->rcache_slot_size);
}

void gw_bell_path(const struct gw_config *cfg, uint32_t bell, char *buf, size_t len)
{
    if (bell == GW_BELL_SCHEDULER)
        snprintf(buf, len, "%s/bell-scheduler", cfg->data_dir);
    else if (bell == GW_BELL_MESHIO)
        snprintf(buf, len, "%s/bell-meshio", cfg->data_dir);
    else
        snprintf(buf, len, "%s/bell-frontend-%u", cfg->data_dir, bell - GW_BELL_FRONTEND0);
}

bool gw_pid_alive(uint32_t pid)
{
    return pid != 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}
