/*
 * reg_audit.c - who changes things: the actor every record carries, the
 * audit log, and mcache-serve's bearer tokens.
 *
 * The actor. reg_commit() stamps every record with the handle's actor:
 * "who", and "where" for the API's from (an alias record's "from" is where
 * the alias pointed). Format 3; a record without them (formats 1 and 2, or
 * a tool that appends records itself) reads as who "uid:N", from "local".
 *
 * The audit log. Each record applied from the journal adds one entry,
 * whatever its op, saying what it did in a short text ("push llama@1.2.0",
 * "alias llama production 1.0.0=90 2.0.0=10") with result "ok"; an "audit"
 * record (mc_registry_audit_add) adds an attempt that changed nothing, with
 * its own text and result. The newest MC_REG_AUDIT_MAX are kept in a ring
 * and written into every snapshot, so they survive compaction like the rest
 * of the state. The entry is derived from the record at apply time, so a
 * replay, a refresh in another process and the writer itself all build the
 * same log.
 *
 * Refusals. A mutation names what it attempts (reg_intent()) before it
 * takes the lock; if it is then refused by the state (MC_EBUSY, MC_EEXIST,
 * MC_EINVAL, MC_ENOENT), reg_write_end() appends an "audit" record of the
 * refusal with the actor, while it still holds the lock, and the caller
 * gets the refusal as before. So every caller of the registry (the CLI,
 * mcache-serve, mcached) has its refused changes in the log without doing
 * anything. Input refused before the lock (a malformed name) is not
 * recorded: it never reached the store. mcache-serve reports its failed
 * requests with mc_registry_audit_add(), those the registry refused too: a
 * report with the actor and the message of one of the last REG_REFUSALS_KEPT
 * refusals the registry recorded on this handle is that refusal, and is not
 * recorded twice. (Keyed by actor and message, not by order: a server's
 * threads interleave other requests between a refusal and its report.)
 *
 * Tokens. "token-add" records the name, role and "sha256:<hex>" of a
 * secret that exists only in the caller's buffer; "token-rm" removes one.
 */
#include <ctype.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/err.h"
#include "common/hex.h"
#include "registry/reg_int.h"

#define AUDIT_WHAT_MAX   1024
#define AUDIT_RESULT_MAX 4096
#define TOKEN_NAME_MAX   64

static const char *const roles[] = {"reader", "publisher", "admin"};

/* ---- the actor --------------------------------------------------------- */

/* Printable ASCII only (a record is UTF-8 JSON; an address or name from a peer is not trusted). */
static void actor_copy(char *dst, const char *src)
{
    size_t i = 0;

    for (; src && src[i] && i < REG_ACTOR_MAX - 1; i++)
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
    dst[i] = '\0';
}

void reg_actor_default(struct mc_registry *r)
{
    struct passwd pw, *res = NULL;
    char buf[1024];

    if (getpwuid_r(r->uid, &pw, buf, sizeof(buf), &res) == 0 && res && res->pw_name)
        snprintf(r->who, sizeof(r->who), "uid:%u(%s)", (unsigned)r->uid, res->pw_name);
    else
        snprintf(r->who, sizeof(r->who), "uid:%u", (unsigned)r->uid);
    actor_copy(r->who, r->who);
    snprintf(r->from, sizeof(r->from), "local");
}

void mc_registry_set_actor(struct mc_registry *r, const char *who, const char *from)
{
    actor_copy(r->who, who && who[0] ? who : "anonymous");
    actor_copy(r->from, from && from[0] ? from : "local");
}

int reg_stamp(const struct mc_registry *r, json_t *rec)
{
    if (json_object_set_new(rec, "who", json_string(r->who)) ||
        json_object_set_new(rec, "where", json_string(r->from)))
        return mc_err(MC_ENOMEM, "out of memory building a manifest record");
    return 0;
}

/* ---- refusals ---------------------------------------------------------- */

void reg_intent(struct mc_registry *r, const char *fmt, ...)
{
    va_list ap;

    if (fmt == NULL) {
        r->intent[0] = '\0';
        return;
    }
    va_start(ap, fmt);
    vsnprintf(r->intent, sizeof(r->intent), fmt, ap);
    va_end(ap);
}

