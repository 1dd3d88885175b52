/*
 * learned: the store of domains that did TLS, on LMDB.
 *
 * Every call is one transaction, begun and ended inside the call, so a
 * handle holds no reader slot and no lock between calls. The main (unnamed)
 * database maps a normalised domain to a record:
 *
 *     byte 0      LEARNED_FORMAT (1)
 *     bytes 1..8  time, unix seconds, two's complement, big-endian
 *     then four strings, each a length byte and that many bytes (no NUL):
 *                 version, cipher, cert_sha256, mx_host
 *
 * The length is exact: a value with bytes left over, a string longer than
 * its field in struct learned_tls, or a NUL inside a string reads as absent.
 */
#include "learned.h"

#include <errno.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define LEARNED_DOMAIN_MAX 253
/* A length byte per string plus the fields: 1 + 8 + 4 + 15 + 63 + 64 + 255 */
#define LEARNED_VALUE_MAX 512

struct learned {
        MDB_env *env;
        MDB_dbi dbi;
};

/* An LMDB or system error as a negative errno code. */
static int learned_errno(int rc)
{
        if (rc == 0)
                return 0;
        if (rc > 0)
                return -rc; /* LMDB passes errno values through */
        switch (rc) {
        case MDB_MAP_FULL:
        case MDB_TXN_FULL:
                return -ENOSPC;
        case MDB_READERS_FULL:
                return -EAGAIN;
        default:
                return -EIO; /* corrupt, foreign or version-mismatched file */
        }
}

struct learned *learned_open_file(const char *state_dir, const char *file,
                                  size_t map_size, char *err, size_t errlen)
{
        struct learned *l;
        char path[4096];
        MDB_txn *txn;
        int rc, dead;

        if (map_size == 0) {
                snprintf(err, errlen, "learned: map size 0");
                return NULL;
        }
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", state_dir, file) >=
            sizeof(path)) {
                snprintf(err, errlen, "learned: state_dir too long");
                return NULL;
        }
        l = xcalloc(1, sizeof(*l));
        rc = mdb_env_create(&l->env);
        if (rc != 0) {
                snprintf(err, errlen, "learned: %s", mdb_strerror(rc));
                free(l);
                return NULL;
        }
        rc = mdb_env_set_mapsize(l->env, map_size);
        /*
         * MDB_NOSUBDIR: path is the data file, the lock file is path-lock.
         * MDB_NOTLS: a read transaction is not tied to the thread that made
         * it. Durable commits (no MDB_NOSYNC, MDB_NOMETASYNC, MDB_WRITEMAP):
         * the map is read-only, so a stray pointer cannot corrupt the file.
         */
        if (rc == 0)
                rc = mdb_env_open(l->env, path, MDB_NOSUBDIR | MDB_NOTLS, 0600);
        if (rc == 0)
                rc = mdb_reader_check(l->env, &dead);
        if (rc == 0)
                rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn);
        if (rc == 0) {
                rc = mdb_dbi_open(txn, NULL, 0, &l->dbi);
                if (rc == 0)
                        rc = mdb_txn_commit(txn);
                else
                        mdb_txn_abort(txn);
        }
        if (rc != 0) {
                snprintf(err, errlen, "learned: %s: %s", path, mdb_strerror(rc));
                mdb_env_close(l->env);
                free(l);
                return NULL;
        }
        return l;
}

struct learned *learned_open_size(const char *state_dir, size_t map_size, char *err,
                                  size_t errlen)
{
        return learned_open_file(state_dir, LEARNED_FILE, map_size, err, errlen);
}

struct learned *learned_open(const char *state_dir, char *err, size_t errlen)
{
        return learned_open_size(state_dir, LEARNED_MAP_SIZE, err, errlen);
}

void learned_close(struct learned *l)
{
        if (l == NULL)
                return;
        mdb_env_close(l->env);
        free(l);
}

