/* SPDX-License-Identifier: MIT */
/* bench_gateway.c - load generator and CPU/memory meter for a running gateway.
 *
 * It talks to a gateway started by `coapgw run` (tests/bench/run-bench.sh
 * starts one) the way real clients do. Each client socket keeps one fixed
 * local port and holds its own session (POST /sessions?security=none with a
 * JWT minted by `coapgw token`, one account per socket). Requests reach the
 * devices through Proxy-Uri. A proxied CON gets the gateway's empty ACK and
 * later a separate CON response, which is ACKed at once; a CON with no ACK
 * at all is retransmitted with RFC 7252 back-off (section 4.2).
 *
 * CPU comes from /proc. For every process whose pid file is in data_dir
 * (supervisor, scheduler, meshio, frontend-N: the gateway; meshsim: the
 * simulated devices, reported apart and left out of the gateway total) the
 * sum over its threads of the first field of /proc/PID/task/TID/schedstat
 * (nanoseconds on a CPU) is sampled at the start and the end of the
 * measured interval, and /proc/PID/stat utime/stime give the user/system
 * split. This process is sampled too (CLOCK_PROCESS_CPUTIME_ID, getrusage),
 * so the load generator's own cost is printed next to the gateway's: on a
 * small machine both share the cores. Memory: VmHWM, VmRSS and RssAnon from
 * /proc/PID/status.
 *
 * Figures are printed, never asserted (STYLE: speed lives in tests/bench/).
 * Each scenario ends with one `RESULT key=value ...` line for scripts.
 *
 * One thread, non-blocking sockets, ppoll(2), recvmmsg(2)/sendmmsg(2).
 * Every loop is bounded in time. The only process it ever signals is the
 * gateway role named by --kill (scenario restart), read from its pid file. */
#include "gw_coap.h"
#include "gw_config.h"
#include "gw_devfile.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "usage: bench_gateway --config CFG --scenario NAME [options]\n"
    "\n"
    "scenarios:\n"
    "  proxy     proxied GET (Proxy-Uri coap://<MAC><path>) to the normal devices of the\n"
    "            devices file, round robin; a window per socket, or --rate\n"
    "  cache     the same, described as cache hits (run it against a gateway with the cache on;\n"
    "            the warm-up fills the cache)\n"
    "  restart   proxy load; after --kill-at seconds SIGKILL the gateway role --kill and\n"
    "            report the gap until answers resume and the errors seen\n"
    "  observe   --observers observers (tokens spread over the sockets) register Observe: 0 on\n"
    "            /sensor of the first --resources devices; notifications/s, then cancel\n"
    "  sessions  create --sessions sessions from distinct endpoints (--window at a time);\n"
    "            sessions/s and memory per idle session (after 16 warm-up sessions, not counted)\n"
    "  idle      gateway CPU over --seconds with no traffic from us\n"
    "  ping      wait up to --seconds for GET /.well-known/core to answer 2.05 (readiness)\n"
    "  free-port print a free UDP port on 127.0.0.1 and exit\n"
    "\n"
    "options:\n"
    "  -c, --config FILE       the gateway's configuration (data_dir, listen); required\n"
    "  -g, --gw HOST:PORT      gateway address (default: `listen` of the config;\n"
    "                          0.0.0.0 means 127.0.0.1)\n"
    "      --coapgw PATH       coapgw binary for `token` and `metrics` (default ./build/coapgw)\n"
    "  -D, --devices-file F    devices to address (default: devices_file of the config, else\n"
    "                          data_dir/meshsim-devices.csv); Milli devices are skipped\n"
    "  -n, --devices N         use at most N devices (default all normal ones)\n"
    "      --first-device N    skip the first N normal devices of the file\n"
    "  -p, --path PATH         resource on the device (default /value; observe: /sensor)\n"
    "  -s, --sockets N         client sockets, each with its own port and session (default 8)\n"
    "  -w, --window N          requests outstanding per socket (default 64)\n"
    "  -t, --seconds S         measured interval (default 5)\n"
    "      --warmup S          unmeasured load before it (default 0.5)\n"
    "  -r, --rate N            open loop: N requests/s in total instead of a full window\n"
    "      --non               NON requests instead of CON\n"
    "      --ack-timeout-ms MS CON retransmission timeout (default 2000)\n"
    "      --timeout-ms MS     a request without an answer after MS is an error (default 10000)\n"
    "      --observers N       observe: observers in all (default 1000)\n"
    "      --resources N       observe: devices whose /sensor is observed (default 4)\n"
    "      --reg-window N      observe: registrations outstanding, at most\n"
    "                          (default 4 per resource)\n"
    "      --obs-period-ms MS  observe: the devices' notification period, for the expected rate\n"
    "      --settle S          observe: seconds between the last registration and the\n"
    "                          steady-state memory sample (default 3)\n"
    "      --sessions N        sessions: how many to create (default 10000)\n"
    "      --accounts N        sessions: accounts to spread them over (default 100)\n"
    "      --then-get          sessions: each new session then sends one proxied GET (--path,\n"
    "                          default /value) to a device, before it goes idle\n"
    "      --kill ROLE         restart: scheduler | meshio | frontend-N (default scheduler)\n"
    "      --kill-at S         restart: seconds into the interval (default half of it)\n"
    "      --label TEXT        name printed in the RESULT line (default: the scenario)\n"
    "\n"
    "measuring something else than coapgw (run-compare.sh: echo and relay floors, libcoap):\n"
    "      --no-session        send requests without creating sessions first\n"
    "      --uri-address       Proxy-Uri names the device's address and port from the devices\n"
    "                          file (coap://127.1.0.2/value) instead of its MAC ID\n"
    "      --proc ROLE=PID     measure this process instead of data_dir's pid files\n"
    "                          (repeatable; ROLE meshsim is reported apart, as the devices);\n"
    "                          --config is then optional when --gw and --devices-file are given\n";

/* ---- options and context ---------------------------------------------------------- */

struct bench_opts {
    const char *gw, *config, *coapgw, *scenario, *devices_file, *path, *kill_role, *label;
    int sockets, window, ndev, first_dev, observers, resources, sessions, accounts, reg_window;
    int ack_timeout_ms, timeout_ms;
    double seconds, warmup, rate, kill_at, obs_period_ms, settle_s;
    bool non, no_session, uri_address, then_get;
    int nproc;
    char proc_role[16][24];
    int proc_pid[16];
};

#define MAX_SOCKETS 1024
#define TOKEN_LEN 6
#define TPL_MAX 320
#define TXQ 64
#define RXB 64
#define MAX_RTX 4
#define SESS_WARMUP 16 /* sessions scenario: created before the measured ones, not counted */
#define MAXPROC 72

enum { K_REQ = 1, K_OBSREG, K_OBSCANCEL };
enum { GEN_NONE = 0, GEN_REQ, GEN_OBSREG, GEN_OBSCANCEL };
enum { OBS_NONE = 0, OBS_PENDING, OBS_ON, OBS_FAILED, OBS_CANCELLING, OBS_OFF };

struct tpl {
    uint16_t len;
    uint8_t b[TPL_MAX];
};

struct txpkt {
    uint16_t len;
    uint8_t b[TPL_MAX];
};

struct csock {
    int fd;
    uint16_t port;
    uint16_t next_mid;
    uint32_t out;     /* requests outstanding */
    uint32_t *midmap; /* MID -> slot index + 1 (0: none) */
    int nq;
    struct txpkt q[TXQ];
};

struct slot {
    uint32_t gen;
    uint32_t ref; /* device index (K_REQ) or observer index */
    uint64_t t0, tnext, tdead;
    uint16_t mid, sock;
    uint8_t busy, acked, tries, kind, after_kill, measured;
};

struct observer {
    uint32_t slot1; /* pending request slot + 1 */
    uint32_t notifs;
    uint16_t sock, res;
    uint8_t state;
    uint8_t retries;     /* registrations refused with 5.03 */
    uint8_t cretries;    /* cancellations refused with 5.03 */
    uint64_t not_before; /* a refused request is retried after its Max-Age (us) */
};

/* A registration refused with 5.03 (device queue full: every new observer
 * makes the gateway send the observe GET again, S6.2; or the frontend's
 * ring to the scheduler full) is retried; so is a cancellation: a 5.03
 * from the frontend means the gateway never saw it, and the observer is
 * still there. Counting it as cancelled left thousands of observers behind
 * in observe-mem ("gateway now reports 3 537 observers" after cancelling). */
#define OBS_REG_RETRIES 20

struct bstats {
    uint64_t sent, ok, e4, e5, timeouts, rsts, rtx, empty_acks, acks_sent, unmatched, notifs,
        stalled;
    uint64_t send_errors;
    uint64_t codes[256];
    uint32_t *lat;
    size_t nlat, cap;
};

struct psamp {
    char role[24];
    int pid;
    uint64_t cpu_ns, ut, st, csw, vcsw, ivcsw;
    long hwm_kb, rss_kb, anon_kb;
    long pss_kb; /* -1 unless pset_read_pss() ran */
};

struct pset {
    int n;
    struct psamp p[MAXPROC];
    uint64_t t_us;
    uint64_t self_ns, self_ut_us, self_st_us, self_csw;
    long self_maxrss_kb;
    uint64_t sys_busy, sys_total; /* /proc/stat, all CPUs, clock ticks */
};

#define MAXMET 200
struct mets {
    int n;
    char name[MAXMET][64];
    double v[MAXMET];
};

struct bench {
    struct bench_opts o;
    struct gw_config cfg;
    struct sockaddr_in gw;
    char run_id[32];

    char (*macs)[17];
    char (*hosts)[32]; /* "A.B.C.D[:PORT]" of each device, for --uri-address */
    int nmacs, macs_cap;
    bool have_config;
    char procs_result[1024]; /* per-process figures for the RESULT line */

    struct csock *cs;
    int ncs;

    struct slot *slots;
    uint32_t nslots, nfree;
    uint32_t *freel;

    struct tpl *tpls;                /* K_REQ: one per device */
    struct tpl *otpl_reg, *otpl_can; /* observe: one per resource */
    struct observer *obs;
    uint32_t nobs, next_obs, obs_on, obs_failed, obs_off, obs_retry, obs_inflight;
    uint64_t obs_rst; /* notifications rejected: the observer is not wanted */
    /* The largest RSS and RssAnon of each process, sampled every 100 ms
     * while `peak` is set (observe: the registration storm). */
    struct pset *peak, *peak_tmp;
    uint64_t peak_next;

    int gen_mode;
    bool measuring;
    uint64_t measure_t0;
    uint64_t rate_t0, rate_done;
    uint32_t next_dev, next_sock;
    struct bstats st;
    struct bstats reg_st; /* observe registrations */

    /* restart */
    uint64_t kill_at_us, killed_us, respawn_us, first_ok_after_us, last_ok_before_us;
    int killed_pid;
    uint64_t abandoned, late;
    uint64_t err_after_kill;
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void sleep_us(uint64_t us)
{
    struct timespec ts = { (time_t)(us / 1000000u), (long)(us % 1000000u) * 1000 };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- /proc sampling ------------------------------------------------------------------ */

static int read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return (int)n;
}

static int pid_of_role(const struct bench *b, const char *role)
{
    char path[GW_CFG_STR + 64], buf[32];
    snprintf(path, sizeof(path), "%s/%s.pid", b->cfg.data_dir, role);
    if (read_file(path, buf, sizeof(buf)) <= 0)
        return 0;
    int pid = atoi(buf);
    if (pid <= 0 || kill(pid, 0) != 0)
        return 0;
    return pid;
}

/* Nanoseconds on a CPU, summed over the process's threads (0 if gone). */
static uint64_t proc_cpu_ns(int pid)
{
    char path[64], buf[128];
    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    uint64_t sum = 0;
    struct dirent *e;
    for (int i = 0; i < 4096 && (e = readdir(d)) != NULL; i++) {
        if (e->d_name[0] == '.')
            continue;
        char p2[320];
        snprintf(p2, sizeof(p2), "/proc/%d/task/%s/schedstat", pid, e->d_name);
        if (read_file(p2, buf, sizeof(buf)) > 0)
            sum += strtoull(buf, NULL, 10);
    }
    closedir(d);
    return sum;
}

static void proc_stat_times(int pid, uint64_t *ut, uint64_t *st)
{
    char path[64], buf[1024];
    *ut = *st = 0;
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if (read_file(path, buf, sizeof(buf)) <= 0)
        return;
    char *p = strrchr(buf, ')');
    if (!p)
        return;
    /* Fields after the command: 3 state ... 14 utime 15 stime. */
    p += 2;
    for (int field = 3; field < 14 && p; field++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    if (!p)
        return;
    char *end;
    *ut = strtoull(p, &end, 10);
    *st = strtoull(end, NULL, 10);
}

static void proc_status(int pid, struct psamp *s)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    if (read_file(path, buf, sizeof(buf)) <= 0)
        return;
    char *line = buf;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        long v;
        if (sscanf(line, "VmHWM: %ld", &v) == 1)
            s->hwm_kb = v;
        else if (sscanf(line, "VmRSS: %ld", &v) == 1)
            s->rss_kb = v;
        else if (sscanf(line, "RssAnon: %ld", &v) == 1)
            s->anon_kb = v;
        else if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1) {
            s->csw += (uint64_t)v;
            s->vcsw = (uint64_t)v;
        } else if (sscanf(line, "nonvoluntary_ctxt_switches: %ld", &v) == 1) {
            s->csw += (uint64_t)v;
            s->ivcsw = (uint64_t)v;
        }
        line = nl ? nl + 1 : NULL;
    }
}