static bool refusal(int rc)
{
    return rc == MC_EBUSY || rc == MC_EEXIST || rc == MC_EINVAL || rc == MC_ENOENT;
}

/*
 * A refusal's key: the actor and the first bytes of its message (a caller
 * may cut a long message when it reports it). Never 0.
 */
#define REFUSAL_KEY_BYTES 512
static uint64_t refusal_key(const struct mc_registry *r, const char *msg)
{
    XXH3_state_t *s = XXH3_createState();
    size_t n = strlen(msg);
    uint64_t k;

    if (s == NULL)
        return 0;
    XXH3_64bits_reset(s);
    XXH3_64bits_update(s, r->who, strlen(r->who) + 1);
    XXH3_64bits_update(s, r->from, strlen(r->from) + 1);
    XXH3_64bits_update(s, msg, n < REFUSAL_KEY_BYTES ? n : REFUSAL_KEY_BYTES);
    k = XXH3_64bits_digest(s) | 1;
    XXH3_freeState(s);
    return k;
}

/* The "audit" record of an attempt (what, result), stamped with the actor. */
/*
 * s with its control bytes (< 0x20, 0x7f) written \xNN, as mc_quote()
 * does: an audit entry is printed on terminals (`mcache audit`), and what
 * and result may hold text from HTTP clients. NULL if out of memory.
 */
static json_t *json_ctl_escaped(const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    char *b, *w;
    json_t *j;

    for (const char *p = s; *p; p++)
        n += (unsigned char)*p < 0x20 || *p == 0x7f ? 4 : 1;
    if ((b = malloc(n + 1)) == NULL)
        return NULL;
    w = b;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;

        if (c < 0x20 || c == 0x7f) {
            *w++ = '\\';
            *w++ = 'x';
            *w++ = hex[c >> 4];
            *w++ = hex[c & 15];
        } else {
            *w++ = (char)c;
        }
    }
    *w = '\0';
    j = json_string(b);
    free(b);
    return j;
}

static json_t *audit_record(const struct mc_registry *r, const char *what, const char *result)
{
    json_t *rec = rec_new("audit", r->uid);

    if (rec && (json_object_set_new(rec, "what", json_ctl_escaped(what)) ||
                json_object_set_new(rec, "result", json_ctl_escaped(result)))) {
        json_decref(rec);
        rec = NULL;
    }
    return rec;
}

/* Under the exclusive lock: record the refusal rc of the intended change; rc's message kept. */
void reg_record_refusal(struct mc_registry *r, int rc)
{
    char msg[1400], result[1500];
    json_t *rec;

    if (!refusal(rc) || r->intent[0] == '\0' || r->lock_mode != MC_REG_EXCLUSIVE)
        return;
    snprintf(msg, sizeof(msg), "%s", mc_last_error());
    snprintf(result, sizeof(result), "error: %s", msg);
    rec = audit_record(r, r->intent, result);
    /* best effort: failing to log a refusal must not change the answer */
    if (rec && reg_commit(r, rec, NULL) == 0)
        r->refused[r->refused_next++ % REG_REFUSALS_KEPT] = refusal_key(r, msg);
    json_decref(rec);
    r->intent[0] = '\0';
    mc_err(rc, "%s", msg);
}

int reg_refused(struct mc_registry *r, int rc)
{
    if (!refusal(rc) || r->intent[0] == '\0' || (r->flags & MC_REGISTRY_READONLY))
        return rc;
    {
        char msg[1400];

        snprintf(msg, sizeof(msg), "%s", mc_last_error());
        if (reg_write_begin(r) != 0) {
            mc_err(rc, "%s", msg);
            return rc;
        }
        mc_err(rc, "%s", msg);
    }
    return reg_write_end(r, rc);
}

/* ---- the audit log ------------------------------------------------------ */

static void audit_fini(struct mc_reg_audit *a)
{
    free((char *)a->who); /* one block: who, from, what, result */
    memset(a, 0, sizeof(*a));
}

