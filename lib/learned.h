/*
 * learned: what mailward remembers about recipient domains whose servers
 * completed TLS, so that a domain that did TLS is expected to do it again
 * (for learned_max_age, 30 days by default) even when no policy names it.
 *
 * Storage. One LMDB environment, a single file state_dir/learned.mdb with
 * its lock file state_dir/learned.mdb-lock beside it (MDB_NOSUBDIR): one
 * name an administrator can find, back up or delete, and no directory to
 * create. Keys are domains, normalised to lower case without a trailing
 * dot (empty names, names over 253 bytes and names with spaces, controls or
 * bytes >= 0x7f are refused with -EINVAL). A value starts with a format
 * version byte (LEARNED_FORMAT); a record with another version reads as
 * absent and is replaced by the next learned_record(), so the format can
 * change without a migration.
 *
 * Who opens it. The daemon opens the store after the privilege drop, as the
 * unprivileged user: state_dir must be writable by that user (LMDB writes
 * its reader table into the lock file on every open, and files created as
 * root would be unwritable by the next, unprivileged, run). One handle per
 * process: LMDB's locks are per process, so a second handle on the same
 * file in one process breaks them when closed. A handle is not inherited
 * across fork(): a child opens its own. Other processes (a second daemon,
 * an admin tool) may open the same file at the same time; readers never
 * block and never wait for the writer, writers are serialised by LMDB.
 * Both files are created mode 0600: only the mailward user reads them.
 *
 * Crash safety. Every learned_record(), learned_forget() and learned_prune()
 * is one LMDB transaction committed with LMDB's default durable commit
 * (fdatasync of data and meta page; no MDB_NOSYNC, no MDB_WRITEMAP). When
 * the call returns 0 the change is on disk. If the process dies or the
 * machine loses power, the file opens at the last committed transaction:
 * a change whose commit had not returned is simply absent, earlier ones are
 * all there, and no repair step exists or is needed (this assumes the disk
 * honours flushes, as every journaling file system also does). Reader slots
 * left by a dead process are cleared on open.
 *
 * Size. The map is bounded (LEARNED_MAP_SIZE, 64 MiB: some 150 000 domains).
 * When it is full, learned_record() returns -ENOSPC and changes nothing; the
 * handle stays usable for lookups. The caller logs a warning and carries on
 * without learning: a full store never fails a session. learned_prune()
 * removes stale records to make room; learned_record_room() does that when
 * the store is full. learned_forget() removes one domain. The store is only a memory of
 * observations: deleting the file loses no mail, it only lowers
 * expectations back to the policy table.
 *
 * Errors. Functions return 0 (lookups: 1 or 0) or a negative errno code:
 * errno values from the system pass through, LMDB's map-full is -ENOSPC,
 * a corrupt or foreign file -EIO, bad arguments -EINVAL. Out of memory
 * aborts. learned_open() returns NULL with a message in err.
 *
 * Trust. A record says that a server for the domain once completed TLS; it
 * only ever raises the expectation to encrypt (see learned_expectation()).
 * An attacker on the path who completes TLS with a certificate of its own
 * can make mailward expect TLS from a domain whose real servers lack it;
 * mail to it is then deferred, never sent in clear text, until the record
 * goes stale or an administrator forgets it.
 *
 * A handle is used from one thread at a time; it keeps no transaction open
 * between calls.
 */
#ifndef MAILWARD_LEARNED_H
#define MAILWARD_LEARNED_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"

#define LEARNED_FILE            "learned.mdb"
#define LEARNED_FORMAT          1
#define LEARNED_MAP_SIZE        ((size_t)64 << 20)
#define LEARNED_MAX_AGE_DEFAULT ((int64_t)30 * 24 * 60 * 60)
/*
 * A record more than this far in the future (a clock that was once wrong)
 * reads as stale, and any newer observation replaces it.
 */
#define LEARNED_CLOCK_SKEW ((int64_t)24 * 60 * 60)

struct learned;

/* One completed TLS handshake with a server of a domain. */
struct learned_tls {
        int64_t time;     /* unix seconds, when the handshake completed */
        char version[16]; /* "TLSv1.3", as tls_version() prints it */
        char cipher[64];  /* as tls_cipher() prints it */
        /* SHA-256 of the leaf certificate (DER), 64 hex digits; "" if none */
        char cert_sha256[65];
        char mx_host[256]; /* the server's host name; "" if unknown. Peer data */
};

/*
 * Return non-zero to stop. domain is normalised. The callback must not call
 * other learned functions on the same handle.
 */
typedef int (*learned_iterate_cb)(const char *domain, const struct learned_tls *rec,
                                  void *arg);

