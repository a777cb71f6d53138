/* SPDX-License-Identifier: MIT */
/* sup_util.c - the supervisor's helpers: back-off, exit wording, names, pid
 * files, argument vectors for children, ring release. No libuv, no globals. */
#include "supervisor.h"
#include "gw_error.h"
#include "gw_fsafe.h"

#include "gw_addr.h"
#include "gw_clock.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

uint64_t sup_backoff_next(struct sup_backoff *b, uint64_t ran_ms)
{
    if (ran_ms >= SUP_BACKOFF_RESET_MS)
        b->fails = 0;
    uint64_t d = SUP_BACKOFF_MIN_MS;
    for (uint32_t i = 0; i < b->fails && d < SUP_BACKOFF_MAX_MS; i++)
        d *= 2;
    if (d > SUP_BACKOFF_MAX_MS)
        d = SUP_BACKOFF_MAX_MS;
    /* Stop counting once at the cap so that the counter never wraps. */
    if (d < SUP_BACKOFF_MAX_MS)
        b->fails++;
    return d;
}

void sup_exit_describe(int st, char *buf, size_t len)
{
    if (WIFEXITED(st))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, len, "exited on signal %d%s", WTERMSIG(st),
                 WCOREDUMP(st) ? " (core dumped)" : "");
    else
        snprintf(buf, len, "changed state (wait status 0x%x)", (unsigned)st);
}

bool sup_exit_is_fatal(int st)
{
    return WIFEXITED(st) && WEXITSTATUS(st) == GW_EXIT_FATAL;
}

const char *sup_proc_role(uint32_t proc, int *index)
{
    if (index)
        *index = -1;
    switch (proc) {
    case GW_PROC_SUPERVISOR:
        return "supervisor";
    case GW_PROC_SCHEDULER:
        return "scheduler";
    case GW_PROC_MESHIO:
        return "meshio";
    case GW_PROC_MESHSIM:
        return "meshsim";
    default:
        if (index)
            *index = (int)(proc - GW_PROC_FRONTEND0);
        return "frontend";
    }
}

void sup_proc_name(uint32_t proc, char *buf, size_t len)
{
    int idx;
    const char *role = sup_proc_role(proc, &idx);
    if (idx >= 0)
        snprintf(buf, len, "%s-%d", role, idx);
    else
        snprintf(buf, len, "%s", role);
}

void sup_pidfile_path(const struct gw_config *cfg, uint32_t proc, char *buf, size_t len)
{
    char name[32];
    sup_proc_name(proc, name, sizeof(name));
    snprintf(buf, len, "%s/%s.pid", cfg->data_dir, name);
}

/* Appends s to out->buf and returns it, or NULL when it does not fit. */
static char *argv_add(struct sup_argv *out, size_t *used, int *n, const char *s)
{
    size_t l = strlen(s) + 1;
    if (*n >= (int)GW_ARRAY_LEN(out->argv) - 1 || l > sizeof(out->buf) - *used)
        return NULL;
    char *p = out->buf + *used;
    memcpy(p, s, l);
    *used += l;
    out->argv[(*n)++] = p;
    out->argv[*n] = NULL;
    return p;
}

int sup_child_argv(uint32_t proc, const char *config, const char *devices_file,
                   struct sup_argv *out)
{
    memset(out->argv, 0, sizeof(out->argv));
    size_t used = 0;
    int n = 0;
    int idx;
    const char *role = sup_proc_role(proc, &idx);
    bool ok = argv_add(out, &used, &n, "coapgw") && argv_add(out, &used, &n, role);
    if (proc == GW_PROC_MESHSIM) {
        ok = ok && argv_add(out, &used, &n, "--devices") &&
             argv_add(out, &used, &n, devices_file ? devices_file : "") &&
             argv_add(out, &used, &n, "--quiet");
        return ok ? 0 : -ENAMETOOLONG;
    }
    if (config && config[0])
        ok = ok && argv_add(out, &used, &n, "-c") && argv_add(out, &used, &n, config);
    if (idx >= 0) {
        char num[16];
        snprintf(num, sizeof(num), "%d", idx);
        ok = ok && argv_add(out, &used, &n, "-i") && argv_add(out, &used, &n, num);
    }
    return ok ? 0 : -ENAMETOOLONG;
}

int sup_pidfile_write(const char *path, uint32_t pid)
{
    char line[24];
    int n = snprintf(line, sizeof(line), "%u\n", pid);
    /* O_EXCL | O_NOFOLLOW temporary file, then rename: a symbolic link
     * planted at `path` is replaced, never followed (S9.2). */
    return gw_fsafe_write_atomic(path, line, (size_t)n, 0644);
}

