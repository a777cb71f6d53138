/* SPDX-License-Identifier: MIT */
/* supervisor.h - `coapgw run` and the command line around it (SPEC S1.1, S10).
 *
 * The supervisor creates the shared segment fresh, spawns the scheduler,
 * meshio, the embedded mesh simulator (when it is used) and the frontends,
 * restarts any child that dies with a capped exponential back-off, and stops
 * them in reverse order. It never opens LMDB: an MDB_env must not cross
 * fork() (lmdb.h caveats), so everything that needs the store runs in a
 * child or in a short-lived CLI command.
 *
 * The pure helpers (argument parsing, back-off, exit status wording, the
 * Prometheus and status renderers, the first-request text) are declared here
 * so that tests/unit/common/test_supervisor.c can drive them without
 * processes. Things that need other roles' libraries (fe_run, fe_auth, sch_run,
 * mesh_run, meshsim_main) are called only from main.c, which links them all;
 * sup_core itself depends on coapgw_common alone. */
#ifndef SUPERVISOR_H
#define SUPERVISOR_H

#include "gw_addr.h"
#include "gw_config.h"
#include "gw_defs.h"
#include "gw_shm.h"
#include "gw_stats.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- command line -------------------------------------------------------- */

enum sup_cmd {
    SUP_CMD_USAGE = 0, /* no command, `help`, or an unknown one */
    SUP_CMD_RUN,
    SUP_CMD_FRONTEND,
    SUP_CMD_SCHEDULER,
    SUP_CMD_MESHIO,
    SUP_CMD_STATUS,
    SUP_CMD_TOKEN,
    SUP_CMD_DEVICES_IMPORT,
    SUP_CMD_DEVICES_LIST,
    SUP_CMD_MESHSIM,
    SUP_CMD_METRICS,
    SUP_CMD_CONFIG,
    SUP_CMD_VERSION,  /* `version`, `--version` */
    SUP_CMD_LOGLEVEL, /* `loglevel [LEVEL]` */
    SUP_CMD_CLEANUP,  /* `cleanup` */
};

#define SUP_TOKEN_TTL_DEFAULT 3600
#define SUP_TOKEN_TTL_MAX (10LL * 365 * 86400)

struct sup_args {
    enum sup_cmd cmd;
    const char *config;  /* -c/--config FILE, NULL when absent */
    int index;           /* -i/--index N (frontend), 0 when absent */
    const char *account; /* token --account */
    const char *devices; /* token --devices LIST, NULL when absent */
    int64_t ttl_s;       /* token --ttl, SUP_TOKEN_TTL_DEFAULT when absent */
    const char *file;    /* devices import FILE; loglevel LEVEL (NULL: show) */
    bool check;          /* config --check */
    bool serve;          /* metrics --serve: HTTP on metrics_listen until stopped */
    bool skip_bad; /* devices import --skip-bad: load the good lines of a file with bad ones */
    bool help;     /* -h/--help: print the usage on stdout, exit 0 */
    int sub_argc;  /* meshsim: the arguments from "meshsim" on */
    char **sub_argv;
};

/* Parses `coapgw <command> [options]` with getopt_long (state reset, so it may
 * be called repeatedly). Pointers in *a point into argv.
 * [in]  argc, argv  as given to main(); argv[0] is the program name.
 * [out] a           always written; a->cmd is SUP_CMD_USAGE when there is no
 *                   command or it is `help`.
 * [out] err         on error, a one-line message for stderr.
 * Returns 0, or -EINVAL for a usage error (unknown command, unknown option,
 * missing or bad argument), with the message in err. */
int sup_args_parse(int argc, char **argv, struct sup_args *a, char *err,
                   size_t errlen) GW_NODISCARD;
/* Usage text: the general one for SUP_CMD_USAGE, else the command's. Static. */
const char *sup_usage(enum sup_cmd cmd);

/* ---- processes ------------------------------------------------------------ */

/* Restart back-off: 100 ms, doubling, capped at 5 s; a child that ran at
 * least 30 s before dying starts again from 100 ms. */
#define SUP_BACKOFF_MIN_MS 100
#define SUP_BACKOFF_MAX_MS 5000
#define SUP_BACKOFF_RESET_MS 30000
/* Stopping, stage by stage (frontends, meshsim, meshio, scheduler): SIGTERM,
 * then SIGKILL for what still runs in the stage after SUP_STOP_TIMEOUT_MS. */
#define SUP_STOP_TIMEOUT_MS 5000
#define SUP_KILL_TIMEOUT_MS 2000

