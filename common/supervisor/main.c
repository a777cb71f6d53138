/* SPDX-License-Identifier: MIT */
/* main.c - the one `coapgw` executable: argv -> config -> the command.
 *
 * Everything that needs another role's library lives here (fe_run, sch_run,
 * mesh_run, meshsim_main, fe_auth for tokens), since this is the file that
 * links them all; the supervisor's own logic is in sup_core. */
#include "supervisor.h"
#include "client.h"
#include "fe_auth.h"
#include "frontend.h"
#include "gw_clock.h"
#include "gw_config.h"
#include "gw_devfile.h"
#include "gw_error.h"
#include "gw_fsafe.h"
#include "gw_shm.h"
#include "gw_log.h"
#include "meshio.h"
#include "meshsim.h"
#include "scheduler.h"
#include "gw_version.h"

#include <errno.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <unistd.h>

static bool supervised(void)
{
    const char *v = getenv("COAPGW_SUPERVISED");
    return v && !strcmp(v, "1");
}

/* A supervised child dies with its supervisor (SIGTERM, so it stops
 * cleanly), so that a SIGKILLed supervisor leaves no orphans that a new one
 * would fight with over a fresh segment. */
static void die_with_supervisor(void)
{
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
        return;
    const char *pp = getenv("COAPGW_SUPERVISOR_PID");
    /* The supervisor may have died before prctl() took effect. */
    if (pp && getppid() != (pid_t)atoi(pp))
        _exit(1);
}

/* A role started on its own (a container, or by hand) holds an exclusive
 * lock on data_dir/<role>.lock while it lives. Two copies of one role and
 * index (a scaled compose service, a duplicate -i) would both claim the same
 * SPSC rings and corrupt them, so the second is refused. The kernel drops
 * the lock when the holder dies, even by SIGKILL, so a restart never waits.
 * Under the supervisor there is no lock: it starts one child per slot. */
static int lock_role(const char *path, char *err, size_t errlen)
{
    int fd = gw_fsafe_open(path, O_RDWR | O_CREAT, GW_FS_REG, err, errlen);
    if (fd < 0)
        return fd;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        return e == EWOULDBLOCK ? -EBUSY : -e;
    }
    return fd; /* kept open for the life of the process */
}

/* What a command checks before it uses anything on disk (SPEC S9.2). */
enum trust_need {
    TRUST_DATA = 1,   /* data_dir and everything in it */
    TRUST_INPUTS = 2, /* devices_file and jwt_key_file */
    TRUST_KEY = 4,    /* the development secret only where it is allowed */
    TRUST_SHM = 8,    /* an existing shared segment is ours and 0600 */
};

/* Refuses to start on anything another local user could have planted or
 * could change: one line naming the path and what is wrong, and
 * GW_EXIT_FATAL so that no supervisor or systemd restarts it in a loop.
 * Replaces cfg->data_dir by its real path. */
static int trust_check(struct gw_config *cfg, unsigned need)
{
    char err[1024] = "";
    int rc = 0;
    if (need & TRUST_KEY)
        rc = gw_config_check_key(cfg, err, sizeof(err));
    if (!rc && (need & TRUST_DATA))
        rc = gw_fsafe_data_dir(cfg, err, sizeof(err));
    if (!rc && (need & TRUST_INPUTS))
        rc = gw_fsafe_inputs(cfg, err, sizeof(err));
    if (!rc && (need & TRUST_SHM))
        rc = gw_shm_check(cfg, err, sizeof(err));
    if (!rc)
        return 0;
    gw_log_err(GW_LOG_SYS, "refusing to start: %s", err[0] ? err : gw_strerror(rc));
    return GW_EXIT_FATAL;
}

/* S9.2: every start with the development secret says so. */
static void warn_dev_secret(const struct gw_config *cfg)
{
    if (!gw_config_dev_secret(cfg))
        return;
    gw_log_warn(GW_LOG_AUTH,
                "tokens are signed with a development secret (%s/dev-secret, %s): anyone who can "
                "read it can mint tokens; set jwt_key_file for production",
                cfg->data_dir, cfg->dev_mode ? "dev_mode = true" : "embedded simulator");
}

/* "key FILE for ALG: what (errno text)": the reason a key file is refused,
 * with the system's words when a system call failed. */
