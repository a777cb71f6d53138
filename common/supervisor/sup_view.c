/* SPDX-License-Identifier: MIT */
/* sup_view.c - what `coapgw status`, `coapgw metrics` and the supervisor's
 * metrics endpoint show (SPEC S10.2): a snapshot of the process table and
 * counters in the shared segment, rendered as a table or in the Prometheus
 * text exposition format 0.0.4. The renderers are pure. */
#include "supervisor.h"
#include "gw_addr.h"
#include "gw_clock.h"
#include "gw_error.h"

#include "gw_coap.h"
#include "gw_version.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- a growing string ------------------------------------------------------ */

struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) GW_PRINTF(2, 3);
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        size_t room = b->cap - b->len;
        va_list ap;
        va_start(ap, fmt);
        int n = b->p ? vsnprintf(b->p + b->len, room, fmt, ap) : -2;
        va_end(ap);
        if (n == -1) {
            b->oom = true;
            return;
        }
        if (n >= 0 && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (n >= 0 && cap - b->len <= (size_t)n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

static char *sb_finish(struct sbuf *b, size_t *len)
{
    if (!b->p && !b->oom)
        sb_printf(b, "%s", "");
    if (b->oom) {
        free(b->p);
        return NULL;
    }
    if (len)
        *len = b->len;
    return b->p;
}

/* ---- snapshot ---------------------------------------------------------------- */

int sup_proc_read(uint32_t pid, uint64_t *rss_bytes, double *cpu_seconds, uint32_t *open_fds)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%u/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold blanks and ')': fields start after the last ')'. */
    char *p = strrchr(buf, ')');
    unsigned long long utime, stime;
    long long rss;
    /* Fields 3.. : state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
     * cutime cstime priority nice threads itrealvalue starttime vsize rss. */
    if (!p ||
        sscanf(p + 1,
               " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
               "%*u %*u %lld",
               &utime, &stime, &rss) != 3)
        return -EINVAL;
    long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    *cpu_seconds = (double)(utime + stime) / (double)(tck > 0 ? tck : 100);
    *rss_bytes = rss > 0 ? (uint64_t)rss * (uint64_t)(page > 0 ? page : 4096) : 0;
    snprintf(path, sizeof(path), "/proc/%u/fd", pid);
    DIR *d = opendir(path);
    *open_fds = 0;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.')
                (*open_fds)++;
        closedir(d);
    }
    return 0;
}

