/* SPDX-License-Identifier: MIT */
/* supervisor.c - `coapgw run` (SPEC S1.1, S10.1, S10.2).
 *
 * One libuv loop, no threads. The supervisor creates the shared segment
 * fresh, spawns the children, reaps them on SIGCHLD, releases a dead child's
 * ring sides and respawns it with capped back-off, unless it exited with
 * GW_EXIT_FATAL (a configuration error), which stops the whole gateway.
 *
 * Children are started with posix_spawn(3) of /proc/self/exe and reaped with
 * our own waitpid(-1) on a uv_signal_t for SIGCHLD, not with uv_spawn():
 * libuv's exit callback reports only the exit status and the signal, and the
 * "exited on signal N (core dumped)" line (nginx ngx_process_get_status)
 * needs WCOREDUMP of the raw wait status. Nothing else in this process
 * creates children, so waitpid(-1) takes nobody else's. /proc/self/exe also
 * means that a child respawned after the binary was rebuilt still runs the
 * supervisor's own version, which matches the segment's layout.
 *
 * Each child gets its own process group, so a Ctrl-C in the terminal reaches
 * only the supervisor, which then stops the children in order: frontends
 * first (no new requests), then the simulator, meshio, and the scheduler last.
 * Children die with the supervisor (PR_SET_PDEATHSIG, set in main.c). */
#include "supervisor.h"
#include "sup_http.h"
#include "gw_addr.h"
#include "gw_clock.h"
#include "gw_devfile.h"
#include "gw_error.h"
#include "gw_fsafe.h"
#include "gw_log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

/* Stop order (reverse of the start order). */
enum { STAGE_FRONTENDS = 0, STAGE_MESHSIM, STAGE_MESHIO, STAGE_SCHEDULER, STAGE_COUNT };
enum sup_state { SUP_STARTING, SUP_RUNNING, SUP_STOPPING, SUP_DONE };

struct sup_ctx;

struct sup_child {
    struct sup_ctx *sup;
    uint32_t proc; /* GW_PROC_* */
    char name[24]; /* "scheduler", "frontend-0" */
    char pidfile[GW_CFG_STR + 32];
    pid_t pid; /* 0 while not running */
    uint64_t started_ms;
    uint32_t restarts;
    struct sup_backoff backoff;
    uv_timer_t timer; /* pending respawn */
    int stage;
};

struct sup_ctx {
    uv_loop_t loop;
    struct gw_config *cfg;
    const struct sup_run_opts *opts;
    char config_abs[PATH_MAX];
    struct gw_shm shm;
    bool shm_open;
    int pidfd;
    char pidfile[GW_CFG_STR + 32];
    struct sup_child kids[SUP_MAX_PROCS];
    uint32_t nkids;
    bool embedded_sim;
    uv_signal_t sig_term, sig_int, sig_hup, sig_chld, sig_usr2;
    uv_timer_t stop_timer;
    int stop_stage;
    bool killing;
    enum sup_state state;
    int exit_code;
    struct sup_http *http;
};

static struct sup_child *kid_by_proc(struct sup_ctx *s, uint32_t proc)
{
    for (uint32_t i = 0; i < s->nkids; i++)
        if (s->kids[i].proc == proc)
            return &s->kids[i];
    return NULL;
}

static struct sup_child *kid_by_pid(struct sup_ctx *s, pid_t pid)
{
    for (uint32_t i = 0; i < s->nkids; i++)
        if (s->kids[i].pid == pid)
            return &s->kids[i];
    return NULL;
}

static void stop_progress(struct sup_ctx *s);
static void on_stop_timeout(uv_timer_t *t);
static void sup_stop(struct sup_ctx *s, const char *why);

/* ---- spawning ----------------------------------------------------------------- */

