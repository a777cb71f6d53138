/* SPDX-License-Identifier: MIT */
/* sup_cli.c - short-lived commands: status, metrics, devices import/list.
 * status and metrics only attach to the shared segment (never create it);
 * the devices commands open LMDB, which is fine in a process that never forks. */
#include "supervisor.h"
#include "gw_addr.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_nodes.h"
#include "gw_registry.h"
#include "gw_store.h"
#include "sup_http.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Attaches to a running instance's segment without ever creating one. */
static int attach(const struct gw_config *cfg, struct gw_shm *shm)
{
    if (!sup_shm_exists(cfg)) {
        fprintf(stderr, "coapgw instance %s is not running\n", cfg->instance);
        return 1;
    }
    char err[512];
    int rc = gw_shm_open(cfg, false, shm, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "coapgw: instance %s: %s\n", cfg->instance, err);
        return 1;
    }
    return 0;
}

/* A snapshot of a running instance for command `cmd`, or NULL once the
 * reason is printed. */
static struct sup_view *cli_snapshot(const struct gw_config *cfg, const char *cmd)
{
    struct gw_shm shm;
    if (attach(cfg, &shm) != 0)
        return NULL;
    struct sup_view *v = malloc(sizeof(*v));
    if (v)
        sup_view_snapshot(&shm, cfg, v);
    else
        fprintf(stderr, "coapgw %s: out of memory\n", cmd);
    gw_shm_close(&shm);
    return v;
}

int sup_cmd_status(const struct gw_config *cfg)
{
    struct sup_view *v = cli_snapshot(cfg, "status");
    if (!v)
        return 1;
    bool sup_up = v->nprocs > 0 && v->procs[0].proc == GW_PROC_SUPERVISOR && v->procs[0].up;
    bool ever = v->nprocs > 0 && v->procs[0].started_wall != 0;
    char *table = sup_status_render(v);
    free(v);
    if (!table) {
        fprintf(stderr, "coapgw status: out of memory\n");
        return 1;
    }
    printf("coapgw instance %s (data_dir %s)\n%s", cfg->instance, cfg->data_dir, table);
    free(table);
    if (!sup_up)
        printf("%s\n",
               ever ? "the supervisor is not running: processes above are not restarted"
                    : "no supervisor has run for this instance (roles started on their own?)");
    fflush(stdout);
    return sup_up ? 0 : 1;
}

int sup_cmd_metrics(const struct gw_config *cfg)
{
    struct sup_view *v = cli_snapshot(cfg, "metrics");
    if (!v)
        return 1;
    size_t len;
    char *text = sup_metrics_render(v, &len);
    free(v);
    if (!text) {
        fprintf(stderr, "coapgw metrics: out of memory\n");
        return 1;
    }
    size_t w = fwrite(text, 1, len, stdout);
    free(text);
    return w == len && fflush(stdout) == 0 ? 0 : 1;
}

/* ---- metrics --serve: the supervisor's HTTP endpoint without a supervisor ---- */

/* Roles started on their own (one container each) have no supervisor, and
 * the supervisor is what serves metrics_listen. `metrics --serve` serves the
 * same /metrics, /healthz and /readyz from the shared segment, attaching
 * for each request, so that it outlives restarts of every role. */
struct serve_ctx {
    const struct gw_config *cfg;
    uv_signal_t sigterm, sigint;
    struct sup_http *http;
};

static char *serve_text(const char *t, int status, int *st, size_t *len)
{
    *st = status;
    *len = strlen(t);
    return strdup(t);
}

/* A snapshot of the running instance, or NULL with why filled in. */
static struct sup_view *serve_snapshot(const struct gw_config *cfg, char *why, size_t whylen)
{
    if (!sup_shm_exists(cfg)) {
        snprintf(why, whylen, "instance %s is not running (no shared segment)", cfg->instance);
        return NULL;
    }
    struct gw_shm shm;
    if (gw_shm_open(cfg, false, &shm, why, whylen) != 0)
        return NULL;
    struct sup_view *v = malloc(sizeof(*v));
    if (v)
        sup_view_snapshot(&shm, cfg, v);
    else
        snprintf(why, whylen, "out of memory");
    gw_shm_close(&shm);
    return v;
}

/* /readyz: the scheduler (started up), meshio and every configured frontend
 * run, and the client port answers a CoAP ping. */