static void key_error(char *err, size_t errlen, const char *path, const char *alg, const char *diag,
                      int rc)
{
    if (rc < 0 && rc > -4096 && diag)
        snprintf(err, errlen, "key %s for %s: %s: %s", path, alg, diag, strerror(-rc));
    else
        snprintf(err, errlen, "key %s for %s: %s", path, alg, diag ? diag : gw_strerror(rc));
}

/* Says which entry of a --devices LIST is wrong and why (the rule of
 * fe_scope_parse: 1 to 16 hex digits, a trailing '*' for a prefix, at most
 * FE_SCOPE_MAX entries). Returns 0 when every entry is good. */
static int scope_explain(const char *list, char *err, size_t errlen)
{
    int n = 0;
    for (const char *p = list;; n++) {
        const char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        char e[64];
        snprintf(e, sizeof(e), "%.*s", (int)GW_MIN(l, sizeof(e) - 1), p);
        size_t hl = strspn(e, "0123456789abcdefABCDEF");
        const char *why = NULL;
        if (n >= FE_SCOPE_MAX)
            why = "one entry too many (at most 16)";
        else if (l == 0)
            why = "empty";
        else if (hl == 0 && e[0] != '*')
            why = "not hexadecimal";
        else if (hl == 0)
            why = "a '*' without a prefix (leave --devices out to allow every device)";
        else if (hl > 16)
            why = "longer than a MAC ID (16 hex digits)";
        else if (e[hl] == '*' && e[hl + 1])
            why = "not ended by its '*'";
        else if (e[hl] && e[hl] != '*')
            why = "not hexadecimal throughout";
        if (why) {
            snprintf(
                err, errlen,
                "--devices: entry '%s' is %s; expected MAC IDs (16 hex digits) or hex prefixes "
                "ending in '*', comma-separated, e.g. 0200000000000001,03*",
                e, why);
            return GW_EBADMSG;
        }
        if (!c)
            return 0;
        p = c + 1;
    }
}

/* Signs a token with the configured key (the development secret under
 * data_dir when jwt_key_file is empty, created if missing). */
static int mint_token(const struct gw_config *cfg, const char *account, int64_t ttl_s,
                      const char *devices, char **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg->jwt_key_file[0] && strcmp(cfg->jwt_alg, "HS256")) {
        snprintf(
            err, errlen,
            "jwt_alg %s needs jwt_key_file (a PEM key); the development secret is for HS256 only",
            cfg->jwt_alg);
        return GW_ECONFIG;
    }
    char keypath[GW_CFG_STR + 64];
    int rc = fe_dev_key_path(cfg, keypath, sizeof(keypath));
    if (rc) {
        snprintf(err, errlen, "development secret in %s: %s", cfg->data_dir, gw_strerror(rc));
        return rc;
    }
    struct fe_auth_cfg acfg;
    fe_auth_cfg_from(cfg, keypath, &acfg);
    struct fe_auth *a = NULL;
    const char *diag = NULL;
    if ((rc = fe_auth_new_diag(&acfg, &a, &diag)) != 0) {
        key_error(err, errlen, keypath, cfg->jwt_alg, diag, rc);
        return rc;
    }
    diag = NULL;
    if (devices && scope_explain(devices, err, errlen) != 0) {
        fe_auth_free(a);
        return GW_EBADMSG;
    }
    rc = fe_auth_mint(a, account, gw_wall_s(), ttl_s, devices, out, &diag);
    fe_auth_free(a);
    if (rc) {
        if (rc == GW_ECONFIG)
            snprintf(err, errlen,
                     "jwt_alg %s with key %s: %s; only a secret (HS256) or a private key can sign, "
                     "so mint tokens where the private key is",
                     cfg->jwt_alg, keypath, diag ? diag : "cannot sign");
        else
            snprintf(err, errlen, "%s", diag ? diag : gw_strerror(rc));
    }
    return rc;
}

static int mint_demo(const struct gw_config *cfg, const char *account, int64_t ttl_s, char **out,
                     char *err, size_t errlen)
{
    return mint_token(cfg, account, ttl_s, NULL, out, err, errlen);
}