static int kid_spawn(struct sup_child *k)
{
    struct sup_ctx *s = k->sup;
    struct sup_argv av;
    int rc =
        sup_child_argv(k->proc, s->config_abs[0] ? s->config_abs : NULL, s->cfg->devices_file, &av);
    if (rc) {
        gw_log_err(GW_LOG_SYS, "%s: command line too long", k->name);
        return rc;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    if ((rc = posix_spawn_file_actions_init(&fa)) != 0)
        return -rc;
    if ((rc = posix_spawnattr_init(&at)) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return -rc;
    }
    /* stdin from /dev/null; stdout/stderr shared with the supervisor, so
     * every role's log lines land where the supervisor's do. The signal
     * mask is emptied and every disposition reset (SIGPIPE is ignored here). */
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    rc = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    if (!rc)
        rc = posix_spawnattr_setsigmask(&at, &none);
    if (!rc)
        rc = posix_spawnattr_setsigdefault(&at, &all);
    if (!rc)
        rc = posix_spawnattr_setpgroup(&at, 0);
    if (!rc)
        rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                               POSIX_SPAWN_SETPGROUP);
    pid_t pid = 0;
    if (!rc)
        rc = posix_spawn(&pid, "/proc/self/exe", &fa, &at, av.argv, environ);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) {
        gw_log_err(GW_LOG_SYS, "posix_spawn(/proc/self/exe %s): %s", k->name, strerror(rc));
        return -rc;
    }
    k->pid = pid;
    k->started_ms = gw_mono_ms();
    struct gw_proc_slot *ps = gw_shm_proc(&s->shm, k->proc);
    atomic_store(&ps->pid, (uint32_t)pid);
    atomic_store(&ps->restarts, k->restarts);
    atomic_store(&ps->started_wall, gw_wall_s());
    atomic_store(&ps->started_mono_ms, k->started_ms);
    if ((rc = sup_pidfile_write(k->pidfile, (uint32_t)pid)) != 0)
        gw_log_warn(GW_LOG_SYS, "writing %s: %s", k->pidfile, gw_strerror(rc));
    gw_log_info(GW_LOG_SYS, "started %s (pid %d)%s", k->name, (int)pid,
                k->restarts ? " again" : "");
    return 0;
}

static void on_respawn(uv_timer_t *t)
{
    struct sup_child *k = t->data;
    if (k->sup->state != SUP_RUNNING || k->pid)
        return;
    if (kid_spawn(k) != 0) {
        uint64_t d = sup_backoff_next(&k->backoff, 0);
        gw_log_warn(GW_LOG_SYS, "retrying %s in %llu ms", k->name, (unsigned long long)d);
        uv_timer_start(&k->timer, on_respawn, d, 0);
    }
}

/* ---- a child died --------------------------------------------------------------- */

static void kid_exited(struct sup_ctx *s, struct sup_child *k, int st)
{
    pid_t dead = k->pid;
    uint64_t ran = gw_mono_ms() - k->started_ms;
    char how[64];
    sup_exit_describe(st, how, sizeof(how));
    k->pid = 0;
    struct gw_proc_slot *ps = gw_shm_proc(&s->shm, k->proc);
    uint32_t want = (uint32_t)dead;
    atomic_compare_exchange_strong(&ps->pid, &want, 0);
    sup_rings_release(&s->shm, k->proc, (uint32_t)dead);

    if (s->state == SUP_STOPPING || s->state == SUP_DONE) {
        gw_log_info(GW_LOG_SYS, "%s (pid %d) %s", k->name, (int)dead, how);
        sup_pidfile_remove(k->pidfile, (uint32_t)dead);
        stop_progress(s);
        return;
    }
    if (sup_exit_is_fatal(st)) {
        gw_log_err(
            GW_LOG_SYS,
            "%s (pid %d) %s: it reported a configuration error (see its messages above); "
            "fix the configuration and start the gateway again. Not restarting; stopping the gateway",
            k->name, (int)dead, how);
        sup_pidfile_remove(k->pidfile, (uint32_t)dead);
        s->exit_code = GW_EXIT_FATAL;
        sup_stop(s, "configuration error");
        return;
    }
    gw_log_warn(GW_LOG_SYS, "%s (pid %d) %s", k->name, (int)dead, how);
    k->restarts++;
    atomic_store(&ps->restarts, k->restarts);
    uint64_t d = sup_backoff_next(&k->backoff, ran);
    gw_log_info(GW_LOG_SYS, "restarting %s in %llu ms (restart %u; it ran %llu ms)", k->name,
                (unsigned long long)d, k->restarts, (unsigned long long)ran);
    uv_timer_start(&k->timer, on_respawn, d, 0);
}

static void on_sigchld(uv_signal_t *h, int signum)
{
    struct sup_ctx *s = h->data;
    for (;;) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid <= 0)
            break;
        struct sup_child *k = kid_by_pid(s, pid);
        if (k)
            kid_exited(s, k, st);
        else
            gw_log_debug(GW_LOG_SYS, "reaped unknown child %d", (int)pid);
    }
}

/* ---- stopping ------------------------------------------------------------------ */

