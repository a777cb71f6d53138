/* SPDX-License-Identifier: MIT */
/* gw_fsafe.h - local trust (SPEC S9.2): the files, directories and FIFOs the
 * gateway uses belong to its own user and nobody else can change them.
 *
 * The threat is another local, unprivileged user: one who pre-creates the
 * data directory, plants a development secret or a world-readable LMDB file,
 * or puts symbolic links where the gateway writes pid files. Every role runs
 * gw_fsafe_data_dir() before it touches data_dir and refuses to start
 * (GW_EXIT_FATAL) with one line naming the path and what is wrong. Files
 * that the gateway creates are opened O_NOFOLLOW (and O_EXCL when created),
 * so a link planted after the check is refused rather than followed. A root
 * attacker is out of scope: root can change anything.
 *
 * The rules (gw_fsafe_judge, pure, unit-tested):
 *   every object   owned by the effective uid (or root, with GW_FS_ROOT_OK,
 *                  for files an operator provides such as jwt_key_file);
 *                  not writable by group or other; not a symbolic link
 *                  (lstat), unless the caller follows links on purpose
 *   GW_FS_SECRET   not readable by group or other either (LMDB files, the
 *                  development secret, doorbell FIFOs, files with device
 *                  keys); GW_FS_GROUP_READ_OK tolerates group read, the usual
 *                  root:coapgw 0640 way of handing a secret to a service
 *   ancestors      every directory above the object is owned by root or the
 *                  effective uid and not writable by group/other unless it
 *                  has the sticky bit (/tmp, /dev/shm): otherwise its owner
 *                  could rename the object away and put another in place. */
#ifndef GW_FSAFE_H
#define GW_FSAFE_H

#include "gw_config.h"
#include "gw_defs.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

enum gw_fs_flags {
    GW_FS_DIR = 1 << 0,           /* must be a directory */
    GW_FS_REG = 1 << 1,           /* must be a regular file */
    GW_FS_FIFO = 1 << 2,          /* must be a FIFO */
    GW_FS_SECRET = 1 << 3,        /* no group/other read either */
    GW_FS_ROOT_OK = 1 << 4,       /* root may own it too (files an operator provides) */
    GW_FS_GROUP_READ_OK = 1 << 5, /* with GW_FS_SECRET: group read is tolerated */
    GW_FS_ANCESTOR =
        1 << 6, /* a directory above an object: owner root or euid, sticky may be shared */
};

/* Judges one stat(2)/lstat(2) result against the rules above.
 * [in]  st     the object's status (lstat: a symbolic link is refused)
 * [in]  euid   the gateway's effective uid
 * [in]  flags  GW_FS_*
 * [out] why    on refusal, what is wrong, e.g. "owned by uid 65534, not by
 *              uid 0 (the gateway's user)" or "mode 0666 lets group/other
 *              write"; may be NULL.
 * Returns 0, or GW_EUNSAFE. */
int gw_fsafe_judge(const struct stat *st, uid_t euid, unsigned flags, char *why,
                   size_t whylen) GW_NODISCARD;

/* lstat(path) (stat when follow) and judge; the message in err names path.
 * Returns 0, GW_EUNSAFE, or -errno from stat (-ENOENT when it does not exist,
 * with a message too). */
int gw_fsafe_check(const char *path, unsigned flags, bool follow, char *err,
                   size_t errlen) GW_NODISCARD;

/* The same for an open descriptor (fstat): no race with a rename. */
int gw_fsafe_check_fd(int fd, const char *path, unsigned flags, char *err,
                      size_t errlen) GW_NODISCARD;

/* Checks every directory above `path` (which must be absolute), from "/"
 * down, with GW_FS_ANCESTOR. Returns 0, GW_EUNSAFE or -errno, message in err. */
int gw_fsafe_ancestors(const char *path, char *err, size_t errlen) GW_NODISCARD;

/* mkdir -p: missing components are created with mode 0700. 0 or -errno. */
int gw_fsafe_mkdir_p(const char *path) GW_NODISCARD;

/* The rule for an entry of data_dir (or of its state/ and keys/ LMDB
 * directories when `in_lmdb`), by name: GW_FS_* flags. Pure. */
unsigned gw_fsafe_entry_flags(const char *name, bool in_lmdb);

/* Prepares and checks cfg->data_dir before a role uses it: creates it (0700)
 * when missing, replaces cfg->data_dir by its real path (so no symbolic
 * link can be swapped in later), checks the ancestors, the directory, and
 * every entry that exists (gw_fsafe_entry_flags), and the state/ and keys/
 * LMDB directories and their files. Returns 0, or GW_EUNSAFE / -errno with
 * one line in err naming the path and what is wrong. */
int gw_fsafe_data_dir(struct gw_config *cfg, char *err, size_t errlen) GW_NODISCARD;

/* Checks the files the configuration points at outside data_dir:
 * devices_file (it holds device keys: GW_FS_SECRET | GW_FS_GROUP_READ_OK,
 * owner root or euid) and jwt_key_file (a secret for HS256, a public key
 * otherwise), links followed and ancestors checked. A missing or unreadable
 * devices_file is an error too (S7.2). Returns 0, GW_EUNSAFE or -errno. */
int gw_fsafe_inputs(const struct gw_config *cfg, char *err, size_t errlen) GW_NODISCARD;

/* Creates path exclusively (O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC) with
 * `mode`, writes len bytes, fsyncs, and renames it to `final` (atomic: a
 * reader sees the old file or the whole new one). The temporary name is
 * final + ".tmp.<pid>"; a stale one of ours is removed first. 0 or -errno. */
int gw_fsafe_write_atomic(const char *final, const void *data, size_t len,
                          mode_t mode) GW_NODISCARD;

/* Opens path O_NOFOLLOW (and O_CREAT with mode 0600 when `create`) and
 * checks the descriptor with `flags`. Returns the descriptor, GW_EUNSAFE or
 * -errno, message in err. */
int gw_fsafe_open(const char *path, int oflags, unsigned flags, char *err,
                  size_t errlen) GW_NODISCARD;

#endif