static bool serve_ready(const struct gw_config *cfg, const struct sup_view *v, char *why,
                        size_t len)
{
    uint32_t want = 0;
    for (uint32_t i = 0; i < v->nprocs; i++) {
        const struct sup_proc_view *p = &v->procs[i];
        if (p->proc == GW_PROC_SUPERVISOR || p->proc == GW_PROC_MESHSIM)
            continue;
        if (p->proc >= GW_PROC_FRONTEND0 && p->proc - GW_PROC_FRONTEND0 >= (uint32_t)cfg->frontends)
            continue;
        want++;
        if (!p->up) {
            char name[32];
            sup_proc_name(p->proc, name, sizeof(name));
            snprintf(why, len, "%s is not running", name);
            return false;
        }
    }
    if (want < 2 + (uint32_t)cfg->frontends) {
        snprintf(why, len, "not every role has started yet");
        return false;
    }
    int rc = sup_probe_coap(cfg->listen, SUP_READY_PROBE_MS);
    if (rc) {
        snprintf(why, len, "client port %s does not answer a CoAP ping: %s", cfg->listen,
                 gw_strerror(rc));
        return false;
    }
    return true;
}

static char *serve_handler(void *ctx, const char *path, int *status, const char **ctype,
                           size_t *len)
{
    struct serve_ctx *sc = ctx;
    if (!strcmp(path, "/healthz"))
        return serve_text("ok\n", 200, status, len); /* this process answers */
    bool metrics = !strcmp(path, "/metrics");
    if (!metrics && strcmp(path, "/readyz"))
        return serve_text("not found: this endpoint serves /metrics, /healthz and /readyz\n", 404,
                          status, len);
    char why[400], text[440];
    struct sup_view *v = serve_snapshot(sc->cfg, why, sizeof(why));
    if (v && metrics) {
        char *body = sup_metrics_render(v, len);
        free(v);
        *status = 200;
        *ctype = "text/plain; version=0.0.4; charset=utf-8";
        return body;
    }
    bool ok = v && serve_ready(sc->cfg, v, why, sizeof(why));
    free(v);
    if (ok)
        return serve_text("ready\n", 200, status, len);
    snprintf(text, sizeof(text), "%s: %s\n", metrics ? "no metrics" : "not ready", why);
    return serve_text(text, 503, status, len);
}

static void serve_on_signal(uv_signal_t *h, int signum)
{
    struct serve_ctx *sc = h->data;
    gw_log_info(GW_LOG_SYS, "signal %d: stopping", signum);
    sup_http_close(sc->http);
    sc->http = NULL;
    uv_close((uv_handle_t *)&sc->sigterm, NULL);
    uv_close((uv_handle_t *)&sc->sigint, NULL);
}

int sup_cmd_metrics_serve(const struct gw_config *cfg)
{
    if (!cfg->metrics_listen[0]) {
        fprintf(
            stderr,
            "coapgw metrics --serve: metrics_listen is empty; set it (ADDRESS:PORT) to serve on\n");
        return GW_EXIT_FATAL;
    }
    signal(SIGPIPE, SIG_IGN);
    struct serve_ctx sc = { .cfg = cfg };
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        return 1;
    char err[512];
    int rc =
        sup_http_start(&loop, cfg->metrics_listen, serve_handler, &sc, &sc.http, err, sizeof(err));
    if (rc) {
        gw_log_err(GW_LOG_SYS, "%s", err);
        uv_loop_close(&loop);
        return rc == -EINVAL ? GW_EXIT_FATAL : 1;
    }
    uv_signal_init(&loop, &sc.sigterm);
    uv_signal_init(&loop, &sc.sigint);
    sc.sigterm.data = sc.sigint.data = &sc;
    uv_signal_start(&sc.sigterm, serve_on_signal, SIGTERM);
    uv_signal_start(&sc.sigint, serve_on_signal, SIGINT);
    gw_log_info(GW_LOG_SYS, "metrics of instance %s on http://%s/metrics (/healthz, /readyz)",
                cfg->instance, cfg->metrics_listen);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 0;
}

/* Opens the instance's LMDB store for command `cmd`; 0, or 1 once the
 * reason is printed. */
static int cli_store_open(const struct gw_config *cfg, const char *cmd, struct gw_store *st)
{
    int rc = gw_store_open(st, cfg->data_dir, (size_t)cfg->lmdb_map_mb);
    if (rc)
        fprintf(stderr, "coapgw %s: opening the store in %s/state: %s\n", cmd, cfg->data_dir,
                gw_strerror(rc));
    return rc ? 1 : 0;
}

