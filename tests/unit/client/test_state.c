/* SPDX-License-Identifier: MIT */
/* test_state.c - the state file of `coapgw client` (common/client/cl_state.c,
 * issue 14): where it lives (XDG_STATE_HOME, else ~/.local/state), mode 0600
 * written atomically, JSON built and read with jansson, the session taken
 * from a 2.01 answer to POST /sessions (S2.3). Real files in mkdtemp. */
#include "cl_state.h"
#include "gw_error.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char err[512];
static char tmp[64];

static void mk(void)
{
    snprintf(tmp, sizeof(tmp), "/tmp/cl-state-XXXXXX");
    cr_assert_not_null(mkdtemp(tmp));
}

static void rm(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(state, .init = mk, .fini = rm);

Test(state, path_from_xdg_state_home_or_home)
{
    char p[256];
    cr_assert_eq(cl_state_path("/x/state", "/home/u", "127.0.0.1:5683", 40001, p, sizeof(p)), 0);
    cr_assert_str_eq(p, "/x/state/coapgw/client-127.0.0.1:5683-40001.json");
    cr_assert_eq(cl_state_path(NULL, "/home/u", "gw:5683", 40002, p, sizeof(p)), 0);
    cr_assert_str_eq(p, "/home/u/.local/state/coapgw/client-gw:5683-40002.json");
    /* The XDG spec ignores relative paths. */
    cr_assert_eq(cl_state_path("rel", "/home/u", "gw:5683", 1, p, sizeof(p)), 0);
    cr_assert(!strncmp(p, "/home/u/.local/state/", 21), "%s", p);
    cr_assert_eq(cl_state_path("", "", "gw", 1, p, sizeof(p)), -ENOENT);
    cr_assert_eq(cl_state_path("/x", NULL, "gw", 1, p, 10), -ENAMETOOLONG);
}

Test(state, save_is_0600_in_a_0700_folder_and_loads_back)
{
    char p[256];
    cr_assert_eq(cl_state_path(tmp, NULL, "127.0.0.1:5683", 40001, p, sizeof(p)), 0);
    struct cl_state s, l;
    cl_state_init(&s, "127.0.0.1:5683", 40001);
    snprintf(s.id, sizeof(s.id), "00000000000000ab");
    snprintf(s.account, sizeof(s.account), "alice");
    snprintf(s.security, sizeof(s.security), "none");
    s.sticky = true;
    s.created = 1700000000;
    s.expires = 1700003600;
    s.next_mid = 65535;
    umask(0); /* the mode holds whatever the umask */
    cr_assert_eq(cl_state_save(p, &s), 0);
    umask(022);
    struct stat sb;
    cr_assert_eq(stat(p, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600, "mode %o", sb.st_mode & 0777);
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/coapgw", tmp);
    cr_assert_eq(stat(dir, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0700);
    cl_state_init(&l, "127.0.0.1:5683", 40001);
    cr_assert_eq(cl_state_load(p, &l, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(l.id, "00000000000000ab");
    cr_assert_str_eq(l.account, "alice");
    cr_assert_str_eq(l.security, "none");
    cr_assert(l.sticky);
    cr_assert_eq(l.expires, 1700003600);
    cr_assert_eq(l.next_mid, 65535);
    /* No temporary file is left beside it. */
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    cr_assert_eq(n, 1);
}

Test(state, missing_corrupt_and_foreign_files)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/none.json", tmp);
    struct cl_state l;
    cl_state_init(&l, "gw:1", 2);
    cr_assert_eq(cl_state_load(p, &l, err, sizeof(err)), -ENOENT);
    FILE *f = fopen(p, "w");
    fputs("{\"id\": \"ab\", trunc", f);
    fclose(f);
    cr_assert_eq(cl_state_load(p, &l, err, sizeof(err)), GW_EBADMSG);
    cr_assert(!l.id[0], "no session from a corrupt file");
    f = fopen(p, "w");
    fputs("{\"id\":\"ab\",\"gateway\":\"other:1\",\"local_port\":2,\"expires\":0}", f);
    fclose(f);
    cr_assert_eq(cl_state_load(p, &l, err, sizeof(err)), GW_EBADMSG);
    cr_assert(strstr(err, "other:1"), "%s", err);
    cr_assert(!l.id[0]);
    cr_assert_str_eq(l.gateway, "gw:1");
}

Test(state, liveness_follows_expiry)
{
    struct cl_state s;
    cl_state_init(&s, "gw", 1);
    cr_assert(!cl_state_live(&s, 100), "no id, no session");
    snprintf(s.id, sizeof(s.id), "01");
    s.expires = 200;
    cr_assert(cl_state_live(&s, 199));
    cr_assert(!cl_state_live(&s, 200));
}

Test(state, session_from_created_answer)
{
    struct cl_state s;
    cl_state_init(&s, "gw", 1);
    const char *doc =
        "{\"id\":\"584df9a845252afb\",\"account\":\"alice\",\"security\":\"none\",\"sticky\":false,"
        "\"single\":false,\"created\":1796283423,\"expires\":1796287023}";
    const char *loc[] = { "sessions", "584df9a845252afb" };
    cr_assert_eq(
        cl_state_from_session(&s, loc, 2, (const uint8_t *)doc, strlen(doc), err, sizeof(err)), 0,
        "%s", err);
    cr_assert_str_eq(s.id, "584df9a845252afb");
    cr_assert_str_eq(s.account, "alice");
    cr_assert_eq(s.expires, 1796287023);
    const char *wrong[] = { "sessions", "ffff" };
    cr_assert_eq(
        cl_state_from_session(&s, wrong, 2, (const uint8_t *)doc, strlen(doc), err, sizeof(err)),
        GW_EBADMSG, "id differs from Location-Path");
    cr_assert_eq(
        cl_state_from_session(&s, loc, 1, (const uint8_t *)doc, strlen(doc), err, sizeof(err)),
        GW_EBADMSG);
    cr_assert_eq(cl_state_from_session(&s, loc, 2, (const uint8_t *)"[", 1, err, sizeof(err)),
                 GW_EBADMSG);
}

Test(state, json_has_no_session_fields_without_a_session)
{
    struct cl_state s;
    cl_state_init(&s, "gw:5683", 40001);
    s.next_mid = 7;
    json_t *o = cl_state_json(&s);
    cr_assert_not_null(o);
    cr_assert_null(json_object_get(o, "id"));
    cr_assert_eq(json_integer_value(json_object_get(o, "local_port")), 40001);
    cr_assert_eq(json_integer_value(json_object_get(o, "next_mid")), 7);
    json_decref(o);
}

/* The account of a token, to tell whether a recorded session is its own. */
Test(state, jwt_sub_is_read_without_verifying)
{
    char sub[64];
    cr_assert_eq(
        cl_jwt_sub("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiAiYWxpY2UiLCAiZXhwIjogMTc5NjI4NzAyM30.c2ln", sub,
                   sizeof(sub)),
        0);
    cr_assert_str_eq(sub, "alice");
    cr_assert_eq(cl_jwt_sub("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOiAxfQ.c2ln", sub, sizeof(sub)),
                 GW_EBADMSG, "no sub");
    cr_assert_eq(cl_jwt_sub("not a token", sub, sizeof(sub)), GW_EBADMSG);
    cr_assert_eq(cl_jwt_sub("a.b$d.c", sub, sizeof(sub)), GW_EBADMSG);
    cr_assert_eq(
        cl_jwt_sub("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiAiYWxpY2UiLCAiZXhwIjogMTc5NjI4NzAyM30.c2ln", sub,
                   3),
        GW_EBADMSG, "does not fit");
}