void sup_view_snapshot(const struct gw_shm *shm, const struct gw_config *cfg, struct sup_view *v)
{
    memset(v, 0, sizeof(*v));
    snprintf(v->instance, sizeof(v->instance), "%s", cfg->instance);
    v->now_mono_ms = gw_mono_ms();
    v->max_sessions = cfg->max_sessions;
    v->max_txn = shm->hdr->max_txn;
    v->version = COAPGW_VERSION;
    v->commit = COAPGW_COMMIT;
    uint32_t nprocs = GW_MIN(shm->hdr->nprocs, (uint32_t)SUP_MAX_PROCS);
    for (uint32_t p = 0; p < nprocs; p++) {
        struct gw_proc_slot *s = gw_shm_proc(shm, p);
        struct sup_proc_view *pv = &v->procs[v->nprocs];
        memset(pv, 0, sizeof(*pv));
        pv->proc = p;
        pv->pid = atomic_load_explicit(&s->pid, memory_order_relaxed);
        pv->restarts = atomic_load_explicit(&s->restarts, memory_order_relaxed);
        pv->started_wall = atomic_load_explicit(&s->started_wall, memory_order_relaxed);
        pv->started_mono_ms = atomic_load_explicit(&s->started_mono_ms, memory_order_relaxed);
        pv->up = pv->pid != 0 && gw_pid_alive(pv->pid);
        bool configured = p < GW_PROC_MESHSIM ||
                          (p >= GW_PROC_FRONTEND0 && p - GW_PROC_FRONTEND0 < cfg->frontends);
        if (!configured && !pv->pid && !pv->started_wall)
            continue;
        pv->has_stats = p != GW_PROC_SUPERVISOR && p != GW_PROC_MESHSIM;
        if (pv->has_stats) {
            for (int i = 0; i < GW_STAT_COUNT; i++)
                pv->stats[i] = atomic_load_explicit(&s->stats.v[i], memory_order_relaxed);
            for (int i = 0; i < GW_STAT_CODES; i++)
                pv->codes[i] = atomic_load_explicit(&s->stats.codes[i], memory_order_relaxed);
            for (int h = 0; h < GW_HIST_COUNT; h++) {
                const struct gw_hist *x = &s->stats.hist[h];
                /* count is read first and the buckets after, so a scrape never shows
                 * a +Inf bucket below _count (writers add bucket, sum, then count). */
                pv->hist[h].count = atomic_load_explicit(&x->count, memory_order_relaxed);
                uint64_t total = 0;
                for (int b = 0; b <= GW_HIST_NBOUNDS; b++)
                    total += pv->hist[h].bucket[b] =
                        atomic_load_explicit(&x->bucket[b], memory_order_relaxed);
                pv->hist[h].sum_us = atomic_load_explicit(&x->sum_us, memory_order_relaxed);
                if (total > pv->hist[h].count)
                    pv->hist[h].count = total;
            }
        }
        if (pv->up)
            pv->has_proc =
                sup_proc_read(pv->pid, &pv->rss_bytes, &pv->cpu_seconds, &pv->open_fds) == 0;
        v->nprocs++;
    }
    for (uint32_t i = 0; i < v->nprocs; i++) {
        uint32_t p = v->procs[i].proc;
        if (p < GW_PROC_FRONTEND0 || p - GW_PROC_FRONTEND0 >= shm->hdr->max_frontends)
            continue;
        uint32_t fe = p - GW_PROC_FRONTEND0;
        struct gw_ring *up = gw_shm_ring(shm, gw_ring_fe_to_sch(fe));
        struct gw_ring *down = gw_shm_ring(shm, gw_ring_sch_to_fe(shm, fe));
        struct sup_ring_view *r = &v->rings[v->nrings++];
        snprintf(r->from, sizeof(r->from), "frontend-%u", fe);
        snprintf(r->to, sizeof(r->to), "scheduler");
        r->depth = gw_ring_count(up);
        r->size = up->size;
        r = &v->rings[v->nrings++];
        snprintf(r->from, sizeof(r->from), "scheduler");
        snprintf(r->to, sizeof(r->to), "frontend-%u", fe);
        r->depth = gw_ring_count(down);
        r->size = down->size;
        struct sup_bell_view *b = &v->bells[v->nbells++];
        snprintf(b->to, sizeof(b->to), "frontend-%u", fe);
        b->writes = atomic_load_explicit(&gw_shm_bell(shm, GW_BELL_FRONTEND0 + fe)->rings,
                                         memory_order_relaxed);
    }
    struct gw_ring *sm = gw_shm_ring(shm, gw_ring_sch_to_mesh(shm));
    struct gw_ring *ms = gw_shm_ring(shm, gw_ring_mesh_to_sch(shm));
    v->rings[v->nrings++] =
        (struct sup_ring_view){ "scheduler", "meshio", gw_ring_count(sm), sm->size };
    v->rings[v->nrings++] =
        (struct sup_ring_view){ "meshio", "scheduler", gw_ring_count(ms), ms->size };
    v->bells[v->nbells++] =
        (struct sup_bell_view){ "scheduler",
                                atomic_load_explicit(&gw_shm_bell(shm, GW_BELL_SCHEDULER)->rings,
                                                     memory_order_relaxed) };
    v->bells[v->nbells++] =
        (struct sup_bell_view){ "meshio",
                                atomic_load_explicit(&gw_shm_bell(shm, GW_BELL_MESHIO)->rings,
                                                     memory_order_relaxed) };
}

/* ---- Prometheus ------------------------------------------------------------------ */

