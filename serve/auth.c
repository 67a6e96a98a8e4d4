/*
 * auth.c - who a request comes from and what it may do (docs/http.md,
 * "Authentication"): a bearer token checked against the registry's tokens,
 * or open access where the operator allowed it (loopback without
 * --require-tokens, or --insecure-open).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"
#include "serve/core.h"

static const char *const role_names[] = {"none", "reader", "publisher", "admin"};

const char *role_name(enum role r)
{
    return (unsigned)r < sizeof(role_names) / sizeof(role_names[0]) ? role_names[r] : "none";
}

int role_parse(const char *s, enum role *out)
{
    for (unsigned i = ROLE_READER; i <= ROLE_ADMIN; i++)
        if (s && !strcmp(s, role_names[i])) {
            *out = (enum role)i;
            return 0;
        }
    return mc_err(MC_EINVAL, "\"%.40s\" is not a role; the roles are reader, publisher and admin",
                  s ? s : "(none)");
}

bool addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

void addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";

    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(buf, len, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        snprintf(buf, len, "unknown");
    }
}

int auth_identify(struct req *rq)
{
    const char *h = req_header(rq, "Authorization");
    const char *secret;

    rq->role = ROLE_NONE;
    snprintf(rq->who, sizeof(rq->who), "anonymous");
    if (!h) {
        if (rq->srv->open_access)
            rq->role = ROLE_ADMIN;
        return 0;
    }
    /* A token sent is always checked, even where access is open: a wrong one is an error. */
    if (!(secret = http_bearer(h))) {
        mc_err(MC_EPERM, "the Authorization header must be \"Bearer mct_...\" (a token from "
                         "`mcache token add`)");
        return 401;
    }
    {
        const struct mc_reg_token *t;
        enum role r = ROLE_NONE;
        int rc;

        /* As a handler's srv_lock() failure: the same status for the same store problem. */
        if ((rc = srv_lock(rq->srv)) != 0)
            return rc;
        t = mc_registry_token_check(rq->srv->reg, secret);
        if (!t) {
            srv_unlock(rq->srv);
            mc_err(MC_EPERM, "the token is not valid (revoked, mistyped, or from another store); "
                             "ask an admin for one made with `mcache token add`");
            return 401;
        }
        if (role_parse(t->role, &r) != 0) {
            srv_unlock(rq->srv);
            return 401;
        }
        rq->role = r;
        snprintf(rq->who, sizeof(rq->who), "token:%.70s", t->name);
        srv_unlock(rq->srv);
        return 0;
    }
}