/* ---- coapgw config --check, and the same checks before `coapgw run` ---- */

struct check_ctx {
    const char *prefix; /* "coapgw config --check" or NULL: through the log */
    int errors;
    int devices;
    const char *file;
};

static void check_fail(struct check_ctx *k, const char *fmt, ...) GW_PRINTF(2, 3);
static void check_fail(struct check_ctx *k, const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    k->errors++;
    if (k->prefix)
        fprintf(stderr, "%s: %s\n", k->prefix, msg);
    else
        gw_log_err(GW_LOG_SYS, "configuration error: %s", msg);
}

static void check_devline(void *ctx, int lineno, const char *msg)
{
    struct check_ctx *k = ctx;
    /* Bounded: a file of garbage is reported by its first lines. */
    if (k->errors < 20)
        check_fail(k, "%s:%d: %s (devices_file)", k->file, lineno, msg);
    else
        k->errors++;
}

static int check_devcount(void *ctx, const struct gw_device *d)
{
    (void)d;
    ((struct check_ctx *)ctx)->devices++;
    return 0;
}

/* The key in jwt_key_file parses as jwt_alg wants (a secret for HS256, a PEM
 * public or private key for RS256/ES256). */
static void check_key(struct check_ctx *k, const struct gw_config *cfg)
{
    char w[GW_CFG_STR + 64];
    if (!cfg->jwt_key_file[0])
        return; /* the development secret: created by the first start, checked by gw_config_check_key */
    struct fe_auth_cfg acfg;
    fe_auth_cfg_from(cfg, cfg->jwt_key_file, &acfg);
    struct fe_auth *a = NULL;
    const char *diag = NULL;
    int rc = fe_auth_new_diag(&acfg, &a, &diag);
    if (rc) {
        char e[700];
        key_error(e, sizeof(e), cfg->jwt_key_file, cfg->jwt_alg, diag, rc);
        check_fail(k, "%s: %s", gw_config_where(cfg, "jwt_key_file", w, sizeof(w)), e);
        return;
    }
    fe_auth_free(a);
}

/* data_dir: when it exists, gw_fsafe_data_dir's rules (owner, modes, every
 * entry); when it does not, the directory that would hold it exists, is
 * ours or root's, not writable by others, and we may create in it. Nothing
 * is created. */
static void check_data_dir(struct check_ctx *k, const struct gw_config *cfg)
{
    char w[GW_CFG_STR + 64], err[1024] = "";
    gw_config_where(cfg, "data_dir", w, sizeof(w));
    struct stat st;
    if (stat(cfg->data_dir, &st) == 0) {
        struct gw_config copy = *cfg;
        int rc = gw_fsafe_data_dir(&copy, err, sizeof(err));
        if (rc)
            check_fail(k, "%s: %s", w, err[0] ? err : gw_strerror(rc));
        return;
    }
    if (errno != ENOENT) {
        check_fail(k, "%s: %s: %s", w, cfg->data_dir, strerror(errno));
        return;
    }
    if (cfg->data_dir[0] != '/') {
        check_fail(k, "%s: '%s' is not an absolute path", w, cfg->data_dir);
        return;
    }
    char parent[GW_CFG_STR];
    snprintf(parent, sizeof(parent), "%s", cfg->data_dir);
    for (int i = 0; i < 64; i++) { /* bounded: a path has few components */
        char *slash = strrchr(parent, '/');
        if (!slash)
            break;
        if (slash == parent)
            slash[1] = '\0';
        else
            *slash = '\0';
        if (stat(parent, &st) == 0)
            break;
    }
    if (!S_ISDIR(st.st_mode)) {
        check_fail(k, "%s: %s cannot be created: %s is not a directory", w, cfg->data_dir, parent);
        return;
    }
    int rc = gw_fsafe_check(parent, GW_FS_DIR | GW_FS_ANCESTOR, true, err, sizeof(err));
    if (rc == 0 && strcmp(parent, "/"))
        rc = gw_fsafe_ancestors(parent, err, sizeof(err));
    if (rc) {
        check_fail(k, "%s: %s would be created in an unsafe place: %s", w, cfg->data_dir, err);
        return;
    }
    /* access(2) says yes to root everywhere, /proc included: try it, and take it back. */
    char probe[GW_CFG_STR + 64];
    snprintf(probe, sizeof(probe), "%s%s.coapgw-check-%d", parent, strcmp(parent, "/") ? "/" : "",
             (int)getpid());
    if (mkdir(probe, 0700) != 0)
        check_fail(k, "%s: %s cannot be created: %s: %s", w, cfg->data_dir, parent,
                   strerror(errno));
    else
        rmdir(probe);
}