static const struct {
    const char *name, *kind;
    unsigned roles;
    const char *help;
} stat_meta[GW_STAT_COUNT] = {
#define GW_STAT_META(n, k, r, h) { #n, #k, r, h },
    GW_STATS_LIST(GW_STAT_META)
#undef GW_STAT_META
};

/* Label values and HELP text escape backslash, newline (and '"' in labels). */
static void sb_escaped(struct sbuf *b, const char *s, bool label)
{
    for (; *s; s++) {
        if (*s == '\\')
            sb_printf(b, "\\\\");
        else if (*s == '\n')
            sb_printf(b, "\\n");
        else if (label && *s == '"')
            sb_printf(b, "\\\"");
        else
            sb_printf(b, "%c", *s);
    }
}

static unsigned proc_role_bit(uint32_t proc)
{
    return proc == GW_PROC_SCHEDULER   ? GW_SR_SCH
           : proc == GW_PROC_MESHIO    ? GW_SR_MESH
           : proc >= GW_PROC_FRONTEND0 ? GW_SR_FE
                                       : 0;
}

/* The labels of a process, without braces: role="frontend",frontend="0". The
 * frontend index is not called `instance`, which Prometheus sets itself. */
static void labels_in(struct sbuf *b, uint32_t proc)
{
    int idx;
    const char *role = sup_proc_role(proc, &idx);
    if (idx >= 0)
        sb_printf(b, "role=\"%s\",frontend=\"%d\"", role, idx);
    else
        sb_printf(b, "role=\"%s\"", role);
}

static void labels(struct sbuf *b, uint32_t proc)
{
    sb_printf(b, "{");
    labels_in(b, proc);
    sb_printf(b, "}");
}

static void family(struct sbuf *b, const char *name, const char *kind, const char *help)
{
    sb_printf(b, "# HELP %s ", name);
    sb_escaped(b, help, false);
    sb_printf(b, "\n# TYPE %s %s\n", name, kind);
}

/* Codes always exported (0 until seen), so that alerts on them have a
 * series from the start; any other code appears once it has been sent. */
static bool code_always(uint8_t code)
{
    static const uint8_t always[] = { GW_CODE(2, 5), GW_CODE(4, 1), GW_CODE(4, 3), GW_CODE(4, 29),
                                      GW_CODE(5, 2), GW_CODE(5, 3), GW_CODE(5, 4) };
    for (size_t i = 0; i < GW_ARRAY_LEN(always); i++)
        if (always[i] == code)
            return true;
    return false;
}

static void hist_series(struct sbuf *b, const char *name, uint32_t proc, const char *extra,
                        const struct sup_hist_view *h)
{
    static const uint64_t bounds[GW_HIST_NBOUNDS] = GW_HIST_BOUNDS_US;
    uint64_t cum = 0;
    for (int i = 0; i <= GW_HIST_NBOUNDS; i++) {
        cum += h->bucket[i];
        sb_printf(b, "%s_bucket{", name);
        labels_in(b, proc);
        if (extra)
            sb_printf(b, ",%s", extra);
        if (i < GW_HIST_NBOUNDS)
            sb_printf(b, ",le=\"%g\"} %" PRIu64 "\n", (double)bounds[i] / 1e6, cum);
        else
            sb_printf(b, ",le=\"+Inf\"} %" PRIu64 "\n", h->count > cum ? h->count : cum);
    }
    uint64_t count = h->count > cum ? h->count : cum;
    sb_printf(b, "%s_sum{", name);
    labels_in(b, proc);
    sb_printf(b, "%s%s} %.6f\n", extra ? "," : "", extra ? extra : "", (double)h->sum_us / 1e6);
    sb_printf(b, "%s_count{", name);
    labels_in(b, proc);
    sb_printf(b, "%s%s} %" PRIu64 "\n", extra ? "," : "", extra ? extra : "", count);
}

/* The series every process has, one value each: a table, so that each
 * family is written by the one loop below. */