/* Lower case, one trailing dot dropped. 0 with key and *len set, or -EINVAL. */
static int learned_key(const char *domain, char key[LEARNED_DOMAIN_MAX + 1], size_t *len)
{
        size_t n, i;

        if (domain == NULL)
                return -EINVAL;
        n = strlen(domain);
        if (n > 0 && domain[n - 1] == '.')
                n--;
        if (n == 0 || n > LEARNED_DOMAIN_MAX || domain[0] == '.' || domain[n - 1] == '.')
                return -EINVAL;
        for (i = 0; i < n; i++) {
                unsigned char c = (unsigned char)domain[i];

                if (c <= 0x20 || c >= 0x7f)
                        return -EINVAL;
                key[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
        key[n] = '\0';
        *len = n;
        return 0;
}

/*
 * domain's key into key and *k, and a transaction begun (MDB_RDONLY or 0 in
 * flags): 0, or the error (nothing to end then).
 */
static int learned_begin(struct learned *l, const char *domain, unsigned flags,
                         char key[LEARNED_DOMAIN_MAX + 1], MDB_val *k, MDB_txn **txn)
{
        size_t klen;
        int rc;

        if ((rc = learned_key(domain, key, &klen)) != 0)
                return rc;
        rc = mdb_txn_begin(l->env, NULL, flags, txn);
        if (rc != 0)
                return learned_errno(rc);
        k->mv_data = key;
        k->mv_size = klen;
        return 0;
}

/* Put k -> v and commit; the transaction is ended either way. */
static int learned_put_commit(struct learned *l, MDB_txn *txn, MDB_val *k, MDB_val *v)
{
        int rc = mdb_put(txn, l->dbi, k, v, 0);

        if (rc != 0) {
                mdb_txn_abort(txn);
                return learned_errno(rc);
        }
        return learned_errno(mdb_txn_commit(txn)); /* frees txn even on failure */
}

static bool learned_terminated(const char *s, size_t size)
{
        return memchr(s, '\0', size) != NULL;
}

static bool learned_hexdigit(char c)
{
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int learned_check_obs(const struct learned_tls *obs)
{
        size_t i, n;

        if (obs == NULL || !learned_terminated(obs->version, sizeof(obs->version)) ||
            !learned_terminated(obs->cipher, sizeof(obs->cipher)) ||
            !learned_terminated(obs->cert_sha256, sizeof(obs->cert_sha256)) ||
            !learned_terminated(obs->mx_host, sizeof(obs->mx_host)))
                return -EINVAL;
        n = strlen(obs->cert_sha256);
        if (n != 0 && n != 64)
                return -EINVAL;
        for (i = 0; i < n; i++)
                if (!learned_hexdigit(obs->cert_sha256[i]))
                        return -EINVAL;
        return 0;
}

static size_t learned_put_str(unsigned char *buf, size_t o, const char *s, bool lower)
{
        size_t n = strlen(s), i;

        buf[o++] = (unsigned char)n;
        for (i = 0; i < n; i++) {
                char c = s[i];

                if (lower && c >= 'A' && c <= 'Z')
                        c = (char)(c - 'A' + 'a');
                buf[o++] = (unsigned char)c;
        }
        return o;
}

/* obs has passed learned_check_obs(). Returns the length. */
static size_t learned_encode(const struct learned_tls *obs,
                             unsigned char buf[LEARNED_VALUE_MAX])
{
        uint64_t t = (uint64_t)obs->time;
        size_t o = 0;
        int i;

        buf[o++] = LEARNED_FORMAT;
        for (i = 7; i >= 0; i--)
                buf[o++] = (unsigned char)(t >> (8 * i));
        o = learned_put_str(buf, o, obs->version, false);
        o = learned_put_str(buf, o, obs->cipher, false);
        o = learned_put_str(buf, o, obs->cert_sha256, true);
        o = learned_put_str(buf, o, obs->mx_host, false);
        return o;
}

static bool learned_get_str(const unsigned char *p, size_t size, size_t *o, char *dst,
                            size_t dstsize)
{
        size_t n;

        if (*o >= size)
                return false;
        n = p[(*o)++];
        if (n >= dstsize || n > size - *o || memchr(p + *o, '\0', n) != NULL)
                return false;
        memcpy(dst, p + *o, n);
        dst[n] = '\0';
        *o += n;
        return true;
}

/* 0, or -1 when v is not a record this version can read. */
static int learned_decode(const MDB_val *v, struct learned_tls *out)
{
        const unsigned char *p = v->mv_data;
        uint64_t t = 0;
        size_t o = 0;
        int i;

        memset(out, 0, sizeof(*out));
        if (v->mv_size < 9 || p[o++] != LEARNED_FORMAT)
                return -1;
        for (i = 0; i < 8; i++)
                t = t << 8 | p[o++];
        /* Two's complement back to signed without an out-of-range conversion. */
        out->time = t <= INT64_MAX ? (int64_t)t : -(int64_t)(~t) - 1;
        if (!learned_get_str(p, v->mv_size, &o, out->version, sizeof(out->version)) ||
            !learned_get_str(p, v->mv_size, &o, out->cipher, sizeof(out->cipher)) ||
            !learned_get_str(p, v->mv_size, &o, out->cert_sha256,
                             sizeof(out->cert_sha256)) ||
            !learned_get_str(p, v->mv_size, &o, out->mx_host, sizeof(out->mx_host)) ||
            o != v->mv_size)
                return -1;
        return 0;
}

/* b - a as an unsigned distance, for a <= b: exact, never overflows. */
static uint64_t learned_distance(int64_t a, int64_t b)
{
        return (uint64_t)b - (uint64_t)a;
}

static bool learned_fresh(int64_t t, int64_t now, int64_t max_age)
{
        if (max_age < 0)
                return false;
        if (t >= now)
                return learned_distance(now, t) <= (uint64_t)LEARNED_CLOCK_SKEW;
        return learned_distance(t, now) <= (uint64_t)max_age;
}

/* Whether a stored record should stay rather than be replaced by obs. */
static bool learned_keep(const struct learned_tls *stored, const struct learned_tls *obs)
{
        return stored->time > obs->time &&
               learned_distance(obs->time, stored->time) <= (uint64_t)LEARNED_CLOCK_SKEW;
}

int learned_record(struct learned *l, const char *domain, const struct learned_tls *obs)
{
        char key[LEARNED_DOMAIN_MAX + 1];
        unsigned char buf[LEARNED_VALUE_MAX];
        struct learned_tls stored;
        MDB_val k, v;
        MDB_txn *txn;
        int rc;

        if ((rc = learned_check_obs(obs)) != 0 ||
            (rc = learned_begin(l, domain, 0, key, &k, &txn)) != 0)
                return rc;
        rc = mdb_get(txn, l->dbi, &k, &v);
        if (rc == 0 && learned_decode(&v, &stored) == 0 && learned_keep(&stored, obs)) {
                mdb_txn_abort(txn);
                return 0;
        }
        if (rc != 0 && rc != MDB_NOTFOUND) {
                mdb_txn_abort(txn);
                return learned_errno(rc);
        }
        v.mv_data = buf;
        v.mv_size = learned_encode(obs, buf);
        return learned_put_commit(l, txn, &k, &v);
}

int learned_lookup(struct learned *l, const char *domain, int64_t now, int64_t max_age,
                   struct learned_tls *out)
{
        char key[LEARNED_DOMAIN_MAX + 1];
        struct learned_tls rec;
        MDB_val k, v;
        MDB_txn *txn;
        int rc, found = 0;

        if ((rc = learned_begin(l, domain, MDB_RDONLY, key, &k, &txn)) != 0)
                return rc;
        rc = mdb_get(txn, l->dbi, &k, &v);
        if (rc == 0)
                found = learned_decode(&v, &rec) == 0 &&
                        learned_fresh(rec.time, now, max_age);
        mdb_txn_abort(txn);
        if (rc != 0 && rc != MDB_NOTFOUND)
                return learned_errno(rc);
        if (found && out != NULL)
                *out = rec;
        return found;
}

int learned_put(struct learned *l, const char *domain, const void *val, size_t len)
{
        char key[LEARNED_DOMAIN_MAX + 1];
        MDB_val k, v;
        MDB_txn *txn;
        int rc;

        if ((rc = learned_begin(l, domain, 0, key, &k, &txn)) != 0)
                return rc;
        v.mv_data = (void *)val;
        v.mv_size = len;
        return learned_put_commit(l, txn, &k, &v);
}

int learned_get(struct learned *l, const char *domain, void **val, size_t *len)
{
        char key[LEARNED_DOMAIN_MAX + 1];
        MDB_val k, v;
        MDB_txn *txn;
        int rc;

        *val = NULL;
        *len = 0;
        if ((rc = learned_begin(l, domain, MDB_RDONLY, key, &k, &txn)) != 0)
                return rc;
        rc = mdb_get(txn, l->dbi, &k, &v);
        if (rc == 0) {
                char *copy = xmalloc(v.mv_size + 1);

                memcpy(copy, v.mv_data, v.mv_size);
                copy[v.mv_size] = '\0';
                *val = copy;
                *len = v.mv_size;
        }
        mdb_txn_abort(txn);
        if (rc == MDB_NOTFOUND)
                return 0;
        return rc == 0 ? 1 : learned_errno(rc);
}

int learned_forget(struct learned *l, const char *domain)
{
        char key[LEARNED_DOMAIN_MAX + 1];
        MDB_val k;
        MDB_txn *txn;
        int rc;

        if ((rc = learned_begin(l, domain, 0, key, &k, &txn)) != 0)
                return rc;
        rc = mdb_del(txn, l->dbi, &k, NULL);
        if (rc == MDB_NOTFOUND) {
                mdb_txn_abort(txn);
                return 0;
        }
        if (rc != 0) {
                mdb_txn_abort(txn);
                return learned_errno(rc);
        }
        return learned_errno(mdb_txn_commit(txn));
}

int learned_prune(struct learned *l, int64_t now, int64_t max_age)
{
        struct learned_tls rec;
        MDB_cursor *cur;
        MDB_val k, v;
        MDB_txn *txn;
        int rc, n = 0;

        rc = mdb_txn_begin(l->env, NULL, 0, &txn);
        if (rc == 0)
                rc = mdb_cursor_open(txn, l->dbi, &cur);
        else
                return learned_errno(rc);
        if (rc != 0) {
                mdb_txn_abort(txn);
                return learned_errno(rc);
        }
        /* After mdb_cursor_del the cursor stands before the next record. */
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
                if (learned_decode(&v, &rec) == 0 &&
                    learned_fresh(rec.time, now, max_age))
                        continue;
                rc = mdb_cursor_del(cur, 0);
                if (rc != 0)
                        break;
                n++;
        }
        mdb_cursor_close(cur);
        if (rc != MDB_NOTFOUND) {
                mdb_txn_abort(txn);
                return learned_errno(rc);
        }
        if (n == 0) {
                mdb_txn_abort(txn);
                return 0;
        }
        rc = mdb_txn_commit(txn);
        return rc != 0 ? learned_errno(rc) : n;
}

int learned_record_room(struct learned *l, const char *domain,
                        const struct learned_tls *obs, int64_t max_age, int *pruned)
{
        int r = learned_record(l, domain, obs), n;

        *pruned = 0;
        if (r != -ENOSPC)
                return r;
        n = learned_prune(l, obs->time, max_age);
        if (n <= 0)
                return n < 0 ? n : r;
        *pruned = n;
        return learned_record(l, domain, obs);
}

/* A read transaction and a cursor on it: 0, or a negative code (nothing open). */
static int learned_read_cursor(struct learned *l, MDB_txn **txn, MDB_cursor **cur)
{
        int rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, txn);

        if (rc != 0)
                return learned_errno(rc);
        rc = mdb_cursor_open(*txn, l->dbi, cur);
        if (rc != 0) {
                mdb_txn_abort(*txn);
                return learned_errno(rc);
        }
        return 0;
}

int learned_iterate(struct learned *l, learned_iterate_cb cb, void *arg)
{
        char domain[LEARNED_DOMAIN_MAX + 1];
        struct learned_tls rec;
        MDB_cursor *cur;
        MDB_val k, v;
        MDB_txn *txn;
        int rc, stop = 0;

        rc = learned_read_cursor(l, &txn, &cur);
        if (rc != 0)
                return rc;
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && stop == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
                if (k.mv_size > LEARNED_DOMAIN_MAX || learned_decode(&v, &rec) != 0)
                        continue;
                memcpy(domain, k.mv_data, k.mv_size);
                domain[k.mv_size] = '\0';
                stop = cb(domain, &rec, arg);
        }
        mdb_cursor_close(cur);
        mdb_txn_abort(txn);
        if (stop != 0)
                return stop;
        return rc == MDB_NOTFOUND ? 0 : learned_errno(rc);
}

