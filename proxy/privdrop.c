#include "privdrop.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

static int privdrop_fail(char *err, size_t errlen, const char *what)
{
        snprintf(err, errlen, "%s: %s", what, strerror(errno));
        return -1;
}

/* Clear every capability set we can and check that nothing is left. */
static int privdrop_caps(char *err, size_t errlen)
{
        cap_t caps;
        cap_flag_value_t v;
        cap_value_t c;
        bool left = false;

        if (cap_reset_ambient() != 0 && errno != EINVAL)
                return privdrop_fail(err, errlen, "cap_reset_ambient");
        caps = cap_init();
        if (caps == NULL || cap_set_proc(caps) != 0) {
                cap_free(caps);
                return privdrop_fail(err, errlen, "cap_set_proc");
        }
        cap_free(caps);
        caps = cap_get_proc();
        if (caps == NULL)
                return privdrop_fail(err, errlen, "cap_get_proc");
        for (c = 0; c < (cap_value_t)cap_max_bits(); c++) {
                if ((cap_get_flag(caps, c, CAP_EFFECTIVE, &v) == 0 && v == CAP_SET) ||
                    (cap_get_flag(caps, c, CAP_PERMITTED, &v) == 0 && v == CAP_SET))
                        left = true;
        }
        cap_free(caps);
        if (left) {
                snprintf(err, errlen, "capabilities remain after dropping them");
                return -1;
        }
        return 0;
}

/* The user to become, or NULL (with err) if there is none or it is root unasked. */
static struct passwd *privdrop_user(const char *user, bool allow_root, char *err,
                                    size_t errlen)
{
        struct passwd *pw;

        errno = 0;
        pw = getpwnam(user);
        if (pw == NULL) {
                snprintf(err, errlen, "user '%s': %s", user,
                         errno ? strerror(errno) : "no such user");
                return NULL;
        }
        if (pw->pw_uid == 0 && !allow_root) {
                snprintf(
                    err, errlen,
                    "refusing to run as root (user = %s); set allow_root = yes to insist",
                    user);
                return NULL;
        }
        return pw;
}

int privdrop_check(const char *user, bool allow_root, char *err, size_t errlen)
{
        if (geteuid() != 0)
                return 0;
        return privdrop_user(user, allow_root, err, errlen) ? 0 : -1;
}

bool privdrop_ignored(const char *user, uid_t *uid)
{
        struct passwd *pw;

        *uid = geteuid();
        if (*uid == 0)
                return false;
        pw = getpwnam(user);
        return pw == NULL || pw->pw_uid != *uid;
}

int privdrop(const char *user, bool allow_root, char *err, size_t errlen)
{
        struct passwd *pw;
        bool root = geteuid() == 0;

        if (root) {
                pw = privdrop_user(user, allow_root, err, errlen);
                if (pw == NULL)
                        return -1;
                /* The bounding set can only be emptied while we hold CAP_SETPCAP. */
                for (cap_value_t c = 0; c < (cap_value_t)cap_max_bits(); c++) {
                        if (cap_drop_bound(c) != 0 && errno != EINVAL)
                                return privdrop_fail(err, errlen, "cap_drop_bound");
                }
                if (pw->pw_uid != 0) {
                        uid_t uid = pw->pw_uid;
                        gid_t gid = pw->pw_gid;

                        /* The user's groups in /etc/group too (ssl-cert, say, for
                         * a key a reload reads again), not only its own. */
                        if (initgroups(pw->pw_name, gid) != 0)
                                return privdrop_fail(err, errlen, "initgroups");
                        if (setresgid(gid, gid, gid) != 0)
                                return privdrop_fail(err, errlen, "setresgid");
                        if (setresuid(uid, uid, uid) != 0)
                                return privdrop_fail(err, errlen, "setresuid");
                        if (setuid(0) == 0) {
                                snprintf(err, errlen,
                                         "could regain root after dropping it");
                                return -1;
                        }
                }
        }
        if (privdrop_caps(err, errlen) != 0)
                return -1;
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
                return privdrop_fail(err, errlen, "prctl(PR_SET_NO_NEW_PRIVS)");
#ifdef MAILWARD_SANITIZE
        /* LeakSanitizer must ptrace its own threads at exit: test builds only. */
        prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
        return 0;
}