enum proc_which { PW_UP, PW_RESTARTS, PW_STARTED, PW_RSS, PW_CPU, PW_FDS };
struct proc_metric {
    const char *name, *kind, *help;
    enum proc_which which;
};
static const struct proc_metric proc_metrics[] = {
    { "coapgw_up", "gauge", "1 when the process is running, else 0.", PW_UP },
    { "coapgw_restarts_total", "counter", "Times the supervisor restarted the process.",
      PW_RESTARTS },
    { "coapgw_process_start_time_seconds", "gauge", "Unix time the process was last started.",
      PW_STARTED },
    { "coapgw_process_resident_memory_bytes", "gauge", "Resident memory of the process.", PW_RSS },
    { "coapgw_process_cpu_seconds_total", "counter", "User and system CPU time of the process.",
      PW_CPU },
    { "coapgw_process_open_fds", "gauge", "Open file descriptors of the process.", PW_FDS },
};

/* Formats p's value of series w into val; false when p has none (the
 * supervisor is never restarted, a process never started has no start time,
 * /proc figures are missing for a process not running). */
static bool proc_metric_value(const struct sup_proc_view *p, enum proc_which w, char *val,
                              size_t len)
{
    switch (w) {
    case PW_UP:
        snprintf(val, len, "%d", p->up ? 1 : 0);
        return true;
    case PW_RESTARTS:
        snprintf(val, len, "%" PRIu32, p->restarts);
        return p->proc != GW_PROC_SUPERVISOR; /* nobody restarts the supervisor */
    case PW_STARTED:
        snprintf(val, len, "%" PRId64, p->started_wall);
        return p->started_wall != 0;
    case PW_RSS:
        snprintf(val, len, "%" PRIu64, p->rss_bytes);
        return p->has_proc;
    case PW_CPU:
        snprintf(val, len, "%.2f", p->cpu_seconds);
        return p->has_proc;
    case PW_FDS:
        snprintf(val, len, "%" PRIu32, p->open_fds);
        return p->has_proc;
    }
    return false;
}