static void close_all(struct sup_ctx *s)
{
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    uv_close((uv_handle_t *)&s->sig_hup, NULL);
    uv_close((uv_handle_t *)&s->sig_chld, NULL);
    uv_close((uv_handle_t *)&s->sig_usr2, NULL);
    uv_close((uv_handle_t *)&s->stop_timer, NULL);
    for (uint32_t i = 0; i < s->nkids; i++)
        uv_close((uv_handle_t *)&s->kids[i].timer, NULL);
    sup_http_close(s->http);
    s->http = NULL;
}

static bool stage_alive(struct sup_ctx *s, int stage)
{
    for (uint32_t i = 0; i < s->nkids; i++)
        if (s->kids[i].stage == stage && s->kids[i].pid)
            return true;
    return false;
}

/* Stops the children stage by stage: SIGTERM to every child of a stage, and
 * on to the next stage once they are all gone. A stage that does not stop
 * within SUP_STOP_TIMEOUT_MS gets SIGKILL; so only a stuck stage costs time,
 * and later stages still get their SIGTERM and a chance to stop cleanly. */
static void stop_progress(struct sup_ctx *s)
{
    if (s->state != SUP_STOPPING)
        return;
    while (s->stop_stage < STAGE_COUNT) {
        if (s->stop_stage >= 0 && stage_alive(s, s->stop_stage))
            return;
        if (++s->stop_stage >= STAGE_COUNT)
            break;
        bool sent = false;
        for (uint32_t i = 0; i < s->nkids; i++) {
            struct sup_child *k = &s->kids[i];
            if (k->stage == s->stop_stage && k->pid) {
                gw_log_info(GW_LOG_SYS, "stopping %s (pid %d)", k->name, (int)k->pid);
                if (kill(k->pid, SIGTERM) != 0 && errno != ESRCH)
                    gw_log_warn(GW_LOG_SYS, "kill(%d, SIGTERM): %s", (int)k->pid, strerror(errno));
                sent = true;
            }
        }
        if (sent) {
            s->killing = false;
            uv_timer_start(&s->stop_timer, on_stop_timeout, SUP_STOP_TIMEOUT_MS, 0);
        }
    }
    s->state = SUP_DONE;
    close_all(s);
}

static void on_stop_timeout(uv_timer_t *t)
{
    struct sup_ctx *s = t->data;
    if (s->state != SUP_STOPPING || s->stop_stage < 0 || s->stop_stage >= STAGE_COUNT)
        return;
    if (!s->killing) {
        s->killing = true;
        for (uint32_t i = 0; i < s->nkids; i++) {
            struct sup_child *k = &s->kids[i];
            if (k->stage != s->stop_stage || !k->pid)
                continue;
            gw_log_warn(GW_LOG_SYS, "%s (pid %d) did not stop within %d ms: sending SIGKILL",
                        k->name, (int)k->pid, SUP_STOP_TIMEOUT_MS);
            kill(k->pid, SIGKILL);
        }
        uv_timer_start(&s->stop_timer, on_stop_timeout, SUP_KILL_TIMEOUT_MS, 0);
        return;
    }
    for (uint32_t i = 0; i < s->nkids; i++) {
        struct sup_child *k = &s->kids[i];
        if (k->stage == s->stop_stage && k->pid) {
            gw_log_err(GW_LOG_SYS, "%s (pid %d) survived SIGKILL for %d ms; leaving it", k->name,
                       (int)k->pid, SUP_KILL_TIMEOUT_MS);
            k->pid = 0;
        }
    }
    if (!s->exit_code)
        s->exit_code = 1;
    s->killing = false;
    stop_progress(s);
}

static void sup_stop(struct sup_ctx *s, const char *why)
{
    if (s->state == SUP_STOPPING || s->state == SUP_DONE)
        return;
    gw_log_info(GW_LOG_SYS, "stopping the gateway (%s)", why);
    s->state = SUP_STOPPING;
    for (uint32_t i = 0; i < s->nkids; i++)
        uv_timer_stop(&s->kids[i].timer);
    sup_http_close(s->http);
    s->http = NULL;
    s->stop_stage = -1;
    stop_progress(s);
}