int learned_keys(struct learned *l, char (*names)[LEARNED_NAME_SIZE], size_t max)
{
        MDB_cursor *cur;
        MDB_val k, v;
        MDB_txn *txn;
        size_t n = 0;
        int rc;

        rc = learned_read_cursor(l, &txn, &cur);
        if (rc != 0)
                return rc;
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
                if (k.mv_size > LEARNED_DOMAIN_MAX)
                        continue;
                if (n < max) {
                        memcpy(names[n], k.mv_data, k.mv_size);
                        names[n][k.mv_size] = '\0';
                }
                n++;
        }
        mdb_cursor_close(cur);
        mdb_txn_abort(txn);
        if (rc != MDB_NOTFOUND)
                return learned_errno(rc);
        return n > INT32_MAX ? INT32_MAX : (int)n;
}

int learned_keys_after(struct learned *l, const char *after,
                       char (*names)[LEARNED_NAME_SIZE], size_t max)
{
        size_t n = 0, alen = after != NULL ? strlen(after) : 0;
        MDB_cursor_op op = MDB_FIRST;
        MDB_cursor *cur;
        MDB_val k, v;
        MDB_txn *txn;
        int rc;

        if (max > INT32_MAX)
                max = INT32_MAX;
        rc = learned_read_cursor(l, &txn, &cur);
        if (rc != 0)
                return rc;
        if (alen > 0) {
                k.mv_data = (void *)after;
                k.mv_size = alen;
                op = MDB_SET_RANGE; /* the first key at or after it */
        }
        for (rc = mdb_cursor_get(cur, &k, &v, op); rc == 0 && n < max;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
                if (k.mv_size > LEARNED_DOMAIN_MAX ||
                    (k.mv_size == alen && memcmp(k.mv_data, after, alen) == 0))
                        continue;
                memcpy(names[n], k.mv_data, k.mv_size);
                names[n][k.mv_size] = '\0';
                n++;
        }
        mdb_cursor_close(cur);
        mdb_txn_abort(txn);
        if (rc != 0 && rc != MDB_NOTFOUND)
                return learned_errno(rc);
        return (int)n;
}

struct policy_expectation learned_expectation(const struct policy_expectation *base,
                                              const struct learned_tls *fresh)
{
        struct policy_expectation e = *base;

        if (fresh == NULL || base->source == POLICY_SOURCE_FILE ||
            base->level >= POLICY_LEVEL_ENCRYPT)
                return e;
        e.level = POLICY_LEVEL_ENCRYPT;
        e.written = POLICY_LEVEL_ENCRYPT;
        e.source = POLICY_SOURCE_LEARNED;
        e.key = NULL;
        e.file = NULL;
        e.line = 0;
        e.match = NULL;
        e.nmatch = 0;
        return e;
}
