/* tlsrpt: see tlsrpt.h. */
#include "tlsrpt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dane.h"
#include "json.h"
#include "mtasts.h"
#include "util.h"

#define TLSRPT_STACK_BUF 2048

struct tlsrpt {
        char *dir;    /* STATE_DIR/tlsrpt */
        int fd;       /* the day's file, -1 until the first line */
        char day[11]; /* YYYY-MM-DD of fd */
};

static void tlsrpt_array_begin(struct json_out *o, const char *key)
{
        json_put(o, ",\"", 2);
        json_puts(o, key);
        json_put(o, "\":[", 3);
}

/* The policy-string and mx-host arrays (RFC 8460 section 4.3). */
static void tlsrpt_policy(struct json_out *o, const struct tlsrpt_result *r)
{
        static const char hex[] = "0123456789abcdef";
        char line[300];
        size_t i, j;

        if (r->dane != NULL) {
                const struct dane_result *d = r->dane;

                tlsrpt_array_begin(o, "policy-string");
                for (i = 0; i < d->ntlsa; i++) {
                        const struct dane_tlsa *t = &d->tlsa[i];

                        snprintf(line, sizeof(line), "%s\"%u %u %u ", i ? "," : "",
                                 t->usage, t->selector, t->mtype);
                        json_puts(o, line);
                        for (j = 0; j < t->len; j++) {
                                char h[2] = {hex[t->data[j] >> 4], hex[t->data[j] & 15]};

                                json_put(o, h, 2);
                        }
                        json_put(o, "\"", 1);
                }
                json_put(o, "]", 1);
                tlsrpt_array_begin(o, "mx-host");
                json_string(o, d->mx_host);
                json_put(o, "]", 1);
        } else if (r->sts != NULL) {
                const struct mtasts_policy *p = r->sts;

                /* The policy's fields in the RFC 8461 order, as it was parsed. */
                tlsrpt_array_begin(o, "policy-string");
                json_string(o, "version: STSv1");
                snprintf(line, sizeof(line), "mode: %s", mtasts_mode_str(p->mode));
                json_put(o, ",", 1);
                json_string(o, line);
                for (i = 0; i < p->nmx; i++) {
                        snprintf(line, sizeof(line), "mx: %s", p->mx[i]);
                        json_put(o, ",", 1);
                        json_string(o, line);
                }
                snprintf(line, sizeof(line), "max_age: %u", (unsigned)p->max_age);
                json_put(o, ",", 1);
                json_string(o, line);
                json_put(o, "]", 1);
                tlsrpt_array_begin(o, "mx-host");
                for (i = 0; i < p->nmx; i++) {
                        if (i > 0)
                                json_put(o, ",", 1);
                        json_string(o, p->mx[i]);
                }
                json_put(o, "]", 1);
        } else {
                json_puts(o, ",\"policy-string\":[],\"mx-host\":[]");
        }
}

static const char *tlsrpt_type(const struct tlsrpt_result *r)
{
        if (r->dane != NULL)
                return "tlsa";
        return r->sts != NULL || r->sts_failed ? "sts" : "no-policy-found";
}

static void tlsrpt_json(struct json_out *o, const struct tlsrpt_result *r)
{
        char when[32];
        time_t t = (time_t)r->time;
        struct tm tm;

        gmtime_r(&t, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        json_puts(o, "{\"time\":");
        json_string(o, when);
        json_field(o, "policy-type", tlsrpt_type(r));
        json_field(o, "policy-domain", r->domain);
        tlsrpt_policy(o, r);
        json_field(o, "result", r->result);
        json_field(o, "sending-mta-ip", r->sending_ip);
        json_field(o, "receiving-ip", r->receiving_ip);
        json_field(o, "receiving-mx-hostname", r->receiving_mx);
        json_field(o, "failure-reason-code", r->info);
        json_put(o, "}\n", 2);
}

size_t tlsrpt_format(const struct tlsrpt_result *r, char *out, size_t outlen)
{
        struct json_out o = {out, outlen, 0};

        tlsrpt_json(&o, r);
        if (o.len < outlen)
                out[o.len] = '\0';
        else if (outlen > 0)
                out[0] = '\0';
        return o.len;
}

struct tlsrpt *tlsrpt_open(const char *state_dir, char *err, size_t errlen)
{
        struct tlsrpt *t;
        size_t n;

        if (state_dir == NULL || state_dir[0] == '\0') {
                snprintf(err, errlen, "no state_dir");
                return NULL;
        }
        n = strlen(state_dir) + sizeof(TLSRPT_DIR) + 1;
        t = xcalloc(1, sizeof(*t));
        t->dir = xmalloc(n);
        snprintf(t->dir, n, "%s/%s", state_dir, TLSRPT_DIR);
        t->fd = -1;
        if (mkdir(t->dir, 0750) != 0 && errno != EEXIST) {
                snprintf(err, errlen, "%s: %s", t->dir, strerror(errno));
                tlsrpt_close(t);
                return NULL;
        }
        if (access(t->dir, W_OK | X_OK) != 0) {
                snprintf(err, errlen, "%s: %s", t->dir, strerror(errno));
                tlsrpt_close(t);
                return NULL;
        }
        return t;
}

void tlsrpt_close(struct tlsrpt *t)
{
        if (t == NULL)
                return;
        if (t->fd >= 0)
                close(t->fd);
        free(t->dir);
        free(t);
}

/* The descriptor of the day's file, opened when the day changes. */
static int tlsrpt_day_fd(struct tlsrpt *t, int64_t when)
{
        char day[sizeof(t->day)], path[PATH_MAX];
        time_t tt = (time_t)when;
        struct tm tm;
        int fd;

        gmtime_r(&tt, &tm);
        strftime(day, sizeof(day), "%Y-%m-%d", &tm);
        if (t->fd >= 0 && strcmp(day, t->day) == 0)
                return t->fd;
        snprintf(path, sizeof(path), "%s/%s.jsonl", t->dir, day);
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0)
                return -errno;
        if (t->fd >= 0)
                close(t->fd);
        t->fd = fd;
        memcpy(t->day, day, sizeof(day));
        return fd;
}

int tlsrpt_record(struct tlsrpt *t, const struct tlsrpt_result *r)
{
        char stack[TLSRPT_STACK_BUF], *buf = stack;
        size_t len = tlsrpt_format(r, stack, sizeof(stack));
        int fd = tlsrpt_day_fd(t, r->time), ret = 0;
        ssize_t w;

        if (fd < 0)
                return fd;
        if (len >= sizeof(stack)) {
                buf = xmalloc(len + 1);
                tlsrpt_format(r, buf, len + 1);
        }
        /* One write: lines from several workers never interleave. */
        w = write(fd, buf, len);
        if (w < 0)
                ret = -errno;
        else if ((size_t)w != len)
                ret = -EIO;
        if (buf != stack)
                free(buf);
        return ret;
}