static int audit_push(struct reg_state *st, uint64_t id, uint64_t at, uint64_t gen,
                      const char *who, const char *from, const char *what, const char *result)
{
    size_t lw = strlen(who) + 1, lf = strlen(from) + 1, lt = strlen(what) + 1,
           lr = strlen(result) + 1;
    char *b;
    struct mc_reg_audit *slot;

    if (st->audit == NULL && (st->audit = calloc(MC_REG_AUDIT_MAX, sizeof(*st->audit))) == NULL)
        return MC_ENOMEM;
    b = malloc(lw + lf + lt + lr);
    if (b == NULL)
        return MC_ENOMEM;
    if (st->naudit == MC_REG_AUDIT_MAX) { /* the oldest goes */
        audit_fini(&st->audit[st->audit_head]);
        st->audit_head = (st->audit_head + 1) % MC_REG_AUDIT_MAX;
        st->naudit--;
    }
    slot = &st->audit[(st->audit_head + st->naudit) % MC_REG_AUDIT_MAX];
    slot->id = id;
    slot->at_ns = at;
    slot->generation = gen;
    slot->who = memcpy(b, who, lw);
    slot->from = memcpy(b + lw, from, lf);
    slot->what = memcpy(b + lw + lf, what, lt);
    slot->result = memcpy(b + lw + lf + lt, result, lr);
    st->naudit++;
    return 0;
}

static const char *str_or(const struct mc_jval *j, const char *key, const char *dflt)
{
    const struct mc_jval *x = mc_jval_get(j, key);

    return x && x->type == MC_JSTR ? x->u.s : dflt;
}

static bool true_of(const struct mc_jval *j, const char *key)
{
    const struct mc_jval *x = mc_jval_get(j, key);

    return x && x->type == MC_JTRUE;
}

static long long int_of(const struct mc_jval *j, const char *key)
{
    const struct mc_jval *x = mc_jval_get(j, key);

    return x && x->type == MC_JINT ? (long long)x->u.i : 0;
}

/* What a record did, in a few words. */
static void audit_what(const struct rec *r, char *buf, size_t cap)
{
    const struct mc_jval *j = r->j;
    const char *op = r->op, *name = str_or(j, "name", "?"), *ver = str_or(j, "version", NULL);

    if (!strcmp(op, "push") || !strcmp(op, "meta")) {
        snprintf(buf, cap, "%s %s@%s", op, name, ver ? ver : "?");
    } else if (!strcmp(op, "status")) {
        snprintf(buf, cap, "status %s@%s %s", name, ver ? ver : "?", str_or(j, "status", "?"));
    } else if (!strcmp(op, "flags")) {
        const struct mc_jval *p = mc_jval_get(j, "preload"), *n = mc_jval_get(j, "pinned");

        snprintf(buf, cap, "flags %s@%s%s%s%s%s", name, ver ? ver : "?", p ? " preload=" : "",
                 p ? (p->type == MC_JTRUE ? "true" : "false") : "", n ? " pinned=" : "",
                 n ? (n->type == MC_JTRUE ? "true" : "false") : "");
    } else if (!strcmp(op, "alias")) {
        const char *alias = str_or(j, "alias", "?"), *to = str_or(j, "to", NULL);

        if (to == NULL)
            snprintf(buf, cap, "alias rm %s %s", name, alias);
        else
            snprintf(buf, cap, "alias%s %s %s %s", true_of(j, "rollback") ? " rollback" : "", name,
                     alias, to);
    } else if (!strcmp(op, "rm")) {
        snprintf(buf, cap, "rm %s%s%s%s", name, ver ? "@" : "", ver ? ver : "",
                 true_of(j, "force") ? " (force)" : "");
    } else if (!strcmp(op, "gc")) {
        const struct mc_jval *l = mc_jval_get(j, "removed");
        unsigned n = l && l->type == MC_JARR ? l->n : 0;

        snprintf(buf, cap, "gc (%u version%s)", n, n == 1 ? "" : "s");
    } else if (!strcmp(op, "health")) {
        const struct mc_jval *a = mc_jval_get(j, "argv");

        snprintf(buf, cap, "health%s %s", a && a->type == MC_JARR && a->n ? "" : " rm", name);
    } else if (!strncmp(op, "snap-", 5)) {
        snprintf(buf, cap, "snapshot %s %s", !strcmp(op, "snap-create")    ? "create"
                                             : !strcmp(op, "snap-restore") ? "restore"
                                                                           : "rm",
                 str_or(j, "snapshot", "?"));
    } else if (!strcmp(op, "deploy")) {
        snprintf(buf, cap, "deploy %s@%s to %s (%s)", name, ver ? ver : "?",
                 str_or(j, "alias", "?"), str_or(j, "strategy", "?"));
    } else if (!strcmp(op, "deploy-update")) {
        snprintf(buf, cap, "deploy-update %lld %s (step %lld)", int_of(j, "id"),
                 str_or(j, "state", "?"), int_of(j, "step"));
    } else if (!strcmp(op, "alert")) {
        const char *model = str_or(j, "model", NULL);

        snprintf(buf, cap, "alert %s%s%s", str_or(j, "kind", "?"), model ? " " : "",
                 model ? model : "");
    } else if (!strcmp(op, "token-add")) {
        snprintf(buf, cap, "token add %s (%s)", name, str_or(j, "role", "?"));
    } else if (!strcmp(op, "token-rm")) {
        snprintf(buf, cap, "token rm %s", name);
    } else if (!strcmp(op, "audit")) {
        snprintf(buf, cap, "%s", str_or(j, "what", "?"));
    } else {
        snprintf(buf, cap, "%s", op);
    }
}