/* Open (and create) state_dir/learned.mdb. NULL with a message in err. */
struct learned *learned_open(const char *state_dir, char *err, size_t errlen);
/* The same with another map size in bytes; for tests (a tiny map fills up). */
struct learned *learned_open_size(const char *state_dir, size_t map_size, char *err,
                                  size_t errlen);
/*
 * Another file of the same kind in state_dir, for records of another kind
 * (MTA-STS policies, lib/sts.h: "mta-sts.mdb"), with the same rules (one
 * handle per process, durable single-transaction calls, 0600). On such a
 * handle use learned_put(), learned_get() and learned_forget() only: the
 * other calls read every value as a TLS record.
 */
struct learned *learned_open_file(const char *state_dir, const char *file,
                                  size_t map_size, char *err, size_t errlen);
/* l may be NULL. */
void learned_close(struct learned *l);

/*
 * Raw values under a domain key (normalised as above), for a handle from
 * learned_open_file(): learned_put() stores len bytes of val in one durable
 * transaction (0, -EINVAL, -ENOSPC or negative); learned_get() gives a copy
 * (*val, NUL-terminated after *len bytes, for the caller to free): 1, 0 when
 * there is none, or negative.
 */
int learned_put(struct learned *l, const char *domain, const void *val, size_t len);
int learned_get(struct learned *l, const char *domain, void **val, size_t *len);

/*
 * Remember obs for domain. An existing record with a later time is kept
 * (unless it is more than LEARNED_CLOCK_SKEW ahead of obs): concurrent
 * writers cannot move a domain back in time. cert_sha256 must be "" or 64
 * hex digits (stored in lower case); strings must be NUL-terminated in
 * their arrays. 0, -EINVAL, -ENOSPC (full: nothing changed) or another
 * negative code.
 */
int learned_record(struct learned *l, const char *domain, const struct learned_tls *obs);

/*
 * learned_record(), and when the store is full, learned_prune() of the
 * records older than max_age at obs->time and learned_record() once more:
 * what a daemon that runs for months does, so that learning does not stop
 * for good once its domains have filled the map. *pruned: the number of
 * records removed (0 when none was needed or none was stale). Returns as
 * learned_record() does.
 */
int learned_record_room(struct learned *l, const char *domain,
                        const struct learned_tls *obs, int64_t max_age, int *pruned);

/*
 * 1 and *out filled in when domain has a record no older than max_age
 * seconds at now (and not more than LEARNED_CLOCK_SKEW in the future); 0
 * when it has none or a stale one; negative on error. out may be NULL.
 */
int learned_lookup(struct learned *l, const char *domain, int64_t now, int64_t max_age,
                   struct learned_tls *out);

/* Remove domain's record. 0 (also when there was none) or negative. */
int learned_forget(struct learned *l, const char *domain);

/*
 * Remove every record older than max_age at now (and unreadable ones). The
 * number removed, or negative.
 */
int learned_prune(struct learned *l, int64_t now, int64_t max_age);

/*
 * Call cb for every readable record in domain order, fresh or not, in one
 * read transaction (a consistent snapshot). 0, cb's non-zero value, or
 * negative.
 */
int learned_iterate(struct learned *l, learned_iterate_cb cb, void *arg);

/*
 * Every key (domain) of any handle, learned_open_file()'s too, in domain
 * order and one read transaction, whatever its value: at most max names
 * into names (each of LEARNED_NAME_SIZE bytes). The number of keys (which
 * may exceed max), or negative.
 */
#define LEARNED_NAME_SIZE 254
int learned_keys(struct learned *l, char (*names)[LEARNED_NAME_SIZE], size_t max);
/*
 * The keys after `after` in domain order ("" or NULL: from the first), at
 * most max (up to INT32_MAX), in one read transaction: a page of them.
 * The number put into names (fewer than max: there are no more), or
 * negative. The next page starts after the last name of this one.
 */
int learned_keys_after(struct learned *l, const char *after,
                       char (*names)[LEARNED_NAME_SIZE], size_t max);

/*
 * How a learned record combines with the policy table. base is
 * policy_lookup()'s answer; fresh is the domain's record when
 * learned_lookup() returned 1, else NULL. An entry of the table (source
 * file) always wins: the administrator's word, including "none" for a
 * server known to be broken. Otherwise a fresh record raises a level below
 * encrypt to encrypt with source learned; a default at or above encrypt is
 * kept as it is. Pure.
 */
struct policy_expectation learned_expectation(const struct policy_expectation *base,
                                              const struct learned_tls *fresh);

#endif
