/* SPDX-License-Identifier: MIT */
/* test_fsafe.c - local trust checks (common/gw_fsafe.c, gw_shm.c), SPEC S9.2.
 *
 * The rules are judged on crafted stat results (no privileges needed), then
 * exercised on real files in a mkdtemp directory: planted links, modes that
 * let others in, atomic writes that replace a link instead of following it,
 * and a pre-created shared-memory object. */
#include "gw_config.h"
#include "gw_error.h"
#include "gw_fsafe.h"
#include "gw_shm.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static struct stat mk(mode_t type, unsigned perm, uid_t uid)
{
    struct stat st;
    memset(&st, 0, sizeof(st));
    st.st_mode = type | perm;
    st.st_uid = uid;
    return st;
}

static char why[256];

static int judge(mode_t type, unsigned perm, uid_t uid, uid_t euid, unsigned flags)
{
    struct stat st = mk(type, perm, uid);
    why[0] = '\0';
    return gw_fsafe_judge(&st, euid, flags, why, sizeof(why));
}

Test(fsafe, own_private_directory_is_fine)
{
    cr_assert_eq(judge(S_IFDIR, 0700, 1000, 1000, GW_FS_DIR), 0);
    cr_assert_eq(judge(S_IFDIR, 0755, 1000, 1000, GW_FS_DIR), 0,
                 "readable is fine for a directory");
}

Test(fsafe, world_writable_directory_is_refused)
{
    cr_assert_eq(judge(S_IFDIR, 0777, 1000, 1000, GW_FS_DIR), GW_EUNSAFE);
    cr_assert(strstr(why, "0777") && strstr(why, "write"), "%s", why);
    cr_assert_eq(judge(S_IFDIR, 0770, 1000, 1000, GW_FS_DIR), GW_EUNSAFE, "group write too");
}

Test(fsafe, other_owner_is_refused_and_named)
{
    cr_assert_eq(judge(S_IFDIR, 0700, 65534, 0, GW_FS_DIR), GW_EUNSAFE);
    cr_assert(strstr(why, "uid 65534") && strstr(why, "uid 0"), "%s", why);
    /* Root owning the gateway's own files is not enough without ROOT_OK. */
    cr_assert_eq(judge(S_IFREG, 0600, 0, 1000, GW_FS_REG), GW_EUNSAFE);
    cr_assert_eq(judge(S_IFREG, 0600, 0, 1000, GW_FS_REG | GW_FS_ROOT_OK), 0);
}

Test(fsafe, secrets_must_not_be_readable)
{
    cr_assert_eq(judge(S_IFREG, 0600, 7, 7, GW_FS_REG | GW_FS_SECRET), 0);
    cr_assert_eq(judge(S_IFREG, 0644, 7, 7, GW_FS_REG | GW_FS_SECRET), GW_EUNSAFE);
    cr_assert(strstr(why, "0644") && strstr(why, "read"), "%s", why);
    cr_assert_eq(judge(S_IFREG, 0640, 7, 7, GW_FS_REG | GW_FS_SECRET), GW_EUNSAFE);
    /* root:gateway 0640 handed to a service is tolerated where asked for. */
    cr_assert_eq(
        judge(S_IFREG, 0640, 0, 7, GW_FS_REG | GW_FS_SECRET | GW_FS_GROUP_READ_OK | GW_FS_ROOT_OK),
        0);
    cr_assert_eq(
        judge(S_IFREG, 0644, 0, 7, GW_FS_REG | GW_FS_SECRET | GW_FS_GROUP_READ_OK | GW_FS_ROOT_OK),
        GW_EUNSAFE);
    /* A plain (non-secret) file may be readable. */
    cr_assert_eq(judge(S_IFREG, 0644, 7, 7, GW_FS_REG), 0);
    cr_assert_eq(judge(S_IFREG, 0666, 7, 7, GW_FS_REG), GW_EUNSAFE);
}