static void on_stop_signal(uv_signal_t *h, int signum)
{
    struct sup_ctx *s = h->data;
    if (s->state == SUP_STOPPING) {
        gw_log_info(GW_LOG_SYS, "%s: already stopping", strsignal(signum));
        return;
    }
    sup_stop(s, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static void on_sighup(uv_signal_t *h, int signum)
{
    struct sup_ctx *s = h->data;
    struct sup_child *k = kid_by_proc(s, GW_PROC_SCHEDULER);
    if (!k || !k->pid) {
        gw_log_warn(GW_LOG_SYS, "SIGHUP: the scheduler is not running; nothing to reload");
        return;
    }
    gw_log_info(GW_LOG_SYS, "SIGHUP: asking the scheduler (pid %d) to re-read the devices file %s",
                (int)k->pid, s->cfg->devices_file[0] ? s->cfg->devices_file : "(none)");
    if (kill(k->pid, SIGHUP) != 0)
        gw_log_warn(GW_LOG_SYS, "kill(%d, SIGHUP): %s", (int)k->pid, strerror(errno));
}

/* SIGUSR2 cycles the log level of every process of the instance (error,
 * warn, info, debug, then error again) through the shared level word. */
static void on_sigusr2(uv_signal_t *h, int signum)
{
    struct sup_ctx *s = h->data;
    enum gw_log_level cur = gw_log_level();
    enum gw_log_level next = cur >= GW_LOG_DEBUG ? GW_LOG_ERR : (enum gw_log_level)(cur + 1);
    atomic_store(&s->shm.hdr->log_level, (uint32_t)next + 1);
    gw_log_write_always(GW_LOG_INFO, GW_LOG_SYS,
                        "SIGUSR2: log level of instance %s now %s (was %s)", s->cfg->instance,
                        gw_log_level_name(next), gw_log_level_name(cur));
}

/* ---- metrics --------------------------------------------------------------------- */

static char *dup_text(const char *t, size_t *len)
{
    *len = strlen(t);
    return strdup(t);
}

/* /readyz: every role the supervisor keeps is running and has finished its
 * start-up, and the client port answers a CoAP ping (S3.4: an empty CON
 * gets RST). The probe blocks the loop for at most SUP_READY_PROBE_MS, and
 * only when every role is up. */
static bool ready(struct sup_ctx *s, char *why, size_t len)
{
    if (s->state != SUP_RUNNING) {
        snprintf(why, len, "not running (starting or stopping)");
        return false;
    }
    for (uint32_t i = 0; i < s->nkids; i++) {
        struct sup_child *k = &s->kids[i];
        if (!k->pid || !gw_pid_alive((uint32_t)k->pid)) {
            snprintf(why, len, "%s is not running", k->name);
            return false;
        }
        if (k->proc == GW_PROC_SCHEDULER && !atomic_load(&gw_shm_proc(&s->shm, k->proc)->ready)) {
            snprintf(why, len, "scheduler is still starting");
            return false;
        }
    }
    int rc = sup_probe_coap(s->cfg->listen, SUP_READY_PROBE_MS);
    if (rc) {
        snprintf(why, len, "client port %s does not answer a CoAP ping: %s", s->cfg->listen,
                 gw_strerror(rc));
        return false;
    }
    return true;
}

static char *http_handler(void *ctx, const char *path, int *status, const char **ctype, size_t *len)
{
    struct sup_ctx *s = ctx;
    if (!strcmp(path, "/metrics")) {
        struct sup_view *v = malloc(sizeof(*v));
        if (!v)
            return NULL;
        sup_view_snapshot(&s->shm, s->cfg, v);
        char *text = sup_metrics_render(v, len);
        free(v);
        *status = 200;
        *ctype = "text/plain; version=0.0.4; charset=utf-8";
        return text;
    }
    if (!strcmp(path, "/healthz")) {
        /* Liveness: the supervisor's loop answers. */
        *status = 200;
        return dup_text("ok\n", len);
    }
    if (!strcmp(path, "/readyz")) {
        char why[400], text[440];
        if (ready(s, why, sizeof(why))) {
            *status = 200;
            return dup_text("ready\n", len);
        }
        *status = 503;
        snprintf(text, sizeof(text), "not ready: %s\n", why);
        return dup_text(text, len);
    }
    *status = 404;
    return dup_text("not found: this endpoint serves /metrics, /healthz and /readyz\n", len);
}

/* ---- start-up checks ---------------------------------------------------------------- */

/* True when pid runs the same executable as we do (a stale pid may have been
 * reused by anything). When we may not look, assume it does. */
static bool same_exe(pid_t pid)
{
    char me[PATH_MAX], other[PATH_MAX], path[64];
    ssize_t a = readlink("/proc/self/exe", me, sizeof(me) - 1);
    snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
    ssize_t b = readlink(path, other, sizeof(other) - 1);
    if (b < 0)
        return errno != ENOENT;
    if (a < 0)
        return true;
    me[a] = other[b] = '\0';
    static const char del[] = " (deleted)";
    for (char *p = me; p; p = p == me ? other : NULL) {
        size_t l = strlen(p);
        if (l > sizeof(del) - 1 && !strcmp(p + l - (sizeof(del) - 1), del))
            p[l - (sizeof(del) - 1)] = '\0';
    }
    return !strcmp(me, other);
}

/* The pid of a live supervisor recorded in an existing segment, or 0. Reads
 * the raw header so that a segment of another configuration (which
 * gw_shm_open would refuse) is still recognised as in use. */
static pid_t segment_owner(const struct gw_config *cfg)
{
    char name[96];
    snprintf(name, sizeof(name), "/coapgw-%s", cfg->instance);
    int fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct gw_shm_hdr h;
    struct stat st;
    uint32_t pid = 0;
    bool ok = fstat(fd, &st) == 0 && pread(fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
              h.magic == GW_SHM_MAGIC && h.procs_off + sizeof(uint32_t) <= (uint64_t)st.st_size;
    /* pid is the first member of the supervisor's slot, the first slot. */
    if (!ok || pread(fd, &pid, sizeof(pid), (off_t)h.procs_off) != (ssize_t)sizeof(pid))
        pid = 0;
    close(fd);
    if (pid && (pid_t)pid != getpid() && gw_pid_alive(pid) && same_exe((pid_t)pid))
        return (pid_t)pid;
    return 0;
}

/* Locks data_dir/supervisor.pid for the supervisor's lifetime: a second
 * `coapgw run` on the same data_dir is refused instead of wiping the first
 * one's shared segment. The descriptor is close-on-exec, so the lock dies
 * with the supervisor and no child inherits it. */
static int lock_pidfile(struct sup_ctx *s)
{
    snprintf(s->pidfile, sizeof(s->pidfile), "%s/supervisor.pid", s->cfg->data_dir);
    char err[600] = "";
    int fd = gw_fsafe_open(s->pidfile, O_RDWR | O_CREAT, GW_FS_REG, err, sizeof(err));
    if (fd < 0) {
        gw_log_err(GW_LOG_SYS, "%s%s", fd == GW_EUNSAFE ? "refusing to start: " : "", err);
        return fd == GW_EUNSAFE ? GW_EXIT_FATAL : -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        if (e == EWOULDBLOCK)
            gw_log_err(GW_LOG_SYS,
                       "coapgw instance %s already runs from %s (supervisor pid %s); stop it first",
                       s->cfg->instance, s->cfg->data_dir, buf[0] ? buf : "?");
        else
            gw_log_err(GW_LOG_SYS, "flock(%s): %s", s->pidfile, strerror(e));
        close(fd);
        return -1;
    }
    char line[24];
    int l = snprintf(line, sizeof(line), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)l, 0) != l)
        gw_log_warn(GW_LOG_SYS, "writing %s: %s", s->pidfile, strerror(errno));
    s->pidfd = fd;
    return 0;
}

struct sim_match {
    struct gw_ep base;
    long n;
    bool first_ok;
};

static int sim_match_cb(void *ctx, const struct gw_device *d)
{
    struct sim_match *m = ctx;
    if (m->n++ == 0)
        m->first_ok =
            d->family == m->base.family && !memcmp(d->addr, m->base.addr, sizeof(d->addr));
    return 0;
}

/* True when a generated simulator file still matches the configuration: as
 * many devices as meshsim_devices, the first at meshsim_base. A second
 * instance told to use another meshsim_base must not go on reusing the
 * addresses the first one simulates. */
static bool sim_file_matches(const char *path, const char *base, int64_t n)
{
    struct sim_match m = { .n = 0 };
    if (gw_ep_parse(base, 0, &m.base) != 0)
        return false;
    int rc = gw_devfile_load(path, sim_match_cb, NULL, &m);
    return rc == 0 && m.first_ok && m.n == n;
}

/* Decides whether the embedded simulator runs and which devices file the
 * children use. meshsim = 1 simulates devices_file when one is given (so a
 * test can give devices their own `sim` behaviour), else a generated file;
 * meshsim = -1 (auto) simulates only when no devices_file is configured. */
static int prepare_devices(struct sup_ctx *s)
{
    struct gw_config *cfg = s->cfg;
    bool have_file = cfg->devices_file[0] != '\0';
    s->embedded_sim = gw_config_embedded_sim(cfg);
    /* Children see the generated devices_file below; they must still know
     * that the mesh is the simulator (the development secret is allowed). */
    if (s->embedded_sim) {
        cfg->meshsim = 1;
        setenv("COAPGW_MESHSIM", "1", 1);
    }
    if (!have_file && cfg->meshsim == 0) {
        gw_log_warn(
            GW_LOG_SYS,
            "no devices_file and meshsim = 0: the device registry stays as it is in %s/state",
            cfg->data_dir);
        return 0;
    }
    if (have_file)
        return 0;
    char path[GW_CFG_STR + 32];
    snprintf(path, sizeof(path), "%s/meshsim-devices.csv", cfg->data_dir);
    if (strlen(path) >= sizeof(cfg->devices_file)) {
        gw_log_err(GW_LOG_SYS, "data_dir %s: path too long", cfg->data_dir);
        return GW_ECONFIG;
    }
    const char *why = NULL;
    if (access(path, R_OK) == 0 && !sim_file_matches(path, cfg->meshsim_base, cfg->meshsim_devices))
        why = "meshsim_base or meshsim_devices changed since it was generated";
    if (why || access(path, R_OK) != 0) {
        if (why)
            gw_log_info(GW_LOG_SYS, "%s: %s; generating it again", path, why);
        char err[256] = "";
        int rc = gw_devfile_generate(path, (int)cfg->meshsim_devices, cfg->meshsim_base, err,
                                     sizeof(err));
        if (rc) {
            gw_log_err(GW_LOG_SYS, "generating simulated devices in %s: %s", path,
                       err[0] ? err : gw_strerror(rc));
            return rc;
        }
        gw_log_info(GW_LOG_SYS, "generated %lld simulated devices from %s in %s",
                    (long long)cfg->meshsim_devices, cfg->meshsim_base, path);
    } else {
        gw_log_info(GW_LOG_SYS, "simulated devices from %s (delete it to generate new ones)", path);
    }
    memcpy(cfg->devices_file, path, strlen(path) + 1);
    /* Children read COAPGW_<KEY> after their config file (gw_config.h). */
    setenv("COAPGW_DEVICES_FILE", path, 1);
    return 0;
}

static int first_mac_cb(void *ctx, const struct gw_device *d)
{
    gw_mac_str(d->mac, ctx);
    return 1;
}

static void print_banner(struct sup_ctx *s, const char *token)
{
    struct gw_config *cfg = s->cfg;
    const char *cflag = s->config_abs[0] ? s->config_abs : NULL;
    printf("coapgw instance %s is running: supervisor pid %d, data in %s\n", cfg->instance,
           (int)getpid(), cfg->data_dir);
    for (uint32_t i = 0; i < s->nkids; i++) {
        struct sup_child *k = &s->kids[i];
        printf("  %-11s pid %d", k->name, (int)k->pid);
        if (k->proc == GW_PROC_MESHSIM)
            printf("  (simulated mesh: %s)", cfg->devices_file);
        else if (k->proc >= GW_PROC_FRONTEND0)
            printf("  (CoAP on udp %s)", cfg->listen);
        printf("\n");
    }
    if (cfg->metrics_listen[0])
        printf("  metrics     http://%s/metrics\n", cfg->metrics_listen);
    printf("Stop with Ctrl-C or `kill %d`; `coapgw status%s%s` lists the processes.\n",
           (int)getpid(), cflag ? " -c " : "", cflag ? cflag : "");
    char mac[17] = "";
    if (s->embedded_sim && cfg->devices_file[0]) {
        int rc = gw_devfile_load(cfg->devices_file, first_mac_cb, NULL, mac);
        if (rc < 0)
            mac[0] = '\0';
    }
    if (token && mac[0]) {
        char text[4096 + 4096], exe[1024];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        exe[n > 0 ? n : 0] = '\0';
        if (sup_first_request_text(cfg->listen, token, mac, exe, text, sizeof(text)) > 0)
            printf(
                "\nFirst requests with coapgw client (simulated mesh, development key, account \"demo\"; "
                "libcoap's coap-client-notls works too, see README):\n%s",
                text);
    }
    printf("Tokens for other accounts: coapgw token --account NAME%s%s\n", cflag ? " -c " : "",
           cflag ? cflag : "");
    fflush(stdout);
}

/* ---- run -------------------------------------------------------------------------- */

static void add_kid(struct sup_ctx *s, uint32_t proc, int stage)
{
    struct sup_child *k = &s->kids[s->nkids++];
    k->sup = s;
    k->proc = proc;
    k->stage = stage;
    sup_proc_name(proc, k->name, sizeof(k->name));
    sup_pidfile_path(s->cfg, proc, k->pidfile, sizeof(k->pidfile));
    uv_timer_init(&s->loop, &k->timer);
    k->timer.data = k;
}

static void cleanup_files(struct sup_ctx *s)
{
    for (uint32_t i = 0; i < s->nkids; i++)
        sup_pidfile_remove(s->kids[i].pidfile, 0);
    if (s->pidfd >= 0) {
        unlink(s->pidfile);
        close(s->pidfd);
        s->pidfd = -1;
    }
}

/* Before the segment: data_dir, the pid file lock, no other supervisor of
 * this instance, the device registry source. 0 or an exit code. */
static int sup_prepare(struct sup_ctx *s)
{
    struct gw_config *cfg = s->cfg;
    int rc = sup_mkdir_p(cfg->data_dir);
    if (rc) {
        gw_log_err(GW_LOG_SYS, "data_dir %s: %s", cfg->data_dir, gw_strerror(rc));
        return GW_EXIT_FATAL;
    }
    if ((rc = lock_pidfile(s)) != 0)
        return rc == GW_EXIT_FATAL ? GW_EXIT_FATAL : 1;
    pid_t other = segment_owner(cfg);
    if (other) {
        gw_log_err(GW_LOG_SYS,
                   "coapgw instance %s already runs (supervisor pid %d, another data_dir); "
                   "stop it or choose another `instance`",
                   cfg->instance, (int)other);
        return 1;
    }
    if (prepare_devices(s) != 0)
        return GW_EXIT_FATAL;
    return 0;
}

/* A fresh shared segment with the supervisor's slot, and the environment
 * that tells children they are supervised. 0 or an exit code. */
static int open_segment(struct sup_ctx *s)
{
    char err[512];
    int rc = gw_shm_open(s->cfg, true, &s->shm, err, sizeof(err));
    if (rc != 0) {
        gw_log_err(GW_LOG_RING, "%s%s", rc == GW_EUNSAFE ? "refusing to start: " : "", err);
        return rc == GW_EUNSAFE || rc == GW_ELAYOUT ? GW_EXIT_FATAL : 1;
    }
    s->shm_open = true;
    gw_log_attach_level(&s->shm.hdr->log_level);
    struct gw_proc_slot *me = gw_shm_proc(&s->shm, GW_PROC_SUPERVISOR);
    atomic_store(&me->pid, (uint32_t)getpid());
    atomic_store(&me->restarts, 0);
    atomic_store(&me->started_wall, gw_wall_s());
    atomic_store(&me->started_mono_ms, gw_mono_ms());

    /* Children write no pid files of their own and die with us (main.c). */
    char num[24];
    snprintf(num, sizeof(num), "%d", (int)getpid());
    setenv("COAPGW_SUPERVISED", "1", 1);
    setenv("COAPGW_SUPERVISOR_PID", num, 1);
    return 0;
}

/* The development secret is created here, before any frontend starts, so
 * that they all read the same one; the banner's token comes with it. */
static char *mint_demo_token(struct sup_ctx *s)
{
    const struct sup_run_opts *opts = s->opts;
    char *token = NULL;
    if (opts && opts->mint && !s->cfg->jwt_key_file[0] && !strcmp(s->cfg->jwt_alg, "HS256")) {
        char merr[256] = "";
        if (opts->mint(s->cfg, "demo", 86400, &token, merr, sizeof(merr)) != 0) {
            gw_log_warn(GW_LOG_AUTH, "minting the demo token: %s", merr);
            token = NULL;
        }
    }
    return token;
}

/* The loop: signals, one child record per role, the metrics listener.
 * *loop_ok once uv_loop_init succeeded. 0 or an exit code. */
static int setup_loop(struct sup_ctx *s, bool *loop_ok)
{
    struct gw_config *cfg = s->cfg;
    int rc = uv_loop_init(&s->loop);
    if (rc != 0) {
        gw_log_err(GW_LOG_SYS, "uv_loop_init: %s", uv_strerror(rc));
        return 1;
    }
    *loop_ok = true;
    uv_signal_init(&s->loop, &s->sig_term);
    uv_signal_init(&s->loop, &s->sig_int);
    uv_signal_init(&s->loop, &s->sig_hup);
    uv_signal_init(&s->loop, &s->sig_chld);
    uv_signal_init(&s->loop, &s->sig_usr2);
    uv_timer_init(&s->loop, &s->stop_timer);
    s->sig_term.data = s->sig_int.data = s->sig_hup.data = s->sig_chld.data = s->stop_timer.data =
        s;
    s->sig_usr2.data = s;
    add_kid(s, GW_PROC_SCHEDULER, STAGE_SCHEDULER);
    add_kid(s, GW_PROC_MESHIO, STAGE_MESHIO);
    if (s->embedded_sim)
        add_kid(s, GW_PROC_MESHSIM, STAGE_MESHSIM);
    for (int64_t i = 0; i < cfg->frontends; i++)
        add_kid(s, GW_PROC_FRONTEND0 + (uint32_t)i, STAGE_FRONTENDS);
    if ((rc = uv_signal_start(&s->sig_chld, on_sigchld, SIGCHLD)) != 0 ||
        (rc = uv_signal_start(&s->sig_term, on_stop_signal, SIGTERM)) != 0 ||
        (rc = uv_signal_start(&s->sig_int, on_stop_signal, SIGINT)) != 0 ||
        (rc = uv_signal_start(&s->sig_hup, on_sighup, SIGHUP)) != 0 ||
        (rc = uv_signal_start(&s->sig_usr2, on_sigusr2, SIGUSR2)) != 0) {
        gw_log_err(GW_LOG_SYS, "uv_signal_start: %s", uv_strerror(rc));
        close_all(s);
        return 1;
    }
    if (cfg->metrics_listen[0]) {
        char err[512];
        rc = sup_http_start(&s->loop, cfg->metrics_listen, http_handler, s, &s->http, err,
                            sizeof(err));
        if (rc) {
            gw_log_err(GW_LOG_SYS, "%s", err);
            close_all(s);
            return rc == -EINVAL ? GW_EXIT_FATAL : 1;
        }
        gw_log_info(GW_LOG_SYS, "metrics on http://%s/metrics", cfg->metrics_listen);
    }
    return 0;
}

/* Every child spawned (a failed spawn retries after the backoff). */
static void start_children(struct sup_ctx *s, const char *token)
{
    s->state = SUP_RUNNING;
    for (uint32_t i = 0; i < s->nkids; i++)
        if (kid_spawn(&s->kids[i]) != 0)
            uv_timer_start(&s->kids[i].timer, on_respawn, sup_backoff_next(&s->kids[i].backoff, 0),
                           0);
    print_banner(s, token);
    gw_log_info(GW_LOG_SYS, "gateway started: %u processes, instance %s, listening on %s", s->nkids,
                s->cfg->instance, s->cfg->listen);
}

static void sup_teardown(struct sup_ctx *s, bool loop_ok)
{
    if (loop_ok) {
        /* Handles closed by close_all() finish their close callbacks here. */
        uv_run(&s->loop, UV_RUN_DEFAULT);
        int rc = uv_loop_close(&s->loop);
        if (rc != 0)
            gw_log_warn(GW_LOG_SYS, "uv_loop_close: %s", uv_strerror(rc));
    }
    if (s->shm_open) {
        atomic_store(&gw_shm_proc(&s->shm, GW_PROC_SUPERVISOR)->pid, 0);
        gw_shm_close(&s->shm);
        /* Every child is gone: the segment dies with the gateway, and
         * `coapgw status` says that the instance is not running. */
        if (s->state == SUP_DONE)
            gw_shm_unlink(s->cfg);
    }
    if (s->pidfd >= 0)
        cleanup_files(s);
}

int sup_run(struct gw_config *cfg, const struct sup_run_opts *opts)
{
    int lvl = gw_log_level_parse(cfg->log_level);
    gw_log_init("supervisor", -1, lvl < 0 ? GW_LOG_INFO : (enum gw_log_level)lvl);
    signal(SIGPIPE, SIG_IGN);

    struct sup_ctx *s = calloc(1, sizeof(*s));
    if (!s) {
        gw_log_err(GW_LOG_SYS, "out of memory");
        return 1;
    }
    s->cfg = cfg;
    s->opts = opts;
    s->pidfd = -1;
    char *token = NULL;
    bool loop_ok = false;

    if (opts && opts->config_path && opts->config_path[0] &&
        !realpath(opts->config_path, s->config_abs))
        snprintf(s->config_abs, sizeof(s->config_abs), "%s", opts->config_path);

    int ret = sup_prepare(s);
    if (ret == 0)
        ret = open_segment(s);
    if (ret == 0) {
        token = mint_demo_token(s);
        ret = setup_loop(s, &loop_ok);
    }
    if (ret == 0) {
        start_children(s, token);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        ret = s->exit_code;
        gw_log_info(GW_LOG_SYS, "gateway stopped%s", ret ? " after an error" : "");
    }
    sup_teardown(s, loop_ok);
    free(token);
    free(s);
    return ret;
}