static void pset_add_pid(struct pset *ps, const char *role, int pid)
{
    if (ps->n >= MAXPROC || pid <= 0 || kill(pid, 0) != 0)
        return;
    struct psamp *s = &ps->p[ps->n++];
    memset(s, 0, sizeof(*s));
    snprintf(s->role, sizeof(s->role), "%s", role);
    s->pid = pid;
    s->pss_kb = -1;
    s->cpu_ns = proc_cpu_ns(pid);
    proc_stat_times(pid, &s->ut, &s->st);
    proc_status(pid, s);
}

static void pset_add(const struct bench *b, struct pset *ps, const char *role)
{
    pset_add_pid(ps, role, pid_of_role(b, role));
}

static void pset_sample(const struct bench *b, struct pset *ps)
{
    ps->n = 0;
    if (b->o.nproc) {
        for (int i = 0; i < b->o.nproc; i++)
            pset_add_pid(ps, b->o.proc_role[i], b->o.proc_pid[i]);
    } else {
        static const char *fixed[] = { "supervisor", "scheduler", "meshio" };
        for (size_t i = 0; i < GW_ARRAY_LEN(fixed); i++)
            pset_add(b, ps, fixed[i]);
        for (int i = 0; i < 64; i++) {
            char r[24];
            snprintf(r, sizeof(r), "frontend-%d", i);
            pset_add(b, ps, r);
        }
        pset_add(b, ps, "meshsim");
    }
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    ps->self_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    ps->self_ut_us = (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec;
    ps->self_st_us = (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
    ps->self_csw = (uint64_t)(ru.ru_nvcsw + ru.ru_nivcsw);
    ps->self_maxrss_kb = ru.ru_maxrss;
    char buf[512];
    unsigned long long f[8] = { 0 };
    ps->sys_busy = ps->sys_total = 0;
    if (read_file("/proc/stat", buf, sizeof(buf)) > 0 &&
        sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &f[0], &f[1], &f[2], &f[3],
               &f[4], &f[5], &f[6], &f[7]) == 8) {
        for (int i = 0; i < 8; i++)
            ps->sys_total += f[i];
        ps->sys_busy = ps->sys_total - f[3] - f[4]; /* minus idle and iowait */
    }
    ps->t_us = now_us();
}

/* Pss of each sampled process (smaps_rollup): a shared page (LMDB's map,
 * the shared segment) counts once in all, split among the processes that
 * map it, where VmRSS counts it in each. Read only where memory is
 * reported: it walks the page tables. */
static void pset_read_pss(struct pset *ps)
{
    for (int i = 0; i < ps->n; i++) {
        char path[64], buf[2048];
        snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", ps->p[i].pid);
        const char *l = read_file(path, buf, sizeof(buf)) > 0 ? strstr(buf, "\nPss:") : NULL;
        long v;
        if (l && sscanf(l + 1, "Pss: %ld", &v) == 1)
            ps->p[i].pss_kb = v;
    }
}

static const struct psamp *pset_find(const struct pset *ps, const char *role)
{
    for (int i = 0; i < ps->n; i++)
        if (!strcmp(ps->p[i].role, role))
            return &ps->p[i];
    return NULL;
}

static double met(const struct mets *m, const char *name);

/* Folds a fresh sample into b->peak: the largest resident and anonymous
 * figures each process (same pid) has shown. */
static void peak_sample(struct bench *b)
{
    pset_sample(b, b->peak_tmp);
    for (int i = 0; i < b->peak_tmp->n; i++) {
        const struct psamp *x = &b->peak_tmp->p[i];
        struct psamp *y = (struct psamp *)pset_find(b->peak, x->role);
        if (!y || y->pid != x->pid)
            continue;
        y->rss_kb = GW_MAX(y->rss_kb, x->rss_kb);
        y->anon_kb = GW_MAX(y->anon_kb, x->anon_kb);
    }
}

/* Per-process count of a gateway counter between two metric reads: the
 * metric name with "@role" (bell_writes_total@frontend-0), or -1 when the
 * process exports none (not a coapgw process). */
static double met_role_delta(const struct mets *a, const struct mets *z, const char *name,
                             const char *role)
{
    if (!a || !z)
        return -1;
    char key[64];
    snprintf(key, sizeof(key), "%s@%s", name, role);
    for (int i = 0; i < z->n; i++)
        if (!strcmp(z->name[i], key))
            return z->v[i] - met(a, key);
    return -1;
}

struct cpu_sum {
    double gw_us, fe_us, sch_us, mio_us, sup_us, sim_us, self_us, other_pct;
    long gw_hwm_kb, gw_rss_kb;
};

/* Prints one row per process: CPU between a and z, per op (ops > 0), memory at z. */
static void report_procs(struct bench *b, const struct pset *a, const struct pset *z, uint64_t ops,
                         const char *unit, struct cpu_sum *sum, const struct mets *m0,
                         const struct mets *m1)
{
    memset(sum, 0, sizeof(*sum));
    b->procs_result[0] = '\0';
    size_t pr = 0;
    double secs = (double)(z->t_us - a->t_us) / 1e6;
    printf("  %-14s %7s %9s %9s %6s %8s %9s %9s %9s\n", "process", "pid", "cpu ms",
           ops ? unit : "cpu %", "sys%", "csw/s", "VmHWM MiB", "VmRSS MiB", "anon MiB");
    for (int i = 0; i < z->n; i++) {
        const struct psamp *e = &z->p[i];
        const struct psamp *s = pset_find(a, e->role);
        bool restarted = !s || s->pid != e->pid;
        double cpu_us = (double)(e->cpu_ns - (restarted ? 0 : s->cpu_ns)) / 1e3;
        double ticks = (double)(e->ut + e->st) - (restarted ? 0 : (double)(s->ut + s->st));
        double sys = (double)e->st - (restarted ? 0 : (double)s->st);
        double csw = (double)e->csw - (restarted ? 0 : (double)s->csw);
        char per[32];
        if (ops)
            snprintf(per, sizeof(per), "%.2f", cpu_us / (double)ops);
        else
            snprintf(per, sizeof(per), "%.3f", cpu_us / secs / 1e4);
        printf("  %-14s %7d %9.1f %9s %6.0f %8.0f %9.1f %9.1f %9.1f%s\n", e->role, e->pid,
               cpu_us / 1e3, per, ticks > 0 ? 100.0 * sys / ticks : 0.0, csw / secs,
               (double)e->hwm_kb / 1024, (double)e->rss_kb / 1024, (double)e->anon_kb / 1024,
               restarted ? "  (new pid: its predecessor's CPU is not counted)" : "");
        if (ops) {
            /* Wake-up costs per operation: context switches (voluntary: it
             * slept; involuntary: it was preempted), doorbell writes it made
             * and event loop turns (each one epoll_wait return). */
            double vc = (double)e->vcsw - (restarted ? 0 : (double)s->vcsw);
            double ic = (double)e->ivcsw - (restarted ? 0 : (double)s->ivcsw);
            double bells = met_role_delta(m0, m1, "bell_writes_total", e->role);
            double turns = met_role_delta(m0, m1, "loop_turns_total", e->role);
            double o = (double)ops;
            char bs[16] = "-", ts[16] = "-";
            if (bells >= 0)
                snprintf(bs, sizeof(bs), "%.3f", bells / o);
            if (turns >= 0)
                snprintf(ts, sizeof(ts), "%.3f", turns / o);
            printf("  %-14s %7s per op: vcsw %.3f  ivcsw %.3f  bell writes %s  loop turns %s\n", "",
                   "", vc / o, ic / o, bs, ts);
            if (pr < sizeof(b->procs_result) - 96)
                pr += (size_t)snprintf(b->procs_result + pr, sizeof(b->procs_result) - pr,
                                       "%s%s:%.2f:%.3f:%.3f:%s:%s", pr ? "," : "", e->role,
                                       cpu_us / o, vc / o, ic / o, bs, ts);
        }
        if (!strcmp(e->role, "meshsim")) {
            sum->sim_us += cpu_us;
            continue;
        }
        sum->gw_us += cpu_us;
        sum->gw_hwm_kb += e->hwm_kb;
        sum->gw_rss_kb += e->rss_kb;
        if (!strncmp(e->role, "frontend", 8))
            sum->fe_us += cpu_us;
        else if (!strcmp(e->role, "scheduler"))
            sum->sch_us += cpu_us;
        else if (!strcmp(e->role, "meshio"))
            sum->mio_us += cpu_us;
        else
            sum->sup_us += cpu_us;
    }
    char per[32];
    if (ops)
        snprintf(per, sizeof(per), "%.2f", sum->gw_us / (double)ops);
    else
        snprintf(per, sizeof(per), "%.3f", sum->gw_us / secs / 1e4);
    printf("  %-14s %7s %9.1f %9s %6s %8s %9.1f %9.1f\n", "GATEWAY TOTAL", "", sum->gw_us / 1e3,
           per, "", "", (double)sum->gw_hwm_kb / 1024, (double)sum->gw_rss_kb / 1024);
    double self_us = (double)(z->self_ns - a->self_ns) / 1e3;
    double self_t =
        (double)(z->self_ut_us + z->self_st_us) - (double)(a->self_ut_us + a->self_st_us);
    double self_sys = (double)z->self_st_us - (double)a->self_st_us;
    sum->self_us = self_us;
    if (ops)
        snprintf(per, sizeof(per), "%.2f", self_us / (double)ops);
    else
        snprintf(per, sizeof(per), "%.3f", self_us / secs / 1e4);
    printf("  %-14s %7d %9.1f %9s %6.0f %8.0f %9.1f\n", "bench (self)", (int)getpid(),
           self_us / 1e3, per, self_t > 0 ? 100.0 * self_sys / self_t : 0.0,
           (double)(z->self_csw - a->self_csw) / secs, (double)z->self_maxrss_kb / 1024);
    /* Whatever else ran on the machine meanwhile skews every figure above. */
    long hz = sysconf(_SC_CLK_TCK);
    if (z->sys_total > a->sys_total && hz > 0) {
        double busy_us = (double)(z->sys_busy - a->sys_busy) * 1e6 / (double)hz;
        double all_us = (double)(z->sys_total - a->sys_total) * 1e6 / (double)hz;
        double ours = sum->gw_us + sum->sim_us + self_us;
        double other = busy_us > ours ? busy_us - ours : 0;
        printf("  machine      : CPUs %.0f%% busy; %.0f%% of all CPU time went to processes not "
               "listed here%s\n",
               100.0 * busy_us / all_us, 100.0 * other / all_us,
               other / all_us > 0.1 ? " (figures are skewed)" : "");
        sum->other_pct = 100.0 * other / all_us;
    }
    if (ops)
        printf("  (meshsim is the simulated devices: not in the gateway total. %s = CPU us per %s;"
               " csw/s = context switches)\n",
               unit, unit + 3);
    else
        printf("  (meshsim is the simulated devices: not in the gateway total. cpu %% = share of "
               "one CPU;"
               " csw/s = context switches)\n");
}

/* ---- metrics and tokens through the coapgw binary ------------------------------------ */

static void metrics_read(const struct bench *b, struct mets *m)
{
    m->n = 0;
    if (!b->have_config)
        return;
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' metrics -c '%s' 2>/dev/null", b->o.coapgw, b->o.config);
    FILE *f = popen(cmd, "r");
    if (!f)
        return;
    char line[512];
    for (int i = 0; i < 20000 && fgets(line, sizeof(line), f); i++) {
        if (strncmp(line, "coapgw_", 7) != 0)
            continue;
        char name[64];
        size_t k = 0;
        for (const char *p = line + 7; *p && *p != '{' && *p != ' ' && k < sizeof(name) - 1; p++)
            name[k++] = *p;
        name[k] = '\0';
        char *sp = strrchr(line, ' ');
        if (!sp)
            continue;
        double v = strtod(sp + 1, NULL);
        /* Wake-up counters are also kept per process (run-compare.sh). */
        if ((!strcmp(name, "bell_writes_total") || !strcmp(name, "loop_turns_total")) &&
            m->n < MAXMET) {
            char role[24] = "", inst[8] = "";
            const char *r = strstr(line, "role=\""), *in = strstr(line, "frontend=\"");
            if (r)
                sscanf(r + 6, "%23[^\"]", role);
            if (in)
                sscanf(in + 10, "%7[^\"]", inst);
            if (role[0]) {
                char key[128];
                snprintf(key, sizeof(key), "%s@%s%s%s", name, role, inst[0] ? "-" : "", inst);
                snprintf(m->name[m->n], sizeof(m->name[0]), "%.63s", key);
                m->v[m->n++] = v;
            }
        }
        int j;
        for (j = 0; j < m->n; j++)
            if (!strcmp(m->name[j], name))
                break;
        if (j == m->n) {
            if (m->n >= MAXMET)
                continue;
            snprintf(m->name[m->n], sizeof(m->name[0]), "%s", name);
            m->v[m->n++] = 0;
        }
        m->v[j] += v;
    }
    pclose(f);
}

static double met(const struct mets *m, const char *name)
{
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->name[i], name))
            return m->v[i];
    return 0;
}