int audit_note(struct reg_state *st, struct rec *r, uint64_t gen)
{
    char what[AUDIT_WHAT_MAX + 64], who[32];
    const char *w = str_or(r->j, "who", NULL);
    uint64_t t, uid;

    if (rec_uint(r, "t", false, INT64_MAX, &t) || rec_uint(r, "uid", false, UINT32_MAX, &uid))
        return r->err;
    if (w == NULL) {
        snprintf(who, sizeof(who), "uid:%llu", (unsigned long long)uid);
        w = who;
    }
    audit_what(r, what, sizeof(what));
    if (audit_push(st, gen, t, gen, w, str_or(r->j, "where", "local"), what,
                   strcmp(r->op, "audit") ? "ok" : str_or(r->j, "result", "?")))
        return rec_fail(r, MC_ENOMEM, "out of memory");
    return 0;
}

void audit_free(struct reg_state *st)
{
    if (st->audit)
        for (size_t i = 0; i < MC_REG_AUDIT_MAX; i++)
            audit_fini(&st->audit[i]);
    free(st->audit);
    st->audit = NULL;
    st->naudit = st->audit_head = 0;
}

/* A snapshot's "audit" entry: as it was recorded. */
static int apply_audit_entry(struct reg_state *st, struct rec *r)
{
    const char *who, *from, *what, *result;
    uint64_t id, t, gen;

    if (rec_uint(r, "id", true, INT64_MAX, &id) || rec_uint(r, "t", true, INT64_MAX, &t) ||
        rec_uint(r, "generation", true, INT64_MAX, &gen) || rec_str(r, "who", true, &who) ||
        rec_str(r, "where", true, &from) || rec_str(r, "what", true, &what) ||
        rec_str(r, "result", true, &result))
        return r->err;
    if (audit_push(st, id, t, gen, who, from, what, result))
        return rec_fail(r, MC_ENOMEM, "out of memory");
    return 0;
}

static json_t *audit_entry(const struct mc_reg_audit *a)
{
    return json_pack("{s:s,s:I,s:I,s:I,s:s,s:s,s:s,s:s}", "op", "audit", "id", (json_int_t)a->id,
                     "t", (json_int_t)a->at_ns, "generation", (json_int_t)a->generation, "who",
                     a->who, "where", a->from, "what", a->what, "result", a->result);
}

int mc_registry_audit_add(struct mc_registry *r, const char *what, const char *result,
                          uint64_t *gen)
{
    json_t *rec;
    int rc;

    reg_intent(r, NULL);
    if (r->flags & MC_REGISTRY_READONLY)
        return mc_err(MC_EPERM, "%s was opened read-only; nothing was recorded", r->dir);
    if (what == NULL || what[0] == '\0' || strlen(what) > AUDIT_WHAT_MAX)
        return mc_err(MC_EINVAL, "an audit entry needs a text of 1 to %d bytes saying what was "
                                 "attempted", AUDIT_WHAT_MAX);
    if (result == NULL || result[0] == '\0' || strlen(result) > AUDIT_RESULT_MAX)
        return mc_err(MC_EINVAL, "an audit entry needs a result of 1 to %d bytes (\"ok\" or "
                                 "\"error: ...\")", AUDIT_RESULT_MAX);
    /* a refusal the registry recorded itself, reported again: once is enough */
    if (!strncmp(result, "error: ", 7)) {
        uint64_t k = refusal_key(r, result + 7);

        for (size_t i = 0; k && i < REG_REFUSALS_KEPT; i++) {
            if (r->refused[i] == k) {
                r->refused[i] = 0;
                if (gen)
                    *gen = mc_registry_generation(r);
                return 0;
            }
        }
    }
    rec = audit_record(r, what, result);
    if (rec == NULL)
        return mc_err(MC_EINVAL, "an audit entry's text and result must be UTF-8");
    rc = reg_write_begin(r);
    if (rc == 0)
        rc = reg_write_end(r, reg_commit(r, rec, gen));
    json_decref(rec);
    return rc;
}