int sup_cmd_devices_import(const struct gw_config *cfg, const char *file, bool skip_bad)
{
    /* S7.2: one source of truth. A SIGHUP (or a restarted scheduler)
     * reloads devices_file and would silently undo an import. */
    if (cfg->devices_file[0] || gw_config_embedded_sim(cfg)) {
        fprintf(
            stderr,
            "coapgw devices import: %s is the device registry's source here; edit it and send "
            "SIGHUP to the gateway (systemctl reload coapgw). `devices import` is for gateways without "
            "devices_file and with meshsim = 0. Nothing imported\n",
            cfg->devices_file[0] ? cfg->devices_file : "the embedded simulator's devices file");
        return 1;
    }
    struct gw_store st;
    if (cli_store_open(cfg, "devices import", &st) != 0)
        return 1;
    int bad = 0;
    int n = gw_registry_load(&st, file, skip_bad, &bad);
    gw_store_close(&st);
    if (n == GW_EBADMSG && bad > 0) {
        fprintf(stderr,
                "coapgw devices import: %s: %d bad line%s (listed above); nothing imported "
                "(--skip-bad loads the good lines)\n",
                file, bad, bad == 1 ? "" : "s");
        return 1;
    }
    if (n == GW_EBADMSG) {
        fprintf(stderr,
                "coapgw devices import: %s: no header line first (expected "
                "mac,address,type,key[,plain_port[,secure_port]]); nothing imported\n",
                file);
        return 1;
    }
    if (n < 0 && n > -4096) {
        fprintf(stderr, "coapgw devices import: cannot read %s: %s; nothing imported\n", file,
                strerror(-n));
        return 1;
    }
    if (n < 0) {
        fprintf(stderr, "coapgw devices import: %s: %s; nothing imported\n", file, gw_strerror(n));
        return 1;
    }
    printf("%d devices imported, %d bad lines skipped\n", n, bad);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int list_one(void *ctx, const struct gw_device *d)
{
    const struct gw_config *cfg = ctx;
    char mac[17], addr[INET6_ADDRSTRLEN];
    gw_mac_str(d->mac, mac);
    if (!inet_ntop(d->family == 6 ? AF_INET6 : AF_INET, d->addr, addr, sizeof(addr)))
        snprintf(addr, sizeof(addr), "?");
    /* owner: the node id that alone speaks to this device (S10.4). */
    printf("%s,%s,%s,%u,%u,%u\n", mac, addr, d->type == GW_DEV_MILLI ? "milli" : "normal",
           d->plain_port, d->secure_port, gw_nodes_owner(d->mac, (uint32_t)cfg->node_count));
    return 0;
}

int sup_cmd_devices_list(const struct gw_config *cfg)
{
    struct gw_store st;
    if (cli_store_open(cfg, "devices list", &st) != 0)
        return 1;
    printf("mac,address,type,plain_port,secure_port,owner\n");
    int rc = gw_registry_foreach(&st, list_one, (void *)cfg);
    gw_store_close(&st);
    if (rc && rc != GW_ENOTFOUND) {
        fprintf(stderr, "coapgw devices list: %s\n", gw_strerror(rc));
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

int sup_cmd_loglevel(const struct gw_config *cfg, const char *level)
{
    struct gw_shm shm;
    int rc = attach(cfg, &shm);
    if (rc)
        return rc;
    uint32_t word = atomic_load(&shm.hdr->log_level);
    int own = gw_log_level_parse(cfg->log_level);
    enum gw_log_level cur = word >= 1 && word <= GW_LOG_DEBUG + 1 ? (enum gw_log_level)(word - 1)
                            : own < 0                             ? GW_LOG_INFO
                                                                  : (enum gw_log_level)own;
    if (!level) {
        printf("instance %s: log level %s%s\n", cfg->instance, gw_log_level_name(cur),
               word ? "" : " (log_level from the configuration)");
    } else {
        enum gw_log_level want = (enum gw_log_level)gw_log_level_parse(level);
        atomic_store(&shm.hdr->log_level, (uint32_t)want + 1);
        printf("instance %s: log level %s (was %s)\n", cfg->instance, gw_log_level_name(want),
               gw_log_level_name(cur));
    }
    gw_shm_close(&shm);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- coapgw cleanup ---- */

/* True when pid runs and is one of ours (a role renames itself coapgw-*, the
 * supervisor keeps the executable's name): a stale pid reused by another
 * program does not keep the leftovers. */
static bool ours_alive(uint32_t pid)
{
    if (!pid || !gw_pid_alive(pid))
        return false;
    char path[64], comm[32] = "";
    snprintf(path, sizeof(path), "/proc/%u/comm", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true; /* cannot tell: assume it runs */
    size_t n = fread(comm, 1, sizeof(comm) - 1, f);
    fclose(f);
    comm[n] = '\0';
    return !strncmp(comm, "coapgw", 6) || !strncmp(comm, "exe", 3);
}

/* Is a lock file held? Every role started on its own holds <role>.lock and
 * the supervisor holds supervisor.pid for as long as it lives. */
static bool lock_held(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return false;
    bool held = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd);
    return held;
}

static uint32_t pidfile_pid(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    unsigned long v = 0;
    if (fscanf(f, "%lu", &v) != 1)
        v = 0;
    fclose(f);
    return (uint32_t)v;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

int sup_cmd_cleanup(const struct gw_config *cfg)
{
    /* 1. Anything of the instance still running? Then nothing is touched. */
    char why[GW_CFG_STR + 400] = "";
    DIR *d = opendir(cfg->data_dir);
    struct dirent *e;
    char path[GW_CFG_STR + 300];
    for (int i = 0; d && (e = readdir(d)) != NULL && i < 100000 && !why[0]; i++) {
        snprintf(path, sizeof(path), "%s/%s", cfg->data_dir, e->d_name);
        if ((ends_with(e->d_name, ".lock") || !strcmp(e->d_name, "supervisor.pid")) &&
            lock_held(path))
            snprintf(why, sizeof(why), "%s is locked by a running process", path);
        else if (ends_with(e->d_name, ".pid") && ours_alive(pidfile_pid(path)))
            snprintf(why, sizeof(why), "%s names pid %u, which runs", path, pidfile_pid(path));
    }
    if (d)
        closedir(d);
    if (!why[0] && sup_shm_exists(cfg)) {
        char name[96];
        snprintf(name, sizeof(name), "/coapgw-%s", cfg->instance);
        int fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
        struct gw_shm_hdr h;
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && pread(fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
            h.magic == GW_SHM_MAGIC && h.nprocs <= SUP_MAX_PROCS &&
            h.procs_off + (uint64_t)h.nprocs * h.proc_slot_size <= (uint64_t)st.st_size) {
            for (uint32_t p = 0; p < h.nprocs && !why[0]; p++) {
                uint32_t pid = 0;
                if (pread(fd, &pid, sizeof(pid),
                          (off_t)(h.procs_off + (uint64_t)p * h.proc_slot_size)) ==
                        (ssize_t)sizeof(pid) &&
                    ours_alive(pid)) {
                    char role[32];
                    sup_proc_name(p, role, sizeof(role));
                    snprintf(why, sizeof(why), "%s (pid %u) is attached to /dev/shm%s", role, pid,
                             name);
                }
            }
        }
        if (fd >= 0)
            close(fd);
    }
    if (why[0]) {
        fprintf(stderr,
                "coapgw cleanup: instance %s is running (%s); stop it first. Nothing removed.\n",
                cfg->instance, why);
        return 1;
    }
    /* 2. Remove the segment, doorbells, pid and lock files; keep LMDB state,
     * keys and the generated simulator file. */
    int removed = 0, failed = 0;
    if (sup_shm_exists(cfg)) {
        int rc = gw_shm_unlink(cfg);
        if (rc == 0) {
            printf("removed /dev/shm/coapgw-%s\n", cfg->instance);
            removed++;
        } else {
            fprintf(stderr, "coapgw cleanup: shm_unlink(/coapgw-%s): %s\n", cfg->instance,
                    strerror(-rc));
            failed++;
        }
    }
    d = opendir(cfg->data_dir);
    for (int i = 0; d && (e = readdir(d)) != NULL && i < 100000; i++) {
        bool bell = !strncmp(e->d_name, "bell-", 5);
        if (!bell && !ends_with(e->d_name, ".pid") && !ends_with(e->d_name, ".lock"))
            continue;
        snprintf(path, sizeof(path), "%s/%s", cfg->data_dir, e->d_name);
        struct stat st;
        /* Only what the gateway creates there: FIFOs for bells, regular files otherwise. */
        if (lstat(path, &st) != 0 || (bell ? !S_ISFIFO(st.st_mode) : !S_ISREG(st.st_mode)))
            continue;
        if (unlink(path) == 0) {
            printf("removed %s\n", path);
            removed++;
        } else {
            fprintf(stderr, "coapgw cleanup: unlink(%s): %s\n", path, strerror(errno));
            failed++;
        }
    }
    if (d)
        closedir(d);
    if (!removed && !failed)
        printf("instance %s: nothing to clean up\n", cfg->instance);
    return failed ? 1 : fflush(stdout) == 0 ? 0 : 1;
}
