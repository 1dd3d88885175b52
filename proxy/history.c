/* history: mailward -l and -f, the learned TLS history (history.h). */
#include "history.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "learned.h"
#include "privdrop.h"
#include "smtp.h"

struct history_list_state {
        FILE *out;
        int64_t now;
        int64_t max_age; /* the longest learned_max_age, seconds; 0: none learns */
        unsigned n;
};

/* Open the store as the daemon's user; NULL with the reason on err. */
static struct learned *history_open(const struct config *cfg, FILE *err)
{
        char why[512];
        struct learned *l;

        if (cfg->state_dir == NULL || cfg->state_dir[0] == '\0') {
                fprintf(err, "mailward: %s sets no state_dir: nothing is learned\n",
                        cfg->path);
                return NULL;
        }
        if (geteuid() == 0 &&
            privdrop(cfg->user, cfg->allow_root, why, sizeof(why)) != 0) {
                fprintf(err, "mailward: %s\n", why);
                return NULL;
        }
        l = learned_open(cfg->state_dir, why, sizeof(why));
        if (l == NULL)
                fprintf(err, "mailward: %s\n", why);
        return l;
}

static int history_print(const char *domain, const struct learned_tls *rec, void *arg)
{
        struct history_list_state *st = arg;
        char when[32] = "-";
        time_t t = (time_t)rec->time;
        int64_t age = st->now - rec->time;
        struct tm tm;

        if (gmtime_r(&t, &tm) != NULL)
                strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        fprintf(st->out, "%s learned=%s age_days=%lld version=%s cipher=%s mx=%s%s\n",
                domain, when, (long long)(age > 0 ? age / 86400 : 0),
                rec->version[0] ? rec->version : "-", rec->cipher[0] ? rec->cipher : "-",
                rec->mx_host[0] ? rec->mx_host : "-", age > st->max_age ? " stale" : "");
        st->n++;
        return 0;
}

int history_list(const struct config *cfg, FILE *out, FILE *err)
{
        struct history_list_state st = {out, (int64_t)time(NULL), 0, 0};
        struct learned *l = history_open(cfg, err);
        const struct config_listener *lc;
        int r;

        if (l == NULL)
                return 1;
        for (lc = cfg->listeners; lc != NULL; lc = lc->next) {
                if (lc->forward_tls == CONFIG_TLS_POLICY &&
                    (int64_t)lc->learned_max_age * 86400 > st.max_age)
                        st.max_age = (int64_t)lc->learned_max_age * 86400;
        }
        r = learned_iterate(l, history_print, &st);
        learned_close(l);
        if (r < 0) {
                fprintf(err, "mailward: %s/%s: %s\n", cfg->state_dir, LEARNED_FILE,
                        strerror(-r));
                return 1;
        }
        return 0;
}

int history_forget(const struct config *cfg, const char *domain, FILE *out, FILE *err)
{
        char path[300], key[256];
        struct learned *l;
        void *val = NULL;
        size_t len;
        bool found;
        int r;

        /* As a recipient's domain is looked up: A-labels, lower case. */
        snprintf(path, sizeof(path), "postmaster@%s", domain);
        if (strlen(domain) > 255 ||
            smtp_addr_domain_ascii(path, strlen(path), key, sizeof(key)) != 1 ||
            key[0] == '[') {
                fprintf(err, "mailward: -f: not a domain: '%s'\n", domain);
                return 1;
        }
        l = history_open(cfg, err);
        if (l == NULL)
                return 1;
        r = learned_get(l, key, &val, &len);
        free(val);
        found = r == 1;
        if (found)
                r = learned_forget(l, key);
        learned_close(l);
        if (r < 0) {
                fprintf(err, "mailward: %s/%s: %s\n", cfg->state_dir, LEARNED_FILE,
                        strerror(-r));
                return 1;
        }
        if (!found) {
                fprintf(err, "mailward: %s: not in the learned history\n", key);
                return 1;
        }
        fprintf(out, "%s: forgotten\n", key);
        return 0;
}