size_t mc_registry_audit_count(const struct mc_registry *r)
{
    return r->st->naudit;
}

const struct mc_reg_audit *mc_registry_audit_at(const struct mc_registry *r, size_t i)
{
    const struct reg_state *st = r->st;

    return i < st->naudit ? &st->audit[(st->audit_head + i) % MC_REG_AUDIT_MAX] : NULL;
}

/* ---- tokens -------------------------------------------------------------- */

static int token_name_check(const char *name, int code)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0 || n > TOKEN_NAME_MAX)
        return mc_err(code, "a token name has 1 to %d characters of A-Z a-z 0-9 _ . -; \"%s\" "
                            "has %zu", TOKEN_NAME_MAX, name ? name : "", n);
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && !strchr("_.-", name[i]))
            return mc_err(code, "token name \"%s\" contains '%c'; use A-Z a-z 0-9 _ . -", name,
                          name[i]);
    return 0;
}

static int role_check(const char *role, int code)
{
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
        if (role && !strcmp(role, roles[i]))
            return 0;
    return mc_err(code, "token role \"%s\" is not one of reader, publisher, admin",
                  role ? role : "");
}

/* "sha256:<64 lowercase hex>" into 32 bytes; -1 if malformed. */
static int hash_parse(const char *s, unsigned char *d)
{
    if (strncmp(s, "sha256:", 7) != 0 || strlen(s) != 7 + 64)
        return -1;
    for (int i = 0; i < 32; i++) {
        int hi = mc_hexval(s[7 + 2 * i], false), lo = mc_hexval(s[8 + 2 * i], false);

        if (hi < 0 || lo < 0)
            return -1;
        d[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

static void token_fini(struct reg_token *t)
{
    free((char *)t->pub.name); /* one block: name, role, hash, created_by */
    memset(t, 0, sizeof(*t));
}

/* Where name is or would go in the sorted list. */
static size_t token_index(const struct reg_state *st, const char *name, bool *found)
{
    size_t lo = 0, hi = st->ntokens;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(st->tokens[mid].pub.name, name);

        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* "token-add" record or "token" snapshot entry. */
static int apply_token_add(struct reg_state *st, struct rec *r, bool snapshot)
{
    const char *name, *role, *hash, *by;
    unsigned char digest[32];
    char who[32];
    uint64_t t, uid;
    size_t at, ln, lr, lh, lb;
    bool found;
    struct reg_token *tk;
    char *b;

    if (rec_str(r, "name", true, &name) || rec_str(r, "role", true, &role) ||
        rec_str(r, "hash", true, &hash) || rec_uint(r, "t", true, INT64_MAX, &t) ||
        rec_str(r, snapshot ? "by" : "who", false, &by) ||
        rec_uint(r, "uid", false, UINT32_MAX, &uid))
        return r->err;
    if (token_name_check(name, MC_ECORRUPT) || role_check(role, MC_ECORRUPT))
        return r->err = MC_ECORRUPT;
    if (hash_parse(hash, digest))
        return rec_fail(r, MC_ECORRUPT, "token \"%s\" has a hash that is not sha256:<64 hex>",
                        name);
    at = token_index(st, name, &found);
    if (found)
        return rec_fail(r, MC_ECORRUPT, "token \"%s\" is added twice", name);
    if (by == NULL) {
        snprintf(who, sizeof(who), "uid:%llu", (unsigned long long)uid);
        by = who;
    }
    if (st->ntokens == st->captokens) {
        size_t cap = st->captokens ? 2 * st->captokens : 8;
        struct reg_token *n = realloc(st->tokens, cap * sizeof(*n));

        if (n == NULL)
            return rec_fail(r, MC_ENOMEM, "out of memory");
        st->tokens = n;
        st->captokens = cap;
    }
    ln = strlen(name) + 1;
    lr = strlen(role) + 1;
    lh = strlen(hash) + 1;
    lb = strlen(by) + 1;
    b = malloc(ln + lr + lh + lb);
    if (b == NULL)
        return rec_fail(r, MC_ENOMEM, "out of memory");
    memmove(&st->tokens[at + 1], &st->tokens[at], (st->ntokens - at) * sizeof(*st->tokens));
    st->ntokens++;
    tk = &st->tokens[at];
    memset(tk, 0, sizeof(*tk));
    tk->pub.name = memcpy(b, name, ln);
    tk->pub.role = memcpy(b + ln, role, lr);
    tk->pub.hash = memcpy(b + ln + lr, hash, lh);
    tk->pub.created_by = memcpy(b + ln + lr + lh, by, lb);
    tk->pub.created_ns = t;
    memcpy(tk->digest, digest, sizeof(digest));
    return 0;
}

static int apply_token_rm(struct reg_state *st, struct rec *r)
{
    const char *name;
    bool found;
    size_t at;

    if (rec_str(r, "name", true, &name))
        return r->err;
    at = token_index(st, name, &found);
    if (!found)
        return rec_fail(r, MC_ECORRUPT, "removes token \"%s\", which does not exist", name);
    token_fini(&st->tokens[at]);
    memmove(&st->tokens[at], &st->tokens[at + 1], (st->ntokens - at - 1) * sizeof(*st->tokens));
    st->ntokens--;
    return 0;
}

void tokens_free(struct reg_state *st)
{
    for (size_t i = 0; i < st->ntokens; i++)
        token_fini(&st->tokens[i]);
    free(st->tokens);
    st->tokens = NULL;
    st->ntokens = st->captokens = 0;
}

static json_t *token_entry(const struct mc_reg_token *t)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:I,s:s}", "op", "token", "name", t->name, "role", t->role,
                     "hash", t->hash, "t", (json_int_t)t->created_ns, "by", t->created_by);
}

/* base64url without padding of n bytes into out (room for 4 * ceil(n / 3) + 1). */
static void b64url(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;

    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);

        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = tab[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = tab[v & 63];
    }
    out[o] = '\0';
}