char *sup_metrics_render(const struct sup_view *v, size_t *len)
{
    struct sbuf b = { 0 };
    if (v->version) {
        family(&b, "coapgw_build_info", "gauge",
               "Version and git commit of the running coapgw build (always 1).");
        sb_printf(&b, "coapgw_build_info{version=\"");
        sb_escaped(&b, v->version, true);
        sb_printf(&b, "\",commit=\"");
        sb_escaped(&b, v->commit ? v->commit : "unknown", true);
        sb_printf(&b, "\"} 1\n");
    }
    for (size_t m = 0; m < GW_ARRAY_LEN(proc_metrics); m++) {
        const struct proc_metric *pm = &proc_metrics[m];
        family(&b, pm->name, pm->kind, pm->help);
        for (uint32_t i = 0; i < v->nprocs; i++) {
            char val[32];
            if (!proc_metric_value(&v->procs[i], pm->which, val, sizeof(val)))
                continue;
            sb_printf(&b, "%s", pm->name);
            labels(&b, v->procs[i].proc);
            sb_printf(&b, " %s\n", val);
        }
    }
    for (int s = 0; s < GW_STAT_COUNT; s++) {
        bool counter = !strcmp(stat_meta[s].kind, "counter");
        char name[96];
        snprintf(name, sizeof(name), "coapgw_%s%s", stat_meta[s].name, counter ? "_total" : "");
        char help[160];
        snprintf(help, sizeof(help), "%s.", stat_meta[s].help);
        help[0] = (char)toupper((unsigned char)help[0]);
        bool any = false;
        if (s == GW_STAT_sessions_live) {
            /* Sessions are shared by all frontends in LMDB: each reports the same
             * table, so this is one series (the freshest report), not one per frontend. */
            uint64_t live = 0;
            for (uint32_t i = 0; i < v->nprocs; i++)
                if (v->procs[i].has_stats && (proc_role_bit(v->procs[i].proc) & GW_SR_FE)) {
                    any = true;
                    live = GW_MAX(live, v->procs[i].stats[s]);
                }
            if (any) {
                family(&b, name, "gauge", help);
                sb_printf(&b, "%s %" PRIu64 "\n", name, live);
                family(&b, "coapgw_sessions_max", "gauge",
                       "Bound on live sessions (max_sessions).");
                sb_printf(&b, "coapgw_sessions_max %" PRId64 "\n", v->max_sessions);
            }
            continue;
        }
        for (uint32_t i = 0; i < v->nprocs; i++) {
            if (!v->procs[i].has_stats || !(proc_role_bit(v->procs[i].proc) & stat_meta[s].roles))
                continue;
            if (!any)
                family(&b, name, counter ? "counter" : "gauge", help);
            any = true;
            sb_printf(&b, "%s", name);
            labels(&b, v->procs[i].proc);
            sb_printf(&b, " %" PRIu64 "\n", v->procs[i].stats[s]);
        }
        if (s == GW_STAT_txn_used && any) {
            family(&b, "coapgw_txn_max", "gauge", "Bound on scheduler transactions (max_txn).");
            sb_printf(&b, "coapgw_txn_max %" PRId64 "\n", v->max_txn);
        }
    }
    /* The frontends whose counters are exported: each family below is one
     * block (the exposition format wants a family's series together). */
    const struct sup_proc_view *fes[SUP_MAX_PROCS];
    uint32_t nfe = 0;
    for (uint32_t i = 0; i < v->nprocs; i++)
        if (v->procs[i].has_stats && (proc_role_bit(v->procs[i].proc) & GW_SR_FE))
            fes[nfe++] = &v->procs[i];
    if (nfe)
        family(
            &b, "coapgw_responses_total", "counter",
            "Final responses to clients by CoAP code (piggybacked, separate or from the cache).");
    for (uint32_t k = 0; k < nfe; k++) {
        const struct sup_proc_view *p = fes[k];
        for (int c = 0; c < GW_STAT_CODES; c++) {
            uint8_t code = gw_stat_code_of(c);
            if (!p->codes[c] && !code_always(code))
                continue;
            sb_printf(&b, "coapgw_responses_total{");
            labels_in(&b, p->proc);
            sb_printf(&b, ",code=\"%u.%02u\"} %" PRIu64 "\n", code >> 5, code & 31, p->codes[c]);
        }
    }
    static const char *const paths[] = { "proxied", "cache", "local" };
    if (nfe)
        family(
            &b, "coapgw_request_duration_seconds", "histogram",
            "Client request to final response, by how it was answered: proxied (through the mesh), "
            "cache (from the response cache) or local (by the gateway).");
    for (uint32_t k = 0; k < nfe; k++) {
        const struct sup_proc_view *p = fes[k];
        for (int h = GW_HIST_PROXIED; h <= GW_HIST_LOCAL; h++) {
            char extra[32];
            snprintf(extra, sizeof(extra), "path=\"%s\"", paths[h]);
            hist_series(&b, "coapgw_request_duration_seconds", p->proc, extra, &p->hist[h]);
        }
    }
    for (uint32_t i = 0; i < v->nprocs; i++) {
        const struct sup_proc_view *p = &v->procs[i];
        if (!p->has_stats || p->proc != GW_PROC_SCHEDULER)
            continue;
        family(&b, "coapgw_device_rtt_seconds", "histogram",
               "First transmission of a request to a device to the device's answer.");
        hist_series(&b, "coapgw_device_rtt_seconds", p->proc, NULL, &p->hist[GW_HIST_DEVICE_RTT]);
    }
    static const struct {
        const char *name, *help;
        bool slots; /* the ring's capacity, else its depth */
    } ring_metrics[] = {
        { "coapgw_ring_depth", "Records waiting in a shared-memory ring.", false },
        { "coapgw_ring_slots", "Capacity of a shared-memory ring in records.", true },
    };
    for (size_t m = 0; m < GW_ARRAY_LEN(ring_metrics); m++) {
        family(&b, ring_metrics[m].name, "gauge", ring_metrics[m].help);
        for (uint32_t i = 0; i < v->nrings; i++) {
            const struct sup_ring_view *r = &v->rings[i];
            sb_printf(&b, "%s{from=\"", ring_metrics[m].name);
            sb_escaped(&b, r->from, true);
            sb_printf(&b, "\",to=\"");
            sb_escaped(&b, r->to, true);
            sb_printf(&b, "\"} %" PRIu32 "\n", ring_metrics[m].slots ? r->size : r->depth);
        }
    }
    if (v->nbells)
        family(&b, "coapgw_doorbell_writes_total", "counter",
               "Wake-ups written to a sleeping consumer's doorbell (idle-to-busy transitions).");
    for (uint32_t i = 0; i < v->nbells; i++) {
        sb_printf(&b, "coapgw_doorbell_writes_total{to=\"");
        sb_escaped(&b, v->bells[i].to, true);
        sb_printf(&b, "\"} %" PRIu64 "\n", v->bells[i].writes);
    }
    return sb_finish(&b, len);
}