void sup_pidfile_remove(const char *path, uint32_t pid)
{
    if (pid) {
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
            return;
        char buf[24];
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        char *end;
        unsigned long v = strtoul(buf, &end, 10);
        if (end == buf || v != pid)
            return;
    }
    unlink(path);
}

static void release(_Atomic uint32_t *owner, uint32_t pid)
{
    uint32_t want = pid;
    atomic_compare_exchange_strong(owner, &want, 0);
}

void sup_rings_release(const struct gw_shm *shm, uint32_t proc, uint32_t pid)
{
    uint32_t nfe = shm->hdr->max_frontends;
    switch (proc) {
    case GW_PROC_SCHEDULER:
        for (uint32_t i = 0; i < nfe; i++) {
            release(&gw_shm_ring(shm, gw_ring_fe_to_sch(i))->cons_pid, pid);
            release(&gw_shm_ring(shm, gw_ring_sch_to_fe(shm, i))->prod_pid, pid);
        }
        release(&gw_shm_ring(shm, gw_ring_sch_to_mesh(shm))->prod_pid, pid);
        release(&gw_shm_ring(shm, gw_ring_mesh_to_sch(shm))->cons_pid, pid);
        break;
    case GW_PROC_MESHIO:
        release(&gw_shm_ring(shm, gw_ring_sch_to_mesh(shm))->cons_pid, pid);
        release(&gw_shm_ring(shm, gw_ring_mesh_to_sch(shm))->prod_pid, pid);
        break;
    case GW_PROC_SUPERVISOR:
    case GW_PROC_MESHSIM:
        break;
    default: {
        uint32_t i = proc - GW_PROC_FRONTEND0;
        if (i < nfe) {
            release(&gw_shm_ring(shm, gw_ring_fe_to_sch(i))->prod_pid, pid);
            release(&gw_shm_ring(shm, gw_ring_sch_to_fe(shm, i))->cons_pid, pid);
        }
    }
    }
}

int sup_mkdir_p(const char *path)
{
    return gw_fsafe_mkdir_p(path);
}

bool sup_shm_exists(const struct gw_config *cfg)
{
    char path[128];
    snprintf(path, sizeof(path), "/dev/shm/coapgw-%s", cfg->instance);
    return access(path, F_OK) == 0;
}

int sup_listen_target(const char *listen, struct gw_ep *ep)
{
    if (gw_ep_parse(listen, 5683, ep) != 0)
        return -EINVAL;
    static const uint8_t zero[16];
    if (!memcmp(ep->addr, zero, sizeof(zero))) {
        if (ep->family == 4) {
            ep->addr[0] = 127;
            ep->addr[3] = 1;
        } else {
            ep->addr[15] = 1;
        }
    }
    return 0;
}

int sup_probe_coap(const char *listen, int timeout_ms)
{
    struct gw_ep ep;
    if (sup_listen_target(listen, &ep) != 0)
        return -EINVAL;
    struct sockaddr_storage ss;
    socklen_t sl = gw_ep_to_sa(&ep, &ss);
    int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    uint16_t mid = (uint16_t)(getpid() ^ (uint32_t)gw_mono_ms());
    uint8_t ping[4] = { 0x40, 0, (uint8_t)(mid >> 8), (uint8_t)mid };
    int rc = -ETIMEDOUT;
    if (connect(fd, (struct sockaddr *)&ss, sl) != 0 ||
        send(fd, ping, sizeof(ping), 0) != (ssize_t)sizeof(ping)) {
        rc = -errno;
    } else {
        uint64_t deadline = gw_mono_ms() + (uint64_t)timeout_ms;
        for (int i = 0; i < 8; i++) { /* bounded: stray datagrams cannot keep us here */
            uint64_t now = gw_mono_ms();
            if (now >= deadline)
                break;
            struct pollfd p = { .fd = fd, .events = POLLIN };
            int n = poll(&p, 1, (int)(deadline - now));
            if (n <= 0)
                break;
            uint8_t buf[64];
            ssize_t r = recv(fd, buf, sizeof(buf), 0);
            if (r < 0) {
                rc = -errno; /* ECONNREFUSED: nobody listens */
                break;
            }
            if (r >= 4 && buf[2] == ping[2] && buf[3] == ping[3]) {
                rc = 0;
                break;
            }
        }
    }
    close(fd);
    return rc;
}
