/*
 * privdrop: become the configured user and give up every capability.
 *
 * Called once, after the listeners are bound and keys and files are open.
 * Started as root: setgroups/setgid/setuid to `user`, bounding set emptied,
 * then effective, permitted, inheritable and ambient sets cleared with
 * libcap, and no_new_privs set. Refuses to keep running as root unless
 * allow_root is set. Started as another user: capabilities cleared and
 * no_new_privs set. The result is checked by reading the sets back.
 */
#ifndef MAILWARD_PRIVDROP_H
#define MAILWARD_PRIVDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Before binding: would privdrop() refuse this user? 0, or -1 with err. */
int privdrop_check(const char *user, bool allow_root, char *err, size_t errlen);

/*
 * Started as another user than root: true if `user` names someone else (or
 * no one), whom privdrop() will not become; *uid is the user we run as.
 */
bool privdrop_ignored(const char *user, uid_t *uid);

/* 0, or -1 with the reason in err. */
int privdrop(const char *user, bool allow_root, char *err, size_t errlen);

#endif