static void metrics_print_delta(const struct mets *a, const struct mets *z)
{
    if (!z->n) {
        printf("  gateway counters: (coapgw metrics gave nothing)\n");
        return;
    }
    printf("  gateway counters:");
    int col = 20;
    for (int i = 0; i < z->n; i++) {
        const char *n = z->name[i];
        size_t l = strlen(n);
        if (l < 7 || strcmp(n + l - 6, "_total") != 0 || !strncmp(n, "restarts", 8))
            continue;
        double d = z->v[i] - met(a, n);
        if (d == 0)
            continue;
        char item[96];
        int il = snprintf(item, sizeof(item), " %.*s %+.0f", (int)(l - 6), n, d);
        if (col + il > 100) {
            printf("\n                   ");
            col = 19;
        }
        fputs(item, stdout);
        col += il;
    }
    static const char *gauges[] = { "sessions_live", "observers",   "observations",
                                    "cache_entries", "queue_depth", "inflight" };
    printf("\n  gateway gauges  :");
    for (size_t i = 0; i < GW_ARRAY_LEN(gauges); i++)
        printf(" %s %.0f", gauges[i], met(z, gauges[i]));
    printf("\n");
}

static int mint_token(const struct bench *b, const char *account, char *out, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' token --account '%s' --ttl 86400 -c '%s'", b->o.coapgw,
             account, b->o.config);
    FILE *f = popen(cmd, "r");
    if (!f)
        return -errno;
    out[0] = '\0';
    if (!fgets(out, (int)cap, f))
        out[0] = '\0';
    int st = pclose(f);
    size_t l = strlen(out);
    while (l && (out[l - 1] == '\n' || out[l - 1] == '\r' || out[l - 1] == ' '))
        out[--l] = '\0';
    if (st != 0 || l < 10) {
        fprintf(stderr, "bench_gateway: `%s` failed (status %d)\n", cmd, st);
        return -EINVAL;
    }
    return 0;
}

/* ---- devices ------------------------------------------------------------------------- */

static int dev_cb(void *ctx, const struct gw_device *d)
{
    struct bench *b = ctx;
    if (d->type != GW_DEV_NORMAL)
        return 0; /* A Milli serves one request at a time and refuses the rest (5.03). */
    if (b->nmacs == b->macs_cap) {
        int nc = b->macs_cap ? 2 * b->macs_cap : 64;
        void *n = realloc(b->macs, (size_t)nc * sizeof(*b->macs));
        if (!n)
            return -ENOMEM;
        b->macs = n;
        n = realloc(b->hosts, (size_t)nc * sizeof(*b->hosts));
        if (!n)
            return -ENOMEM;
        b->hosts = n;
        b->macs_cap = nc;
    }
    for (int i = 0; i < GW_MAC_LEN; i++)
        snprintf(b->macs[b->nmacs] + 2 * i, 3, "%02x", d->mac[i]);
    char *h = b->hosts[b->nmacs];
    if (d->family != 4)
        snprintf(h, sizeof(b->hosts[0]), "[v6]"); /* --uri-address is for IPv4 loopback */
    else if (d->plain_port == 5683)
        snprintf(h, sizeof(b->hosts[0]), "%u.%u.%u.%u", d->addr[0], d->addr[1], d->addr[2],
                 d->addr[3]);
    else
        snprintf(h, sizeof(b->hosts[0]), "%u.%u.%u.%u:%u", d->addr[0], d->addr[1], d->addr[2],
                 d->addr[3], d->plain_port);
    b->nmacs++;
    return 0;
}

static int load_devices(struct bench *b)
{
    char path[GW_CFG_STR + 64];
    if (b->o.devices_file)
        snprintf(path, sizeof(path), "%s", b->o.devices_file);
    else if (b->cfg.devices_file[0])
        snprintf(path, sizeof(path), "%s", b->cfg.devices_file);
    else
        snprintf(path, sizeof(path), "%s/meshsim-devices.csv", b->cfg.data_dir);
    int rc = gw_devfile_load(path, dev_cb, NULL, b);
    if (rc < 0 || b->nmacs == 0) {
        fprintf(stderr, "bench_gateway: no normal devices in %s (%d)\n", path, rc);
        return -1;
    }
    if (b->o.first_dev > 0) {
        if (b->o.first_dev >= b->nmacs) {
            fprintf(stderr, "bench_gateway: --first-device %d: only %d normal devices in %s\n",
                    b->o.first_dev, b->nmacs, path);
            return -1;
        }
        memmove(b->macs, b->macs + b->o.first_dev,
                (size_t)(b->nmacs - b->o.first_dev) * sizeof(*b->macs));
        memmove(b->hosts, b->hosts + b->o.first_dev,
                (size_t)(b->nmacs - b->o.first_dev) * sizeof(*b->hosts));
        b->nmacs -= b->o.first_dev;
    }
    if (b->o.ndev > 0 && b->o.ndev < b->nmacs)
        b->nmacs = b->o.ndev;
    return 0;
}

/* ---- sockets and messages ------------------------------------------------------------- */

static int udp_open(uint32_t addr_host)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in me = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(addr_host) };
    if (bind(fd, (struct sockaddr *)&me, sizeof(me)) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    int rb = 4 << 20, sb = 1 << 20;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rb, sizeof(rb));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
    return fd;
}

static uint16_t sock_port(int fd)
{
    struct sockaddr_in a;
    socklen_t l = sizeof(a);
    if (getsockname(fd, (struct sockaddr *)&a, &l) != 0)
        return 0;
    return ntohs(a.sin_port);
}

/* A received message, just what the load generator needs. */
struct rmsg {
    uint8_t type, code, tkl;
    uint16_t mid;
    const uint8_t *tok;
    bool has_obs;
    int64_t max_age; /* -1: none */
};

static bool rmsg_parse(const uint8_t *p, size_t n, struct rmsg *m)
{
    if (n < 4 || (p[0] >> 6) != 1)
        return false;
    m->type = (p[0] >> 4) & 3;
    m->tkl = p[0] & 15;
    m->code = p[1];
    m->mid = (uint16_t)(p[2] << 8 | p[3]);
    m->has_obs = false;
    m->max_age = -1;
    if (m->tkl > 8 || n < 4u + m->tkl)
        return false;
    m->tok = p + 4;
    size_t i = 4u + m->tkl;
    unsigned num = 0;
    for (int k = 0; k < 64 && i < n && p[i] != 0xff; k++) {
        unsigned d = p[i] >> 4, l = p[i] & 15;
        i++;
        if (d == 13) {
            if (i >= n)
                return true;
            d = 13u + p[i++];
        } else if (d == 14) {
            if (i + 1 >= n)
                return true;
            d = 269u + (unsigned)(p[i] << 8 | p[i + 1]);
            i += 2;
        } else if (d == 15) {
            return true;
        }
        if (l == 13) {
            if (i >= n)
                return true;
            l = 13u + p[i++];
        } else if (l == 14) {
            if (i + 1 >= n)
                return true;
            l = 269u + (unsigned)(p[i] << 8 | p[i + 1]);
            i += 2;
        }
        num += d;
        if (num == GW_OPT_OBSERVE)
            m->has_obs = true;
        if (num == GW_OPT_MAX_AGE && l <= 4 && i + l <= n) {
            m->max_age = 0;
            for (unsigned j = 0; j < l; j++)
                m->max_age = m->max_age << 8 | p[i + j];
        }
        if (num > GW_OPT_MAX_AGE)
            break;
        i += l;
    }
    return true;
}

static void txq_flush(struct bench *b, struct csock *c)
{
    if (!c->nq)
        return;
    struct mmsghdr mm[TXQ];
    struct iovec iov[TXQ];
    for (int i = 0; i < c->nq; i++) {
        iov[i].iov_base = c->q[i].b;
        iov[i].iov_len = c->q[i].len;
        memset(&mm[i], 0, sizeof(mm[i]));
        mm[i].msg_hdr.msg_iov = &iov[i];
        mm[i].msg_hdr.msg_iovlen = 1;
        mm[i].msg_hdr.msg_name = &b->gw;
        mm[i].msg_hdr.msg_namelen = sizeof(b->gw);
    }
    int done = 0;
    for (int tries = 0; tries < 4 && done < c->nq; tries++) {
        int r = sendmmsg(c->fd, mm + done, (unsigned)(c->nq - done), 0);
        if (r > 0) {
            done += r;
            continue;
        }
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            /* ECONNREFUSED etc.: drop this one datagram, as the network would. */
            b->st.send_errors++;
            done++;
            continue;
        }
        break;
    }
    if (done < c->nq)
        memmove(c->q, c->q + done, (size_t)(c->nq - done) * sizeof(c->q[0]));
    c->nq -= done;
}

static struct txpkt *txq_slot(struct bench *b, struct csock *c)
{
    if (c->nq == TXQ)
        txq_flush(b, c);
    if (c->nq == TXQ) {
        b->st.send_errors++; /* the send buffer stays full: drop the oldest */
        memmove(c->q, c->q + 1, (TXQ - 1) * sizeof(c->q[0]));
        c->nq--;
    }
    return &c->q[c->nq++];
}

static void send_empty(struct bench *b, struct csock *c, uint8_t type, uint16_t mid)
{
    struct txpkt *t = txq_slot(b, c);
    t->b[0] = (uint8_t)(0x40 | type << 4);
    t->b[1] = 0;
    t->b[2] = (uint8_t)(mid >> 8);
    t->b[3] = (uint8_t)mid;
    t->len = 4;
}

static int tpl_build(struct tpl *t, const char *mac, const char *path, int observe)
{
    static const uint8_t zero[TOKEN_LEN];
    char uri[256];
    snprintf(uri, sizeof(uri), "coap://%s%s%s", mac, path[0] == '/' ? "" : "/", path);
    struct gw_cb cb;
    gw_cb_init(&cb, t->b, sizeof(t->b), GW_COAP_CON, GW_COAP_GET, 0, zero, TOKEN_LEN);
    if (observe >= 0)
        gw_cb_opt_uint(&cb, GW_OPT_OBSERVE, (uint32_t)observe);
    gw_cb_opt_str(&cb, GW_OPT_PROXY_URI, uri);
    size_t len;
    if (gw_cb_finish(&cb, &len) != 0)
        return -1;
    t->len = (uint16_t)len;
    return 0;
}

/* ---- blocking exchange for setup (sessions, readiness) -------------------------------- */

/* Sends one CON request from fd and waits for the final answer (separate or
 * piggybacked), ACKing CON messages; retransmits every 500 ms. Returns the
 * response code, or 0 on timeout. */
static uint8_t sync_request(struct bench *b, int fd, uint8_t *pkt, size_t len, int timeout_ms)
{
    uint16_t mid = (uint16_t)(pkt[2] << 8 | pkt[3]);
    uint8_t tkl = pkt[0] & 15;
    const uint8_t *tok = pkt + 4;
    uint64_t end = now_us() + (uint64_t)timeout_ms * 1000, next = 0;
    while (now_us() < end) {
        uint64_t now = now_us();
        if (now >= next) {
            if (sendto(fd, pkt, len, 0, (struct sockaddr *)&b->gw, sizeof(b->gw)) < 0 &&
                errno != EAGAIN)
                return 0;
            next = now + 500000;
        }
        struct pollfd p = { fd, POLLIN, 0 };
        (void)poll(&p, 1, 50);
        uint8_t rb[1500];
        ssize_t n;
        for (int k = 0; k < 64 && (n = recv(fd, rb, sizeof(rb), MSG_DONTWAIT)) > 0; k++) {
            struct rmsg m;
            if (!rmsg_parse(rb, (size_t)n, &m))
                continue;
            if (m.type == GW_COAP_CON) {
                uint8_t ack[4] = { 0x60, 0, rb[2], rb[3] };
                (void)sendto(fd, ack, 4, 0, (struct sockaddr *)&b->gw, sizeof(b->gw));
            }
            if (m.type == GW_COAP_ACK && m.mid == mid && m.code == 0)
                next = end; /* acknowledged: stop retransmitting */
            if (m.code != 0 && m.tkl == tkl && !memcmp(m.tok, tok, tkl))
                return m.code;
        }
    }
    return 0;
}

static size_t session_post(uint8_t *out, size_t cap, uint16_t mid, const uint8_t tok[4],
                           const char *jwt)
{
    struct gw_cb cb;
    gw_cb_init(&cb, out, cap, GW_COAP_CON, GW_COAP_POST, mid, tok, 4);
    gw_cb_opt_str(&cb, GW_OPT_URI_PATH, "sessions");
    gw_cb_opt_str(&cb, GW_OPT_URI_QUERY, "security=none");
    gw_cb_payload(&cb, jwt, strlen(jwt));
    size_t len;
    return gw_cb_finish(&cb, &len) == 0 ? len : 0;
}