/* Everything that can be checked without starting: the configuration was
 * loaded (keys, ranges, addresses); here the development-secret policy,
 * the files it names and data_dir. Returns the number of errors. */
static int check_everything(const struct gw_config *cfg, const char *prefix, bool data_dir)
{
    struct check_ctx k = { .prefix = prefix };
    char err[1024] = "", w[GW_CFG_STR + 64];
    if (gw_config_check_key(cfg, err, sizeof(err)) != 0)
        check_fail(&k, "%s", err);
    err[0] = '\0';
    int rc = gw_fsafe_inputs(cfg, err, sizeof(err));
    if (rc) {
        /* Name the key's line: the message names the path. */
        const char *key = strstr(err, "jwt_key_file") ? "jwt_key_file" : "devices_file";
        gw_config_where(cfg, key, w, sizeof(w));
        if (strchr(w, ':') && strstr(err, key) == err)
            check_fail(&k, "%s%s", w, err + strlen(key));
        else
            check_fail(&k, "%s", err[0] ? err : gw_strerror(rc));
    }
    if (!rc || !strstr(err, "jwt_key_file"))
        check_key(&k, cfg);
    if (cfg->devices_file[0] && (!rc || !strstr(err, "devices_file"))) {
        k.file = cfg->devices_file;
        int before = k.errors;
        int n = gw_devfile_load(cfg->devices_file, check_devcount, check_devline, &k);
        if (n < 0 && n > -4096)
            check_fail(&k, "%s: %s: %s", gw_config_where(cfg, "devices_file", w, sizeof(w)),
                       cfg->devices_file, strerror(-n));
        else if (n < 0 && k.errors == before)
            check_fail(&k, "%s: %s: %s", gw_config_where(cfg, "devices_file", w, sizeof(w)),
                       cfg->devices_file, gw_strerror(n));
        else if (n == 0 && k.devices == 0 && k.errors == before)
            check_fail(&k, "%s: %s holds no devices",
                       gw_config_where(cfg, "devices_file", w, sizeof(w)), cfg->devices_file);
    }
    if (data_dir)
        check_data_dir(&k, cfg);
    if (prefix && !k.errors) {
        printf("%s: valid (instance %s, data_dir %s, ",
               cfg->src_path[0] ? cfg->src_path : "built-in defaults", cfg->instance,
               cfg->data_dir);
        if (cfg->devices_file[0])
            printf("%d devices in %s, ", k.devices, cfg->devices_file);
        else if (gw_config_embedded_sim(cfg))
            printf("the embedded mesh simulator, ");
        printf("%s)\n", cfg->jwt_key_file[0] ? "JWT key file parsed" : "development secret");
    }
    return k.errors;
}