static int sha256(const char *s, unsigned char *d)
{
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, s, strlen(s), d) != 0)
        return mc_err(MC_EIO, "computing a SHA-256 with GnuTLS failed");
    return 0;
}

int mc_registry_token_add(struct mc_registry *r, const char *name, const char *role, char *secret,
                          uint64_t *gen)
{
    unsigned char key[32], d[32];
    char sec[MC_TOKEN_LEN + 1], hash[7 + 64 + 1];
    json_t *rec;
    bool found;
    int rc;

    reg_intent(r, "token add %s (%s)", name ? name : "", role ? role : "");
    if (r->flags & MC_REGISTRY_READONLY)
        return mc_err(MC_EPERM, "%s was opened read-only; no token was added", r->dir);
    rc = token_name_check(name, MC_EINVAL);
    if (rc == 0)
        rc = role_check(role, MC_EINVAL);
    if (rc)
        return rc;
    if (gnutls_rnd(GNUTLS_RND_KEY, key, sizeof(key)) != 0)
        return mc_err(MC_EIO, "GnuTLS could not make random bytes for token \"%s\"", name);
    memcpy(sec, "mct_", 4);
    b64url(key, sizeof(key), sec + 4);
    rc = sha256(sec, d);
    if (rc)
        goto out;
    memcpy(hash, "sha256:", 7);
    for (int i = 0; i < 32; i++)
        snprintf(hash + 7 + 2 * i, 3, "%02x", d[i]);
    rec = rec_new("token-add", r->uid);
    if (rec == NULL || json_object_set_new(rec, "name", json_string(name)) ||
        json_object_set_new(rec, "role", json_string(role)) ||
        json_object_set_new(rec, "hash", json_string(hash))) {
        json_decref(rec);
        rc = mc_err(MC_ENOMEM, "out of memory building a manifest record");
        goto out;
    }
    rc = reg_write_begin(r);
    if (rc == 0) {
        token_index(r->st, name, &found);
        if (found)
            rc = mc_err(MC_EEXIST, "token \"%s\" exists; remove it first (mcache token rm %s) or "
                                   "choose another name", name, name);
        else
            rc = reg_commit(r, rec, gen);
        rc = reg_write_end(r, rc);
    }
    json_decref(rec);
    if (rc == 0)
        memcpy(secret, sec, sizeof(sec));
out:
    /* the secret lives on only in the caller's buffer */
    gnutls_memset(sec, 0, sizeof(sec));
    gnutls_memset(key, 0, sizeof(key));
    return rc;
}