struct sup_backoff {
    uint32_t fails; /* consecutive short runs */
};
/* Returns the delay before the next start of a child that ran ran_ms. */
uint64_t sup_backoff_next(struct sup_backoff *b, uint64_t ran_ms);

/* Describes a waitpid() status the nginx way: "exited with status 3",
 * "exited on signal 9", "exited on signal 11 (core dumped)". */
void sup_exit_describe(int wstatus, char *buf, size_t len);
/* True when the child asked not to be respawned (exit GW_EXIT_FATAL). */
bool sup_exit_is_fatal(int wstatus);

/* Role of a proc slot: "supervisor", "scheduler", "meshio", "meshsim",
 * "frontend"; *index is the frontend index or -1. */
const char *sup_proc_role(uint32_t proc, int *index);
/* "scheduler", "frontend-0": log name and pid file stem. */
void sup_proc_name(uint32_t proc, char *buf, size_t len);
/* data_dir/<name>.pid */
void sup_pidfile_path(const struct gw_config *cfg, uint32_t proc, char *buf, size_t len);

/* Argument vector for a child, for execv of /proc/self/exe:
 *   coapgw <role> [-c CONFIG] [-i N]          scheduler, meshio, frontend
 *   coapgw meshsim --devices FILE --quiet      the embedded simulator
 * Strings are copied into out->buf; out->argv is NULL-terminated.
 * Returns 0, or -ENAMETOOLONG when they do not fit. */
struct sup_argv {
    char *argv[12];
    char buf[2048];
};
int sup_child_argv(uint32_t proc, const char *config, const char *devices_file,
                   struct sup_argv *out) GW_NODISCARD;

/* Atomically (temporary file + rename) writes "<pid>\n" to path. 0 or -errno. */
int sup_pidfile_write(const char *path, uint32_t pid) GW_NODISCARD;
/* Removes path if it still names pid (0: whatever it names). */
void sup_pidfile_remove(const char *path, uint32_t pid);

/* Clears the ring sides a dead process owned (prod_pid / cons_pid equal to
 * pid), as nginx force-unlocks a dead worker's mutexes. */
void sup_rings_release(const struct gw_shm *shm, uint32_t proc, uint32_t pid);

/* Sends a CoAP ping (empty CON) to `listen` (a wildcard address is probed
 * on loopback) and waits up to timeout_ms for any answer (RST, S3.4).
 * Returns 0, -ETIMEDOUT, -EINVAL for an unparsable address, or -errno. */
#define SUP_READY_PROBE_MS 250
int sup_probe_coap(const char *listen, int timeout_ms) GW_NODISCARD;
/* The address a local client reaches listener `listen` at: a wildcard
 * listener through loopback. 0 or -EINVAL for an unparsable address. */
int sup_listen_target(const char *listen, struct gw_ep *ep) GW_NODISCARD;

/* mkdir -p with mode 0700 for created directories. 0 or -errno. */
int sup_mkdir_p(const char *path) GW_NODISCARD;

/* ---- observing a running instance --------------------------------------- */

#define SUP_MAX_PROCS (GW_PROC_FRONTEND0 + 64)
#define SUP_MAX_RINGS (2 * 64 + 2)

struct sup_proc_view {
    uint32_t proc; /* GW_PROC_* */
    uint32_t pid;  /* 0 = not running */
    bool up;       /* pid names a live process */
    uint32_t restarts;
    int64_t started_wall; /* unix seconds, 0 = never started */
    uint64_t started_mono_ms;
    bool has_stats; /* export its counters */
    uint64_t stats[GW_STAT_COUNT];
    uint64_t codes[GW_STAT_CODES];
    struct sup_hist_view {
        uint64_t bucket[GW_HIST_NBOUNDS + 1]; /* non-cumulative, as stored */
        uint64_t count, sum_us;
    } hist[GW_HIST_COUNT];
    bool has_proc; /* the /proc figures below were read */
    uint64_t rss_bytes;
    double cpu_seconds;
    uint32_t open_fds;
};

struct sup_ring_view {
    char from[24], to[24]; /* "frontend-0", "scheduler", "meshio" */
    uint32_t depth, size;
};

struct sup_bell_view {
    char to[24]; /* the consumer woken: "scheduler", "meshio", "frontend-0" */
    uint64_t writes;
};

struct sup_view {
    char instance[64];
    uint64_t now_mono_ms;
    uint32_t nprocs;
    struct sup_proc_view procs[SUP_MAX_PROCS];
    uint32_t nrings;
    struct sup_ring_view rings[SUP_MAX_RINGS];
    uint32_t nbells;
    struct sup_bell_view bells[2 + 64];
    int64_t max_sessions, max_txn; /* configured bounds, exported beside their gauges */
    const char *version, *commit;  /* coapgw_build_info; NULL: not shown */
};

