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
#include "gw_error.h"
#include "gw_fsafe.h"
#include "gw_shm.h"
#include "gw_log.h"
#include "meshio.h"
#include "meshsim.h"
#include "scheduler.h"
#include "gw_version.h"

#include <errno.h>
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
    TRUST_DATA = 1,      /* data_dir and everything in it */
    TRUST_INPUTS = 2,    /* devices_file and jwt_key_file */
    TRUST_KEY = 4,       /* the development secret only where it is allowed */
    TRUST_SHM = 8,       /* an existing shared segment is ours and 0600 */
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
    gw_log_warn(GW_LOG_AUTH, "tokens are signed with a development secret (%s/dev-secret, %s): anyone who can "
                "read it can mint tokens; set jwt_key_file for production", cfg->data_dir,
                cfg->dev_mode ? "dev_mode = true" : "embedded simulator");
}

static enum fe_jwt_alg jwt_alg(const struct gw_config *cfg)
{
    return !strcmp(cfg->jwt_alg, "RS256") ? FE_JWT_RS256 : !strcmp(cfg->jwt_alg, "ES256") ? FE_JWT_ES256 : FE_JWT_HS256;
}

/* Signs a token with the configured key (the development secret under
 * data_dir when jwt_key_file is empty, created if missing). */
static int mint_token(const struct gw_config *cfg, const char *account, int64_t ttl_s, const char *devices, char **out,
                      char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg->jwt_key_file[0] && strcmp(cfg->jwt_alg, "HS256")) {
        snprintf(err, errlen, "jwt_alg %s needs jwt_key_file (a PEM key); the development secret is for HS256 only",
                 cfg->jwt_alg);
        return GW_ECONFIG;
    }
    char keypath[GW_CFG_STR + 64];
    int rc = fe_dev_key_path(cfg, keypath, sizeof(keypath));
    if (rc) {
        snprintf(err, errlen, "development secret in %s: %s", cfg->data_dir, gw_strerror(rc));
        return rc;
    }
    struct fe_auth_cfg acfg = {
        .alg = jwt_alg(cfg), .key_file = keypath, .issuer = cfg->jwt_issuer, .audience = cfg->jwt_audience,
        .leeway_s = cfg->jwt_leeway_s, .max_token_len = (size_t)cfg->jwt_max_len,
    };
    struct fe_auth *a = NULL;
    const char *diag = NULL;
    if ((rc = fe_auth_new_diag(&acfg, &a, &diag)) != 0) {
        snprintf(err, errlen, "key %s for %s: %s", keypath, cfg->jwt_alg, diag ? diag : gw_strerror(rc));
        return rc;
    }
    diag = NULL;
    rc = fe_auth_mint(a, account, gw_wall_s(), ttl_s, devices, out, &diag);
    fe_auth_free(a);
    if (rc) {
        if (rc == GW_ECONFIG)
            snprintf(err, errlen, "jwt_alg %s with key %s: %s; only a secret (HS256) or a private key can sign, "
                     "so mint tokens where the private key is", cfg->jwt_alg, keypath, diag ? diag : "cannot sign");
        else
            snprintf(err, errlen, "%s", diag ? diag : gw_strerror(rc));
    }
    return rc;
}

static int mint_demo(const struct gw_config *cfg, const char *account, int64_t ttl_s, char **out, char *err,
                     size_t errlen)
{
    return mint_token(cfg, account, ttl_s, NULL, out, err, errlen);
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
        fprintf(stderr, "coapgw frontend: -i %d is outside 0..%lld: this configuration has max_frontends = %lld "
                "(ring pairs in the shared segment; at most 64)\n", index, (long long)cfg->max_frontends - 1,
                (long long)cfg->max_frontends);
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
    unsigned need = TRUST_DATA | TRUST_INPUTS | TRUST_SHM | (cmd == SUP_CMD_FRONTEND ? TRUST_KEY : 0);
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
                gw_log_err(GW_LOG_SYS, "%s of instance %s already runs (%s is locked); two would share its rings",
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
        fprintf(stderr, "coapgw %s: configuration error: %s\n", argv[1], err);
        return GW_EXIT_FATAL;
    }
    int lvl = gw_log_level_parse(cfg.log_level);
    gw_log_init("coapgw", -1, lvl < 0 ? GW_LOG_INFO : (enum gw_log_level)lvl);
    int fmt = gw_log_format_parse(cfg.log_format);
    gw_log_set_format(fmt < 0 ? GW_LOG_TEXT : (enum gw_log_format)fmt);

    switch (a.cmd) {
    case SUP_CMD_RUN: {
        gw_log_init("supervisor", -1, lvl < 0 ? GW_LOG_INFO : (enum gw_log_level)lvl);
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
        int trc = trust_check(&cfg, TRUST_DATA);
        return trc ? trc : sup_cmd_devices_list(&cfg);
    }
    case SUP_CMD_CONFIG:
        gw_config_dump(&cfg, STDOUT_FILENO);
        return 0;
    case SUP_CMD_LOGLEVEL:
        return sup_cmd_loglevel(&cfg, a.file);
    case SUP_CMD_VERSION:
    case SUP_CMD_CLEANUP:
    case SUP_CMD_MESHSIM:
    case SUP_CMD_USAGE:
        break;
    }
    fputs(sup_usage(SUP_CMD_USAGE), stderr);
    return 2;
}
