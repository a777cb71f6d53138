/* SPDX-License-Identifier: MIT */
/* sup_view.c - what `coapgw status`, `coapgw metrics` and the supervisor's
 * metrics endpoint show (SPEC S10.2): a snapshot of the process table and
 * counters in the shared segment, rendered as a table or in the Prometheus
 * text exposition format 0.0.4. The renderers are pure. */
#include "supervisor.h"
#include "gw_addr.h"
#include "gw_clock.h"
#include "gw_error.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void sup_view_snapshot(const struct gw_shm *shm, const struct gw_config *cfg, struct sup_view *v)
{
    memset(v, 0, sizeof(*v));
    snprintf(v->instance, sizeof(v->instance), "%s", cfg->instance);
    v->now_mono_ms = gw_mono_ms();
    uint32_t nprocs = GW_MIN(shm->hdr->nprocs, (uint32_t)SUP_MAX_PROCS);
    for (uint32_t p = 0; p < nprocs; p++) {
        struct gw_proc_slot *s = gw_shm_proc(shm, p);
        struct sup_proc_view pv = { .proc = p };
        pv.pid = atomic_load_explicit(&s->pid, memory_order_relaxed);
        pv.restarts = atomic_load_explicit(&s->restarts, memory_order_relaxed);
        pv.started_wall = atomic_load_explicit(&s->started_wall, memory_order_relaxed);
        pv.started_mono_ms = atomic_load_explicit(&s->started_mono_ms, memory_order_relaxed);
        pv.up = pv.pid != 0 && gw_pid_alive(pv.pid);
        bool configured = p < GW_PROC_MESHSIM || (p >= GW_PROC_FRONTEND0 && p - GW_PROC_FRONTEND0 < cfg->frontends);
        if (!configured && !pv.pid && !pv.started_wall)
            continue;
        pv.has_stats = p != GW_PROC_SUPERVISOR && p != GW_PROC_MESHSIM;
        if (pv.has_stats)
            for (int i = 0; i < GW_STAT_COUNT; i++)
                pv.stats[i] = atomic_load_explicit(&s->stats.v[i], memory_order_relaxed);
        v->procs[v->nprocs++] = pv;
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
    }
    struct gw_ring *sm = gw_shm_ring(shm, gw_ring_sch_to_mesh(shm));
    struct gw_ring *ms = gw_shm_ring(shm, gw_ring_mesh_to_sch(shm));
    v->rings[v->nrings++] = (struct sup_ring_view){ "scheduler", "meshio", gw_ring_count(sm), sm->size };
    v->rings[v->nrings++] = (struct sup_ring_view){ "meshio", "scheduler", gw_ring_count(ms), ms->size };
}

/* ---- Prometheus ------------------------------------------------------------------ */