int mc_registry_token_remove(struct mc_registry *r, const char *name, uint64_t *gen)
{
    json_t *rec;
    bool found;
    int rc;

    reg_intent(r, "token rm %s", name ? name : "");
    if (r->flags & MC_REGISTRY_READONLY)
        return mc_err(MC_EPERM, "%s was opened read-only; no token was removed", r->dir);
    rc = token_name_check(name, MC_EINVAL);
    if (rc)
        return rc;
    rec = rec_new("token-rm", r->uid);
    if (rec == NULL || json_object_set_new(rec, "name", json_string(name))) {
        json_decref(rec);
        return mc_err(MC_ENOMEM, "out of memory building a manifest record");
    }
    rc = reg_write_begin(r);
    if (rc == 0) {
        token_index(r->st, name, &found);
        rc = found ? reg_commit(r, rec, gen)
                   : mc_err(MC_ENOENT, "there is no token \"%s\"; mcache token ls lists them",
                            name);
        rc = reg_write_end(r, rc);
    }
    json_decref(rec);
    return rc;
}

size_t mc_registry_token_count(const struct mc_registry *r)
{
    return r->st->ntokens;
}

const struct mc_reg_token *mc_registry_token_at(const struct mc_registry *r, size_t i)
{
    return i < r->st->ntokens ? &r->st->tokens[i].pub : NULL;
}

const struct mc_reg_token *mc_registry_token_check(const struct mc_registry *r, const char *secret)
{
    const struct reg_state *st = r->st;
    const struct mc_reg_token *hit = NULL;
    unsigned char d[32];

    if (secret == NULL || sha256(secret, d) != 0) {
        mc_err(MC_EPERM, "the token is not valid");
        return NULL;
    }
    /* every token compared, each in constant time: no answer from how far a compare got */
    for (size_t i = 0; i < st->ntokens; i++) {
        volatile unsigned char diff = 0;

        for (size_t k = 0; k < sizeof(d); k++)
            diff |= (unsigned char)(d[k] ^ st->tokens[i].digest[k]);
        if (diff == 0)
            hit = &st->tokens[i].pub;
    }
    gnutls_memset(d, 0, sizeof(d));
    if (hit == NULL)
        mc_err(MC_EPERM, "the token is not valid");
    return hit;
}

/* ---- records, entries ------------------------------------------------------ */

int apply_audit_record(struct reg_state *st, struct rec *r, bool snapshot)
{
    const char *op = r->op;

    if (snapshot && !strcmp(op, "audit"))
        return apply_audit_entry(st, r);
    if (snapshot && !strcmp(op, "token"))
        return apply_token_add(st, r, true);
    if (snapshot)
        return 1;
    if (!strcmp(op, "token-add"))
        return apply_token_add(st, r, false);
    if (!strcmp(op, "token-rm"))
        return apply_token_rm(st, r);
    if (!strcmp(op, "audit")) { /* its entry is audit_note()'s, as every record's */
        const char *what, *result;

        return rec_str(r, "what", true, &what) || rec_str(r, "result", true, &result) ? r->err
                                                                                       : 0;
    }
    return 1;
}

int state_emit_audit(struct reg_state *st, mc_reg_put_fn put, void *ctx)
{
    int rc;

    for (size_t i = 0; i < st->ntokens; i++)
        if ((rc = put(ctx, token_entry(&st->tokens[i].pub))))
            return rc;
    for (size_t i = 0; i < st->naudit; i++)
        if ((rc = put(ctx, audit_entry(&st->audit[(st->audit_head + i) % MC_REG_AUDIT_MAX]))))
            return rc;
    return 0;
}