static int cmd_token(const struct gw_config *cfg, const struct sup_args *a)
{
    char err[512] = "";
    char *tok = NULL;
    int rc = mint_token(cfg, a->account, a->ttl_s, a->devices, &tok, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "coapgw token: %s\n", err);
        return rc == -ENOMEM ? 1 : 2;
    }
    printf("%s\n", tok);
    free(tok);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int cmd_role(enum sup_cmd cmd, struct gw_config *cfg, int index)
{
    uint32_t proc = cmd == SUP_CMD_SCHEDULER ? GW_PROC_SCHEDULER
                    : cmd == SUP_CMD_MESHIO  ? GW_PROC_MESHIO
                                             : GW_PROC_FRONTEND0 + (uint32_t)index;
    if (cmd == SUP_CMD_FRONTEND && index >= cfg->max_frontends) {
        fprintf(
            stderr,
            "coapgw frontend: -i %d is outside 0..%lld: this configuration has max_frontends = %lld "
            "(ring pairs in the shared segment; at most 64)\n",
            index, (long long)cfg->max_frontends - 1, (long long)cfg->max_frontends);
        return GW_EXIT_FATAL;
    }
    int idx;
    const char *role = sup_proc_role(proc, &idx);
    int lvl = gw_log_level_parse(cfg->log_level);
    gw_log_init(role, idx, lvl < 0 ? GW_LOG_INFO : (enum gw_log_level)lvl);
    signal(SIGPIPE, SIG_IGN);
    bool sup = supervised();
    if (sup)
        die_with_supervisor();
    unsigned need =
        TRUST_DATA | TRUST_INPUTS | TRUST_SHM | (cmd == SUP_CMD_FRONTEND ? TRUST_KEY : 0);
    int trc = trust_check(cfg, need);
    if (trc)
        return trc;
    if (cmd == SUP_CMD_FRONTEND)
        warn_dev_secret(cfg);

    /* Under the supervisor it writes the pid files; on our own, we do. */
    char pidfile[GW_CFG_STR + 32] = "";
    if (!sup) {
        sup_pidfile_path(cfg, proc, pidfile, sizeof(pidfile));
        int rc;
        {
            char lock[GW_CFG_STR + 48], name[32], lerr[600] = "";
            sup_proc_name(proc, name, sizeof(name));
            snprintf(lock, sizeof(lock), "%s/%s.lock", cfg->data_dir, name);
            int lfd = lock_role(lock, lerr, sizeof(lerr));
            if (lfd == -EBUSY) {
                gw_log_err(
                    GW_LOG_SYS,
                    "%s of instance %s already runs (%s is locked); two would share its rings",
                    name, cfg->instance, lock);
                return GW_EXIT_FATAL;
            }
            if (lfd == GW_EUNSAFE) {
                gw_log_err(GW_LOG_SYS, "refusing to start: %s", lerr);
                return GW_EXIT_FATAL;
            }
            if (lfd < 0)
                gw_log_warn(GW_LOG_SYS, "lock %s: %s", lock, lerr[0] ? lerr : gw_strerror(lfd));
            rc = sup_pidfile_write(pidfile, (uint32_t)getpid());
        }
        if (rc) {
            gw_log_warn(GW_LOG_SYS, "pid file %s: %s", pidfile, gw_strerror(rc));
            pidfile[0] = '\0';
        }
    }
    /* ps and top show the role, not "exe" (children are spawned from /proc/self/exe). */
    char comm[16];
    if (cmd == SUP_CMD_SCHEDULER || cmd == SUP_CMD_MESHIO)
        snprintf(comm, sizeof(comm), "coapgw-%s", cmd == SUP_CMD_SCHEDULER ? "sched" : "meshio");
    else
        snprintf(comm, sizeof(comm), "coapgw-fe%d", index);
    prctl(PR_SET_NAME, comm, 0, 0, 0);
    int code;
    if (cmd == SUP_CMD_SCHEDULER)
        code = sch_run(cfg);
    else if (cmd == SUP_CMD_MESHIO)
        code = mesh_run(cfg);
    else
        code = fe_run(cfg, index);
    if (pidfile[0])
        sup_pidfile_remove(pidfile, (uint32_t)getpid());
    return code;
}