/* Opens b->o.sockets client sockets, each with a session of its own account. */
static int sockets_open(struct bench *b)
{
    b->ncs = b->o.sockets;
    b->cs = calloc((size_t)b->ncs, sizeof(*b->cs));
    if (!b->cs)
        return -1;
    for (int i = 0; i < b->ncs; i++) {
        struct csock *c = &b->cs[i];
        c->fd = udp_open(INADDR_LOOPBACK);
        if (c->fd < 0) {
            fprintf(stderr, "bench_gateway: socket: %s\n", strerror(-c->fd));
            return -1;
        }
        c->port = sock_port(c->fd);
        c->midmap = calloc(65536, sizeof(uint32_t));
        if (!c->midmap)
            return -1;
        uint32_t r = (uint32_t)rand();
        c->next_mid = (uint16_t)r;
        if (b->o.no_session)
            continue;
        char account[64], jwt[4096];
        snprintf(account, sizeof(account), "%ss%d", b->run_id, i);
        if (mint_token(b, account, jwt, sizeof(jwt)) != 0)
            return -1;
        uint8_t pkt[4600], tok[4] = { 'S', (uint8_t)i, (uint8_t)(i >> 8), (uint8_t)r };
        size_t len = session_post(pkt, sizeof(pkt), c->next_mid++, tok, jwt);
        uint8_t code = len ? sync_request(b, c->fd, pkt, len, 10000) : 0;
        if (code != GW_COAP_CREATED) {
            char cs[8];
            fprintf(stderr, "bench_gateway: session for socket %d (port %u): %s\n", i, c->port,
                    code ? gw_coap_code_str(code, cs) : "no answer");
            return -1;
        }
    }
    return 0;
}

/* Ends each socket's session (DELETE /sessions), so runs do not pile up
 * sessions in the gateway, then closes the sockets. */
static void sockets_close(struct bench *b)
{
    for (int i = 0; i < b->ncs; i++) {
        if (b->cs[i].fd >= 0 && b->o.no_session) {
            close(b->cs[i].fd);
        } else if (b->cs[i].fd >= 0) {
            uint8_t pkt[32], tok[2] = { 'X', (uint8_t)i };
            struct gw_cb cb;
            gw_cb_init(&cb, pkt, sizeof(pkt), GW_COAP_CON, GW_COAP_DELETE, b->cs[i].next_mid++, tok,
                       2);
            gw_cb_opt_str(&cb, GW_OPT_URI_PATH, "sessions");
            size_t len;
            if (gw_cb_finish(&cb, &len) == 0)
                (void)sync_request(b, b->cs[i].fd, pkt, len, 1000);
            close(b->cs[i].fd);
        }
        free(b->cs[i].midmap);
    }
    free(b->cs);
    b->cs = NULL;
    b->ncs = 0;
}

static int slots_init(struct bench *b, uint32_t n)
{
    b->nslots = n;
    b->slots = calloc(n, sizeof(*b->slots));
    b->freel = calloc(n, sizeof(*b->freel));
    if (!b->slots || !b->freel)
        return -1;
    b->nfree = n;
    for (uint32_t i = 0; i < n; i++)
        b->freel[i] = n - 1 - i;
    return 0;
}

/* ---- the load engine -------------------------------------------------------------------- */

