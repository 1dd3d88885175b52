/*
 * smtp: the pure SMTP codec. No I/O, no allocation except where noted, no
 * state beyond what the caller passes in; unit-tested and fuzzed on its own.
 *
 * - Line splitting with a length limit (RFC 5321 4.5.3.1: 512 octets for a
 *   command line, 1000 for a text line, both counting CRLF), reporting bare LF
 *   and bare CR so that the relay can refuse them (SMTP smuggling).
 * - Command parsing into a verb and its arguments.
 * - Multi-line reply parsing, one line at a time.
 * - EHLO capability lists: parse, edit, print.
 * - Path and domain extraction from MAIL FROM / RCPT TO arguments.
 * - BDAT argument parsing.
 *
 * All pointers returned point into the caller's input.
 */
#ifndef MAILWARD_SMTP_H
#define MAILWARD_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define SMTP_COMMAND_LINE_MAX 512  /* RFC 5321 4.5.3.1.4, with CRLF */
#define SMTP_TEXT_LINE_MAX    1000 /* RFC 5321 4.5.3.1.6, with CRLF */
#define SMTP_REPLY_LINE_MAX   4096 /* lenient: RFC says 512 */

/* ---- line splitting ---- */

enum smtp_line_result {
        SMTP_LINE_OK,        /* a whole CRLF-terminated line */
        SMTP_LINE_NEED_MORE, /* no whole line yet; `consumed` bytes may be dropped */
        SMTP_LINE_TOO_LONG,  /* a line longer than max ended here; it is consumed */
        SMTP_LINE_BARE_LF,   /* a line ended with LF alone; it is consumed */
        SMTP_LINE_BARE_CR,   /* a CRLF line holds a CR not followed by LF */
};

/* Splitter state: the caller keeps one per direction, zeroed, max set. */
struct smtp_lines {
        size_t max;    /* longest line accepted, CRLF included */
        bool overflow; /* private: inside a line that is already too long */
        bool last_cr;  /* private: the last byte of it dropped was a CR */
};

struct smtp_line {
        const char *p;   /* the line without its terminator (OK, BARE_*) */
        size_t len;      /* length of p */
        size_t consumed; /* bytes of input used, terminator included */
        /* The line ended with CR LF (OK, BARE_CR, and TOO_LONG when its CR
         * came with bytes dropped before), not LF alone. */
        bool crlf;
};

/*
 * Look at input p[0..n) and return the first line. out->consumed is always
 * set: the caller drops that many bytes from its input whatever the result.
 * A line that exceeds max is reported once, as TOO_LONG, when its LF arrives;
 * until then its bytes are consumed with NEED_MORE, so memory stays bounded.
 * TOO_LONG wins over BARE_LF/BARE_CR. For BARE_LF and BARE_CR, out->p/len
 * hold the line (without the LF, and without a CR just before it).
 */
enum smtp_line_result smtp_lines_next(struct smtp_lines *s, const char *p, size_t n,
                                      struct smtp_line *out);
const char *smtp_line_result_str(enum smtp_line_result r);

/* The next bytes continue a line already too long (its start is gone). */
static inline bool smtp_lines_mid(const struct smtp_lines *s)
{
        return s->overflow;
}

/* ---- commands ---- */

enum smtp_verb {
        SMTP_VERB_UNKNOWN,
        SMTP_VERB_HELO,
        SMTP_VERB_EHLO,
        SMTP_VERB_STARTTLS,
        SMTP_VERB_MAIL,
        SMTP_VERB_RCPT,
        SMTP_VERB_DATA,
        SMTP_VERB_BDAT,
        SMTP_VERB_RSET,
        SMTP_VERB_NOOP,
        SMTP_VERB_QUIT,
        SMTP_VERB_VRFY,
        SMTP_VERB_EXPN,
        SMTP_VERB_HELP,
        SMTP_VERB_AUTH,
        SMTP_VERB_ETRN,
        SMTP_VERB_XCLIENT,
        SMTP_VERB_XFORWARD,
        SMTP_VERB_BAD, /* not a command line: see smtp_cmd_parse() */
};

struct smtp_cmd {
        enum smtp_verb verb;
        const char *args; /* after the verb and the spaces that follow it */
        size_t args_len;  /* trailing spaces removed */
};

/*
 * Parse a command line (without CRLF). The verb is letters, digits and '-'
 * from the first byte on, followed by a space or the end of the line; a
 * known one is matched case-insensitively, another is SMTP_VERB_UNKNOWN
 * with args at the start of the line. A line that does not begin so (a
 * blank or a tab first, a tab or ':' after the verb) is SMTP_VERB_BAD, the
 * same: it must never reach a server, whose parser may split it where
 * this one did not ("XCLIENT<TAB>ADDR=..." is XCLIENT to Postfix). Never
 * fails.
 */
void smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *out);
const char *smtp_verb_str(enum smtp_verb v);

/*
 * MAIL FROM:<path> params / RCPT TO:<path> params. `prefix` is "FROM:" or
 * "TO:" (matched case-insensitively, optional spaces after the colon). On
 * success path/path_len hold what is inside the angle brackets (may be empty
 * for the null sender) and params what follows. -1 if malformed.
 */
int smtp_path_parse(const char *args, size_t len, const char *prefix, const char **path,
                    size_t *path_len, const char **params, size_t *params_len);

/*
 * The domain of a mailbox "local@domain" (quoted local parts allowed, a
 * source route "@a,@b:" skipped). An address literal "[1.2.3.4]" is
 * returned as is; a name is returned in the case the peer wrote it. -1 if
 * there is no domain (empty path, "postmaster") or it is not a domain
 * (characters other than letters, digits, '-', '.' and UTF-8, or inside a
 * literal other than letters, digits, '.', ':' and '-'; an empty label as in
 * "example.org." or "a..b").
 */
int smtp_addr_domain(const char *path, size_t len, const char **dom, size_t *dom_len);

/*
 * The domain of a mailbox as a policy, MTA-STS or DANE lookup must name it:
 * in ASCII lower case, a name in UTF-8 (SMTPUTF8) as its A-labels
 * ("b\xc3\xbccher.example" is "xn--bcher-kva.example", IDNA2008 with
 * UTS #46 mapping, libidn2), one trailing dot dropped, '_' taken in labels
 * as DNS takes it. 1 with it in out (outlen bytes, at least 256); 0 when
 * the path has no domain at all ("postmaster", ""); -1 when it has one that
 * cannot be read so: the caller must not guess a policy for it.
 */
int smtp_addr_domain_ascii(const char *path, size_t len, char *out, size_t outlen);

/* "BDAT <size> [LAST]". -1 if malformed or size > 2^53. */
int smtp_bdat_parse(const char *args, size_t len, uint64_t *size, bool *last);

/* ---- replies ---- */

/* Reply parser state: zero it before the first line of every reply. */
struct smtp_reply {
        int code;        /* 100..599 once the first line is seen */
        unsigned nlines; /* lines seen so far */
};

enum smtp_reply_result {
        SMTP_REPLY_MORE, /* a "ddd-" line: the reply continues */
        SMTP_REPLY_DONE, /* a "ddd " (or bare "ddd") line ended it */
        SMTP_REPLY_BAD,  /* not a reply line, or its code differs from the first */
};

enum smtp_reply_result smtp_reply_feed(struct smtp_reply *r, const char *line,
                                       size_t len);

/* ---- EHLO capabilities ---- */

#define SMTP_CAPS_MAX 32
#define SMTP_CAP_LEN  128

/*
 * The keyword lines of an EHLO reply, in order, without "250-"/"250 " and
 * without the first line (the server's greeting name).
 */
struct smtp_caps {
        unsigned n;
        char line[SMTP_CAPS_MAX][SMTP_CAP_LEN];
};

/*
 * Parse a complete raw EHLO reply (all its lines, each with CRLF). Lines past
 * SMTP_CAPS_MAX or longer than SMTP_CAP_LEN-1 are dropped, and so are lines
 * holding a control character and lines whose keyword came before; the
 * last place is kept for STARTTLS, wherever it comes. -1 if it is not one
 * complete 250 reply (c is then empty).
 */
int smtp_caps_parse(struct smtp_caps *c, const char *reply, size_t len);
/* Keyword match, case-insensitive, on the first word of each line. */
bool smtp_caps_has(const struct smtp_caps *c, const char *keyword);
/* The line of a keyword (e.g. "SIZE 10240000"), or NULL. */
const char *smtp_caps_get(const struct smtp_caps *c, const char *keyword);
void smtp_caps_remove(struct smtp_caps *c, const char *keyword);
/* Append a line unless its keyword is there already or the list is full. */
void smtp_caps_add(struct smtp_caps *c, const char *line);
/* Keep only lines whose keyword is in the NULL-terminated list `allowed`. */
void smtp_caps_filter(struct smtp_caps *c, const char *const *allowed);
/*
 * Append a full 250 reply to out: "250-<greeting>\r\n", then one line per
 * capability, the last with "250 " (just "250 <greeting>\r\n" if none).
 */
void smtp_caps_print(const struct smtp_caps *c, const char *greeting, struct buf *out);

#endif