Test(fsafe, types_are_enforced)
{
    cr_assert_eq(judge(S_IFLNK, 0777, 7, 7, 0), GW_EUNSAFE);
    cr_assert(strstr(why, "symbolic link"), "%s", why);
    cr_assert_eq(judge(S_IFREG, 0600, 7, 7, GW_FS_FIFO | GW_FS_SECRET), GW_EUNSAFE);
    cr_assert(strstr(why, "FIFO"), "%s", why);
    cr_assert_eq(judge(S_IFIFO, 0600, 7, 7, GW_FS_FIFO | GW_FS_SECRET), 0);
    cr_assert_eq(judge(S_IFIFO, 0622, 7, 7, GW_FS_FIFO | GW_FS_SECRET), GW_EUNSAFE);
    cr_assert_eq(judge(S_IFREG, 0700, 7, 7, GW_FS_DIR), GW_EUNSAFE);
    cr_assert_eq(judge(S_IFDIR, 0700, 7, 7, GW_FS_REG), GW_EUNSAFE);
}

Test(fsafe, ancestors_may_be_root_or_sticky)
{
    cr_assert_eq(judge(S_IFDIR, 0755, 0, 1000, GW_FS_ANCESTOR), 0);
    cr_assert_eq(judge(S_IFDIR, 01777, 0, 1000, GW_FS_ANCESTOR), 0, "/tmp");
    cr_assert_eq(judge(S_IFDIR, 0777, 0, 1000, GW_FS_ANCESTOR), GW_EUNSAFE, "no sticky bit");
    cr_assert_eq(judge(S_IFDIR, 0755, 65534, 1000, GW_FS_ANCESTOR), GW_EUNSAFE,
                 "another user's directory");
}

Test(fsafe, entry_rules_by_name)
{
    cr_assert_eq(gw_fsafe_entry_flags("dev-secret", false), GW_FS_REG | GW_FS_SECRET);
    cr_assert_eq(gw_fsafe_entry_flags("meshsim-devices.csv", false), GW_FS_REG | GW_FS_SECRET);
    cr_assert_eq(gw_fsafe_entry_flags("bell-meshio", false), GW_FS_FIFO | GW_FS_SECRET);
    cr_assert_eq(gw_fsafe_entry_flags("supervisor.pid", false), GW_FS_REG);
    cr_assert_eq(gw_fsafe_entry_flags("frontend-0.lock", false), GW_FS_REG);
    cr_assert_eq(gw_fsafe_entry_flags("state", false), GW_FS_DIR);
    cr_assert_eq(gw_fsafe_entry_flags("keys", false), GW_FS_DIR);
    cr_assert_eq(gw_fsafe_entry_flags("data.mdb", true), GW_FS_REG | GW_FS_SECRET);
    cr_assert_eq(gw_fsafe_entry_flags("anything.tmp.12", false), 0u);
}

/* ---- real files --------------------------------------------------------- */

static char dir[64];
static char err[1024];