/* ---- status table ---------------------------------------------------------------- */

void sup_fmt_uptime(uint64_t ms, char *buf, size_t len)
{
    uint64_t s = ms / 1000;
    if (ms == 0)
        snprintf(buf, len, "-");
    else if (s >= 86400)
        snprintf(buf, len, "%" PRIu64 "d%02" PRIu64 "h", s / 86400, s % 86400 / 3600);
    else if (s >= 3600)
        snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s % 3600 / 60);
    else if (s >= 60)
        snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
    else
        snprintf(buf, len, "%" PRIu64 "s", s);
}

char *sup_status_render(const struct sup_view *v)
{
    struct sbuf b = { 0 };
    sb_printf(&b, "%-12s %-8s %-8s %-8s %s\n", "ROLE", "PID", "STATE", "UPTIME", "RESTARTS");
    for (uint32_t i = 0; i < v->nprocs; i++) {
        const struct sup_proc_view *p = &v->procs[i];
        char name[32], pid[16], up[32];
        sup_proc_name(p->proc, name, sizeof(name));
        if (p->pid)
            snprintf(pid, sizeof(pid), "%" PRIu32, p->pid);
        else
            snprintf(pid, sizeof(pid), "-");
        uint64_t ran = p->up && p->started_mono_ms && v->now_mono_ms > p->started_mono_ms
                           ? v->now_mono_ms - p->started_mono_ms
                           : 0;
        if (p->up && !ran)
            ran = 1; /* started this very millisecond: "0s", not "never" */
        sup_fmt_uptime(ran, up, sizeof(up));
        const char *state = p->up ? "running" : p->pid ? "dead" : "stopped";
        sb_printf(&b, "%-12s %-8s %-8s %-8s %" PRIu32 "\n", name, pid, state, up, p->restarts);
    }
    return sb_finish(&b, NULL);
}

/* ---- first request ------------------------------------------------------------------ */

int sup_first_request_text(const char *listen, const char *token, const char *mac, const char *prog,
                           char *buf, size_t len)
{
    struct gw_ep ep;
    if (sup_listen_target(listen, &ep) != 0)
        return -EINVAL;
    char gw[GW_EP_STRLEN], cl[GW_EP_STRLEN + 300];
    gw_ep_str(&ep, gw, sizeof(gw));
    /* `coapgw client` keeps the session between commands from its fixed
     * local port (issue 14); --gateway only when it is not its default. */
    snprintf(cl, sizeof(cl), "%s client%s%s", prog && *prog ? prog : "coapgw",
             strcmp(gw, "127.0.0.1:5683") ? " --gateway " : "",
             strcmp(gw, "127.0.0.1:5683") ? gw : "");
    return snprintf(
        buf, len,
        "  # 1. read a simulated device (this opens a session; later commands reuse it):\n"
        "  %s --security none --token '%s' get coap://%s/value\n"
        "  # 2. write, observe, list the devices:\n"
        "  %s put coap://%s/echo --data hello\n"
        "  %s observe coap://%s/sensor --count 3\n"
        "  %s devices\n"
        "  # 3. end the session:\n"
        "  %s session close\n",
        cl, token, mac, cl, mac, cl, mac, cl, cl);
}