/* Reads a process's resident memory, CPU seconds (user + system) and open
 * descriptors from /proc. Returns 0, or -errno when it cannot. */
int sup_proc_read(uint32_t pid, uint64_t *rss_bytes, double *cpu_seconds, uint32_t *open_fds);

/* Copies what status and metrics show from the segment: the supervisor, the
 * scheduler, meshio, the simulator when it ever ran, frontends 0 ..
 * cfg->frontends - 1 (and any later one that ever ran). */
void sup_view_snapshot(const struct gw_shm *shm, const struct gw_config *cfg, struct sup_view *v);

/* Renders the Prometheus text exposition format (version 0.0.4). Each
 * series appears only where it means something: a counter of gw_stats.h for
 * the roles that keep it (labels role, and frontend="N" for frontends),
 * final responses as coapgw_responses_total{code}, latency histograms
 * (coapgw_request_duration_seconds{path}, coapgw_device_rtt_seconds),
 * per-process figures (coapgw_process_*), coapgw_up, coapgw_restarts_total,
 * ring fill (coapgw_ring_depth / coapgw_ring_slots), doorbell writes and
 * coapgw_build_info. Returns a malloc'd NUL-terminated string (length in
 * *len when len is not NULL), or NULL when out of memory. */
char *sup_metrics_render(const struct sup_view *v, size_t *len);

/* "3d04h", "2h05m", "4m09s", "12s", "-" for 0 (never). */
void sup_fmt_uptime(uint64_t ms, char *buf, size_t len);
/* The `coapgw status` table. malloc'd, NULL when out of memory. */
char *sup_status_render(const struct sup_view *v);

/* The commands for a first request with `coapgw client` (S10.1, issue 14),
 * for a gateway listening on `listen` (wildcard addresses become loopback),
 * with token `token`, device `mac` (16 hex digits) and the executable `prog`
 * (NULL: "coapgw"). Returns the length written (as snprintf), or -EINVAL
 * when listen does not parse. */
int sup_first_request_text(const char *listen, const char *token, const char *mac, const char *prog,
                           char *buf, size_t len);

/* True when /dev/shm holds the instance's segment (never creates it). */
bool sup_shm_exists(const struct gw_config *cfg);

/* ---- commands (return a process exit code) -------------------------------- */

struct sup_run_opts {
    const char *config_path; /* passed on to children with -c; NULL = none */
    /* Mints a development token for the banner (S10.1); NULL = none. Returns
     * 0 and a malloc'd token in *out, or an error with a message in err. */
    int (*mint)(const struct gw_config *cfg, const char *account, int64_t ttl_s, char **out,
                char *err, size_t errlen);
};

/* `coapgw run`: supervises until SIGTERM/SIGINT. Returns 0 after a clean stop,
 * GW_EXIT_FATAL when a child reported a configuration error or the
 * supervisor's own configuration is unusable, 1 for other start failures. */
int sup_run(struct gw_config *cfg, const struct sup_run_opts *opts);

int sup_cmd_status(const struct gw_config *cfg);
int sup_cmd_metrics(const struct gw_config *cfg);
/* `metrics --serve`: /metrics, /healthz and /readyz over HTTP on
 * metrics_listen until SIGTERM/SIGINT, for roles run without a supervisor
 * (containers). Returns 0, GW_EXIT_FATAL for a configuration error, or 1. */
int sup_cmd_metrics_serve(const struct gw_config *cfg);
/* `coapgw devices import FILE [--skip-bad]` (S7.2): all or nothing unless
 * skip_bad; refused (exit 1) while devices_file or the embedded simulator
 * is the registry's source, so that a SIGHUP never silently undoes it. */
int sup_cmd_devices_import(const struct gw_config *cfg, const char *file, bool skip_bad);
int sup_cmd_devices_list(const struct gw_config *cfg);
/* `coapgw loglevel [LEVEL]`: shows or sets the running instance's log level
 * (every process follows the shared word at once). */
int sup_cmd_loglevel(const struct gw_config *cfg, const char *level);
/* `coapgw cleanup`: when no process of the instance runs (lock files, pid
 * files, the segment's process table), removes its shared-memory segment,
 * doorbell FIFOs, pid and lock files. Exit 1, removing nothing, while it runs. */
int sup_cmd_cleanup(const struct gw_config *cfg);

#endif