static void mkdir_tmp(void)
{
    strcpy(dir, "/tmp/coapgw-test-fsafe.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void rm_tmp(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static void data_cfg(struct gw_config *cfg, const char *sub)
{
    gw_config_defaults(cfg);
    snprintf(cfg->data_dir, sizeof(cfg->data_dir), "%s/%s", dir, sub);
}

static void touch(const char *path, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    cr_assert_eq(fchmod(fd, mode), 0);
    close(fd);
}

Test(fsafe, data_dir_created_private_and_accepted, .init = mkdir_tmp, .fini = rm_tmp)
{
    struct gw_config cfg;
    data_cfg(&cfg, "a/b/data");
    cr_assert_eq(gw_fsafe_data_dir(&cfg, err, sizeof(err)), 0, "%s", err);
    struct stat st;
    cr_assert_eq(stat(cfg.data_dir, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700);
}

Test(fsafe, data_dir_open_to_others_is_refused, .init = mkdir_tmp, .fini = rm_tmp)
{
    struct gw_config cfg;
    data_cfg(&cfg, "data");
    cr_assert_eq(mkdir(cfg.data_dir, 0777), 0);
    cr_assert_eq(chmod(cfg.data_dir, 0777), 0);
    cr_assert_eq(gw_fsafe_data_dir(&cfg, err, sizeof(err)), GW_EUNSAFE);
    cr_assert(strstr(err, "/data") && strstr(err, "0777"), "%s", err);
}

Test(fsafe, planted_entries_are_refused_by_name, .init = mkdir_tmp, .fini = rm_tmp)
{
    struct gw_config cfg;
    char p[GW_CFG_STR + 32];
    data_cfg(&cfg, "data");
    cr_assert_eq(gw_fsafe_data_dir(&cfg, err, sizeof(err)), 0, "%s", err);

    /* A readable development secret. */
    snprintf(p, sizeof(p), "%s/dev-secret", cfg.data_dir);
    touch(p, 0644);
    cr_assert_eq(gw_fsafe_data_dir(&cfg, err, sizeof(err)), GW_EUNSAFE);
    cr_assert(strstr(err, "dev-secret") && strstr(err, "0644"), "%s", err);
    cr_assert_eq(chmod(p, 0600), 0);
    cr_assert_eq(gw_fsafe_data_dir(&cfg, err, sizeof(err)), 0, "%s", err);

    /* A readable LMDB file. */
    snprintf(p, sizeof(p), "%s/state", cfg.data_dir);
    cr_assert_eq(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/state/data.mdb", cfg.data_dir);
    touch(p, 0666);
    cr_assert_eq(gw_fsafe_data_dir(&cfg, err, sizeof(err)), GW_EUNSAFE);
    cr_assert(strstr(err, "state/data.mdb"), "%s", err);
    cr_assert_eq(chmod(p, 0600), 0);

    /* A pid file that is a link to somewhere else. */
    snprintf(p, sizeof(p), "%s/supervisor.pid", cfg.data_dir);
    cr_assert_eq(symlink("/etc/passwd", p), 0);
    cr_assert_eq(gw_fsafe_data_dir(&cfg, err, sizeof(err)), GW_EUNSAFE);
    cr_assert(strstr(err, "supervisor.pid") && strstr(err, "symbolic link"), "%s", err);
    cr_assert_eq(unlink(p), 0);

    /* A doorbell that is a regular file. */
    snprintf(p, sizeof(p), "%s/bell-meshio", cfg.data_dir);
    touch(p, 0600);
    cr_assert_eq(gw_fsafe_data_dir(&cfg, err, sizeof(err)), GW_EUNSAFE);
    cr_assert(strstr(err, "bell-meshio") && strstr(err, "FIFO"), "%s", err);
}

Test(fsafe, data_dir_link_is_resolved, .init = mkdir_tmp, .fini = rm_tmp)
{
    struct gw_config cfg;
    char real[128], link[128];
    snprintf(real, sizeof(real), "%s/real", dir);
    snprintf(link, sizeof(link), "%s/link", dir);
    cr_assert_eq(mkdir(real, 0700), 0);
    cr_assert_eq(symlink(real, link), 0);
    gw_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", link);
    cr_assert_eq(gw_fsafe_data_dir(&cfg, err, sizeof(err)), 0, "%s", err);
    /* Later opens go through the checked real path, not a link that could be swapped. */
    cr_assert_str_eq(cfg.data_dir, real);
}

Test(fsafe, write_atomic_replaces_a_link_without_following_it, .init = mkdir_tmp, .fini = rm_tmp)
{
    char victim[128], pid[128];
    snprintf(victim, sizeof(victim), "%s/victim", dir);
    snprintf(pid, sizeof(pid), "%s/x.pid", dir);
    touch(victim, 0600);
    int fd = open(victim, O_WRONLY);
    cr_assert_eq(write(fd, "precious\n", 9), 9);
    close(fd);
    cr_assert_eq(symlink(victim, pid), 0);
    cr_assert_eq(gw_fsafe_write_atomic(pid, "42\n", 3, 0644), 0);
    struct stat st;
    cr_assert_eq(lstat(pid, &st), 0);
    cr_assert(S_ISREG(st.st_mode), "the link was replaced by a file");
    cr_assert_eq(stat(victim, &st), 0);
    cr_assert_eq(st.st_size, 9, "the link's target was not truncated");
}

Test(fsafe, open_refuses_links_and_wrong_types, .init = mkdir_tmp, .fini = rm_tmp)
{
    char p[128], l[128];
    snprintf(p, sizeof(p), "%s/f", dir);
    snprintf(l, sizeof(l), "%s/l", dir);
    touch(p, 0600);
    cr_assert_eq(symlink(p, l), 0);
    cr_assert_eq(gw_fsafe_open(l, O_RDWR | O_CREAT, GW_FS_REG, err, sizeof(err)), GW_EUNSAFE);
    cr_assert(strstr(err, "symbolic link"), "%s", err);
    cr_assert_eq(gw_fsafe_open(p, O_RDWR | O_NONBLOCK, GW_FS_FIFO, err, sizeof(err)), GW_EUNSAFE);
    int fd = gw_fsafe_open(p, O_RDWR, GW_FS_REG, err, sizeof(err));
    cr_assert_geq(fd, 0, "%s", err);
    close(fd);
}

Test(fsafe, inputs_missing_devices_file_is_an_error, .init = mkdir_tmp, .fini = rm_tmp)
{
    struct gw_config cfg;
    gw_config_defaults(&cfg);
    snprintf(cfg.devices_file, sizeof(cfg.devices_file), "%s/none.csv", dir);
    cr_assert_eq(gw_fsafe_inputs(&cfg, err, sizeof(err)), -ENOENT);
    cr_assert(strstr(err, "devices_file") && strstr(err, "none.csv"), "%s", err);
    touch(cfg.devices_file, 0644);
    cr_assert_eq(gw_fsafe_inputs(&cfg, err, sizeof(err)), GW_EUNSAFE,
                 "device keys readable by all");
    cr_assert_eq(chmod(cfg.devices_file, 0600), 0);
    cr_assert_eq(gw_fsafe_inputs(&cfg, err, sizeof(err)), 0, "%s", err);
}

/* ---- shared memory (S9.2 item 2) ----------------------------------------- */

Test(fsafe, shm_precreated_open_to_others_is_refused)
{
    struct gw_config cfg;
    gw_config_defaults(&cfg);
    snprintf(cfg.instance, sizeof(cfg.instance), "fsafe%d", (int)getpid());
    cfg.ring_slots = 16;
    cfg.max_txn = 16;
    cfg.max_frontends = 1;
    char name[96];
    snprintf(name, sizeof(name), "/coapgw-%s", cfg.instance);
    shm_unlink(name);
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0666);
    cr_assert_geq(fd, 0);
    cr_assert_eq(fchmod(fd, 0666), 0);
    close(fd);
    struct gw_shm shm;
    /* An attacher refuses it, and so does a creator (it does not unlink it). */
    cr_assert_eq(gw_shm_open(&cfg, false, &shm, err, sizeof(err)), GW_EUNSAFE);
    cr_assert(strstr(err, name) && strstr(err, "0666"), "%s", err);
    cr_assert_eq(gw_shm_open(&cfg, true, &shm, err, sizeof(err)), GW_EUNSAFE);
    cr_assert_eq(gw_shm_check(&cfg, err, sizeof(err)), GW_EUNSAFE);
    /* Our own segment, created by gw_shm_open, is 0600 and re-attaches. */
    cr_assert_eq(shm_unlink(name), 0);
    cr_assert_eq(gw_shm_open(&cfg, true, &shm, err, sizeof(err)), 0, "%s", err);
    struct stat st;
    cr_assert_eq(fstat(shm.fd, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0600);
    struct gw_shm again;
    cr_assert_eq(gw_shm_open(&cfg, false, &again, err, sizeof(err)), 0, "%s", err);
    gw_shm_close(&again);
    gw_shm_close(&shm);
    cr_assert_eq(shm_unlink(name), 0);
}