static void lat_add(struct bstats *s, uint64_t us)
{
    if (s->nlat == s->cap) {
        size_t nc = s->cap ? 2 * s->cap : 65536;
        void *n = realloc(s->lat, nc * sizeof(*s->lat));
        if (!n)
            return;
        s->lat = n;
        s->cap = nc;
    }
    s->lat[s->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void stats_reset(struct bstats *s)
{
    uint32_t *lat = s->lat;
    size_t cap = s->cap;
    memset(s, 0, sizeof(*s));
    s->lat = lat;
    s->cap = cap;
}

static void build_pkt(struct bench *b, struct slot *sl, uint32_t idx, uint8_t *out, uint16_t *len)
{
    const struct tpl *t;
    uint8_t tok[TOKEN_LEN];
    if (sl->kind == K_REQ) {
        t = &b->tpls[sl->ref];
        tok[0] = 'B';
        tok[1] = (uint8_t)(idx >> 16);
        tok[2] = (uint8_t)(idx >> 8);
        tok[3] = (uint8_t)idx;
        tok[4] = (uint8_t)(sl->gen >> 8);
        tok[5] = (uint8_t)sl->gen;
    } else {
        const struct observer *o = &b->obs[sl->ref];
        t = sl->kind == K_OBSREG ? &b->otpl_reg[o->res] : &b->otpl_can[o->res];
        tok[0] = 'O';
        tok[1] = (uint8_t)(sl->ref >> 16);
        tok[2] = (uint8_t)(sl->ref >> 8);
        tok[3] = (uint8_t)sl->ref;
        tok[4] = tok[5] = 0;
    }
    memcpy(out, t->b, t->len);
    uint8_t type = (b->o.non && sl->kind == K_REQ) ? GW_COAP_NON : GW_COAP_CON;
    out[0] = (uint8_t)(0x40 | type << 4 | TOKEN_LEN);
    out[2] = (uint8_t)(sl->mid >> 8);
    out[3] = (uint8_t)sl->mid;
    memcpy(out + 4, tok, TOKEN_LEN);
    *len = t->len;
}

/* Starts one request on socket s. Returns false when no slot or MID is free. */
static bool issue(struct bench *b, int s, uint8_t kind, uint32_t ref)
{
    if (!b->nfree)
        return false;
    struct csock *c = &b->cs[s];
    uint16_t mid = c->next_mid;
    int k;
    for (k = 0; k < 65536 && c->midmap[mid]; k++)
        mid++;
    if (k == 65536)
        return false;
    c->next_mid = (uint16_t)(mid + 1);
    uint32_t idx = b->freel[--b->nfree];
    struct slot *sl = &b->slots[idx];
    uint64_t now = now_us();
    sl->busy = 1;
    sl->acked = 0;
    sl->tries = 0;
    sl->kind = kind;
    sl->ref = ref;
    sl->mid = mid;
    sl->sock = (uint16_t)s;
    sl->t0 = now;
    sl->tnext = now + (uint64_t)b->o.ack_timeout_ms * 1000;
    sl->tdead = now + (uint64_t)b->o.timeout_ms * 1000;
    sl->after_kill = b->killed_us != 0;
    sl->measured = b->measuring;
    c->midmap[mid] = idx + 1;
    c->out++;
    struct txpkt *t = txq_slot(b, c);
    build_pkt(b, sl, idx, t->b, &t->len);
    if (b->measuring || kind != K_REQ)
        (kind == K_REQ ? &b->st : &b->reg_st)->sent++;
    return true;
}

static void slot_release(struct bench *b, uint32_t idx)
{
    struct slot *sl = &b->slots[idx];
    struct csock *c = &b->cs[sl->sock];
    if (c->midmap[sl->mid] == idx + 1)
        c->midmap[sl->mid] = 0;
    c->out--;
    sl->busy = 0;
    sl->gen++;
    b->freel[b->nfree++] = idx;
}

/* code 0 means a timeout, 0xff an RST. max_age: of a 5.03, -1 for none. */
static void finish_ma(struct bench *b, uint32_t idx, uint8_t code, uint64_t now, int64_t max_age);

static void finish(struct bench *b, uint32_t idx, uint8_t code, uint64_t now)
{
    finish_ma(b, idx, code, now, -1);
}

static void finish_ma(struct bench *b, uint32_t idx, uint8_t code, uint64_t now, int64_t max_age)
{
    struct slot *sl = &b->slots[idx];
    struct bstats *s = sl->kind == K_REQ ? &b->st : &b->reg_st;
    bool count = sl->kind != K_REQ || b->measuring;
    bool ok = code != 0 && code != 0xff && (code >> 5) == 2;
    if (count) {
        if (code == 0)
            s->timeouts++;
        else if (code == 0xff)
            s->rsts++;
        else {
            s->codes[code]++;
            if (ok)
                s->ok++;
            else if ((code >> 5) == 4)
                s->e4++;
            else
                s->e5++;
        }
        if (ok && (sl->measured || sl->kind != K_REQ))
            lat_add(s, now - sl->t0);
    }
    if (sl->kind == K_REQ && b->killed_us) {
        if (ok && sl->after_kill && !b->first_ok_after_us)
            b->first_ok_after_us = now;
        if (!ok && sl->after_kill)
            b->err_after_kill++;
    } else if (sl->kind == K_REQ && ok) {
        b->last_ok_before_us = now;
    }
    if (sl->kind != K_REQ) {
        struct observer *o = &b->obs[sl->ref];
        o->slot1 = 0;
        b->obs_inflight--;
        /* A 5.03 says when to come back (RFC 7252 5.9.3.4: Max-Age; 1 s
         * when absent, at most 2 s here). Retrying at once, as this bench
         * did, turned every full ring into tens of thousands of refused
         * requests, each remembered by the gateway for EXCHANGE_LIFETIME
         * (S3.3): that measured the bench's impatience, not the observers. */
        if (code == GW_COAP_UNAVAILABLE)
            o->not_before = now + (uint64_t)GW_MIN(max_age < 0 ? 1 : max_age, 2) * 1000000u;
        if (sl->kind == K_OBSREG) {
            if (code == GW_COAP_UNAVAILABLE && o->retries < OBS_REG_RETRIES) {
                o->retries++;
                o->state = OBS_NONE;
                b->obs_retry++;
            } else if (ok) {
                o->state = OBS_ON;
                b->obs_on++;
            } else {
                o->state = OBS_FAILED;
                b->obs_failed++;
            }
        } else if (code == GW_COAP_UNAVAILABLE && o->cretries < OBS_REG_RETRIES) {
            o->cretries++;
            o->state = OBS_ON; /* cancelled again on the next round */
            b->obs_retry++;
        } else {
            o->state = OBS_OFF;
            b->obs_off++;
        }
    }
    slot_release(b, idx);
}

static void handle(struct bench *b, int s, const uint8_t *p, size_t n, uint64_t now)
{
    struct csock *c = &b->cs[s];
    struct rmsg m;
    if (!rmsg_parse(p, n, &m))
        return;
    if (m.code == 0) {
        uint32_t i1 = c->midmap[m.mid];
        if (m.type == GW_COAP_CON) {
            send_empty(b, c, GW_COAP_RST, m.mid); /* a ping */
            return;
        }
        if (!i1 || !b->slots[i1 - 1].busy)
            return;
        if (m.type == GW_COAP_RST) {
            finish(b, i1 - 1, 0xff, now);
        } else if (m.type == GW_COAP_ACK && !b->slots[i1 - 1].acked) {
            b->slots[i1 - 1].acked = 1;
            if (b->measuring)
                b->st.empty_acks++;
        }
        return;
    }
    if (m.code < 32)
        return; /* a request: not for us */
    /* A notification for an observer we no longer want (cancelled, or its
     * registration refused) is rejected with RST, as RFC 7641 3.6 lets a
     * client that forgot an observation do: the gateway then drops it
     * (S6.4). Anything else CON is ACKed. */
    bool unwanted = false;
    if (m.tkl == TOKEN_LEN && m.tok[0] == 'O' && m.has_obs) {
        uint32_t oi = (uint32_t)m.tok[1] << 16 | (uint32_t)m.tok[2] << 8 | m.tok[3];
        if (oi < b->nobs && b->obs[oi].sock == s &&
            (b->obs[oi].state == OBS_OFF || b->obs[oi].state == OBS_FAILED ||
             b->obs[oi].state == OBS_NONE)) {
            unwanted = true;
            b->obs_rst++;
        }
    }
    if (m.type == GW_COAP_CON) {
        send_empty(b, c, unwanted ? GW_COAP_RST : GW_COAP_ACK, m.mid);
        if (b->measuring && !unwanted)
            b->st.acks_sent++;
    }
    if (unwanted)
        return;
    if (m.tkl == TOKEN_LEN && m.tok[0] == 'B') {
        uint32_t idx = (uint32_t)m.tok[1] << 16 | (uint32_t)m.tok[2] << 8 | m.tok[3];
        uint32_t gen = (uint32_t)m.tok[4] << 8 | m.tok[5];
        if (idx < b->nslots && b->slots[idx].busy && (b->slots[idx].gen & 0xffff) == gen &&
            b->slots[idx].sock == s && b->slots[idx].kind == K_REQ) {
            finish(b, idx, m.code, now);
            return;
        }
        if (b->killed_us)
            b->late++;
        else
            b->st.unmatched++;
        return;
    }
    if (m.tkl == TOKEN_LEN && m.tok[0] == 'O') {
        uint32_t oi = (uint32_t)m.tok[1] << 16 | (uint32_t)m.tok[2] << 8 | m.tok[3];
        if (oi >= b->nobs || b->obs[oi].sock != s) {
            b->st.unmatched++;
            return;
        }
        struct observer *o = &b->obs[oi];
        if (o->slot1) {
            struct slot *sl = &b->slots[o->slot1 - 1];
            /* A registration ends with any answer; a cancellation with the one
             * that carries no Observe (notifications may come first). */
            if (sl->kind == K_OBSREG || !m.has_obs || (m.code >> 5) != 2) {
                finish_ma(b, o->slot1 - 1, m.code, now, m.max_age);
                return;
            }
        }
        if (m.has_obs) {
            o->notifs++;
            if (b->measuring)
                b->st.notifs++;
        }
        return;
    }
    b->st.unmatched++;
}

static void scan(struct bench *b, uint64_t now)
{
    for (uint32_t i = 0; i < b->nslots; i++) {
        struct slot *sl = &b->slots[i];
        if (!sl->busy)
            continue;
        if (now >= sl->tdead) {
            finish(b, i, 0, now);
            continue;
        }
        bool con = !(b->o.non && sl->kind == K_REQ);
        if (con && !sl->acked && now >= sl->tnext && sl->tries < MAX_RTX) {
            sl->tries++;
            sl->tnext = now + ((uint64_t)b->o.ack_timeout_ms * 1000 << sl->tries);
            struct txpkt *t = txq_slot(b, &b->cs[sl->sock]);
            build_pkt(b, sl, i, t->b, &t->len);
            if (b->measuring || sl->kind != K_REQ)
                (sl->kind == K_REQ ? &b->st : &b->reg_st)->rtx++;
        }
    }
}

static uint32_t outstanding(const struct bench *b)
{
    return b->nslots - b->nfree;
}

static void do_kill(struct bench *b, uint64_t now)
{
    int pid = pid_of_role(b, b->o.kill_role);
    b->killed_us = now;
    if (!pid) {
        fprintf(stderr, "bench_gateway: no live pid for %s\n", b->o.kill_role);
        return;
    }
    b->killed_pid = pid;
    if (kill(pid, SIGKILL) != 0)
        fprintf(stderr, "bench_gateway: kill(%d, SIGKILL): %s\n", pid, strerror(errno));
    /* Requests in flight now may be lost with the process; keep offering load
     * with fresh ones, so the gap measured is the gateway's, not our timeouts. */
    for (uint32_t i = 0; i < b->nslots; i++)
        if (b->slots[i].busy && b->slots[i].kind == K_REQ) {
            b->abandoned++;
            slot_release(b, i);
        }
}

/* Issues new work as the generator mode says. */
static void generate(struct bench *b, uint64_t now)
{
    int w = b->o.window;
    if (b->gen_mode == GEN_REQ) {
        if (b->o.rate > 0) {
            uint64_t due = (uint64_t)(b->o.rate * (double)(now - b->rate_t0) / 1e6);
            /* A backlog of more than 100 ms is dropped, not sent in a burst. */
            uint64_t lag = (uint64_t)(b->o.rate * 0.1) + 1;
            if (due > b->rate_done + lag) {
                if (b->measuring)
                    b->st.stalled += due - lag - b->rate_done;
                b->rate_done = due - lag;
            }
            while (b->rate_done < due) {
                int s = -1;
                for (int k = 0; k < b->ncs; k++) {
                    int cand = (int)((b->next_sock + (uint32_t)k) % (uint32_t)b->ncs);
                    if ((int)b->cs[cand].out < w) {
                        s = cand;
                        break;
                    }
                }
                if (s < 0 || !issue(b, s, K_REQ, b->next_dev % (uint32_t)b->nmacs))
                    break;
                b->next_sock = (uint32_t)s + 1;
                b->next_dev++;
                b->rate_done++;
            }
            return;
        }
        for (int s = 0; s < b->ncs; s++)
            while ((int)b->cs[s].out < w && issue(b, s, K_REQ, b->next_dev % (uint32_t)b->nmacs))
                b->next_dev++;
        return;
    }
    if (b->gen_mode == GEN_OBSREG || b->gen_mode == GEN_OBSCANCEL) {
        /* A registration that timed out may still have been taken by the
         * gateway (only its answer was lost): cancel those too. */
        uint8_t want = b->gen_mode == GEN_OBSREG ? OBS_NONE : OBS_ON;
        /* Retried registrations go round again once the first pass is done. */
        if (b->next_obs >= b->nobs && b->obs_retry && b->obs_inflight == 0) {
            b->next_obs = 0;
            b->obs_retry = 0;
        }
        while (b->next_obs < b->nobs) {
            struct observer *o = &b->obs[b->next_obs];
            if (o->state != want && !(b->gen_mode == GEN_OBSCANCEL && o->state == OBS_FAILED)) {
                b->next_obs++;
                continue;
            }
            if ((int)b->cs[o->sock].out >= w || (int)b->obs_inflight >= b->o.reg_window ||
                o->not_before > now)
                break;
            uint32_t before = b->nfree;
            if (!issue(b, o->sock, b->gen_mode == GEN_OBSREG ? K_OBSREG : K_OBSCANCEL, b->next_obs))
                break;
            o->slot1 = b->freel[before - 1] + 1;
            o->state = b->gen_mode == GEN_OBSREG ? OBS_PENDING : OBS_CANCELLING;
            b->obs_inflight++;
            b->next_obs++;
        }
    }
}

/* Runs the loop until `until` (monotonic us), or earlier when stop_idle and
 * nothing is outstanding and nothing more is to be generated. */
static void run_loop(struct bench *b, uint64_t until, bool stop_idle)
{
    struct pollfd pf[MAX_SOCKETS];
    for (int i = 0; i < b->ncs; i++) {
        pf[i].fd = b->cs[i].fd;
        pf[i].events = POLLIN;
    }
    static struct mmsghdr mm[RXB];
    static struct iovec iov[RXB];
    static uint8_t rbuf[RXB][1536];
    for (int i = 0; i < RXB; i++) {
        iov[i].iov_base = rbuf[i];
        iov[i].iov_len = sizeof(rbuf[i]);
        mm[i].msg_hdr.msg_iov = &iov[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }
    uint64_t last_scan = 0;
    for (;;) {
        uint64_t now = now_us();
        if (now >= until)
            break;
        if (b->kill_at_us && !b->killed_us && now >= b->kill_at_us)
            do_kill(b, now);
        if (b->peak && now >= b->peak_next) {
            peak_sample(b);
            b->peak_next = now + 100000;
        }
        if (b->killed_us && !b->respawn_us) {
            int pid = pid_of_role(b, b->o.kill_role);
            if (pid && pid != b->killed_pid)
                b->respawn_us = now;
        }
        generate(b, now);
        bool gen_done = b->gen_mode == GEN_NONE ||
                        ((b->gen_mode == GEN_OBSREG || b->gen_mode == GEN_OBSCANCEL) &&
                         b->next_obs >= b->nobs && !b->obs_retry);
        if (stop_idle && gen_done && outstanding(b) == 0)
            break;
        for (int i = 0; i < b->ncs; i++)
            txq_flush(b, &b->cs[i]);
        uint64_t wait = 2000;
        if (b->gen_mode == GEN_REQ && b->o.rate > 0) {
            uint64_t next_due =
                b->rate_t0 + (uint64_t)((double)(b->rate_done + 1) * 1e6 / b->o.rate);
            wait = next_due > now ? GW_MIN(next_due - now, 2000) : 0;
        }
        if (until - now < wait)
            wait = until - now;
        struct timespec ts = { 0, (long)wait * 1000 };
        int r = ppoll(pf, (nfds_t)b->ncs, &ts, NULL);
        now = now_us();
        if (r > 0) {
            for (int i = 0; i < b->ncs; i++) {
                if (!(pf[i].revents & POLLIN))
                    continue;
                for (int k = 0; k < 16; k++) {
                    int got = recvmmsg(pf[i].fd, mm, RXB, MSG_DONTWAIT, NULL);
                    if (got <= 0)
                        break;
                    for (int j = 0; j < got; j++)
                        handle(b, i, rbuf[j], mm[j].msg_len, now);
                    if (got < RXB)
                        break;
                }
            }
        }
        if (now - last_scan >= 5000) {
            scan(b, now);
            last_scan = now;
        }
    }
    for (int i = 0; i < b->ncs; i++)
        txq_flush(b, &b->cs[i]);
}

/* ---- reporting ------------------------------------------------------------------------- */

static int cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, c = *(const uint32_t *)y;
    return a < c ? -1 : a > c;
}

struct pcts {
    double p50, p90, p99, max;
};

static struct pcts percentiles(struct bstats *s)
{
    struct pcts r = { 0, 0, 0, 0 };
    if (!s->nlat)
        return r;
    qsort(s->lat, s->nlat, sizeof(*s->lat), cmp_u32);
    double q[3] = { 0.50, 0.90, 0.99 };
    double *o[3] = { &r.p50, &r.p90, &r.p99 };
    for (int i = 0; i < 3; i++) {
        double x = q[i] * (double)s->nlat;
        size_t k = (size_t)x;
        if ((double)k < x)
            k++; /* nearest rank: ceil(q * n) */
        *o[i] = s->lat[k ? k - 1 : 0];
    }
    r.max = s->lat[s->nlat - 1];
    return r;
}

static void print_codes(const struct bstats *s)
{
    bool any = false;
    for (int c = 0; c < 256; c++) {
        if (!s->codes[c] || (c >> 5) == 2)
            continue;
        char cs[8];
        printf("%s%s x%" PRIu64, any ? ", " : "  error codes  : ", gw_coap_code_str((uint8_t)c, cs),
               s->codes[c]);
        any = true;
    }
    if (any)
        printf("\n");
}

static void print_header(const struct bench *b, const char *what)
{
    printf("\n== %s: %s\n", b->o.label, what);
    printf("  gateway %s:%u, config %s, %ld CPUs online (shared with this load generator)\n",
           inet_ntoa(b->gw.sin_addr), ntohs(b->gw.sin_port), b->o.config,
           sysconf(_SC_NPROCESSORS_ONLN));
}

/* ---- scenarios --------------------------------------------------------------------------- */

static int scenario_load(struct bench *b)
{
    const char *path = b->o.path ? b->o.path : "/value";
    if (load_devices(b) != 0 || sockets_open(b) != 0)
        return 1;
    b->tpls = calloc((size_t)b->nmacs, sizeof(*b->tpls));
    if (!b->tpls || slots_init(b, (uint32_t)(b->ncs * b->o.window)) != 0)
        return 1;
    for (int i = 0; i < b->nmacs; i++)
        if (tpl_build(&b->tpls[i], b->o.uri_address ? b->hosts[i] : b->macs[i], path, -1) != 0) {
            fprintf(stderr, "bench_gateway: path too long\n");
            return 1;
        }
    bool restart = !strcmp(b->o.scenario, "restart");
    char what[512];
    int wl = snprintf(what, sizeof(what),
                      "%s GET coap://<MAC>%s via Proxy-Uri, %d devices, %d sockets x window %d",
                      b->o.non ? "NON" : "CON", path, b->nmacs, b->ncs, b->o.window);
    if (b->o.rate > 0)
        wl +=
            snprintf(what + wl, sizeof(what) - (size_t)wl, ", open loop at %.0f req/s", b->o.rate);
    snprintf(what + wl, sizeof(what) - (size_t)wl, ", %.1f s%s", b->o.seconds,
             restart ? ", SIGKILL mid-run" : "");
    print_header(b, what);

    b->gen_mode = GEN_REQ;
    uint64_t t = now_us();
    b->rate_t0 = t;
    if (b->o.warmup > 0)
        run_loop(b, t + (uint64_t)(b->o.warmup * 1e6), false);
    struct mets m0, m1;
    metrics_read(b, &m0);
    struct pset *p0 = malloc(sizeof(*p0)), *p1 = malloc(sizeof(*p1));
    if (!p0 || !p1)
        return 1;
    stats_reset(&b->st);
    b->measuring = true;
    pset_sample(b, p0);
    b->measure_t0 = p0->t_us;
    b->rate_t0 = p0->t_us;
    b->rate_done = 0;
    uint64_t end = p0->t_us + (uint64_t)(b->o.seconds * 1e6);
    if (restart) {
        double at = b->o.kill_at > 0 ? b->o.kill_at : b->o.seconds / 2;
        b->kill_at_us = p0->t_us + (uint64_t)(at * 1e6);
    }
    run_loop(b, end, false);
    pset_sample(b, p1);
    metrics_read(b, &m1);
    b->measuring = false;
    b->gen_mode = GEN_NONE;
    uint64_t drain_to = now_us() + 2000000;
    run_loop(b, drain_to, true);
    uint64_t left = outstanding(b);

    double secs = (double)(p1->t_us - p0->t_us) / 1e6;
    struct bstats *s = &b->st;
    uint64_t errs = s->e4 + s->e5 + s->timeouts + s->rsts;
    struct pcts pc = percentiles(s);
    printf("  answered     : %" PRIu64 " 2.xx in %.2f s = %.0f req/s (sent %" PRIu64 ")\n", s->ok,
           secs, (double)s->ok / secs, s->sent);
    printf("  errors       : %" PRIu64 " (4.xx %" PRIu64 ", 5.xx %" PRIu64 ", timeouts %" PRIu64
           ", RST %" PRIu64 "); retransmissions %" PRIu64 ", empty ACKs %" PRIu64
           ", CON responses ACKed %" PRIu64 ", unmatched %" PRIu64 "%s\n",
           errs, s->e4, s->e5, s->timeouts, s->rsts, s->rtx, s->empty_acks, s->acks_sent,
           s->unmatched, s->send_errors ? " (send errors too)" : "");
    print_codes(s);
    if (b->o.rate > 0 && s->stalled)
        printf("  rate         : %" PRIu64 " requests not sent in time (window full)\n",
               s->stalled);
    printf("  latency us   : p50 %.0f  p90 %.0f  p99 %.0f  max %.0f  (request sent -> final "
           "response)\n",
           pc.p50, pc.p90, pc.p99, pc.max);
    if (left)
        printf("  note         : %" PRIu64 " requests still unanswered 2 s after the interval\n",
               left);
    if (restart) {
        printf("  restart      : SIGKILL %s (pid %d) at +%.2f s; new pid after %.0f ms; answers "
               "resumed %s",
               b->o.kill_role, b->killed_pid, (double)(b->killed_us - b->measure_t0) / 1e6,
               b->respawn_us ? (double)(b->respawn_us - b->killed_us) / 1e3 : -1.0,
               b->first_ok_after_us ? "" : "NEVER");
        if (b->first_ok_after_us)
            printf("%.0f ms after the kill", (double)(b->first_ok_after_us - b->killed_us) / 1e3);
        printf("\n                 %" PRIu64
               " requests in flight at the kill were abandoned (%" PRIu64
               " late answers to them); %" PRIu64 " requests sent after the kill failed\n",
               b->abandoned, b->late, b->err_after_kill);
    }
    struct cpu_sum cs;
    report_procs(b, p0, p1, s->ok, "us/req", &cs, &m0, &m1);
    metrics_print_delta(&m0, &m1);
    double ops = s->ok ? (double)s->ok : 1;
    printf("RESULT scenario=%s mode=%s ops=%" PRIu64
           " ops_s=%.0f p50_us=%.0f p90_us=%.0f p99_us=%.0f max_us=%.0f "
           "errors=%" PRIu64
           " gw_cpu_us_op=%.2f fe_us_op=%.2f sch_us_op=%.2f mio_us_op=%.2f sim_us_op=%.2f "
           "bench_us_op=%.2f gw_hwm_kib=%ld other_cpu_pct=%.0f",
           b->o.label, b->o.non ? "NON" : "CON", s->ok, (double)s->ok / secs, pc.p50, pc.p90,
           pc.p99, pc.max, errs, cs.gw_us / ops, cs.fe_us / ops, cs.sch_us / ops, cs.mio_us / ops,
           cs.sim_us / ops, cs.self_us / ops, cs.gw_hwm_kb, cs.other_pct);
    printf(" procs=%s", b->procs_result[0] ? b->procs_result : "-");
    if (restart)
        printf(" resume_ms=%.0f respawn_ms=%.0f abandoned=%" PRIu64 " err_after_kill=%" PRIu64,
               b->first_ok_after_us ? (double)(b->first_ok_after_us - b->killed_us) / 1e3 : -1.0,
               b->respawn_us ? (double)(b->respawn_us - b->killed_us) / 1e3 : -1.0, b->abandoned,
               b->err_after_kill);
    printf("\n");
    free(p0);
    free(p1);
    return 0;
}

static long rss_delta_kb(const struct pset *a, const struct pset *z, const char *role, bool anon)
{
    const struct psamp *x = pset_find(a, role), *y = pset_find(z, role);
    if (!x || !y || x->pid != y->pid)
        return 0;
    return anon ? y->anon_kb - x->anon_kb : y->rss_kb - x->rss_kb;
}

/* Memory growth per item (bytes), per process and in all, between a and z.
 * VmRSS growth counts shared pages touched for the first time (LMDB's map,
 * the shared segment's rings) as well as heap; RssAnon growth is the heap.
 * Returns the VmRSS figure; *anon gets the RssAnon one. */
static double report_mem_per(const struct pset *a, const struct pset *z, uint64_t items,
                             const char *what, const char *when, double *anon)
{
    *anon = 0;
    if (!items)
        return 0;
    printf("  memory per %s%s (VmRSS growth / %" PRIu64 "; RssAnon in brackets):", what,
           when ? when : "", items);
    long tot = 0, tot_anon = 0;
    for (int i = 0; i < z->n; i++) {
        if (!strcmp(z->p[i].role, "meshsim"))
            continue;
        long d = rss_delta_kb(a, z, z->p[i].role, false),
             da = rss_delta_kb(a, z, z->p[i].role, true);
        tot += d;
        tot_anon += da;
        if (d || da)
            printf(" %s %.0f B [%.0f]", z->p[i].role, (double)d * 1024 / (double)items,
                   (double)da * 1024 / (double)items);
    }
    *anon = (double)tot_anon * 1024 / (double)items;
    printf("; gateway %.0f B [%.0f]\n", (double)tot * 1024 / (double)items, *anon);
    return (double)tot * 1024 / (double)items;
}

/* BENCH_OBS_MEM_HOOK: a command run at the observe scenario's memory
 * samples (phase "before" the first registration and "steady"), with
 * BENCH_PHASE and BENCH_DATA_DIR (the gateway's pid files) set, e.g.
 * tests/bench/obs-mem-tables.sh, which prints each table's entries and
 * capacity at that moment. The gateway is stopped while it looks. */
static void obs_mem_hook(const struct bench *b, const char *phase)
{
    const char *cmd = getenv("BENCH_OBS_MEM_HOOK");
    if (!cmd || !*cmd)
        return;
    setenv("BENCH_DATA_DIR", b->cfg.data_dir, 1);
    setenv("BENCH_PHASE", phase, 1);
    fflush(stdout);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_gateway: BENCH_OBS_MEM_HOOK failed\n");
}

static int scenario_observe(struct bench *b)
{
    const char *path = b->o.path ? b->o.path : "/sensor";
    if (load_devices(b) != 0)
        return 1;
    int nres = GW_MIN(b->o.resources, b->nmacs);
    if (nres < 1 || b->o.observers < 1) {
        fprintf(stderr, "bench_gateway: need --observers >= 1 and --resources >= 1\n");
        return 1;
    }
    b->nobs = (uint32_t)b->o.observers;
    if (b->nobs > 0xffffff) {
        fprintf(stderr, "bench_gateway: at most %u observers\n", 0xffffffu);
        return 1;
    }
    b->obs = calloc(b->nobs, sizeof(*b->obs));
    b->otpl_reg = calloc((size_t)nres, sizeof(struct tpl));
    b->otpl_can = calloc((size_t)nres, sizeof(struct tpl));
    if (!b->obs || !b->otpl_reg || !b->otpl_can)
        return 1;
    for (int i = 0; i < nres; i++)
        if (tpl_build(&b->otpl_reg[i], b->macs[i], path, 0) ||
            tpl_build(&b->otpl_can[i], b->macs[i], path, 1))
            return 1;
    char what[512];
    snprintf(what, sizeof(what), "%u observers of coap://<MAC>%s on %d devices, %d sockets, %.1f s",
             b->nobs, path, nres, b->o.sockets, b->o.seconds);
    print_header(b, what);
    struct pset *p0 = malloc(sizeof(*p0)), *p1 = malloc(sizeof(*p1)), *p2 = malloc(sizeof(*p2));
    if (!p0 || !p1 || !p2)
        return 1;
    if (sockets_open(b) != 0 || slots_init(b, (uint32_t)(b->ncs * b->o.window)) != 0)
        return 1;
    for (uint32_t i = 0; i < b->nobs; i++) {
        b->obs[i].sock = (uint16_t)(i % (uint32_t)b->ncs);
        b->obs[i].res = (uint16_t)((i / (uint32_t)b->ncs) % (uint32_t)nres);
    }
    struct mets m0, m1, m2, mr;
    metrics_read(b, &m0);
    pset_sample(b, p0);
    /* Peak: sampled every 100 ms from here until the steady-state sample. */
    b->peak = malloc(sizeof(*b->peak));
    b->peak_tmp = malloc(sizeof(*b->peak_tmp));
    if (!b->peak || !b->peak_tmp)
        return 1;
    *b->peak = *p0;
    obs_mem_hook(b, "before");
    b->peak_next = 0;
    /* Register, a window per socket; bounded by 10 s + 6 ms per observer
     * (refused registrations wait their Max-Age). */
    b->gen_mode = GEN_OBSREG;
    b->next_obs = 0;
    uint64_t t0 = now_us();
    run_loop(b, t0 + 10000000 + 6000ull * b->nobs, true);
    uint64_t t1 = now_us();
    struct pcts rp = percentiles(&b->reg_st);
    printf(
        "  registered   : %u of %u in %.2f s (%.0f/s, at most %d at a time), failed %u (timeouts "
        "%" PRIu64 ", RST %" PRIu64 "), registration latency us p50 %.0f p99 %.0f max %.0f\n",
        b->obs_on, b->nobs, (double)(t1 - t0) / 1e6, (double)b->obs_on / ((double)(t1 - t0) / 1e6),
        b->o.reg_window, b->obs_failed, b->reg_st.timeouts, b->reg_st.rsts, rp.p50, rp.p99, rp.max);
    print_codes(&b->reg_st);
    if (b->reg_st.codes[GW_COAP_UNAVAILABLE])
        printf("                 (5.03 answers were retried, up to %d times per observer)\n",
               OBS_REG_RETRIES);
    metrics_read(b, &mr);
    printf("                 while registering the gateway sent %.0f notifications and counted "
           "%.0f ring_full\n",
           met(&mr, "notifications_total") - met(&m0, "notifications_total"),
           met(&mr, "ring_full_total") - met(&m0, "ring_full_total"));
    /* Two figures (issue 13 item 4). The peak is the storm the bench makes:
     * every registration re-fetches the resource and notifies all its
     * observers (S6.2), so thousands of CON notifications, answers and
     * refused retries are in flight at once. The steady state is what
     * holding the observers costs once their notifications are ACKed
     * (--settle s later, nothing but the devices' own notifications in
     * flight); the registrations' dedup entries are still held then
     * (EXCHANGE_LIFETIME, S3.3). The steady figure is the one the target
     * speaks of; both are growth from before the first registration. */
    b->gen_mode = GEN_NONE;
    run_loop(b, now_us() + (uint64_t)(b->o.settle_s * 1e6), false);
    pset_sample(b, p1);
    peak_sample(b);
    obs_mem_hook(b, "steady");
    double peak_anon, peak_rss = report_mem_per(p0, b->peak, b->obs_on, "observer",
                                                ", peak while registering", &peak_anon);
    char when[64];
    snprintf(when, sizeof(when), ", steady %.1f s after", b->o.settle_s);
    double mem_obs_anon,
        mem_obs = report_mem_per(p0, p1, b->obs_on, "observer", when, &mem_obs_anon);
    char by_proc[256] = "", peak_by_proc[256] = "";
    for (int i = 0; i < p1->n; i++) {
        const char *r = p1->p[i].role;
        if (!strcmp(r, "meshsim") || !strcmp(r, "supervisor"))
            continue;
        size_t l = strlen(by_proc), pl = strlen(peak_by_proc);
        snprintf(by_proc + l, sizeof(by_proc) - l, "%s%s:%.0f", l ? "," : "", r,
                 (double)rss_delta_kb(p0, p1, r, true) * 1024 / GW_MAX(b->obs_on, 1u));
        snprintf(peak_by_proc + pl, sizeof(peak_by_proc) - pl, "%s%s:%.0f", pl ? "," : "", r,
                 (double)rss_delta_kb(p0, b->peak, r, true) * 1024 / GW_MAX(b->obs_on, 1u));
    }
    free(b->peak);
    free(b->peak_tmp);
    b->peak = b->peak_tmp = NULL;

    stats_reset(&b->st);
    b->measuring = true;
    struct mets mp1;
    metrics_read(b, &mp1);
    pset_sample(b, p1);
    run_loop(b, p1->t_us + (uint64_t)(b->o.seconds * 1e6), false);
    pset_sample(b, p2);
    metrics_read(b, &m1);
    b->measuring = false;
    double secs = (double)(p2->t_us - p1->t_us) / 1e6;
    struct bstats *s = &b->st;
    uint32_t quiet = 0;
    for (uint32_t i = 0; i < b->nobs; i++)
        if (b->obs[i].state == OBS_ON && b->obs[i].notifs == 0)
            quiet++;
    printf("  notifications: %" PRIu64 " in %.2f s = %.0f/s", s->notifs, secs,
           (double)s->notifs / secs);
    if (b->o.obs_period_ms > 0)
        printf(" (devices offer %.0f/s: %u observers every %.0f ms)",
               (double)b->obs_on * 1000.0 / b->o.obs_period_ms, b->obs_on, b->o.obs_period_ms);
    printf("; CON ACKed %" PRIu64 ", unmatched %" PRIu64 ", observers that never heard %u\n",
           s->acks_sent, s->unmatched, quiet);
    struct cpu_sum cs;
    report_procs(b, p1, p2, s->notifs, "us/notif", &cs, &mp1, &m1);
    metrics_print_delta(&m0, &m1);

    /* Cancel every observation (GET with Observe: 1), bounded. */
    stats_reset(&b->reg_st);
    b->gen_mode = GEN_OBSCANCEL;
    b->next_obs = 0;
    uint64_t c0 = now_us();
    run_loop(b, c0 + 10000000 + 2000ull * b->nobs, true);
    b->gen_mode = GEN_NONE;
    run_loop(b, now_us() + 300000, false);
    metrics_read(b, &m2);
    printf("  cancelled    : %u observers in %.2f s; gateway now reports %.0f observers, %.0f "
           "observations; %" PRIu64 " notifications to unwanted observers rejected with RST\n",
           b->obs_off, (double)(now_us() - c0) / 1e6, met(&m2, "observers"),
           met(&m2, "observations"), b->obs_rst);
    print_codes(&b->reg_st);
    if (b->reg_st.codes[GW_COAP_UNAVAILABLE])
        printf("                 (5.03 answers to cancellations were retried, up to %d times per "
               "observer)\n",
               OBS_REG_RETRIES);
    double ops = s->notifs ? (double)s->notifs : 1;
    printf("RESULT scenario=%s observers=%u ops=%" PRIu64
           " ops_s=%.0f gw_cpu_us_op=%.2f fe_us_op=%.2f "
           "sch_us_op=%.2f mio_us_op=%.2f sim_us_op=%.2f bench_us_op=%.2f mem_per_observer_b=%.0f "
           "anon_per_observer_b=%.0f reg_s=%.0f gw_hwm_kib=%ld other_cpu_pct=%.0f procs=%s "
           "peak_mem_per_observer_b=%.0f peak_anon_per_observer_b=%.0f anon_by_proc=%s "
           "peak_anon_by_proc=%s observers_left=%.0f\n",
           b->o.label, b->obs_on, s->notifs, (double)s->notifs / secs, cs.gw_us / ops,
           cs.fe_us / ops, cs.sch_us / ops, cs.mio_us / ops, cs.sim_us / ops, cs.self_us / ops,
           mem_obs, mem_obs_anon, (double)b->obs_on / ((double)(t1 - t0) / 1e6), cs.gw_hwm_kb,
           cs.other_pct, b->procs_result[0] ? b->procs_result : "-", peak_rss, peak_anon,
           by_proc[0] ? by_proc : "-", peak_by_proc[0] ? peak_by_proc : "-", met(&m2, "observers"));
    free(p0);
    free(p1);
    free(p2);
    return 0;
}

/* Creates sessions from distinct endpoints 127.A.B.C:ephemeral, window at a time. */
static int scenario_sessions(struct bench *b)
{
    int n = b->o.sessions, w = GW_MIN(b->o.window, 512), na = GW_MAX(1, b->o.accounts);
    char(*jwt)[1024] = calloc((size_t)na, sizeof(*jwt));
    if (!jwt)
        return 1;
    for (int i = 0; i < na; i++) {
        char account[64];
        snprintf(account, sizeof(account), "%sa%d", b->run_id, i);
        if (mint_token(b, account, jwt[i], sizeof(jwt[i])) != 0)
            return 1;
    }
    char what[256];
    snprintf(
        what, sizeof(what),
        "create %d sessions (%d accounts, %d at a time) from distinct endpoints, at most %.0f s", n,
        na, w, b->o.seconds);
    print_header(b, what);
    struct sess {
        int fd;
        uint64_t t0, tnext;
        uint16_t len;
        uint8_t tries;
        uint8_t phase; /* 0: POST /sessions sent; 1: --then-get: the GET sent */
        uint8_t pkt[1200];
    } *ss = calloc((size_t)w, sizeof(*ss));
    const char *get_path = b->o.path ? b->o.path : "/value";
    uint64_t got_ok = 0, got_err = 0;
    if (b->o.then_get && (load_devices(b) != 0 || b->nmacs == 0))
        return 1;
    struct pollfd *pf = calloc((size_t)w, sizeof(*pf));
    if (!ss || !pf)
        return 1;
    /* Client addresses: a /16 of 127/8 chosen from our pid, skipping .0 and .255. */
    uint32_t base = (127u << 24) | ((uint32_t)(150 + getpid() % 100) << 16);
    uint32_t next_addr = 0;
    struct mets m0, m1;
    struct pset *p0 = malloc(sizeof(*p0)), *p1 = malloc(sizeof(*p1)), *p2 = malloc(sizeof(*p2));
    if (!p0 || !p1 || !p2)
        return 1;
    /* Warm-up, not counted: the first sessions touch code pages (the JWT
     * verification in libcrypto alone is ~2 MiB), LMDB's first pages and
     * fixed tables, once per process. Divided by the sessions that follow,
     * that constant made "per session" depend on how many were created
     * (about 100 B of the 20 000-session figure). Its growth is shown apart. */
    pset_sample(b, p0);
    int warm = GW_MIN(SESS_WARMUP, n), warm_ok = 0;
    for (int i = 0; i < warm; i++) {
        uint32_t host;
        do {
            host = base + 1 + next_addr++;
        } while ((host & 0xff) == 0 || (host & 0xff) == 0xff);
        int fd = udp_open(host);
        if (fd < 0)
            break;
        uint8_t pkt[1200], tok[4] = { 'W', (uint8_t)i, 0, 0 };
        size_t len = session_post(pkt, sizeof(pkt), (uint16_t)(60000 + i), tok, jwt[i % na]);
        if (len && sync_request(b, fd, pkt, len, 10000) == GW_COAP_CREATED)
            warm_ok++;
        close(fd);
    }
    sleep_us(200000);
    pset_sample(b, p1);
    long warm_kb = 0;
    for (int i = 0; i < p1->n; i++)
        if (strcmp(p1->p[i].role, "meshsim") != 0)
            warm_kb += rss_delta_kb(p0, p1, p1->p[i].role, false);
    printf("  warm-up      : %d sessions first (not counted below): gateway VmRSS +%ld KiB\n",
           warm_ok, warm_kb);
    metrics_read(b, &m0);
    stats_reset(&b->st);
    pset_sample(b, p0);
    pset_read_pss(p0);
    uint64_t end = p0->t_us + (uint64_t)(b->o.seconds * 1e6);
    int started = 0, active = 0;
    for (int i = 0; i < w; i++)
        ss[i].fd = -1;
    while (now_us() < end && (started < n || active > 0)) {
        uint64_t now = now_us();
        for (int i = 0; i < w && started < n; i++) {
            if (ss[i].fd >= 0)
                continue;
            uint32_t host;
            do {
                host = base + 1 + next_addr++;
            } while ((host & 0xff) == 0 || (host & 0xff) == 0xff);
            int fd = udp_open(host);
            if (fd < 0) {
                fprintf(stderr, "bench_gateway: socket on %u.%u.%u.%u: %s\n", host >> 24,
                        (host >> 16) & 255, (host >> 8) & 255, host & 255, strerror(-fd));
                end = now;
                break;
            }
            uint8_t tok[4] = { 'N', (uint8_t)i, (uint8_t)(i >> 8), (uint8_t)started };
            ss[i].len = (uint16_t)session_post(ss[i].pkt, sizeof(ss[i].pkt),
                                               (uint16_t)(started * 7 + 1), tok, jwt[started % na]);
            ss[i].fd = fd;
            ss[i].t0 = now;
            ss[i].tries = 0;
            ss[i].phase = 0;
            ss[i].tnext = now + (uint64_t)b->o.ack_timeout_ms * 1000;
            if (sendto(fd, ss[i].pkt, ss[i].len, 0, (struct sockaddr *)&b->gw, sizeof(b->gw)) < 0)
                b->st.send_errors++;
            b->st.sent++;
            started++;
            active++;
        }
        int np = 0;
        int map[512];
        for (int i = 0; i < w; i++)
            if (ss[i].fd >= 0) {
                pf[np].fd = ss[i].fd;
                pf[np].events = POLLIN;
                map[np++] = i;
            }
        struct timespec ts = { 0, 2000000 };
        int r = ppoll(pf, (nfds_t)np, &ts, NULL);
        now = now_us();
        for (int k = 0; r > 0 && k < np; k++) {
            if (!(pf[k].revents & POLLIN))
                continue;
            struct sess *x = &ss[map[k]];
            uint8_t rb[1500];
            ssize_t got;
            for (int j = 0;
                 j < 8 && x->fd >= 0 && (got = recv(x->fd, rb, sizeof(rb), MSG_DONTWAIT)) > 0;
                 j++) {
                struct rmsg m;
                if (!rmsg_parse(rb, (size_t)got, &m) || m.code == 0)
                    continue;
                if (m.type == GW_COAP_CON) {
                    uint8_t ack[4] = { 0x60, 0, rb[2], rb[3] };
                    (void)sendto(x->fd, ack, 4, 0, (struct sockaddr *)&b->gw, sizeof(b->gw));
                }
                if (m.tkl != 4 || memcmp(m.tok, x->pkt + 4, 4) != 0)
                    continue;
                if (x->phase == 1) {
                    if (m.code == GW_COAP_CONTENT)
                        got_ok++;
                    else
                        got_err++;
                    close(x->fd);
                    x->fd = -1;
                    active--;
                    continue;
                }
                if (m.code == GW_COAP_CREATED && b->o.then_get) {
                    /* The new session's one request, from the same endpoint. */
                    b->st.ok++;
                    lat_add(&b->st, now - x->t0);
                    char uri[64];
                    snprintf(uri, sizeof(uri), "coap://%s%s", b->macs[b->st.ok % b->nmacs],
                             get_path);
                    struct gw_cb cb;
                    uint8_t gtok[4] = { 'G', x->pkt[5], x->pkt[6], x->pkt[7] };
                    gw_cb_init(&cb, x->pkt, sizeof(x->pkt), GW_COAP_CON, GW_COAP_GET,
                               (uint16_t)(b->st.ok * 7 + 3), gtok, 4);
                    gw_cb_opt_str(&cb, GW_OPT_PROXY_URI, uri);
                    size_t gl;
                    if (gw_cb_finish(&cb, &gl) != 0) {
                        got_err++;
                        close(x->fd);
                        x->fd = -1;
                        active--;
                        continue;
                    }
                    x->len = (uint16_t)gl;
                    x->phase = 1;
                    x->t0 = now;
                    x->tries = 0;
                    x->tnext = now + (uint64_t)b->o.ack_timeout_ms * 1000;
                    if (sendto(x->fd, x->pkt, x->len, 0, (struct sockaddr *)&b->gw, sizeof(b->gw)) <
                        0)
                        b->st.send_errors++;
                    continue;
                }
                if (m.code == GW_COAP_CREATED) {
                    b->st.ok++;
                    lat_add(&b->st, now - x->t0);
                } else {
                    b->st.codes[m.code]++;
                    if ((m.code >> 5) == 4)
                        b->st.e4++;
                    else
                        b->st.e5++;
                }
                close(x->fd);
                x->fd = -1;
                active--;
            }
        }
        for (int i = 0; i < w; i++) {
            struct sess *x = &ss[i];
            if (x->fd < 0)
                continue;
            if (now - x->t0 >= (uint64_t)b->o.timeout_ms * 1000) {
                b->st.timeouts++;
                close(x->fd);
                x->fd = -1;
                active--;
            } else if (now >= x->tnext && x->tries < MAX_RTX) {
                x->tries++;
                x->tnext = now + ((uint64_t)b->o.ack_timeout_ms * 1000 << x->tries);
                b->st.rtx++;
                if (sendto(x->fd, x->pkt, x->len, 0, (struct sockaddr *)&b->gw, sizeof(b->gw)) < 0)
                    b->st.send_errors++;
            }
        }
    }
    pset_sample(b, p1);
    for (int i = 0; i < w; i++)
        if (ss[i].fd >= 0) {
            close(ss[i].fd);
            b->st.timeouts++;
        }
    /* Let lazily freed memory settle before the idle-memory sample. */
    sleep_us(500000);
    pset_sample(b, p2);
    pset_read_pss(p2);
    metrics_read(b, &m1);
    double secs = (double)(p1->t_us - p0->t_us) / 1e6;
    struct bstats *s = &b->st;
    struct pcts pc = percentiles(s);
    uint64_t errs = s->e4 + s->e5 + s->timeouts;
    printf("  created      : %" PRIu64 " of %d in %.2f s = %.0f sessions/s; errors %" PRIu64
           " (4.xx %" PRIu64 ", 5.xx %" PRIu64 ", timeouts %" PRIu64 "), retransmissions %" PRIu64
           "\n",
           s->ok, n, secs, (double)s->ok / secs, errs, s->e4, s->e5, s->timeouts, s->rtx);
    print_codes(s);
    if (b->o.then_get)
        printf("  then GET %s: %" PRIu64 " 2.05, %" PRIu64 " other answers\n", get_path, got_ok,
               got_err);
    printf("  latency us   : p50 %.0f  p90 %.0f  p99 %.0f  max %.0f\n", pc.p50, pc.p90, pc.p99,
           pc.max);
    struct cpu_sum cs;
    report_procs(b, p0, p1, s->ok, "us/session", &cs, NULL, NULL);
    double mem_anon, mem = report_mem_per(p0, p2, s->ok, "idle session", NULL, &mem_anon);
    long pss_tot = 0;
    printf("  PSS growth per idle session (shared pages counted once in all):");
    for (int i = 0; i < p2->n; i++) {
        const struct psamp *x = pset_find(p0, p2->p[i].role), *y = &p2->p[i];
        if (!strcmp(y->role, "meshsim") || !x || x->pid != y->pid || x->pss_kb < 0 || y->pss_kb < 0)
            continue;
        long d = y->pss_kb - x->pss_kb;
        pss_tot += d;
        if (d && s->ok)
            printf(" %s %.0f B", y->role, (double)d * 1024 / (double)s->ok);
    }
    double mem_pss = s->ok ? (double)pss_tot * 1024 / (double)s->ok : 0;
    printf("; gateway %.0f B\n", mem_pss);
    char mdb[GW_CFG_STR + 32];
    snprintf(mdb, sizeof(mdb), "%s/state/data.mdb", b->cfg.data_dir);
    struct stat sb;
    if (stat(mdb, &sb) == 0)
        printf("  LMDB %s: %.1f MiB allocated on disk (sessions live: %.0f)\n", mdb,
               (double)sb.st_blocks * 512 / 1048576, met(&m1, "sessions_live"));
    metrics_print_delta(&m0, &m1);
    double ops = s->ok ? (double)s->ok : 1;
    printf("RESULT scenario=%s ops=%" PRIu64
           " ops_s=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f errors=%" PRIu64
           " gw_cpu_us_op=%.2f fe_us_op=%.2f sch_us_op=%.2f bench_us_op=%.2f mem_per_session_b=%.0f"
           " anon_per_session_b=%.0f pss_per_session_b=%.0f gw_hwm_kib=%ld other_cpu_pct=%.0f\n",
           b->o.label, s->ok, (double)s->ok / secs, pc.p50, pc.p99, pc.max, errs, cs.gw_us / ops,
           cs.fe_us / ops, cs.sch_us / ops, cs.self_us / ops, mem, mem_anon, mem_pss, cs.gw_hwm_kb,
           cs.other_pct);
    free(ss);
    free(pf);
    free(jwt);
    free(p0);
    free(p1);
    free(p2);
    return 0;
}

static int scenario_idle(struct bench *b)
{
    char what[128];
    snprintf(what, sizeof(what), "no traffic for %.1f s", b->o.seconds);
    print_header(b, what);
    struct mets m0, m1;
    metrics_read(b, &m0);
    struct pset *p0 = malloc(sizeof(*p0)), *p1 = malloc(sizeof(*p1));
    if (!p0 || !p1)
        return 1;
    pset_sample(b, p0);
    sleep_us((uint64_t)(b->o.seconds * 1e6));
    pset_sample(b, p1);
    metrics_read(b, &m1);
    struct cpu_sum cs;
    report_procs(b, p0, p1, 0, "", &cs, NULL, NULL);
    metrics_print_delta(&m0, &m1);
    double secs = (double)(p1->t_us - p0->t_us) / 1e6;
    printf("RESULT scenario=%s seconds=%.1f gw_cpu_us_per_s=%.1f gw_cpu_pct=%.3f fe_us_per_s=%.1f "
           "sch_us_per_s=%.1f "
           "mio_us_per_s=%.1f sup_us_per_s=%.1f gw_hwm_kib=%ld gw_rss_kib=%ld other_cpu_pct=%.0f\n",
           b->o.label, secs, cs.gw_us / secs, cs.gw_us / secs / 1e4, cs.fe_us / secs,
           cs.sch_us / secs, cs.mio_us / secs, cs.sup_us / secs, cs.gw_hwm_kb, cs.gw_rss_kb,
           cs.other_pct);
    free(p0);
    free(p1);
    return 0;
}

static int scenario_ping(struct bench *b)
{
    int fd = udp_open(INADDR_LOOPBACK);
    if (fd < 0)
        return 1;
    uint64_t end = now_us() + (uint64_t)(b->o.seconds * 1e6);
    for (int i = 0; now_us() < end && i < 100000; i++) {
        uint8_t pkt[64], tok[2] = { 'P', (uint8_t)i };
        struct gw_cb cb;
        gw_cb_init(&cb, pkt, sizeof(pkt), GW_COAP_CON, GW_COAP_GET, (uint16_t)(rand() + i), tok, 2);
        gw_cb_opt_str(&cb, GW_OPT_URI_PATH, ".well-known");
        gw_cb_opt_str(&cb, GW_OPT_URI_PATH, "core");
        size_t len;
        if (gw_cb_finish(&cb, &len) == 0 && sync_request(b, fd, pkt, len, 300) == GW_COAP_CONTENT) {
            close(fd);
            return 0;
        }
        sleep_us(50000);
    }
    close(fd);
    fprintf(stderr, "bench_gateway: gateway at %s:%u does not answer\n", inet_ntoa(b->gw.sin_addr),
            ntohs(b->gw.sin_port));
    return 1;
}

static int free_port(void)
{
    int fd = udp_open(INADDR_LOOPBACK);
    if (fd < 0)
        return 1;
    printf("%u\n", sock_port(fd));
    close(fd);
    return 0;
}

/* ---- main ------------------------------------------------------------------------------------ */

static int parse_gw(const char *s, struct sockaddr_in *a)
{
    char host[128];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof(host))
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    if (!strcmp(host, "0.0.0.0") || !host[0])
        snprintf(host, sizeof(host), "127.0.0.1");
    memset(a, 0, sizeof(*a));
    a->sin_family = AF_INET;
    int port = atoi(colon + 1);
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, host, &a->sin_addr) != 1)
        return -1;
    a->sin_port = htons((uint16_t)port);
    return 0;
}

