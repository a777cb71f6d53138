/* SPDX-License-Identifier: MIT */
/* cl_conf.h - configuration and command line of `coapgw client` (pure).
 *
 * Layers, each overriding the one before: built-in defaults, the file
 * (`-c FILE`, else $XDG_CONFIG_HOME/coapgw/client.conf when it exists),
 * the environment (COAPGW_CLIENT_<KEY>), then the flags. Every error names
 * its source: FILE:LINE and the key, the variable, or the flag. */
#ifndef CL_CONF_H
#define CL_CONF_H

#include "gw_defs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CL_PATH_MAX 1024
#define CL_TOKEN_MAX 8192

struct cl_conf {
    char gateway[256];   /* HOST:PORT of the gateway (default 127.0.0.1:5683) */
    uint16_t local_port; /* fixed local UDP port: sessions are bound to it (default 40001) */
    char token_file[CL_PATH_MAX];
    char token[CL_TOKEN_MAX]; /* a JWT given directly (key `token`, --token) */
    char security[8];         /* "netmgr" or "none": the session's mesh security (default netmgr) */
    bool security_set;        /* given by the file, environment or a flag, not the default */
    bool sticky;              /* open sessions with sticky=true (S2.5) */
    int64_t timeout_ms;       /* waiting for one response, and for the gateway (default 90 s) */
    int block_size;           /* Block2 size asked for (16..1024), 0 = let the gateway choose */
    int64_t max_body;         /* largest body reassembled or sent (default 1 MiB) */
};

void cl_conf_defaults(struct cl_conf *c);

/* Sets one key from text. `dir` is where a relative token_file is taken
 * from (the configuration file's folder), NULL for the working directory.
 * Returns 0, or GW_ECONFIG with "KEY: reason" in err. */
int cl_conf_set(struct cl_conf *c, const char *key, const char *val, const char *dir, char *err,
                size_t errlen) GW_NODISCARD;

/* Parses `key = value` lines (# comments, blank lines). Errors read
 * "FNAME:LINE: KEY: reason". Returns 0 or GW_ECONFIG. */
int cl_conf_parse(struct cl_conf *c, const char *text, size_t len, const char *fname, char *err,
                  size_t errlen) GW_NODISCARD;

/* Applies COAPGW_CLIENT_<KEY> for every key through getenv_fn (getenv in
 * the program, a table in tests). Errors name the variable. */
int cl_conf_env(struct cl_conf *c, const char *(*getenv_fn)(const char *name), char *err,
                size_t errlen) GW_NODISCARD;

/* ---- command line ---- */

enum cl_cmd {
    CL_CMD_NONE = 0,
    CL_CMD_SESSION_OPEN,
    CL_CMD_SESSION_CLOSE,
    CL_CMD_SESSION_SHOW,
    CL_CMD_GET,
    CL_CMD_DELETE,
    CL_CMD_PUT,
    CL_CMD_POST,
    CL_CMD_OBSERVE,
    CL_CMD_DEVICES,
    CL_CMD_PING,
};

#define CL_MAX_FLAGS 16

struct cl_args {
    bool help;
    const char *config; /* -c FILE, NULL = the default file if present */
    /* configuration flags, applied after the file and the environment */
    struct {
        const char *key, *val, *flag;
    } set[CL_MAX_FLAGS];
    unsigned nset;
    bool json;
    int verbose; /* -v count */
    enum cl_cmd cmd;
    const char *uri;       /* get/put/post/delete/observe */
    const char *data;      /* --data STR ("-" = standard input) */
    const char *data_file; /* --data-file FILE */
    int format;            /* --format N, -1 = none */
    int64_t count;         /* observe --count, 0 = no limit */
    int64_t duration_ms;   /* observe --duration, 0 = no limit */
};

/* Parses argv (argv[0] is the program or "client"). Returns 0, or
 * GW_EBADMSG with a one-line reason in err (a usage error, exit 2). */
int cl_args_parse(int argc, char **argv, struct cl_args *a, char *err, size_t errlen) GW_NODISCARD;

/* Applies the flags of a to c. Errors name the flag. */
int cl_args_apply(const struct cl_args *a, struct cl_conf *c, char *err,
                  size_t errlen) GW_NODISCARD;

const char *cl_usage(void);

#endif