static const struct {
    const char *name, *kind, *help;
} stat_meta[GW_STAT_COUNT] = {
#define GW_STAT_META(n, k, h) { #n, #k, h },
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

static void labels(struct sbuf *b, uint32_t proc)
{
    int idx;
    const char *role = sup_proc_role(proc, &idx);
    if (idx >= 0)
        sb_printf(b, "{role=\"%s\",instance=\"%d\"}", role, idx);
    else
        sb_printf(b, "{role=\"%s\"}", role);
}

static void family(struct sbuf *b, const char *name, const char *kind, const char *help)
{
    sb_printf(b, "# HELP %s ", name);
    sb_escaped(b, help, false);
    sb_printf(b, "\n# TYPE %s %s\n", name, kind);
}

char *sup_metrics_render(const struct sup_view *v, size_t *len)
{
    struct sbuf b = { 0 };
    family(&b, "coapgw_up", "gauge", "1 when the process is running, else 0.");
    for (uint32_t i = 0; i < v->nprocs; i++) {
        sb_printf(&b, "coapgw_up");
        labels(&b, v->procs[i].proc);
        sb_printf(&b, " %d\n", v->procs[i].up ? 1 : 0);
    }
    family(&b, "coapgw_restarts_total", "counter", "Times the supervisor restarted the process.");
    for (uint32_t i = 0; i < v->nprocs; i++) {
        sb_printf(&b, "coapgw_restarts_total");
        labels(&b, v->procs[i].proc);
        sb_printf(&b, " %" PRIu32 "\n", v->procs[i].restarts);
    }
    family(&b, "coapgw_start_time_seconds", "gauge", "Unix time the process was last started.");
    for (uint32_t i = 0; i < v->nprocs; i++) {
        if (!v->procs[i].started_wall)
            continue;
        sb_printf(&b, "coapgw_start_time_seconds");
        labels(&b, v->procs[i].proc);
        sb_printf(&b, " %" PRId64 "\n", v->procs[i].started_wall);
    }
    for (int s = 0; s < GW_STAT_COUNT; s++) {
        bool counter = !strcmp(stat_meta[s].kind, "counter");
        char name[96];
        snprintf(name, sizeof(name), "coapgw_%s%s", stat_meta[s].name, counter ? "_total" : "");
        char help[160];
        snprintf(help, sizeof(help), "%s.", stat_meta[s].help);
        help[0] = (char)toupper((unsigned char)help[0]);
        family(&b, name, counter ? "counter" : "gauge", help);
        for (uint32_t i = 0; i < v->nprocs; i++) {
            if (!v->procs[i].has_stats)
                continue;
            sb_printf(&b, "%s", name);
            labels(&b, v->procs[i].proc);
            sb_printf(&b, " %" PRIu64 "\n", v->procs[i].stats[s]);
        }
    }
    family(&b, "coapgw_ring_depth", "gauge", "Records waiting in a shared-memory ring.");
    for (uint32_t i = 0; i < v->nrings; i++) {
        sb_printf(&b, "coapgw_ring_depth{from=\"");
        sb_escaped(&b, v->rings[i].from, true);
        sb_printf(&b, "\",to=\"");
        sb_escaped(&b, v->rings[i].to, true);
        sb_printf(&b, "\"} %" PRIu32 "\n", v->rings[i].depth);
    }
    family(&b, "coapgw_ring_slots", "gauge", "Capacity of a shared-memory ring in records.");
    for (uint32_t i = 0; i < v->nrings; i++) {
        sb_printf(&b, "coapgw_ring_slots{from=\"");
        sb_escaped(&b, v->rings[i].from, true);
        sb_printf(&b, "\",to=\"");
        sb_escaped(&b, v->rings[i].to, true);
        sb_printf(&b, "\"} %" PRIu32 "\n", v->rings[i].size);
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
                           ? v->now_mono_ms - p->started_mono_ms : 0;
        if (p->up && !ran)
            ran = 1; /* started this very millisecond: "0s", not "never" */
        sup_fmt_uptime(ran, up, sizeof(up));
        const char *state = p->up ? "running" : p->pid ? "dead" : "stopped";
        sb_printf(&b, "%-12s %-8s %-8s %-8s %" PRIu32 "\n", name, pid, state, up, p->restarts);
    }
    return sb_finish(&b, NULL);
}

/* ---- first request ------------------------------------------------------------------ */

int sup_first_request_text(const char *listen, const char *token, const char *mac, char *buf, size_t len)
{
    struct gw_ep ep;
    if (gw_ep_parse(listen, 5683, &ep) != 0)
        return -EINVAL;
    static const uint8_t zero[16];
    if (!memcmp(ep.addr, zero, sizeof(zero))) {
        /* A wildcard listener is reached through loopback. */
        if (ep.family == 4) {
            ep.addr[0] = 127;
            ep.addr[3] = 1;
        } else {
            ep.addr[15] = 1;
        }
    }
    char gw[GW_EP_STRLEN];
    gw_ep_str(&ep, gw, sizeof(gw));
    /* -p fixes the client's source port: the session is bound to it (S2.4).
     * -P makes coap-client send to the gateway with the target in Proxy-Uri. */
    return snprintf(buf, len,
                    "  # 1. create a session (the token is valid for a day):\n"
                    "  coap-client-notls -p 40001 -m post -e '%s' 'coap://%s/sessions?security=none'\n"
                    "  # 2. read a simulated device through the gateway:\n"
                    "  coap-client-notls -p 40001 -P coap://%s coap://%s/value\n"
                    "  # 3. end the session:\n"
                    "  coap-client-notls -p 40001 -m delete coap://%s/sessions\n",
                    token, gw, gw, mac, gw);
}