int main(int argc, char **argv)
{
    static struct bench bench;
    struct bench *b = &bench;
    struct bench_opts *o = &b->o;
    *o = (struct bench_opts){ .coapgw = "./build/coapgw",
                              .sockets = 8,
                              .window = 64,
                              .seconds = 5,
                              .warmup = 0.5,
                              .ack_timeout_ms = 2000,
                              .timeout_ms = 10000,
                              .observers = 1000,
                              .settle_s = 3,
                              .resources = 4,
                              .sessions = 10000,
                              .accounts = 100,
                              .kill_role = "scheduler" };
    enum {
        O_COAPGW = 256,
        O_WARMUP,
        O_NON,
        O_ACKTO,
        O_TO,
        O_OBSERVERS,
        O_RES,
        O_OBSP,
        O_SESS,
        O_ACC,
        O_KILL,
        O_KILLAT,
        O_LABEL,
        O_REGW,
        O_FIRST,
        O_NOSESS,
        O_URIADDR,
        O_PROC,
        O_SETTLE,
        O_THENGET
    };
    static const struct option lo[] = {
        { "config", required_argument, 0, 'c' },
        { "gw", required_argument, 0, 'g' },
        { "coapgw", required_argument, 0, O_COAPGW },
        { "scenario", required_argument, 0, 'S' },
        { "devices-file", required_argument, 0, 'D' },
        { "devices", required_argument, 0, 'n' },
        { "path", required_argument, 0, 'p' },
        { "sockets", required_argument, 0, 's' },
        { "window", required_argument, 0, 'w' },
        { "seconds", required_argument, 0, 't' },
        { "warmup", required_argument, 0, O_WARMUP },
        { "rate", required_argument, 0, 'r' },
        { "non", no_argument, 0, O_NON },
        { "ack-timeout-ms", required_argument, 0, O_ACKTO },
        { "timeout-ms", required_argument, 0, O_TO },
        { "observers", required_argument, 0, O_OBSERVERS },
        { "resources", required_argument, 0, O_RES },
        { "obs-period-ms", required_argument, 0, O_OBSP },
        { "sessions", required_argument, 0, O_SESS },
        { "accounts", required_argument, 0, O_ACC },
        { "kill", required_argument, 0, O_KILL },
        { "kill-at", required_argument, 0, O_KILLAT },
        { "label", required_argument, 0, O_LABEL },
        { "help", no_argument, 0, 'h' },
        { "reg-window", required_argument, 0, O_REGW },
        { "first-device", required_argument, 0, O_FIRST },
        { "no-session", no_argument, 0, O_NOSESS },
        { "uri-address", no_argument, 0, O_URIADDR },
        { "proc", required_argument, 0, O_PROC },
        { "settle", required_argument, 0, O_SETTLE },
        { "then-get", no_argument, 0, O_THENGET },
        { 0, 0, 0, 0 },
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "c:g:S:D:n:p:s:w:t:r:h", lo, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o->config = optarg;
            break;
        case 'g':
            o->gw = optarg;
            break;
        case O_COAPGW:
            o->coapgw = optarg;
            break;
        case 'S':
            o->scenario = optarg;
            break;
        case 'D':
            o->devices_file = optarg;
            break;
        case 'n':
            o->ndev = atoi(optarg);
            break;
        case 'p':
            o->path = optarg;
            break;
        case 's':
            o->sockets = atoi(optarg);
            break;
        case 'w':
            o->window = atoi(optarg);
            break;
        case 't':
            o->seconds = atof(optarg);
            break;
        case O_WARMUP:
            o->warmup = atof(optarg);
            break;
        case 'r':
            o->rate = atof(optarg);
            break;
        case O_NON:
            o->non = true;
            break;
        case O_ACKTO:
            o->ack_timeout_ms = atoi(optarg);
            break;
        case O_TO:
            o->timeout_ms = atoi(optarg);
            break;
        case O_OBSERVERS:
            o->observers = atoi(optarg);
            break;
        case O_RES:
            o->resources = atoi(optarg);
            break;
        case O_OBSP:
            o->obs_period_ms = atof(optarg);
            break;
        case O_SESS:
            o->sessions = atoi(optarg);
            break;
        case O_ACC:
            o->accounts = atoi(optarg);
            break;
        case O_THENGET:
            o->then_get = true;
            break;
        case O_KILL:
            o->kill_role = optarg;
            break;
        case O_KILLAT:
            o->kill_at = atof(optarg);
            break;
        case O_LABEL:
            o->label = optarg;
            break;
        case O_REGW:
            o->reg_window = atoi(optarg);
            break;
        case O_SETTLE:
            o->settle_s = atof(optarg);
            break;
        case O_FIRST:
            o->first_dev = atoi(optarg);
            break;
        case O_NOSESS:
            o->no_session = true;
            break;
        case O_URIADDR:
            o->uri_address = true;
            break;
        case O_PROC: {
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg || (size_t)(eq - optarg) >= sizeof(o->proc_role[0]) ||
                o->nproc >= (int)GW_ARRAY_LEN(o->proc_pid) || atoi(eq + 1) <= 0) {
                fprintf(stderr, "bench_gateway: --proc wants ROLE=PID (at most %zu)\n",
                        GW_ARRAY_LEN(o->proc_pid));
                return 2;
            }
            snprintf(o->proc_role[o->nproc], sizeof(o->proc_role[0]), "%.*s", (int)(eq - optarg),
                     optarg);
            o->proc_pid[o->nproc++] = atoi(eq + 1);
            break;
        }
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (!o->scenario) {
        fputs(usage, stderr);
        return 2;
    }
    if (!strcmp(o->scenario, "free-port"))
        return free_port();
    bool standalone = !o->config && o->nproc && o->gw && o->devices_file;
    if ((!o->config && !standalone) || o->sockets < 1 || o->sockets > MAX_SOCKETS ||
        o->window < 1 || (uint64_t)o->sockets * (uint64_t)o->window > 0xffffff || o->seconds <= 0 ||
        o->seconds > 3600 || o->ack_timeout_ms < 10 || o->timeout_ms < 10 || o->sessions < 1) {
        fprintf(stderr, "bench_gateway: bad or missing options (--config is required)\n%s", usage);
        return 2;
    }
    if (!o->label)
        o->label = o->scenario;
    if (o->reg_window <= 0)
        o->reg_window = 4 * GW_MAX(1, o->resources);
    char err[512];
    if (standalone) {
        gw_config_defaults(&b->cfg); /* no gateway: only --gw and --devices-file count */
    } else if (gw_config_load(&b->cfg, o->config, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench_gateway: %s\n", err);
        return 2;
    } else {
        b->have_config = true;
    }
    if (parse_gw(o->gw ? o->gw : b->cfg.listen, &b->gw) != 0) {
        fprintf(stderr, "bench_gateway: bad gateway address '%s'\n", o->gw ? o->gw : b->cfg.listen);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)(getpid() ^ now_us()));
    snprintf(b->run_id, sizeof(b->run_id), "bench%d", (int)getpid());
    setvbuf(stdout, NULL, _IOLBF, 0);

    int rc;
    if (!strcmp(o->scenario, "proxy") || !strcmp(o->scenario, "cache") ||
        !strcmp(o->scenario, "restart"))
        rc = scenario_load(b);
    else if (!strcmp(o->scenario, "observe"))
        rc = scenario_observe(b);
    else if (!strcmp(o->scenario, "sessions"))
        rc = scenario_sessions(b);
    else if (!strcmp(o->scenario, "idle"))
        rc = scenario_idle(b);
    else if (!strcmp(o->scenario, "ping"))
        rc = scenario_ping(b);
    else {
        fprintf(stderr, "bench_gateway: unknown scenario '%s'\n%s", o->scenario, usage);
        return 2;
    }
    if (b->cs)
        sockets_close(b);
    free(b->slots);
    free(b->freel);
    free(b->tpls);
    free(b->otpl_reg);
    free(b->otpl_can);
    free(b->obs);
    free(b->macs);
    free(b->hosts);
    free(b->st.lat);
    free(b->reg_st.lat);
    return rc;
}