int main(int argc, char **argv)
{
    /* `coapgw client ...`, or the coapgw-client link: the client parses its
     * own command line (common/client/). */
    const char *base = argv[0] ? strrchr(argv[0], '/') : NULL;
    base = base ? base + 1 : argv[0];
    if (base && !strcmp(base, "coapgw-client"))
        return cl_main(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "client"))
        return cl_main(argc - 1, argv + 1);

    struct sup_args a;
    char err[512];
    if (sup_args_parse(argc, argv, &a, err, sizeof(err)) != 0) {
        fprintf(stderr, "coapgw: %s\n\n%s", err, sup_usage(a.cmd));
        return 2;
    }
    if (a.help) {
        fputs(sup_usage(a.cmd), stdout);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    if (a.cmd == SUP_CMD_VERSION) {
        printf("coapgw %s (commit %s)\n", COAPGW_VERSION, COAPGW_COMMIT);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    if (a.cmd == SUP_CMD_USAGE) {
        fputs(sup_usage(SUP_CMD_USAGE), stderr);
        return 2;
    }
    if (a.cmd == SUP_CMD_MESHSIM) {
        if (supervised())
            die_with_supervisor();
        prctl(PR_SET_NAME, "coapgw-meshsim", 0, 0, 0);
        return meshsim_main(a.sub_argc, a.sub_argv);
    }

    struct gw_config cfg;
    if (gw_config_load(&cfg, a.config, err, sizeof(err)) != 0) {
        fprintf(stderr, "coapgw %s%s: configuration error: %s\n", argv[1],
                a.check ? " --check" : "", err);
        return GW_EXIT_FATAL;
    }
    int lvl = gw_log_level_parse(cfg.log_level);
    gw_log_init("coapgw", -1, lvl < 0 ? GW_LOG_INFO : (enum gw_log_level)lvl);
    int fmt = gw_log_format_parse(cfg.log_format);
    gw_log_set_format(fmt < 0 ? GW_LOG_TEXT : (enum gw_log_format)fmt);

    switch (a.cmd) {
    case SUP_CMD_RUN: {
        gw_log_init("supervisor", -1, lvl < 0 ? GW_LOG_INFO : (enum gw_log_level)lvl);
        /* What `config --check` checks, before anything starts or prints a banner
         * (data_dir: trust_check below creates it when missing, then checks it). */
        if (check_everything(&cfg, NULL, false))
            return GW_EXIT_FATAL;
        int trc = trust_check(&cfg, TRUST_DATA | TRUST_INPUTS | TRUST_KEY | TRUST_SHM);
        if (trc)
            return trc;
        warn_dev_secret(&cfg);
        struct sup_run_opts o = { .config_path = a.config, .mint = mint_demo };
        return sup_run(&cfg, &o);
    }
    case SUP_CMD_FRONTEND:
    case SUP_CMD_SCHEDULER:
    case SUP_CMD_MESHIO:
        return cmd_role(a.cmd, &cfg, a.index);
    case SUP_CMD_STATUS:
        return sup_cmd_status(&cfg);
    case SUP_CMD_METRICS:
        if (a.serve) {
            gw_log_init("metrics", -1, lvl < 0 ? GW_LOG_INFO : (enum gw_log_level)lvl);
            return sup_cmd_metrics_serve(&cfg);
        }
        return sup_cmd_metrics(&cfg);
    case SUP_CMD_TOKEN: {
        int trc = trust_check(&cfg, TRUST_DATA | TRUST_INPUTS | TRUST_KEY);
        return trc ? trc : cmd_token(&cfg, &a);
    }
    case SUP_CMD_DEVICES_IMPORT: {
        int trc = trust_check(&cfg, TRUST_DATA);
        return trc ? trc : sup_cmd_devices_import(&cfg, a.file, a.skip_bad);
    }
    case SUP_CMD_DEVICES_LIST: {
        /* Reading must not create: a mistyped -c or data_dir would leave an
         * empty data_dir behind and list nothing as if it were the registry. */
        char state[GW_CFG_STR + 16];
        snprintf(state, sizeof(state), "%s/state", cfg.data_dir);
        if (access(state, F_OK) != 0) {
            fprintf(
                stderr,
                "coapgw devices list: no device registry in %s (%s: %s); has a gateway run with "
                "this configuration? `coapgw devices import FILE` creates one\n",
                cfg.data_dir, state, strerror(errno));
            return 1;
        }
        int trc = trust_check(&cfg, TRUST_DATA);
        return trc ? trc : sup_cmd_devices_list(&cfg);
    }
    case SUP_CMD_CONFIG:
        if (a.check)
            return check_everything(&cfg, "coapgw config --check", true) ? GW_EXIT_FATAL
                   : fflush(stdout) == 0                                 ? 0
                                                                         : 1;
        gw_config_dump(&cfg, STDOUT_FILENO);
        return 0;
    case SUP_CMD_LOGLEVEL:
        return sup_cmd_loglevel(&cfg, a.file);
    case SUP_CMD_CLEANUP:
        return sup_cmd_cleanup(&cfg);
    case SUP_CMD_VERSION:
    case SUP_CMD_MESHSIM:
    case SUP_CMD_USAGE:
        break;
    }
    fputs(sup_usage(SUP_CMD_USAGE), stderr);
    return 2;
}
